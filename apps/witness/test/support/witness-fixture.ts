import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrustedLog } from '../../src/trusted-logs.js';
import { createWitnessServer, type WitnessServer } from '../../src/server.js';

export interface RunningWitness {
  witness: WitnessServer;
  url: string;
  /** The witness's data folder (inside a temporary folder the fixture removes). */
  dataDir: string;
  /** What the witness reported as evidence of misbehaviour or unexpected errors. */
  warnings: string[];
  /** Stops the server; the data folder stays until `remove`. */
  close(): Promise<void>;
  /** Stops the server and removes the temporary folder. */
  remove(): Promise<void>;
}

/** A temporary parent folder (0700, from mkdtemp) for a witness data folder. */
export function temporaryFolder(): string {
  return mkdtempSync(join(tmpdir(), 'writ-witness-'));
}

/** Starts a witness on 127.0.0.1, a port the system picks, over `dataDir` (a fresh one by default). */
export async function startWitness(options: { logs: TrustedLog[]; dataDir?: string; name?: string; now?: () => number }): Promise<RunningWitness> {
  const parent = options.dataDir === undefined ? temporaryFolder() : undefined;
  const dataDir = options.dataDir ?? join(parent!, 'witness');
  const warnings: string[] = [];
  const witness = await createWitnessServer({
    config: { dataDir, host: '127.0.0.1', port: 0, name: options.name ?? 'witness.test/w1', logs: options.logs },
    ...(options.now ? { now: options.now } : {}),
    warn: (line) => warnings.push(line),
  });
  const url = await witness.listen();
  return {
    witness,
    url,
    dataDir,
    warnings,
    close: () => witness.close(),
    remove: async () => {
      await witness.close();
      if (parent !== undefined) rmSync(parent, { recursive: true, force: true });
    },
  };
}

/** An HTTP answer as the tests compare it. */
export interface Answer {
  status: number;
  type: string | null;
  body: string;
}

/** POSTs an add-checkpoint body. */
export async function addCheckpoint(url: string, body: string | Uint8Array<ArrayBuffer>): Promise<Answer> {
  const response = await fetch(`${url}/add-checkpoint`, { method: 'POST', body });
  return { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
}

export async function get(url: string, path: string): Promise<Answer> {
  const response = await fetch(`${url}${path}`);
  return { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
}
