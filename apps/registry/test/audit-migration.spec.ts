import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@writ/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditMerkleTree1764000019000 } from '../../../migrations/1764000019000-audit-merkle-tree.js';
import { AuditLeavesFromEvents1764000020000 } from '../../../migrations/1764000020000-audit-leaves-from-events.js';
import { AuditLeanIndexes1764000021000 } from '../../../migrations/1764000021000-audit-lean-indexes.js';
import { AuditTreeTiles1764000022000 } from '../../../migrations/1764000022000-audit-tree-tiles.js';
import { openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { auditLogSigner } from '../src/modules/audit/audit-log-key.js';
import { TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { KeyStore } from '../src/modules/keys/key-store.js';
import { storages, type TestDatabase } from './support/databases.js';

/**
 * The migration that adds the Merkle tree builds it, in SQL, for the events a registry wrote
 * before: the same tree the registry builds as it appends, so the log goes on from it.
 */
describe.each(storages)('the audit tree migration on $name', ({ create }) => {
  let testDb: TestDatabase;
  let db: Database;
  let dataDir: string;

  beforeAll(async () => {
    testDb = await create();
    db = new Database(await openDatabase(testDb.target), 'pgliteDir' in testDb.target);
    dataDir = mkdtempSync(join(tmpdir(), 'writ-audit-migration-'));
  });

  afterAll(async () => {
    await db.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function service(): Promise<AuditService> {
    const keys = new KeyStore(dataDir, systemClock, 330);
    await keys.init();
    return new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock: systemClock, checkpointEvery: 1000, log: auditLogSigner({ dataDir, origin: 'registry.test/audit' }) });
  }

  it('builds every node of the events written before it, with the roots the registry computes, and the log goes on', async () => {
    const before = await service();
    for (let i = 0; i < 13; i++) await before.append({ type: 'token.issued', data: { i } });
    const roots = await Promise.all([1, 2, 7, 8, 13].map((size) => before.rootAt(size)));
    // No rows below level 4 (migration 1764000022000): a leaf is its event's, the nodes above up to level 3 are computed from them.
    const countNodes = () => db.dataSource.query<{ level0: number; inner: number }[]>('SELECT count(*) FILTER (WHERE level = 0)::int AS level0, count(*) FILTER (WHERE level > 0)::int AS inner FROM audit_merkle_nodes');
    expect(await countNodes()).toEqual([{ level0: 0, inner: 0 }]);

    // Back to the schema before issue 19 (the events stay), then up again.
    const migration = new AuditMerkleTree1764000019000();
    const runner = db.dataSource.createQueryRunner();
    try {
      await migration.down(runner);
      await migration.up(runner);
    } finally {
      await runner.release();
    }

    const after = await service();
    // Migration 19 builds the leaves as rows too; the registry reads them from the events either way.
    expect(await countNodes()).toEqual([{ level0: 13, inner: 6 + 3 + 1 }]);
    expect(await Promise.all([1, 2, 7, 8, 13].map((size) => after.rootAt(size)))).toEqual(roots);
    await after.append({ type: 'token.issued', data: { i: 13 } });
    expect(await after.verify({ full: true })).toMatchObject({ chain: { ok: true, count: 14 }, tree: { size: 14 } });

    // Migration 1764000020000 drops the leaves' rows again: the same roots, read from the events.
    const leaves = db.dataSource.createQueryRunner();
    try {
      await new AuditLeavesFromEvents1764000020000().up(leaves);
    } finally {
      await leaves.release();
    }
    // The 14th event's append stored no node below level 4: the level-1 node it completed is not a row.
    expect(await countNodes()).toEqual([{ level0: 0, inner: 6 + 3 + 1 }]);
    const last = await service();
    expect(await Promise.all([1, 2, 7, 8, 13].map((size) => last.rootAt(size)))).toEqual(roots);
    expect(await last.verify({ full: true })).toMatchObject({ chain: { ok: true, count: 14 }, tree: { size: 14 } });

    // Migration 1764000022000 drops the rows below level 4; its down builds them again, all 7 + 3 + 1 of 14 events.
    const tiles = db.dataSource.createQueryRunner();
    try {
      await new AuditTreeTiles1764000022000().up(tiles);
      expect(await countNodes()).toEqual([{ level0: 0, inner: 0 }]);
      expect(await Promise.all([1, 2, 7, 8, 13].map((size) => last.rootAt(size)))).toEqual(roots);
      await new AuditTreeTiles1764000022000().down(tiles);
      expect(await countNodes()).toEqual([{ level0: 0, inner: 7 + 3 + 1 }]);
      expect(await Promise.all([1, 2, 7, 8, 13].map((size) => last.rootAt(size)))).toEqual(roots);
      await new AuditTreeTiles1764000022000().up(tiles);
    } finally {
      await tiles.release();
    }
    expect(await countNodes()).toEqual([{ level0: 0, inner: 0 }]);
    expect(await (await service()).verify({ full: true })).toMatchObject({ chain: { ok: true, count: 14 }, tree: { size: 14 } });
  });

  it('takes the unique index off hash and compares id, grant_id and txn byte by byte, and back', async () => {
    const schema = () =>
      db.dataSource.query<{ indexes: string[]; collations: string[] }[]>(
        `SELECT (SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes WHERE tablename = 'audit_events') AS indexes,
                (SELECT array_agg(column_name || ':' || coalesce(collation_name, '-') ORDER BY column_name) FROM information_schema.columns
                  WHERE table_name = 'audit_events' AND column_name IN ('id', 'grant_id', 'txn')) AS collations`,
      );
    const lean = [{ indexes: ['audit_events_grant_idx', 'audit_events_id_key', 'audit_events_pkey', 'audit_events_txn_idx'], collations: ['grant_id:C', 'id:C', 'txn:C'] }];
    expect(await schema()).toEqual(lean);
    const audit = await service();
    await audit.append({ id: 'evt_lean', type: 'grant.approved', grant_id: 'grt_lean', txn: 'txn_lean', data: {} });

    const runner = db.dataSource.createQueryRunner();
    try {
      await new AuditLeanIndexes1764000021000().down(runner);
      expect(await schema()).toEqual([{ indexes: ['audit_events_grant_idx', 'audit_events_hash_key', 'audit_events_id_key', 'audit_events_pkey', 'audit_events_txn_idx'], collations: ['grant_id:-', 'id:-', 'txn:-'] }]);
      await new AuditLeanIndexes1764000021000().up(runner);
    } finally {
      await runner.release();
    }
    expect(await schema()).toEqual(lean);
    // The same rows are found by each column, and the log still verifies.
    const found = await db.dataSource.query<{ seq: string }[]>(`SELECT seq FROM audit_events WHERE id = 'evt_lean' AND grant_id = 'grt_lean' AND txn = 'txn_lean'`);
    expect(found).toHaveLength(1);
    expect(await (await service()).verify({ full: true })).toMatchObject({ chain: { ok: true, count: 15 } });
  });
});
