import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomId, revocationChannel, revocationKey } from '@writ/core';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { ClientAuthService } from '../src/modules/agents/client-auth.service.js';
import { TypeOrmClientAuthRepository } from '../src/modules/agents/client-auth.repository.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import { GrantsService } from '../src/modules/grants/grants.service.js';
import { TypeOrmGrantsRepository } from '../src/modules/grants/grants.repository.js';
import { KeyStore } from '../src/modules/keys/key-store.js';
import { RedisRevocationBus } from '../src/modules/revocations/redis-revocation-bus.js';
import { InProcessRevocationBus, type RevocationBus, type RevocationEvent } from '../src/modules/revocations/revocation-bus.js';
import { RevocationRecorder } from '../src/modules/revocations/revocation-recorder.js';
import { TypeOrmRevocationsRepository } from '../src/modules/revocations/revocations.repository.js';
import { REVOCATION_BUS } from '../src/modules/revocations/revocation-bus.js';
import { RevocationsService } from '../src/modules/revocations/revocations.service.js';
import { createRegistry } from '../src/registry.js';
import { ServicesService } from '../src/modules/services/services.service.js';
import { TypeOrmServicesRepository } from '../src/modules/services/services.repository.js';
import { createPostgresDatabase, storages, type TestDatabase } from './support/databases.js';
import { deleteKeys, freePort, startRedis } from './support/redis.js';

const REDIS_URL = process.env.REDIS_URL;
/**
 * Without REDIS_URL the Redis suite starts a redis-server of its own, so it runs wherever Redis is
 * installed; on a machine with neither it fails, saying so (CI always sets REDIS_URL).
 */
const REDIS_AVAILABLE = REDIS_URL !== undefined || spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
const silent = { log: () => undefined, warn: () => undefined, error: () => undefined };
const clock = { now: () => Date.now() };

const grantBody = {
  service: 'https://flights.example',
  authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }],
  envelope: { max_uses: 10 },
  purpose: 'Book my trip',
  duration_s: 3600,
};

/** What the approval flow hands GrantsService once a passkey signed the document (the flow is tested in approvals.e2e.spec.ts). */
function signedDecision() {
  return { version: 1, receiptHash: 'receipt-under-test', record: () => Promise.resolve(), expiresAt: new Date(clock.now() + 3600_000) };
}

/** A registry's revocation stack on a database of its own, with the given bus. */
async function stack(testDb: TestDatabase, bus: RevocationBus) {
  const db = new Database(await openDatabase(testDb.target), 'pgliteDir' in testDb.target);
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-revocation-bus-'));
  const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: 'https://registry.writ.test', WRIT_TRUST_DOMAIN: 'writ.test' });
  const keys = new KeyStore(dataDir, clock, 330);
  await keys.init();
  const audit = new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock, checkpointEvery: 100 });
  const services = new ServicesService({ repository: new TypeOrmServicesRepository(db), audit, clock });
  await services.register({ uri: 'https://flights.example', display_name: 'Flights', catalogue: [{ type: 'flight_booking', actions: ['read'] }] });
  const recorder = new RevocationRecorder({ repository: new TypeOrmRevocationsRepository(db), audit, bus, clock, config });
  const grants = new GrantsService({ repository: new TypeOrmGrantsRepository(db), audit, services, clock, recordRevocation: recorder.recordGrant });
  const clientAuth = new ClientAuthService({ repository: new TypeOrmClientAuthRepository(db), issuer: config.issuer });
  const revocations = new RevocationsService({ repository: new TypeOrmRevocationsRepository(db), clientAuth, grants, keys, recorder, clock, config });

  async function approvedGrant(agentId: string): Promise<string> {
    const { id } = await grants.request(agentId, 'alice', grantBody);
    await grants.approve(id, 'alice', {}, signedDecision());
    return id;
  }

  /** The audit events the token endpoint writes for a root token and one hop (tokens.service.ts). */
  async function tokenTree(grantId: string, holder: string, delegatee: string) {
    const txn = `txn_${randomId()}`;
    const rootJti = `jti_${randomId()}`;
    const hopJti = `jti_${randomId()}`;
    const exp = Math.floor(clock.now() / 1000) + 300;
    await audit.append({ type: 'token.issued', grant_id: grantId, txn, actor: holder, subject: 'alice', data: { jti: rootJti, exp } });
    await audit.append({ type: 'token.delegated', grant_id: grantId, txn, actor: holder, subject: 'alice', data: { jti: hopJti, parent_jti: rootJti, actor: delegatee, exp } });
    return { txn, rootJti, hopJti };
  }

  async function close(): Promise<void> {
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  }

  return { db, audit, grants, recorder, revocations, approvedGrant, tokenTree, close };
}

