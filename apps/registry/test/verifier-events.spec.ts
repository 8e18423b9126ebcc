import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuditEvent, grantStateKey, randomId, systemClock, verifierKey } from '@writ/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { createDataSource, openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { type AuditDraft, AuditService } from '../src/modules/audit/audit.service.js';
import { TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import { entryIdAfter, RedisVerifierEventSource } from '../src/modules/audit/redis-verifier-events.js';
import { toDraft, VerifierEventIngestor } from '../src/modules/audit/verifier-events.ingestor.js';
import { KeyStore } from '../src/modules/keys/key-store.js';
import { storages, type TestDatabase } from './support/databases.js';
import { deleteKeys, freePort, startRedis } from './support/redis.js';

/**
 * Verifier decision events travel from Redis streams (written as the verifier's store writes them:
 * XADD with `id`, `body`, `outcome`) into a real audit chain.
 */

const REDIS_URL = process.env.REDIS_URL;
const REDIS_AVAILABLE = REDIS_URL !== undefined || spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
const quiet = { warn: () => undefined, error: () => undefined };

describe('entryIdAfter', () => {
  it('names the least stream entry id after the one given, across the sequence part running out', () => {
    expect(entryIdAfter('1700000000000-0')).toBe('1700000000000-1');
    expect(entryIdAfter('5-41')).toBe('5-42');
    expect(entryIdAfter('5-18446744073709551615')).toBe('6-0');
  });
});

describe('toDraft', () => {
  it('makes an allowed or denied verification event, the outcome added to the data', () => {
    const body = JSON.stringify({ type: 'verification', actor: 'agent:a', subject: 'alice', grant_id: 'g1', txn: 'txn_1', data: { amount: '12.000', service: 's1' } });
    expect(toDraft({ id: 'e1', body, outcome: 'allow' })).toEqual({
      id: 'e1',
      type: 'verification.allowed',
      actor: 'agent:a',
      subject: 'alice',
      grant_id: 'g1',
      txn: 'txn_1',
      data: { amount: '12.000', service: 's1', outcome: 'allow' },
    });
    expect(toDraft({ id: 'e2', body, outcome: 'revoked:grant' })).toMatchObject({ type: 'verification.denied', data: { outcome: 'revoked:grant' } });
    // A body that is not a JSON object is kept, not dropped.
    expect(toDraft({ id: 'e3', body: 'not json', outcome: 'invalid_token' })).toEqual({
      id: 'e3',
      type: 'verification.denied',
      actor: null,
      subject: null,
      grant_id: null,
      txn: null,
      data: { outcome: 'invalid_token', unparsed_body: 'not json' },
    });
  });

  it('puts the step-up the store named in the data: asked for with its expiry, or consumed', () => {
    const body = JSON.stringify({ type: 'verification', actor: 'agent:b', subject: 's1', grant_id: 'g1', txn: 'txn_1', data: { amount: 150, currency: 'EUR' } });
    expect(toDraft({ id: 'e4', body, outcome: 'approval_required', stepUpId: 'su_1', stepUpExpiresAtMs: Date.parse('2026-01-01T10:15:00.000Z') })).toMatchObject({
      type: 'verification.denied',
      data: { amount: 150, currency: 'EUR', outcome: 'approval_required', step_up_id: 'su_1', step_up_expires_at: '2026-01-01T10:15:00.000Z' },
    });
    expect(toDraft({ id: 'e5', body, outcome: 'allow', stepUpId: 'su_1' }).data).toEqual({ amount: 150, currency: 'EUR', outcome: 'allow', step_up_id: 'su_1' });
  });
});

describe.each(storages)('verifier events into the audit chain on $name', ({ create }) => {
  let testDb: TestDatabase;
  let db: Database;
  let audit: AuditService;
  let keys: KeyStore;
  let dataDir: string;
  let server: ChildProcess | undefined;
  let redis: Redis;

  beforeAll(async () => {
    if (!REDIS_AVAILABLE) throw new Error('these tests need Redis: set REDIS_URL, or install redis-server (apt-get install -y redis-server)');
    testDb = await create();
    db = new Database(await openDatabase(testDb.target), 'pgliteDir' in testDb.target);
    dataDir = mkdtempSync(join(tmpdir(), 'writ-verifier-events-'));
    keys = new KeyStore(dataDir, systemClock, 330);
    await keys.init();
    audit = new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock: systemClock, checkpointEvery: 1000 });
    let url = REDIS_URL;
    if (!url) {
      const port = await freePort();
      server = await startRedis(port);
      url = `redis://127.0.0.1:${port}`;
    }
    redis = new Redis(url);
  });

  afterAll(async () => {
    await redis.quit();
    if (server) {
      const exited = new Promise((resolve) => server!.once('exit', resolve));
      server.kill('SIGKILL');
      await exited;
    }
    await db.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** A prefix of its own for the test, its keys deleted afterwards. */
  function prefixForTest(): string {
    const prefix = `t${randomId(6)}:`;
    onTestFinished(() => deleteKeys(redis, prefix));
    return prefix;
  }

  /** What the verifier's store writes for one decision on `grantId` (or before any grant: the global stream). */
  async function queue(prefix: string, grantId: string | null, outcome: string, data: Record<string, unknown>, id = `evt_${randomId(9)}`): Promise<string> {
    const body = JSON.stringify({ type: 'verification', actor: 'agent:a', subject: 'alice', grant_id: grantId, txn: 'txn_1', data });
    const stream = grantId ? grantStateKey(prefix, grantId, 'events') : verifierKey(prefix, 'events');
    await redis.xadd(stream, '*', 'id', id, 'body', body, 'outcome', outcome);
    if (grantId) await redis.sadd(verifierKey(prefix, 'event-grants'), grantId);
    return id;
  }

  async function chain(): Promise<AuditEvent[]> {
    const events: AuditEvent[] = [];
    for await (const e of audit.export()) events.push(e);
    return events;
  }

  async function queued(prefix: string, grantIds: string[]): Promise<number> {
    const lengths = await Promise.all([verifierKey(prefix, 'events'), ...grantIds.map((g) => grantStateKey(prefix, g, 'events'))].map((s) => redis.xlen(s)));
    return lengths.reduce((a, b) => a + b, 0);
  }

  it('appends each event once, with its outcome, even when it is delivered twice', async () => {
    const prefix = prefixForTest();
    const a = await queue(prefix, 'g1', 'allow', { amount: '10.000' });
    const b = await queue(prefix, 'g1', 'budget_exceeded', { amount: '900.000' });
    const c = await queue(prefix, null, 'invalid_token', {});
    // The verifier's backlog wrote one of them twice.
    await queue(prefix, 'g1', 'allow', { amount: '10.000' }, a);

    // A first reader appends but dies before its ack: everything is delivered again.
    const first = await new RedisVerifierEventSource(redis, { prefix }).read(100);
    expect(first.events.map((e) => e.id).sort()).toEqual([a, a, b, c].sort());
    for (const e of first.events) await audit.append(toDraft(e));

    const ingestor = new VerifierEventIngestor(new RedisVerifierEventSource(redis, { prefix }), audit, { logger: quiet });
    expect(await ingestor.ingestOnce()).toBe(4);
    expect(await ingestor.ingestOnce()).toBe(0);
    expect(await queued(prefix, ['g1'])).toBe(0);

    const mine = (await chain()).filter((e) => [a, b, c].includes(e.id));
    expect(mine.map((e) => e.id).sort()).toEqual([a, b, c].sort());
    expect(mine.find((e) => e.id === a)).toMatchObject({
      type: 'verification.allowed',
      actor: 'agent:a',
      subject: 'alice',
      grant_id: 'g1',
      txn: 'txn_1',
      data: { amount: '10.000', outcome: 'allow' },
    });
    expect(mine.find((e) => e.id === b)).toMatchObject({ type: 'verification.denied', data: { amount: '900.000', outcome: 'budget_exceeded' } });
    expect(mine.find((e) => e.id === c)).toMatchObject({ type: 'verification.denied', grant_id: null, data: { outcome: 'invalid_token' } });
    expect((await audit.verify()).chain.ok).toBe(true);
  });

  it('acks nothing while appends fail, and ingests everything once they succeed again', async () => {
    const prefix = prefixForTest();
    const queuedIds = [await queue(prefix, 'g1', 'allow', { n: 1 }), await queue(prefix, 'g2', 'rate_limited', { n: 2 }), await queue(prefix, null, 'invalid_dpop_proof', { n: 3 })];

    // An audit service whose database cannot be reached: every append really fails.
    const broken = new AuditService({ repository: new TypeOrmAuditRepository(new Database(createDataSource({ url: `postgres://writ@127.0.0.1:${await freePort()}/none` }), false)), keys, clock: systemClock, checkpointEvery: 1000 });
    let appender: AuditService = broken;
    const attempts: string[] = [];
    const ingestor = new VerifierEventIngestor(
      new RedisVerifierEventSource(redis, { prefix }),
      {
        appendAll: (drafts: AuditDraft[]) => {
          attempts.push(...drafts.map((draft) => draft.id!));
          return appender.appendAll(drafts);
        },
      },
      { errorDelayMs: 10, maxErrorDelayMs: 20, idleDelayMs: 10, maxIdleDelayMs: 20, busyDelayMs: 10, logger: quiet },
    );
    await expect(ingestor.ingestOnce()).rejects.toThrow();
    expect(await queued(prefix, ['g1', 'g2'])).toBe(3);

    ingestor.start();
    onTestFinished(() => ingestor.stop());
    // The loop keeps trying (each batch is read again, since nothing was acked) ...
    await vi.waitFor(() => expect(attempts.length).toBeGreaterThanOrEqual(9), { timeout: 5_000, interval: 10 });
    expect(await queued(prefix, ['g1', 'g2'])).toBe(3);
    expect((await chain()).filter((e) => queuedIds.includes(e.id))).toEqual([]);

    // ... and once the database is back, everything goes in and leaves the queue.
    appender = audit;
    await vi.waitFor(async () => expect(await queued(prefix, ['g1', 'g2'])).toBe(0), { timeout: 5_000, interval: 10 });
    await ingestor.stop();
    expect((await chain()).filter((e) => queuedIds.includes(e.id)).map((e) => e.id).sort()).toEqual([...queuedIds].sort());
  });

  it('dead-letters an event the chain cannot hold, acks it with the others, and appends the others in the same round', async () => {
    const prefix = prefixForTest();
    const before = await queue(prefix, 'g1', 'allow', { n: 1 });
    const nul = await queue(prefix, 'g1', 'allow', { resource: 'payee:a\u0000b' });
    const lone = await queue(prefix, 'g2', 'allow', { resource: 'payee:\ud800' });
    const after = await queue(prefix, 'g1', 'allow', { n: 2 });
    const errors: string[] = [];
    const source = new RedisVerifierEventSource(redis, { prefix });
    const ingestor = new VerifierEventIngestor(source, audit, { logger: { warn: () => undefined, error: (m) => errors.push(m) } });
    expect(await ingestor.ingestOnce()).toBe(4);
    expect(await queued(prefix, ['g1', 'g2'])).toBe(0);

    const events = await chain();
    expect(events.filter((e) => [before, after].includes(e.id)).map((e) => e.id)).toEqual([before, after]);
    const letters = events.filter((e) => e.type === 'verification.unrecordable' && [nul, lone].includes(e.data.queue_id as string));
    const letter = (id: string) => letters.find((e) => e.data.queue_id === id)!;
    expect(letters).toHaveLength(2);
    expect(letter(nul)).toMatchObject({ grant_id: 'g1', data: { reason: expect.stringMatching(/^refused by the database \(SQLSTATE 22P05\)/) as unknown } });
    expect(letter(lone)).toMatchObject({ grant_id: 'g2', data: { reason: 'cannot be canonicalised: Lone surrogate is not allowed' } });
    expect(errors).toHaveLength(2);
    expect(await ingestor.stats()).toMatchObject({ ingested: 2, deadLettered: 2, failedRounds: 0, failingRounds: 0, queueDepth: 0 });
    expect((await audit.verify()).chain.ok).toBe(true);
  });

  it('logs every failed round with its count, and /readyz-style stats show the failing streak', async () => {
    const prefix = prefixForTest();
    await queue(prefix, 'g1', 'allow', { n: 1 });
    const broken = new AuditService({ repository: new TypeOrmAuditRepository(new Database(createDataSource({ url: `postgres://writ@127.0.0.1:${await freePort()}/none` }), false)), keys, clock: systemClock, checkpointEvery: 1000 });
    const errors: string[] = [];
    const ingestor = new VerifierEventIngestor(new RedisVerifierEventSource(redis, { prefix }), broken, {
      errorDelayMs: 5,
      maxErrorDelayMs: 10,
      logger: { warn: () => undefined, error: (m) => errors.push(m) },
    });
    ingestor.start();
    onTestFinished(() => ingestor.stop());
    await vi.waitFor(() => expect(errors.length).toBeGreaterThanOrEqual(3), { timeout: 5_000, interval: 10 });
    await ingestor.stop();
    expect(errors.slice(0, 3).map((m) => /failed round (\d+) in a row, (\d+) in all/.exec(m)?.slice(1))).toEqual([['1', '1'], ['2', '2'], ['3', '3']]);
    const stats = await ingestor.stats();
    expect(stats).toMatchObject({ deadLettered: 0, failedRounds: errors.length, failingRounds: errors.length, queueDepth: 1 });
    expect(stats.lastError).toEqual(expect.any(String));
  });

  it('reads from Redis about what a batch keeps, a share of it per stream, and a lone busy grant still fills the batch', async () => {
    const prefix = prefixForTest();
    const grants = Array.from({ length: 16 }, (_, i) => `gs${i}`);
    const written = new Map<string, string[]>(grants.map((g) => [g, []]));
    for (let i = 0; i < 40; i++) for (const g of grants) written.get(g)!.push(await queue(prefix, g, 'allow', { i }));
    const xrange = vi.spyOn(redis, 'xrange');
    onTestFinished(() => xrange.mockRestore());
    const returned = async (): Promise<number> => (await Promise.all(xrange.mock.results.map((r) => r.value as Promise<unknown[]>))).reduce((n, entries) => n + entries.length, 0);

    const batch = await new RedisVerifierEventSource(redis, { prefix }).read(64);
    expect(batch.events).toHaveLength(64);
    // Before: every stream was asked for 64 and gave its 40, 640 entries read to keep 64.
    expect(await returned()).toBe(64);
    for (const g of grants) {
      const part = batch.events.filter((e) => written.get(g)!.includes(e.id)).map((e) => e.id);
      expect(part, g).toEqual(written.get(g)!.slice(0, 4));
    }
    await batch.ack();
    expect(await queued(prefix, grants)).toBe(16 * 36);

    // One grant with 300 waiting among grants with one each: the busy one is read again for the rest.
    const busyPrefix = prefixForTest();
    const busy: string[] = [];
    for (let i = 0; i < 300; i++) busy.push(await queue(busyPrefix, 'gbusy', 'allow', { i }));
    for (let i = 0; i < 15; i++) await queue(busyPrefix, `gone${i}`, 'allow', { i });
    xrange.mockClear();
    const full = await new RedisVerifierEventSource(redis, { prefix: busyPrefix }).read(256);
    expect(full.events).toHaveLength(256);
    expect(full.events.filter((e) => busy.includes(e.id)).map((e) => e.id)).toEqual(busy.slice(0, 241));
    expect(await returned()).toBe(256);
    await full.ack();
    expect(await redis.xlen(grantStateKey(busyPrefix, 'gbusy', 'events'))).toBe(59);
  });

  it("keeps each grant's events in their order, across small batches and grants read in turn", async () => {
    const prefix = prefixForTest();
    const grants = ['ga', 'gb', 'gc'];
    const written: Record<string, string[]> = { ga: [], gb: [], gc: [] };
    for (let i = 0; i < 30; i++) {
      const grantId = grants[i % 3 === 0 ? 0 : i % 2 === 0 ? 1 : 2]!;
      written[grantId]!.push(await queue(prefix, grantId, i % 4 === 0 ? 'rate_limited' : 'allow', { i }));
    }
    const ingestor = new VerifierEventIngestor(new RedisVerifierEventSource(redis, { prefix }), audit, { batch: 4, busyDelayMs: 1, idleDelayMs: 10, logger: quiet });
    ingestor.start();
    onTestFinished(() => ingestor.stop());
    await vi.waitFor(async () => expect(await queued(prefix, grants)).toBe(0), { timeout: 10_000, interval: 10 });
    await ingestor.stop();
    const all = await chain();
    for (const grantId of grants) {
      const inChain = all.filter((e) => written[grantId]!.includes(e.id)).map((e) => e.id);
      expect(inChain, grantId).toEqual(written[grantId]);
    }
    expect((await audit.verify()).chain.ok).toBe(true);
  });
});

