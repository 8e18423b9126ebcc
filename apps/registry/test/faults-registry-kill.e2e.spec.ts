import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresServer, startPostgresServer } from '../../verifier/test/support/postgres-server.js';
import { openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { cli } from './support/cli.js';
import { createPostgresDatabase } from './support/databases.js';
import { freePort } from './support/redis.js';
import { type Agent, createTokenFixture, ISSUER } from './support/token-fixture.js';
import { startTestWitness, type TestWitness } from './support/witness.js';

const ROOT = resolve(import.meta.dirname, '../../..');
/** Token requests answered 200 before the registry is killed mid-stream. */
const ISSUED_BEFORE_KILL = 30;
/** Token requests in flight at once. */
const CONCURRENCY = 4;

/** The registry as its own process (`npm run start:registry`), its output collected. */
interface RegistryProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<void>;
}

function startRegistryProcess(env: Record<string, string>): RegistryProcess {
  const child = spawn(process.execPath, ['--import', '@swc-node/register/esm-register', 'apps/registry/src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, SWC_NODE_PROJECT: 'apps/registry/tsconfig.json', REDIS_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  return { child, output: () => output, exited };
}

async function listening(registry: RegistryProcess, url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (registry.child.exitCode !== null) throw new Error(`the registry exited (${registry.child.exitCode}):\n${registry.output()}`);
    const up = await fetch(`${url}/readyz`).then((res) => res.status === 200, () => false);
    if (up) return;
    if (Date.now() > deadline) throw new Error(`the registry did not answer within 60 s:\n${registry.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Issue 19, goal 4, "kill -9 of the registry": the registry runs as its own process on PostgreSQL
 * and is killed with SIGKILL while agents keep asking it for tokens. Every token it answered (200)
 * has exactly one `token.issued` event (the event commits before the answer); started again on the
 * same database and keys it serves again without anything done by hand; the chain verifies; and the
 * witness, which cosigned checkpoints before the kill, cosigns one of the new head (it does so only
 * with a consistency proof from the checkpoint it holds), which `audit verify` then checks too.
 */
describe('kill -9 of the registry while it issues tokens', () => {
  let pg: PostgresServer | undefined;
  let databaseUrl: string;
  const fx = createTokenFixture(
    {
      name: 'PostgreSQL',
      create: async () => {
        const database = await createPostgresDatabase(process.env.DATABASE_URL || (pg = await startPostgresServer()).url, 'writ_kill_');
        databaseUrl = (database.target as { url: string }).url;
        return database;
      },
    },
    { dataDirPrefix: 'writ-faults-kill-', owners: ['alice'] },
  );
  let alice: Agent;
  let grantId: string;
  let dataDir: string;
  let witness: TestWitness;
  let env: Record<string, string>;
  let url: string;
  let registry: RegistryProcess | undefined;

  beforeAll(async () => {
    const started = await fx.start();
    ({ dataDir } = started);
    alice = started.agents.alice;
    grantId = await fx.approvedGrant(alice, { envelope: { max_uses: 10_000 } });
    // The registry in process made the data and keys; from here it runs as a process of its own.
    await started.app.close();
    witness = await startTestWitness();
    witness.trust(dataDir);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = {
      DATABASE_URL: databaseUrl,
      WRIT_DATA_DIR: dataDir,
      WRIT_ISSUER: ISSUER,
      WRIT_TRUST_DOMAIN: 'writ.test',
      REGISTRY_PORT: String(port),
      WRIT_CHECKPOINT_EVERY: '8',
      ...witness.env,
    };
  }, 120_000);

  afterAll(async () => {
    if (registry && registry.child.exitCode === null && registry.child.signalCode === null) {
      registry.child.kill('SIGKILL');
      await registry.exited;
    }
    await witness?.close();
    await fx.close().catch(() => undefined);
    await pg?.destroy();
  });

  /** One token request over HTTP, as an agent sends it: the token's jti when answered 200. */
  async function askToken(): Promise<{ status: number; jti?: string }> {
    const res = await fetch(`${url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await fx.proof(alice) },
      body: new URLSearchParams(await fx.rootTokenForm(alice, grantId)).toString(),
    });
    const body = (await res.json()) as { access_token?: string };
    return res.status === 200 && body.access_token ? { status: 200, jti: decodeJwt(body.access_token).jti! } : { status: res.status };
  }

  it('has one token.issued event for every token it answered, serves again once started, and extends what the witness cosigned', { timeout: 180_000 }, async () => {
    registry = startRegistryProcess(env);
    await listening(registry, url);

    const answered: string[] = [];
    const refused: number[] = [];
    let killed = false;
    const loop = async () => {
      while (!killed) {
        try {
          const { status, jti } = await askToken();
          if (jti) answered.push(jti);
          else refused.push(status);
          if (answered.length >= ISSUED_BEFORE_KILL && !killed) {
            killed = true;
            registry!.child.kill('SIGKILL');
          }
        } catch {
          // No answer: the request was in flight when the process died.
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, loop));
    await registry.exited;
    expect(registry.child.signalCode).toBe('SIGKILL');
    expect(refused).toEqual([]);

    // Started again on the same database and keys: it serves without anything done by hand.
    registry = startRegistryProcess(env);
    await listening(registry, url);
    for (let i = 0; i < 3; i++) {
      const after = await askToken();
      expect(after.status).toBe(200);
      answered.push(after.jti!);
    }

    const db = new Database(await openDatabase({ url: databaseUrl }), false);
    try {
      // Every answered token has exactly one event (a token whose answer was lost may have one too).
      const rows = await db.query<{ jti: string; n: number }[]>(`SELECT data->>'jti' AS jti, count(*)::int AS n FROM audit_events WHERE type = 'token.issued' GROUP BY 1`);
      const events = new Map(rows.map((row) => [row.jti, row.n]));
      expect(answered.filter((jti) => events.get(jti) !== 1)).toEqual([]);
      expect(rows.filter((row) => row.n !== 1)).toEqual([]);

      // The witness cosigns a checkpoint of the new head (timed checkpoints, every second).
      const cosigned = await witness.cosignsHead(db);
      const head = Number(cosigned.split('\n')[1]);
      const note = join(dataDir, 'cosigned-checkpoint.txt');
      writeFileSync(note, cosigned);
      // --full: every event re-hashed, not only those after the last head the registry verified.
      const verified = await cli(['audit', 'verify', '--full', '--checkpoint', note], env);
      expect(verified.stdout, verified.stderr).toMatch(new RegExp(`^chain intact: ${head} events`));
      expect(verified.stdout).toContain(`--checkpoint ${note} (size ${head}): the log extends it`);
      expect(verified.code).toBe(0);
    } finally {
      await db.close();
    }
  });
});
