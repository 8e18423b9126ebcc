import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock, verifyCosignature } from '@writ/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWitnessServer, type WitnessServer } from '../../witness/src/server.js';
import { type DatabaseTarget, openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { auditLogSigner } from '../src/modules/audit/audit-log-key.js';
import { TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { CheckpointPublisher } from '../src/modules/audit/checkpoint-publisher.js';
import { KeyStore } from '../src/modules/keys/key-store.js';
import { cli } from './support/cli.js';
import { storages, type TestDatabase } from './support/databases.js';

/**
 * Issue 19, "Must show": someone with write access to the database deletes the log's tail (events,
 * tree nodes, checkpoints and cosignatures, and the verified head) or rewrites an event in the
 * middle, with SQL, outside the registry. A checkpoint kept outside (`audit verify --checkpoint`)
 * and a witness that cosigned it each catch it, naming the checkpoint's size and the first
 * missing seq, or the rewritten seq.
 */
const ORIGIN = 'registry.tamper.test/audit';
const EVENTS = 20;
const CUT = 14;

/** Where a test's log lives: embedded PGlite in the data folder (so the CLI can open it after), or a PostgreSQL database. */
function targetOf(name: string, testDb: TestDatabase, dataDir: string): DatabaseTarget {
  return name === 'embedded PGlite' ? { pgliteDir: dataDir } : testDb.target;
}

describe.each(storages)('a log tampered with in the database, on $name', ({ name, create }) => {
  let testDb: TestDatabase;
  let dataDir: string;
  let witness: WitnessServer;
  let witnessUrl: string;
  let env: Record<string, string>;
  let kept: string;
  let published: string;

  /** Runs `work` on the log's database, closed afterwards (embedded PGlite has one user at a time). */
  async function withDatabase<T>(work: (db: Database) => Promise<T>): Promise<T> {
    const target = targetOf(name, testDb, dataDir);
    const db = new Database(await openDatabase(target), 'pgliteDir' in target);
    try {
      return await work(db);
    } finally {
      await db.close();
    }
  }

  /** The registry's audit service and witness publisher on `db`, as the registry wires them. */
  async function services(db: Database) {
    const keys = new KeyStore(dataDir, systemClock, 330);
    await keys.init();
    const log = auditLogSigner({ dataDir, origin: ORIGIN });
    const audit = new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock: systemClock, checkpointEvery: 5, log });
    const warnings: string[] = [];
    const publisher = new CheckpointPublisher({
      audit,
      repository: new TypeOrmAuditRepository(db),
      witnesses: [{ url: witnessUrl, vkey: witness.vkey }],
      logger: { warn: (message) => warnings.push(message) },
      now: () => systemClock.now(),
    });
    return { audit, publisher, warnings, log };
  }

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-tamper-'));
    const vkey = auditLogSigner({ dataDir, origin: ORIGIN }).vkey;
    witness = await createWitnessServer({
      config: { dataDir: join(dataDir, 'witness'), host: '127.0.0.1', port: 0, name: 'witness.tamper.test/w1', logs: [{ origin: ORIGIN, vkeys: [vkey] }] },
      warn: () => undefined,
    });
    witnessUrl = await witness.listen();
    env = {
      WRIT_DATA_DIR: dataDir,
      WRIT_AUDIT_ORIGIN: ORIGIN,
      WRIT_AUDIT_WITNESSES: JSON.stringify([{ url: witnessUrl, vkey: witness.vkey }]),
      ...('url' in testDb.target && name !== 'embedded PGlite' ? { DATABASE_URL: testDb.target.url } : {}),
    };
    // Twenty events, a checkpoint every five, each cosigned by the witness; the last one kept outside.
    kept = await withDatabase(async (db) => {
      const { audit, publisher } = await services(db);
      for (let i = 0; i < EVENTS; i++) await audit.append({ type: 'token.issued', grant_id: `g_${i % 3}`, data: { i } });
      await publisher.idle();
      published = (await audit.publishedCheckpoint())!;
      return (await audit.latestCheckpoint())!.note!;
    });
    writeFileSync(join(dataDir, 'kept-checkpoint.txt'), kept);
  }, 120_000);

  afterAll(async () => {
    await witness?.close();
    await testDb?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('publishes each checkpoint with the witness\'s cosignature, which verifies with the witness key', async () => {
    const text = kept.slice(0, kept.indexOf('\n\n') + 1);
    expect(published.startsWith(kept)).toBe(true);
    const line = published.slice(kept.length).trimEnd();
    expect(line).toMatch(/^\u2014 witness\.tamper\.test\/w1 /);
    await expect(verifyCosignature({ checkpointText: text, line, vkey: witness.vkey })).resolves.toMatchObject({ time: expect.any(Number) });
  });

  it('is intact before: the log extends the kept checkpoint and the one the witness cosigned', async () => {
    const { code, stdout } = await cli(['audit', 'verify', '--checkpoint', join(dataDir, 'kept-checkpoint.txt')], env);
    expect(stdout).toContain(`chain intact: ${EVENTS} events, head seq ${EVENTS}`);
    expect(stdout).toContain(`--checkpoint ${join(dataDir, 'kept-checkpoint.txt')} (size ${EVENTS}): the log extends it`);
    expect(stdout).toContain(`witness witness.tamper.test/w1 (size ${EVENTS}): the log extends it`);
    expect(code).toBe(0);
  }, 60_000);

  it('says BROKEN when the tail is deleted with SQL, naming the checkpoint size and the first missing seq, from the kept checkpoint and from the witness', async () => {
    await withDatabase(async (db) => {
      await db.dataSource.query('DELETE FROM audit_events WHERE seq > $1', [CUT]);
      // Every subtree that reaches past the cut: (idx + 1) · 2^level leaves > CUT.
      await db.dataSource.query('DELETE FROM audit_merkle_nodes WHERE (idx + 1) * (1::bigint << level) > $1', [CUT]);
      await db.dataSource.query('DELETE FROM audit_checkpoints WHERE seq > $1', [CUT]);
      await db.dataSource.query('DELETE FROM audit_verified_head');
    });
    const file = join(dataDir, 'kept-checkpoint.txt');
    const { code, stdout } = await cli(['audit', 'verify', '--checkpoint', file], env);
    const missing = `the log ends at seq ${CUT}, below this checkpoint of size ${EVENTS}: seq ${CUT + 1} is missing`;
    expect(stdout).toContain(`chain BROKEN at seq ${CUT + 1}: --checkpoint ${file}: ${missing}`);
    expect(stdout).toContain(`--checkpoint ${file} (size ${EVENTS}): BROKEN: ${missing}`);
    expect(stdout).toContain(`witness witness.tamper.test/w1 (size ${EVENTS}): BROKEN: ${missing}`);
    expect(code).toBe(1);
  }, 60_000);

  it('and the witness refuses the truncated log\'s next checkpoint: it holds a larger tree', async () => {
    const warnings = await withDatabase(async (db) => {
      const { audit, publisher, warnings } = await services(db);
      await audit.append({ type: 'token.issued', data: { after: 'the cut' } });
      await audit.checkpoint();
      await publisher.idle();
      return warnings;
    });
    expect(warnings).toEqual([`audit checkpoint ${CUT + 1}: witness witness.tamper.test/w1 holds size ${EVENTS}, beyond the log: the log was truncated`]);
  }, 60_000);
});

