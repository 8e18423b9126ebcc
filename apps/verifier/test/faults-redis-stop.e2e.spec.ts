import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../registry/src/infra/database.service.js';
import { AuditService } from '../../registry/src/modules/audit/audit.service.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import { RedisVerifierStore } from '../src/store/redis-store.js';
import { type RedisServer, startRedisServer } from './support/redis-cluster.js';
import { deniedUntilAllowed } from './support/outcomes.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';
import { startTestWitness, type TestWitness } from '../../registry/test/support/witness.js';

const PREFIX = 'stop:';
/** Requests answered while Redis is away, spread over about 3 s. */
const DOWN_REQUESTS = 100;
/** Writes of the backlog one outage of about 3 s may start, whatever the number of requests (issue 19). */
const MAX_FLUSHES_PER_OUTAGE = 10;
/** Events the verifier holds one by one while Redis is away; the denials beyond are counted into summaries. */
const BACKLOG_MAX = 40;

/**
 * Issue 19, goal 4, "Redis down": a redis-server this test starts on a spare port is killed for
 * about 3 s and started again with its append-only file, while requests keep coming. Every one is
 * answered 503 deny and its event waits in the verifier's memory; the backlog is written back by
 * one flusher with backoff, not once per request (that once burned 110 % CPU in an outage), and
 * every 503 reaches the audit chain afterwards.
 */
describe('Redis stopped for a few seconds while requests keep coming', () => {
  const dir = mkdtempSync(join(tmpdir(), 'writ-faults-stop-'));
  const persistent = ['--appendonly', 'yes', '--appendfsync', 'always'];
  let redis: RedisServer;
  let store: RedisVerifierStore;
  let witness: TestWitness;
  const vf = createVerifierFixture({
    name: 'a Redis this test stops',
    create: async () => {
      redis = await startRedisServer(undefined, persistent, dir);
      // The store's default backoff (50 ms doubling to 2 s), as a deployed verifier runs. While
      // Redis is down commands fail at once; the timeout only bounds a slow answer (`appendfsync
      // always` on a busy disk): generous, so that it is not what is tested.
      store = new RedisVerifierStore(redis.url, { prefix: PREFIX, commandTimeoutMs: 1_000, backlogMax: BACKLOG_MAX });
      witness = await startTestWitness();
      return { store, registryEnv: { REDIS_URL: redis.url, WRIT_REDIS_PREFIX: PREFIX, ...witness.env }, close: () => store.close() };
    },
  });
  let alice: Agent;

  beforeAll(async () => {
    const started = await vf.start();
    ({ agents: { alice } } = started as unknown as { agents: { alice: Agent } });
    witness.trust(started.dataDir);
  });
  afterAll(async () => {
    await vf.close();
    await witness?.close();
    await redis.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes its backlog back a bounded number of times per outage, and every 503 reaches the audit chain, those beyond the backlog counted in a summary', { timeout: 60_000 }, async () => {
    const { grantId, token } = await vf.tokenFor(alice, { max_uses: 1_000 });
    const verifier = await vf.newVerifier();
    const call = async () => vf.verify(verifier, { token, dpop: await vf.proof(alice, token), method: 'POST', url: `${API}/bookings`, action: 'book' });

    expect((await call()).body.allow).toBe(true);
    const flushesBefore = store.backlogFlushAttempts;
    // The witness holds a checkpoint of the chain, the allow included, from before the fault.
    const db = vf.registry().get(Database);
    await expect.poll(async () => (await db.query<unknown[]>(`SELECT 1 FROM audit_events WHERE grant_id = $1 AND type LIKE 'verification.%'`, [grantId])).length, { timeout: 20_000, interval: 100 }).toBe(1);
    await witness.cosignsHead(db);

    await redis.kill();
    const down = [];
    for (let i = 0; i < DOWN_REQUESTS; i++) {
      down.push(await call());
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    for (const res of down) expect(res.body).toEqual({ allow: false, error: 'temporarily_unavailable', error_description: 'the verifier cannot reach its store: deny', status: 503 });
    // Both say they are not ready, naming what they cannot reach.
    const verifierReady = await verifier.app.inject({ method: 'GET', url: '/readyz' });
    expect({ status: verifierReady.statusCode, reasons: verifierReady.json<{ reasons?: string[] }>().reasons }).toEqual({ status: 503, reasons: ['the verifier store cannot be reached'] });
    const registryReady = await vf.registry().inject({ method: 'GET', url: '/readyz' });
    expect(registryReady.statusCode).toBe(503);
    expect(registryReady.json<{ reasons?: string[] }>().reasons).toContain("the verifiers' Redis cannot be reached: their decisions wait there or in the verifiers' memory");
    redis = await startRedisServer(redis.port, persistent, dir);

    const recovering = await deniedUntilAllowed(call, 15_000);
    expect(await store.backlogDrained(10_000)).toBe(true);
    await expect.poll(async () => (await vf.registry().inject({ method: 'GET', url: '/readyz' })).statusCode, { timeout: 10_000, interval: 100 }).toBe(200);
    const flushes = store.backlogFlushAttempts - flushesBefore;
    expect(flushes).toBeGreaterThanOrEqual(1);
    expect(flushes).toBeLessThanOrEqual(MAX_FLUSHES_PER_OUTAGE);

    // Every denial is in the chain: the first BACKLOG_MAX one by one, those beyond in summary
    // events of the grant that say how many (`data.aggregated`). (A 503 answered once the
    // backlog is written back is written directly again.)
    expect(store.aggregatedEvents).toBeGreaterThanOrEqual(DOWN_REQUESTS - BACKLOG_MAX);
    const counts = () =>
      db.query<{ outcome: string; events: number; denials: number }[]>(
        `SELECT data->>'outcome' AS outcome, count(*)::int AS events, sum(coalesce((data->>'aggregated')::int, 1))::int AS denials
           FROM audit_events WHERE grant_id = $1 AND type LIKE 'verification.%' GROUP BY 1 ORDER BY 1`,
        [grantId],
      );
    await expect
      .poll(async () => (await counts()).map(({ outcome, denials }) => ({ outcome, denials })), { timeout: 20_000, interval: 100 })
      .toEqual([
        { outcome: 'allow', denials: 2 },
        { outcome: 'temporarily_unavailable', denials: DOWN_REQUESTS + recovering },
      ]);
    const summaries = await db.query<{ n: number; counted: number }[]>(
      `SELECT count(*)::int AS n, sum((data->>'aggregated')::int)::int AS counted FROM audit_events WHERE grant_id = $1 AND data ? 'aggregated'`,
      [grantId],
    );
    expect(summaries).toEqual([{ n: expect.any(Number), counted: store.aggregatedEvents }]);
    expect(summaries[0]!.n).toBeGreaterThanOrEqual(1);
    expect((await vf.registry().get(AuditService).verify()).chain).toMatchObject({ ok: true });
    // The witness cosigns the new head: only with a consistency proof from the one it held.
    await witness.cosignsHead(db);
  });
});
