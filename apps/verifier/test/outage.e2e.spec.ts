import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../registry/src/infra/database.service.js';
import { AuditService } from '../../registry/src/modules/audit/audit.service.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import { RedisVerifierStore } from '../src/store/redis-store.js';
import { type RedisServer, startRedisServer } from './support/redis-cluster.js';
import { deniedUntilAllowed, outcomeCounts } from './support/outcomes.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

/**
 * Redis dies in the middle of a run (SIGKILL, no goodbye) and comes back on the same port with
 * its append-only file, as a restarted production Redis would. Nothing restarts the verifier.
 */
describe('Redis stopped during a run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-outage-'));
  let redis: RedisServer;
  const persistent = ['--appendonly', 'yes', '--appendfsync', 'always'];
  const vf = createVerifierFixture({
    name: 'Redis with an append-only file',
    create: async () => {
      redis = await startRedisServer(undefined, persistent, dir);
      // While Redis is down commands fail at once; the timeout only bounds a slow answer, which
      // `appendfsync always` on a busy disk can make: generous, so that it is not what is tested.
      const store = new RedisVerifierStore(redis.url, { prefix: 'outage:', commandTimeoutMs: 1_000, minRetryMs: 20, maxRetryMs: 200 });
      return { store, registryEnv: { REDIS_URL: redis.url, WRIT_REDIS_PREFIX: 'outage:' }, close: () => store.close() };
    },
  });
  let alice: Agent;

  beforeAll(async () => {
    ({ agents: { alice } } = (await vf.start()) as unknown as { agents: { alice: Agent } });
  });
  afterAll(async () => {
    await vf.close();
    await redis.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('denies every request with 503 while Redis is down, allows again once it is back, and loses no audit event', async () => {
    const { grantId, token } = await vf.tokenFor(alice, { max_uses: 1000 });
    const verifier = await vf.newVerifier();
    const call = async () => vf.verify(verifier, { token, dpop: await vf.proof(alice, token), method: 'POST', url: `${API}/bookings`, action: 'book' });
    const readiness = async () => {
      const res = await verifier.app.inject({ method: 'GET', url: '/readyz' });
      return { status: res.statusCode, body: res.json<unknown>() };
    };

    const before = [];
    for (let i = 0; i < 10; i++) before.push(await call());
    expect(before.map((r) => r.body.allow)).toEqual(Array(10).fill(true));
    expect(await readiness()).toEqual({ status: 200, body: { ready: true, queue: { backlog: 0, aggregated: 0 } } });

    await redis.kill();
    const during = [];
    for (let i = 0; i < 20; i++) during.push(await call());
    for (const res of during) {
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ allow: false, error: 'temporarily_unavailable', error_description: 'the verifier cannot reach its store: deny', status: 503 });
    }
    // A load balancer's readiness probe sees it too, while the process stays alive.
    // The decisions' events wait in memory for Redis, none summarised: /readyz shows it.
    expect(await readiness()).toEqual({ status: 503, body: { ready: false, reasons: ['the verifier store cannot be reached'], queue: { backlog: 20, aggregated: 0 } } });
    expect((await verifier.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

    redis = await startRedisServer(redis.port, persistent, dir);
    // No restart of the verifier: it reconnects by itself. Requests made meanwhile are still denied.
    const recovering = await deniedUntilAllowed(call, 10_000);
    const after = [];
    for (let i = 0; i < 10; i++) after.push(await call());
    expect(after.map((r) => r.body.allow)).toEqual(Array(10).fill(true));
    expect(await readiness()).toEqual({ status: 200, body: { ready: true, queue: { backlog: expect.any(Number), aggregated: 0 } } });

    // Every answer has its audit event in the chain, the 503s included (they waited in memory).
    const allowed = 10 + 1 + 10;
    const unavailable = 20 + recovering;
    const db = vf.registry().get(Database);
    const counts = () => outcomeCounts(db, grantId);
    await expect.poll(counts, { timeout: 20_000, interval: 100 }).toEqual([
      { outcome: 'allow', n: allowed },
      { outcome: 'temporarily_unavailable', n: unavailable },
    ]);
    expect((await vf.registry().get(AuditService).verify()).chain).toMatchObject({ ok: true });
  });
});
