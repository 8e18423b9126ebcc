import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { merkleLeafHash, systemClock, verifyAuditChain, verifyConsistency, verifyInclusion } from '@writ/core';
import pg from 'pg';
import { EntityManager } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { AuditService, unrecordableReason } from '../src/modules/audit/audit.service.js';
import { TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import { auditLogSigner } from '../src/modules/audit/audit-log-key.js';
import { databaseTransactions } from '../src/infra/transaction.js';
import { KeyStore } from '../src/modules/keys/key-store.js';
import { storages, type TestDatabase } from './support/databases.js';

/** A fresh database, key folder and ctx.audit service (checkpoint every `checkpointEvery`) per describe block. */
function auditContext(create: () => Promise<TestDatabase>, checkpointEvery: number) {
  const ctx = {} as { testDb: TestDatabase; db: Database; audit: AuditService; dataDir: string };
  beforeAll(async () => {
    ctx.testDb = await create();
    ctx.db = new Database(await openDatabase(ctx.testDb.target), 'pgliteDir' in ctx.testDb.target);
    ctx.dataDir = mkdtempSync(join(tmpdir(), 'writ-audit-'));
    const keys = new KeyStore(ctx.dataDir, systemClock, 330);
    await keys.init();
    ctx.audit = new AuditService({ repository: new TypeOrmAuditRepository(ctx.db), keys, clock: systemClock, checkpointEvery, log: auditLogSigner({ dataDir: ctx.dataDir, origin: 'registry.test/audit' }) });
  });
  afterAll(async () => {
    await ctx.db.close();
    await ctx.testDb.drop();
    rmSync(ctx.dataDir, { recursive: true, force: true });
  });
  return ctx;
}

describe.each(storages)('ctx.audit chain on $name', ({ create }) => {
  const ctx = auditContext(create, 10);

  it('keeps one unbroken chain under a 50-append concurrent burst', async () => {
    const appended = await Promise.all(
      Array.from({ length: 50 }, (_, i) => ctx.audit.append({ type: 'token.issued', actor: `agent:${i % 5}`, grant_id: 'g_1', data: { i } })),
    );
    const seqs = appended.map((e) => e.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    const result = await ctx.audit.verify({ full: true });
    expect(result.chain).toMatchObject({ ok: true, count: 50, lastSeq: 50 });
    // Every 10th event was checkpointed, and each checkpoint verifies against the chain.
    expect(result.checkpoints).toEqual({ verified: 5, failed: [] });
  });

  it('appends an event id only once (idempotent ingestion)', async () => {
    const first = await ctx.audit.append({ id: 'evt_verifier_1', type: 'verify.allow', data: { n: 1 } });
    const again = await ctx.audit.append({ id: 'evt_verifier_1', type: 'verify.allow', data: { n: 1 } });
    expect(again).toEqual(first);
    expect((await ctx.audit.verify({ full: true })).chain).toMatchObject({ ok: true, count: 51 });
  });

  it('exports a chain that verifies offline', async () => {
    const events = [];
    for await (const e of ctx.audit.export()) events.push(JSON.parse(JSON.stringify(e)) as unknown);
    expect(await verifyAuditChain(events)).toMatchObject({ ok: true, count: 51, lastSeq: 51 });
  });

  it('keeps the Merkle tree with the events: every checkpoint is a signed note of its root, and proofs verify', async () => {
    const result = await ctx.audit.verify({ full: true });
    expect(result).toMatchObject({ tree: { size: 51 }, checkpoints: { verified: 5, failed: [] } });
    const root = await ctx.audit.rootAt(51);
    expect(result.tree!.root).toBe(Buffer.from(root).toString('base64'));
    const [event] = await ctx.db.dataSource.query<{ hash: string }[]>('SELECT hash FROM audit_events WHERE seq = 17');
    const { leaf, proof } = await ctx.audit.inclusionProof({ seq: 17, size: 51 });
    expect(Buffer.from(leaf)).toEqual(Buffer.from(merkleLeafHash(Buffer.from(event!.hash, 'hex'))));
    expect(verifyInclusion({ leafHash: leaf, index: 16, size: 51, proof, root })).toBe(true);
    const consistency = await ctx.audit.consistencyProof({ from: 20, to: 51 });
    expect(verifyConsistency({ oldSize: 20, newSize: 51, oldRoot: await ctx.audit.rootAt(20), newRoot: root, proof: consistency.proof })).toBe(true);
  });

  it('names the sequence number of a row edited directly in the database', async () => {
    await ctx.db.dataSource.query(`UPDATE audit_events SET data = '{"i": 999}'::jsonb WHERE seq = 17`);
    const result = await ctx.audit.verify({ full: true });
    expect(result.chain).toEqual({ ok: false, count: 16, brokenSeq: 17, reason: 'hash does not match the event content' });
    // The checkpoint at seq 20 lies after the break: it cannot be checked against events that do not link up.
    expect(result.checkpoints.failed).toContainEqual({ seq: 20, reason: 'the chain is broken before this checkpoint' });
  });
});

describe.each(storages)('ctx.audit batch of ingestion on $name', ({ create }) => {
  const ctx = auditContext(create, 1000);

  it('commits a batch given at once in one transaction, each draft settling on its own', async () => {
    const pool = ctx.db.pgPool();
    const transactions = pool ? vi.spyOn(pool, 'connect') : vi.spyOn(ctx.db, 'transaction');
    const drafts = Array.from({ length: 150 }, (_, i) => ({ type: 'verification.allowed', data: { i } }));
    const outcomes = await ctx.audit.appendAll(drafts);
    expect(transactions).toHaveBeenCalledTimes(1);
    transactions.mockRestore();
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value.data.i : 'rejected'))).toEqual(drafts.map((d) => d.data.i));
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value.seq : 0))).toEqual(Array.from({ length: 150 }, (_, i) => 1 + i));
    expect((await ctx.audit.verify({ full: true })).chain).toMatchObject({ ok: true, count: 150 });
  });

  it('stores the tree rows from level 4 only, one per 8 events, and proves events on either side of them', async () => {
    await ctx.audit.appendAll(Array.from({ length: 150 }, (_, i) => ({ type: 'verification.allowed', data: { i: 150 + i } })));
    const rows = await ctx.db.dataSource.query<{ level: number; n: number }[]>('SELECT level, count(*)::int AS n FROM audit_merkle_nodes GROUP BY level ORDER BY level');
    // 300 events: the complete subtrees of 16, 32, 64, 128 and 256 of them.
    expect(rows.map((r) => [r.level, r.n])).toEqual([[4, 18], [5, 9], [6, 4], [7, 2], [8, 1]]);
    const root = await ctx.audit.rootAt(300);
    for (const seq of [1, 128, 256, 257, 300]) {
      const [event] = await ctx.db.dataSource.query<{ hash: string }[]>('SELECT hash FROM audit_events WHERE seq = $1', [seq]);
      const { leaf, proof } = await ctx.audit.inclusionProof({ seq, size: 300 });
      expect(Buffer.from(leaf)).toEqual(Buffer.from(merkleLeafHash(Buffer.from(event!.hash, 'hex'))));
      expect(verifyInclusion({ leafHash: leaf, index: seq - 1, size: 300, proof, root }), `event ${seq}`).toBe(true);
    }
    for (const from of [1, 100, 256, 299]) {
      const { proof } = await ctx.audit.consistencyProof({ from, to: 300 });
      expect(verifyConsistency({ oldSize: from, newSize: 300, oldRoot: await ctx.audit.rootAt(from), newRoot: root, proof }), `from ${from}`).toBe(true);
    }
    expect(await ctx.audit.verify({ full: true })).toMatchObject({ chain: { ok: true, count: 300 }, tree: { size: 300, root: Buffer.from(root).toString('base64') } });
  });
});

