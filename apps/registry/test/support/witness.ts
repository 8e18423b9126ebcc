import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { loadWitnessConfig } from '../../../witness/src/config.js';
import { createWitnessServer, type WitnessServer } from '../../../witness/src/server.js';
import type { Database } from '../../src/infra/database.service.js';
import { auditLogSigner } from '../../src/modules/audit/audit-log-key.js';
import { ISSUER } from './token-fixture.js';

/** The audit log's origin for the token fixture's issuer (the issuer's host and /audit). */
export const FIXTURE_ORIGIN = `${new URL(ISSUER).host}/audit`;

/**
 * A witness (apps/witness) in this process for a fault test, on a port of its own with a data
 * folder of its own, and the registry settings that push every checkpoint to it, timed checkpoints
 * every second included. It trusts a log once {@link TestWitness.trust} has named the registry's
 * data folder (where the log's key is made when the registry first opens); until then it refuses
 * that log's checkpoints, and the registry pushes again with its next one.
 */
export interface TestWitness {
  /** WRIT_AUDIT_WITNESSES and WRIT_AUDIT_CHECKPOINT_SECONDS for the registry. */
  env: Record<string, string>;
  trust(dataDir: string, origin?: string): void;
  /**
   * Waits until the witness has cosigned a checkpoint of the chain's head (it cosigns only with a
   * consistency proof from the checkpoint it held before) and answers that note.
   */
  cosignsHead(db: Database, origin?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startTestWitness(): Promise<TestWitness> {
  const dir = mkdtempSync(join(tmpdir(), 'writ-test-witness-'));
  const witness: WitnessServer = await createWitnessServer({ config: loadWitnessConfig({ WRIT_WITNESS_DATA_DIR: dir, WRIT_WITNESS_PORT: '0' }), warn: () => undefined });
  const url = await witness.listen();
  return {
    env: { WRIT_AUDIT_WITNESSES: JSON.stringify([{ url, vkey: witness.vkey }]), WRIT_AUDIT_CHECKPOINT_SECONDS: '1' },
    trust(dataDir, origin = FIXTURE_ORIGIN) {
      const log = auditLogSigner({ dataDir, origin });
      witness.logs.add({ origin: log.origin, vkeys: [log.vkey] });
    },
    async cosignsHead(db, origin = FIXTURE_ORIGIN) {
      let note = '';
      await expect
        .poll(
          async () => {
            const [row] = await db.query<{ head: number | null }[]>('SELECT max(seq)::int AS head FROM audit_events');
            const res = await fetch(`${url}/checkpoint/${origin}`);
            note = res.status === 200 ? await res.text() : '';
            const size = note === '' ? 0 : Number(note.split('\n')[1]);
            return size > 0 && size === row?.head ? 'the head is cosigned' : `the witness is at size ${size}, the chain's head at ${row?.head ?? 0}`;
          },
          { timeout: 30_000, interval: 200 },
        )
        .toBe('the head is cosigned');
      return note;
    },
    async close() {
      await witness.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
