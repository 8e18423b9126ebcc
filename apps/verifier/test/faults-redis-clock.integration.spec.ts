import { randomBytes } from 'node:crypto';
import { grantStateKey } from '@writ/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { RedisVerifierStore } from '../src/store/redis-store.js';
import { type DecisionInput, type GrantStateSource, StoreUnavailable } from '../src/store/store.js';
import { type RedisServer, startRedisServer } from './support/redis-cluster.js';

const freshGrants: GrantStateSource = (grantId) => Promise.resolve({ grantId, uses: 0, spentMinor: 0, rate: [], proofs: [], revocations: [] });
const silent = { warn: () => undefined };
const TEN_MINUTES = 10 * 60_000;

function decision(grantId: string, nowMs: number): DecisionInput {
  const id = `evt_${randomBytes(6).toString('hex')}`;
  return {
    grantId,
    nowMs,
    proof: { jkt: 'jkt-A', jti: `jti_${id}`, keepUntilMs: nowMs + 60_000 },
    revocations: [],
    maxUses: 100,
    stateTtlMs: 60_000,
    event: { id, body: JSON.stringify({ type: 'verification', actor: 'agent:a', subject: 'alice', grant_id: grantId, txn: 'txn_1', data: {} }) },
  };
}

/**
 * The decision deadline of decide.lua (issue 19, "Redis frozen") on a redis-server this file
 * starts: it is checked against Redis's own clock, so the verifier's clock may be minutes off, and
 * a decision that reaches Redis after it leaves no trace.
 */
describe('the decision deadline, on Redis’s clock', () => {
  let redis: RedisServer;
  let raw: Redis;

  beforeAll(async () => {
    redis = await startRedisServer();
    raw = new Redis(redis.url);
  });
  afterAll(async () => {
    raw.disconnect();
    await redis.kill();
  });

  it.each([
    ['behind', -TEN_MINUTES],
    ['ahead of', TEN_MINUTES],
  ])('decides in time when the verifier’s clock is ten minutes %s Redis’s', async (_, skewMs) => {
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + skewMs);
    onTestFinished(() => {
      vi.restoreAllMocks();
    });
    const store = new RedisVerifierStore(redis.url, { prefix: `skew${skewMs > 0 ? 'a' : 'b'}:`, logger: silent, commandTimeoutMs: 500, grantState: freshGrants });
    onTestFinished(() => store.close());
    expect(await store.whenReady(5_000)).toBe(true);
    await expect(store.decide(decision('g1', Date.now()))).resolves.toMatchObject({ allow: true, uses: 1 });
    await expect(store.decide(decision('g1', Date.now()))).resolves.toMatchObject({ allow: true, uses: 2 });
  });

  it('leaves no trace of a decision that reached a frozen Redis after its deadline: no proof spent, no use counted, no event', { timeout: 30_000 }, async () => {
    const prefix = 'late:';
    const store = new RedisVerifierStore(redis.url, { prefix, logger: silent, commandTimeoutMs: 100, grantState: freshGrants });
    onTestFinished(() => store.close());
    expect(await store.whenReady(5_000)).toBe(true);
    await expect(store.decide(decision('g2', Date.now()))).resolves.toMatchObject({ allow: true, uses: 1 });

    const late = decision('g2', Date.now());
    redis.freeze();
    try {
      await expect(store.decide(late)).rejects.toBeInstanceOf(StoreUnavailable);
      await new Promise((resolve) => setTimeout(resolve, 500));
    } finally {
      redis.resume();
    }
    // The script ran once Redis resumed (its TIME past the deadline) and returned without writing.
    await expect.poll(() => raw.ping(), { timeout: 5_000 }).toBe('PONG');
    expect(await raw.hget(grantStateKey(prefix, 'g2', 'counters'), 'uses')).toBe('1');
    expect(await raw.exists(grantStateKey(prefix, 'g2', 'proof', `${late.proof.jkt}:${late.proof.jti}`))).toBe(0);
    const events = await raw.xrange(grantStateKey(prefix, 'g2', 'events'), '-', '+');
    expect(events.map(([, fields]) => fields[fields.indexOf('id') + 1])).not.toContain(late.event.id);
    // And the store decides again on the same connection.
    await expect.poll(async () => (await store.decide(decision('g2', Date.now())).catch(() => undefined))?.allow, { timeout: 5_000 }).toBe(true);
    expect(await raw.hget(grantStateKey(prefix, 'g2', 'counters'), 'uses')).toBe('2');
  });
});