describe.each(storages)('ctx.audit group commit on $name', ({ create }) => {
  const ctx = auditContext(create, 1000);

  it('commits a 200-append burst in a few transactions, in arrival order', async () => {
    // A group is one transaction: on a pooled connection of its own on PostgreSQL, through TypeORM on PGlite.
    const pool = ctx.db.pgPool();
    const transactions = pool ? vi.spyOn(pool, 'connect') : vi.spyOn(ctx.db, 'transaction');
    const appended = await Promise.all(Array.from({ length: 200 }, (_, i) => ctx.audit.append({ type: 'token.issued', data: { i } })));
    // The first append starts a transaction alone; the 199 queued meanwhile share the next one.
    expect(transactions).toHaveBeenCalledTimes(2);
    transactions.mockRestore();
    expect(appended.map((e) => e.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(appended.map((e) => e.data.i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect((await ctx.audit.verify({ full: true })).chain).toMatchObject({ ok: true, count: 200, lastSeq: 200 });
  });

  it('keeps quotes, backslashes and non-ASCII text exactly, so the stored chain still verifies', async () => {
    const text = `it's a \\ back'slash; "quoted" -- ☃ 🎫 \\' OR 1=1`;
    const event = await ctx.audit.append({ type: 'admin.note', data: { text } });
    const [row] = await ctx.db.dataSource.query<{ data: { text: string } }[]>('SELECT data FROM audit_events WHERE id = $1', [event.id]);
    expect(row!.data.text).toBe(text);
    expect((await ctx.audit.verify({ full: true })).chain).toMatchObject({ ok: true, count: 201 });
  });

  it("keeps tabs, newlines, backslashes and a literal \\N in every text column exactly (COPY's specials on PostgreSQL)", async () => {
    const event = await ctx.audit.append({
      id: 'evt_tab\there\nnext\\',
      type: 'admin.note',
      actor: 'agent:a,"data":{"x":1},"grant_id":"g"\\',
      subject: '\\N',
      grant_id: 'g_\r1',
      txn: '\\.',
      data: { nested: { grant_id: 'inner', '\t': '\\N\n' }, text: ',"grant_id":"fake"' },
    });
    const [row] = await ctx.db.dataSource.query<Record<string, unknown>[]>('SELECT id, actor, subject, grant_id, txn, data, hash FROM audit_events WHERE seq = $1', [event.seq]);
    expect(row).toEqual({ id: event.id, actor: event.actor, subject: '\\N', grant_id: 'g_\r1', txn: '\\.', data: event.data, hash: event.hash });
    expect((await ctx.audit.verify({ full: true })).chain).toMatchObject({ ok: true, count: 202 });
  });

  it('refuses a NUL in a text column for that draft alone, as a data exception ingestion dead-letters; the rest of its group is committed', async () => {
    const [before, bad, after] = await Promise.allSettled([
      ctx.audit.append({ type: 'admin.note', data: { n: 'before NUL' } }),
      ctx.audit.append({ type: 'admin.note', actor: 'agent:a\u0000b', data: { n: 'NUL' } }),
      ctx.audit.append({ type: 'admin.note', data: { n: 'after NUL' } }),
    ]);
    expect(bad.status).toBe('rejected');
    expect(unrecordableReason((bad as PromiseRejectedResult).reason)).toMatch(/^refused by the database \(SQLSTATE 22[0-9A-Z]{3}\)/);
    expect(before).toMatchObject({ status: 'fulfilled', value: { data: { n: 'before NUL' } } });
    expect(after).toMatchObject({ status: 'fulfilled', value: { data: { n: 'after NUL' } } });
    const [row] = await ctx.db.dataSource.query<{ n: string }[]>(`SELECT count(*) AS n FROM audit_events WHERE data->>'n' IN ('before NUL', 'NUL', 'after NUL')`);
    expect(Number(row!.n)).toBe(2);
    expect((await ctx.audit.verify({ full: true })).chain).toMatchObject({ ok: true });
  });

  it('fails only the draft that cannot be hashed; the rest of its group is committed', async () => {
    const [before, bad, after] = await Promise.allSettled([
      ctx.audit.append({ type: 'admin.note', data: { n: 1 } }),
      ctx.audit.append({ type: 'admin.note', data: { n: Number.NaN } }),
      ctx.audit.append({ type: 'admin.note', data: { n: 3 } }),
    ]);
    expect(before).toMatchObject({ status: 'fulfilled', value: { seq: 205 } });
    expect(bad.status).toBe('rejected');
    expect(after).toMatchObject({ status: 'fulfilled', value: { seq: 206, data: { n: 3 } } });
    expect((await ctx.audit.verify({ full: true })).chain).toMatchObject({ ok: true, count: 206 });
  });

  it('appends an id repeated inside one group once, and answers both callers with that event', async () => {
    const [a, b] = await Promise.all([
      ctx.audit.append({ id: 'evt_dup', type: 'verify.allow', data: { n: 1 } }),
      ctx.audit.append({ id: 'evt_dup', type: 'verify.allow', data: { n: 1 } }),
      ctx.audit.append({ type: 'admin.note' }),
    ]);
    expect(b).toEqual(a);
    expect((await ctx.audit.verify({ full: true })).chain).toMatchObject({ ok: true, count: 208 });
  });

  it('looks up no ids for a group of new ones, and links a group again, knowing the chain, when one of its ids is already there', async () => {
    // Every statement sent, on either storage: pg's clients (PostgreSQL) and TypeORM's managers (PGlite).
    const pgQuery = vi.spyOn(pg.Client.prototype, 'query');
    const managerQuery = vi.spyOn(EntityManager.prototype, 'query');
    const lookups = (): number =>
      [...pgQuery.mock.calls.map((call) => call[0] as unknown), ...managerQuery.mock.calls.map((call) => call[0])].filter((sql) => typeof sql === 'string' && sql.includes('WHERE id = ANY')).length;
    try {
      const fresh = await Promise.all([1, 2, 3].map((n) => ctx.audit.append({ id: `evt_new_${n}`, type: 'verify.allow', data: { n } })));
      expect(fresh.map((e) => e.seq)).toEqual([209, 210, 211]);
      expect(lookups()).toBe(0);

      const [again, next] = await Promise.all([
        ctx.audit.append({ id: 'evt_new_2', type: 'verify.allow', data: { n: 2 } }),
        ctx.audit.append({ id: 'evt_new_4', type: 'verify.allow', data: { n: 4 } }),
      ]);
      expect(again).toEqual(fresh[1]);
      expect(next).toMatchObject({ seq: 212, id: 'evt_new_4', prev_hash: fresh[2]!.hash });
      // The optimistic insert was refused by the unique index on id; the second try looked the ids up.
      expect(lookups()).toBe(1);
    } finally {
      pgQuery.mockRestore();
      managerQuery.mockRestore();
    }
    const rows = await ctx.db.dataSource.query<{ id: string; n: string }[]>(`SELECT id, count(*) AS n FROM audit_events WHERE id LIKE 'evt_new_%' GROUP BY id ORDER BY id`);
    expect(rows.map((r) => [r.id, Number(r.n)])).toEqual([['evt_new_1', 1], ['evt_new_2', 1], ['evt_new_3', 1], ['evt_new_4', 1]]);
    expect((await ctx.audit.verify({ full: true })).chain).toMatchObject({ ok: true, count: 212 });
  });

  it('never forks the chain with two writers and appends inside callers\' transactions racing', async () => {
    // A second writer as another registry process would be: its own pool on PostgreSQL (one
    // session is all embedded PGlite has), its own idea of the head.
    const otherDb = ctx.db.embedded ? ctx.db : new Database(await openDatabase(ctx.testDb.target), false);
    const keys = new KeyStore(ctx.dataDir, systemClock, 330);
    await keys.init();
    const other = new AuditService({ repository: new TypeOrmAuditRepository(otherDb), keys, clock: systemClock, checkpointEvery: 1000, log: ctx.audit.log });
    try {
      const writes = await Promise.all([
        ...Array.from({ length: 60 }, (_, i) => ctx.audit.append({ type: 'token.issued', data: { writer: 'a', i } })),
        ...Array.from({ length: 60 }, (_, i) => other.append({ type: 'token.issued', data: { writer: 'b', i } })),
        ...Array.from({ length: 10 }, (_, i) => databaseTransactions(ctx.db)((tx) => ctx.audit.append({ type: 'grant.approved', data: { i } }, tx))),
      ]);
      expect(new Set(writes.map((e) => e.seq)).size).toBe(130);
      const result = await ctx.audit.verify({ full: true });
      expect(result.chain).toMatchObject({ ok: true, count: 342, lastSeq: 342 });
    } finally {
      if (otherDb !== ctx.db) await otherDb.close();
    }
  });
});