describe.each(storages)('an event rewritten in the middle with SQL, on $name', ({ name, create }) => {
  let testDb: TestDatabase;
  let dataDir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-rewrite-'));
    env = { WRIT_DATA_DIR: dataDir, WRIT_AUDIT_ORIGIN: ORIGIN, ...('url' in testDb.target && name !== 'embedded PGlite' ? { DATABASE_URL: testDb.target.url } : {}) };
    const target = targetOf(name, testDb, dataDir);
    const db = new Database(await openDatabase(target), 'pgliteDir' in target);
    try {
      const keys = new KeyStore(dataDir, systemClock, 330);
      await keys.init();
      const audit = new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock: systemClock, checkpointEvery: 5, log: auditLogSigner({ dataDir, origin: ORIGIN }) });
      for (let i = 0; i < EVENTS; i++) await audit.append({ type: 'token.issued', data: { i } });
      writeFileSync(join(dataDir, 'kept-checkpoint.txt'), (await audit.latestCheckpoint())!.note!);
      await db.dataSource.query(`UPDATE audit_events SET data = '{"i": 999}'::jsonb WHERE seq = 7`);
    } finally {
      await db.close();
    }
  }, 120_000);

  afterAll(async () => {
    await testDb?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('is found, naming that seq, and the checkpoints after it cannot be checked', async () => {
    const { code, stdout } = await cli(['audit', 'verify', '--checkpoint', join(dataDir, 'kept-checkpoint.txt')], env);
    expect(stdout).toContain('chain BROKEN at seq 7: hash does not match the event content (6 events verified before it)');
    expect(stdout).toContain('checkpoint seq 10: the chain is broken before this checkpoint');
    expect(code).toBe(1);
  }, 60_000);
});

/**
 * The tree's leaves are computed from the events' hashes (docs/audit.md, "Storage"). An event
 * whose hash was rewritten with SQL to something that is not a SHA-256 hex digest has no leaf:
 * appending after it, and a proof that needs it, refuse with an error that names the event, and
 * `audit verify` names its seq. Nothing is linked onto it.
 */
describe.each(storages)('an event hash rewritten to one that is not hex, at the head, on $name', ({ name, create }) => {
  let testDb: TestDatabase;
  let dataDir: string;
  let db: Database;
  let audit: AuditService;
  const HEAD = 21;
  const NO_LEAF = `the audit event at seq ${HEAD} has no leaf: its hash is not a SHA-256 hash in lowercase hex (changed outside the registry)`;

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-nonhex-'));
    const target = targetOf(name, testDb, dataDir);
    db = new Database(await openDatabase(target), 'pgliteDir' in target);
    const keys = new KeyStore(dataDir, systemClock, 330);
    await keys.init();
    const service = () => new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock: systemClock, checkpointEvery: 5, log: auditLogSigner({ dataDir, origin: ORIGIN }) });
    const before = service();
    for (let i = 0; i < HEAD; i++) await before.append({ type: 'token.issued', data: { i } });
    await db.dataSource.query(`UPDATE audit_events SET hash = repeat('z', 64) WHERE seq = ${HEAD}`);
    // A registry started after the change: it reads the tree's edge from the database.
    audit = service();
  }, 120_000);

  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses to append after it, naming the event, and appends nothing', async () => {
    await expect(audit.append({ type: 'token.issued', data: { i: HEAD } })).rejects.toThrow(NO_LEAF);
    expect(await audit.verify({ full: true })).toMatchObject({ chain: { ok: false, count: HEAD - 1, brokenSeq: HEAD, reason: 'event is malformed: hash: a SHA-256 hash in lowercase hex' } });
  });

  it('refuses an inclusion proof of it, naming the event', async () => {
    await expect(audit.inclusionProof({ seq: HEAD, size: HEAD })).rejects.toThrow(NO_LEAF);
  });
});