describe('in-process revocation bus', () => {
  it('hands each event to every listener until it unsubscribes', async () => {
    const bus = new InProcessRevocationBus();
    const seen: RevocationEvent[] = [];
    const unsubscribe = bus.subscribe((event) => seen.push(event));
    const event: RevocationEvent = { kind: 'grant', value: 'grt_1', grantIds: ['grt_1'], expiresAt: new Date(Date.now() + 60_000) };
    bus.publish(event);
    unsubscribe();
    bus.publish({ ...event, value: 'grt_2' });
    expect(seen).toEqual([event]);
    await bus.close();
  });
});

describe.each(storages)('recording revocations on $name', (storage) => {
  const bus = new InProcessRevocationBus();
  const published: RevocationEvent[] = [];
  let testDb: TestDatabase;
  let s: Awaited<ReturnType<typeof stack>>;

  beforeAll(async () => {
    testDb = await storage.create();
    s = await stack(testDb, bus);
    bus.subscribe((event) => published.push(event));
  });

  afterAll(async () => {
    await s.close();
    await testDb.drop();
  });

  async function revocationState(grantId: string) {
    const [grant] = await s.db.dataSource.query<{ status: string }[]>('SELECT status FROM grants WHERE id = $1', [grantId]);
    const rows = await s.db.dataSource.query<unknown[]>(`SELECT 1 FROM revocations WHERE kind = 'grant' AND value = $1`, [grantId]);
    const events = await s.db.dataSource.query<{ type: string; data: Record<string, unknown> }[]>(
      'SELECT type, data FROM audit_events WHERE grant_id = $1 ORDER BY seq',
      [grantId],
    );
    return { status: grant?.status, rows: rows.length, events };
  }

  it.each(['GrantsService.revoke', "RevocationsService.revoke('grant')"])(
    'revoking a grant through %s ends it, records it, audits it once and announces it',
    async (path) => {
      const grantId = await s.approvedGrant('agent-a');
      if (path === 'GrantsService.revoke') await s.grants.revoke(grantId, 'alice', 'owner revoked');
      else await s.revocations.revoke('grant', grantId, 'alice', 'owner revoked');
      const state = await revocationState(grantId);
      expect(state.status).toBe('revoked');
      expect(state.rows).toBe(1);
      expect(state.events.map((e) => e.type)).toEqual(['grant.requested', 'grant.approved', 'revocation.grant']);
      expect(state.events[2]!.data).toMatchObject({ kind: 'grant', value: grantId, reason: 'owner revoked', from: 'approved', status: 'revoked', version: 3 });
      expect(published).toContainEqual(expect.objectContaining({ kind: 'grant', value: grantId, grantIds: [grantId] }));
    },
  );

  it('records a revocation of a grant that is no longer live, without changing its status', async () => {
    const { id } = await s.grants.request('agent-a', 'alice', grantBody);
    await s.grants.deny(id, 'alice', signedDecision());
    await s.revocations.revoke('grant', id, 'registry', 'cleanup');
    const state = await revocationState(id);
    expect(state).toMatchObject({ status: 'denied', rows: 1 });
    expect(state.events.map((e) => e.type)).toEqual(['grant.requested', 'grant.denied', 'revocation.grant']);
  });

  it('names the grants a txn, a token and an agent revocation affect', async () => {
    const first = await s.approvedGrant('agent-b');
    const second = await s.approvedGrant('agent-c');
    const requestedOnly = await s.approvedGrant('agent-d');
    const tree1 = await s.tokenTree(first, 'agent-b', 'agent-d');
    await s.tokenTree(second, 'agent-c', 'agent-e');
    await s.revocations.revoke('txn', tree1.txn, 'alice');
    await s.revocations.revoke('token', tree1.hopJti, 'alice');
    await s.revocations.revoke('agent', 'agent-d', 'alice');
    await s.revocations.revoke('agent', 'agent-c', 'alice');
    const grantsOf = (kind: string, value: string) => published.find((e) => e.kind === kind && e.value === value)?.grantIds;
    expect(grantsOf('txn', tree1.txn)).toEqual([first]);
    expect(grantsOf('token', tree1.hopJti)).toEqual([first]);
    // agent-d requested one grant and was handed a token in another.
    expect(grantsOf('agent', 'agent-d')).toEqual([first, requestedOnly].sort());
    expect(grantsOf('agent', 'agent-c')).toEqual([second]);
  });

  it('resync announces every unexpired revocation again, and no expired one', async () => {
    await s.db.dataSource.query(
      `INSERT INTO revocations (kind, value, revoked_at, expires_at, reason) VALUES ('token', 'jti-old', now() - interval '2 hours', now() - interval '1 hour', null)`,
    );
    published.length = 0;
    const count = await s.recorder.resync();
    expect(count).toBeGreaterThan(0);
    expect(published).toHaveLength(count);
    expect(published.map((e) => e.value)).not.toContain('jti-old');
    expect(published.every((e) => e.expiresAt.getTime() > Date.now())).toBe(true);
  });
});

