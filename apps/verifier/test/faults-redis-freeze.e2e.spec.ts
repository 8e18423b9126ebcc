import { grantStateKey } from '@writ/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../registry/src/infra/database.service.js';
import { AuditService } from '../../registry/src/modules/audit/audit.service.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import { RedisVerifierStore } from '../src/store/redis-store.js';
import { type RedisServer, startRedisServer } from './support/redis-cluster.js';
import { deniedUntilAllowed, outcomeCounts } from './support/outcomes.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';
import { startTestWitness, type TestWitness } from '../../registry/test/support/witness.js';

const PREFIX = 'freeze:';
/** Well under the 3 s freeze, well over a decision's time on a busy machine. */
const TIMEOUT_MS = 500;
/** Requests sent while Redis is frozen: each is answered 503 once the store's deadline passes. */
const FROZEN_REQUESTS = 20;
/** Thousandths of a euro each request moves. */
const AMOUNT_MINOR = 1_000;

/**
 * Issue 19, goal 4, "Redis frozen": a redis-server this test starts on a spare port is stopped
 * (SIGSTOP) for about 3 s while the verifier answers, then resumed (SIGCONT). The verifier answers
 * the requests it could not decide in time with a 503 deny; Redis then executes the decision
 * scripts that were waiting in its socket. Each carries a deadline on Redis's own clock, so none of
 * them may count: what the service provider was told (deny) is what the grant's counters and the
 * audit chain say.
 */
describe('Redis frozen while the verifier answers', () => {
  let redis: RedisServer;
  let witness: TestWitness;
  let reader: Redis;
  const vf = createVerifierFixture({
    name: 'a Redis this test freezes',
    create: async () => {
      redis = await startRedisServer();
      reader = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      witness = await startTestWitness();
      const store = new RedisVerifierStore(redis.url, { prefix: PREFIX, commandTimeoutMs: TIMEOUT_MS, minRetryMs: 20, maxRetryMs: 200 });
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
    reader.disconnect();
    await redis.kill();
  });

  it('charges nothing for the requests it answered 503 while Redis was frozen, and records each answer as given', { timeout: 60_000 }, async () => {
    const envelope = { max_uses: 1_000, rate: { limit: 1_000, window_s: 3_600 }, amount: { currency: 'EUR', total_max: 10_000 } };
    const { grantId, token } = await vf.tokenFor(alice, envelope);
    const verifier = await vf.newVerifier();
    const call = async () =>
      vf.verify(verifier, { token, dpop: await vf.proof(alice, token), method: 'POST', url: `${API}/bookings`, action: 'book', amount: AMOUNT_MINOR / 1000, currency: 'EUR' });

    const before = [];
    for (let i = 0; i < 5; i++) before.push(await call());
    expect(before.map((r) => r.body.allow)).toEqual(Array(5).fill(true));
    // The witness holds a checkpoint of the chain from before the fault.
    const db = vf.registry().get(Database);
    await expect.poll(async () => (await outcomeCounts(db, grantId)).length, { timeout: 20_000, interval: 100 }).toBe(1);
    await witness.cosignsHead(db);

    redis.freeze();
    const frozenAt = Date.now();
    const during = await Promise.all(Array.from({ length: FROZEN_REQUESTS }, () => call()));
    for (const res of during) {
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ allow: false, error: 'temporarily_unavailable', status: 503 });
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 3_000 - (Date.now() - frozenAt))));
    redis.resume();

    // No restart: the verifier decides again by itself. Requests made until then are denied.
    const recovering = await deniedUntilAllowed(call, 15_000);
    const allowed = 5 + 1;

    // The grant's state counts only the requests the service provider was told were allowed.
    const counters = await reader.hmget(grantStateKey(PREFIX, grantId, 'counters'), 'uses', 'spent');
    expect(counters).toEqual([String(allowed), String(allowed * AMOUNT_MINOR)]);
    expect(await reader.zcard(grantStateKey(PREFIX, grantId, 'rate'))).toBe(allowed);

    // The chain says what each answer said: every allow once, and a 503 deny for every other.
    const counts = () => outcomeCounts(db, grantId);
    await expect.poll(counts, { timeout: 20_000, interval: 100 }).toEqual([
      { outcome: 'allow', n: allowed },
      { outcome: 'temporarily_unavailable', n: FROZEN_REQUESTS + recovering },
    ]);
    expect((await vf.registry().get(AuditService).verify()).chain).toMatchObject({ ok: true });
    // The witness cosigns the new head: only with a consistency proof from the one it held.
    await witness.cosignsHead(db);
  });
});