describe('Redis revocation bus', () => {
  let redisUrl: string;
  let ownServer: ChildProcess | undefined;
  const prefix = `writ-test-${randomId(6)}:`;
  let redis: Redis;
  let bus: RedisRevocationBus;
  const buses: RedisRevocationBus[] = [];

  function newBus(url = redisUrl): RedisRevocationBus {
    const created = new RedisRevocationBus({ url, prefix, minRetryMs: 20, maxRetryMs: 200, logger: silent });
    buses.push(created);
    return created;
  }

  function event(kind: RevocationEvent['kind'], value: string, grantIds: string[], ttlMs = 60_000): RevocationEvent {
    return { kind, value, grantIds, expiresAt: new Date(Date.now() + ttlMs) };
  }

  beforeAll(async () => {
    if (!REDIS_AVAILABLE) throw new Error('these tests need Redis: set REDIS_URL, or install redis-server (apt-get install -y redis-server)');
    if (REDIS_URL) {
      redisUrl = REDIS_URL;
    } else {
      const port = await freePort();
      ownServer = await startRedis(port);
      redisUrl = `redis://127.0.0.1:${port}`;
    }
    redis = new Redis(redisUrl);
    bus = newBus();
  });

  afterAll(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await deleteKeys(redis, prefix);
    await redis.quit();
    ownServer?.kill();
  });

  it('sets one key per grant with a TTL that ends at expiresAt, holding the event', async () => {
    const revoked = event('grant', 'grt_k1', ['grt_k1'], 60_000);
    bus.publish(revoked);
    expect(await bus.drained(5_000)).toBe(true);
    const key = revocationKey(prefix, 'grt_k1', 'grant', 'grt_k1');
    expect(key).toBe(`${prefix}{g:grt_k1}:revoked:grant:grt_k1`);
    expect(JSON.parse((await redis.get(key))!)).toEqual({ kind: 'grant', value: 'grt_k1', grantIds: ['grt_k1'], expiresAt: revoked.expiresAt.toISOString() });
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(58_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('writes nothing for a revocation that has already expired', async () => {
    bus.publish(event('token', 'jti-expired', ['grt_k2'], -1_000));
    expect(await bus.drained(5_000)).toBe(true);
    expect(await redis.exists(revocationKey(prefix, 'grt_k2', 'token', 'jti-expired'))).toBe(0);
  });

  it('drops a grant id that cannot name a key instead of holding the queue back', async () => {
    bus.publish(event('token', 'jti-poison', ['grt_ok', 'grt_}bad']));
    expect(await bus.drained(5_000)).toBe(true);
    expect(await redis.exists(revocationKey(prefix, 'grt_ok', 'token', 'jti-poison'))).toBe(1);
  });

  it('announces each revocation on the channel to every subscribed bus', async () => {
    const listener = newBus();
    const seen: RevocationEvent[] = [];
    listener.subscribe((e) => seen.push(e));
    await listener.listening();
    const announced = event('txn', 'txn_s1', ['grt_s1']);
    bus.publish(announced);
    await vi.waitFor(() => expect(seen).toEqual([announced]), { timeout: 5_000 });
    // What a verifier sees on the raw channel: the same JSON.
    expect(revocationChannel(prefix)).toBe(`${prefix}revocations`);
  });

  it.each(storages)('writes a txn, token or agent revocation under the hash tag of each affected grant ($name)', async (storage) => {
    const testDb = await storage.create();
    const s = await stack(testDb, bus);
    try {
      const first = await s.approvedGrant('agent-r1');
      const second = await s.approvedGrant('agent-r2');
      const tree = await s.tokenTree(first, 'agent-r1', 'agent-r2');
      await s.revocations.revoke('txn', tree.txn, 'alice');
      await s.revocations.revoke('token', tree.rootJti, 'alice');
      await s.revocations.revoke('agent', 'agent-r2', 'alice');
      await s.grants.revoke(second, 'alice');
      expect(await bus.drained(5_000)).toBe(true);
      const expected = [
        revocationKey(prefix, first, 'txn', tree.txn),
        revocationKey(prefix, first, 'token', tree.rootJti),
        revocationKey(prefix, first, 'agent', 'agent-r2'),
        revocationKey(prefix, second, 'agent', 'agent-r2'),
        revocationKey(prefix, second, 'grant', second),
      ];
      for (const key of expected) expect(await redis.exists(key), key).toBe(1);
      expect(await redis.exists(revocationKey(prefix, second, 'txn', tree.txn))).toBe(0);
    } finally {
      await s.close();
      await testDb.drop();
    }
  });

  it('is what the app publishes through when REDIS_URL is set, re-publishing at start-up and closing with the app', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'writ-revocation-app-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, REDIS_URL: redisUrl, WRIT_REDIS_PREFIX: prefix });
    // A database that outlives the restart: PostgreSQL when DATABASE_URL is set (the bus, not the
    // storage, is the subject), else PGlite on disk.
    const database = process.env.DATABASE_URL ? await createPostgresDatabase(process.env.DATABASE_URL, 'writ_bus_') : undefined;
    const target = database?.target ?? { pgliteDir: join(dataDir, 'db') };
    const start = async () => {
      const { app } = await createRegistry(config, { logger: false, database: target });
      await app.init();
      return app;
    };
    try {
      let app = await start();
      const bus = app.get<symbol, RevocationBus>(REVOCATION_BUS);
      expect(bus).toBeInstanceOf(RedisRevocationBus);
      await app.get(ServicesService).register({ uri: 'https://flights.example', display_name: 'Flights', catalogue: [{ type: 'flight_booking', actions: ['read'] }] });
      const grants = app.get(GrantsService);
      const { id } = await grants.request('agent-app', 'alice', grantBody);
      await grants.approve(id, 'alice', {}, signedDecision());
      await grants.revoke(id, 'alice');
      expect(await (bus as RedisRevocationBus).drained(5_000)).toBe(true);
      const key = revocationKey(prefix, id, 'grant', id);
      expect(await redis.exists(key)).toBe(1);
      await app.close();
      // Redis lost it; the next start-up puts it back from the revocations table.
      await redis.del(key);
      app = await start();
      expect(await (app.get<symbol, RevocationBus>(REVOCATION_BUS) as RedisRevocationBus).drained(5_000)).toBe(true);
      expect(await redis.exists(key)).toBe(1);
      await app.close();
    } finally {
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  describe('while Redis is unreachable', () => {
    let port: number;
    let child: ChildProcess | undefined;
    let other: Redis | undefined;

    afterEach(async () => {
      other?.disconnect();
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child!.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
    });

    it('keeps the revocation queued without throwing, and delivers it once Redis is back', async () => {
      port = await freePort();
      const offline = newBus(`redis://127.0.0.1:${port}`);
      const revoked = event('agent', 'agent-x', ['grt_o1', 'grt_o2']);
      expect(() => offline.publish(revoked)).not.toThrow();
      expect(await offline.drained(300)).toBe(false);
      expect(offline.pending).toBe(1);
      child = await startRedis(port);
      expect(await offline.drained(10_000)).toBe(true);
      other = new Redis({ port, host: '127.0.0.1' });
      for (const grantId of revoked.grantIds) {
        expect(await other.get(revocationKey(prefix, grantId, 'agent', 'agent-x'))).toBe(
          JSON.stringify({ kind: 'agent', value: 'agent-x', grantIds: revoked.grantIds, expiresAt: revoked.expiresAt.toISOString() }),
        );
      }
      await offline.close();
    });
  });

  it.each(storages)('resync writes every unexpired revocation row to Redis again ($name)', async (storage) => {
    const testDb = await storage.create();
    const s = await stack(testDb, bus);
    try {
      const grantId = await s.approvedGrant('agent-y');
      const tree = await s.tokenTree(grantId, 'agent-y', 'agent-z');
      await s.revocations.revoke('txn', tree.txn, 'alice');
      await s.db.dataSource.query(
        `INSERT INTO revocations (kind, value, revoked_at, expires_at, reason) VALUES ('token', $1, now() - interval '2 hours', now() - interval '1 hour', null)`,
        [tree.rootJti],
      );
      expect(await bus.drained(5_000)).toBe(true);
      const live = revocationKey(prefix, grantId, 'txn', tree.txn);
      await redis.del(live);
      // A fresh process on the same database, as at start-up.
      const restarted = newBus();
      const recorder = new RevocationRecorder({ repository: new TypeOrmRevocationsRepository(s.db), audit: s.audit, bus: restarted, clock, config: { tokenTtlSeconds: 300 } });
      expect(await recorder.resync()).toBe(1);
      expect(await restarted.drained(5_000)).toBe(true);
      expect(await redis.exists(live)).toBe(1);
      expect(await redis.pttl(live)).toBeGreaterThan(290_000);
      expect(await redis.exists(revocationKey(prefix, grantId, 'token', tree.rootJti))).toBe(0);
    } finally {
      await s.close();
      await testDb.drop();
    }
  });
});
