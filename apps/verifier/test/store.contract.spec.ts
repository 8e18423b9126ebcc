import type { Socket } from 'node:net';
import { type GrantStateSnapshot, grantStateKey, randomId, type RevocationKind, revocationChannel, revocationKey, verifierKey } from '@writ/core';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { RedisVerifierEventSource } from '../../registry/src/modules/audit/redis-verifier-events.js';
import { RedisRevocationBus } from '../../registry/src/modules/revocations/redis-revocation-bus.js';
import { InProcessVerifierStore } from '../src/store/in-process-store.js';
import { RedisVerifierStore } from '../src/store/redis-store.js';
import {
  type DecisionInput,
  type DecisionOutcome,
  GrantStateMissing,
  type GrantStateSource,
  outcomeLabel,
  type QueuedEvent,
  type RevocationNotice,
  StoreUnavailable,
  type VerifierEventBatch,
  type VerifierEventSource,
  type VerifierStore,
  type VerifierStoreAdmin,
} from '../src/store/store.js';
import { freePort, type RedisClusterHandle, type RedisServer, startRedisCluster, startRedisServer } from './support/redis-cluster.js';

/**
 * One contract, three stores: in process, Redis on one node, Redis Cluster (three masters). Every
 * test opens a store on a random key prefix of its own. Decisions use a clock of the test's own
 * (`nowMs`), so rate windows slide without waiting.
 */

const REDIS_URL = process.env.REDIS_URL;
const silent = { warn: () => undefined };
/** The registry's answer for a grant nothing was decided on yet: its state is empty (ADR 0017). */
const freshGrants: GrantStateSource = (grantId) => Promise.resolve({ grantId, uses: 0, spentMinor: 0, rate: [], proofs: [], revocations: [] });
const STATE_TTL = 31 * 24 * 3600 * 1000;
/** Slack for a Redis TTL read a moment after it was set (the read never sees more than what was set). */
const TTL_SLACK = 10_000;

interface Subject {
  store: VerifierStore & VerifierStoreAdmin;
  /** Where the registry reads the queue: the Redis streams reader, or the in-process store itself. */
  source: VerifierEventSource;
  prefix: string;
  /** Milliseconds left on `key` (PTTL semantics: -2 absent, -1 no expiry), `nowMs` being the test's clock. */
  pttl: (key: string, nowMs: number) => Promise<number>;
  /** A plain client on the same Redis (Redis targets only). */
  raw?: Redis | Cluster;
}

interface Target {
  name: string;
  redis: boolean;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A store on a fresh prefix; a grant it has no state for gets it from `grantState` ({@link freshGrants} by default). */
  open(grantState?: GrantStateSource): Promise<Subject>;
}

function inProcessTarget(): Target {
  return {
    name: 'in-process',
    redis: false,
    setup: () => Promise.resolve(),
    teardown: () => Promise.resolve(),
    open: (grantState = freshGrants) => {
      const prefix = `t${randomId(6)}:`;
      const store = new InProcessVerifierStore({ prefix, grantState });
      onTestFinished(() => store.close());
      return Promise.resolve({ store, source: store, prefix, pttl: (key, nowMs) => Promise.resolve(store.pttl(key, nowMs)) });
    },
  };
}

/**
 * One Redis and one cluster for the whole file, started on first use and stopped after the last
 * describe block that used it.
 */
function shared<T>(start: () => Promise<T>, stop: (value: T) => Promise<void>) {
  let value: Promise<T> | undefined;
  let users = 0;
  return {
    async acquire(): Promise<T> {
      users += 1;
      value ??= start();
      return value;
    },
    async release(): Promise<void> {
      users -= 1;
      if (users > 0 || !value) return;
      const v = await value;
      value = undefined;
      await stop(v);
    },
  };
}

const singleNode = shared(
  async () => {
    const server = REDIS_URL ? undefined : await startRedisServer();
    const url = REDIS_URL ?? server!.url;
    return { server, url, raw: new Redis(url) };
  },
  async ({ server, raw }) => {
    await raw.quit();
    await server?.kill();
  },
);

const threeMasters = shared(
  async () => {
    const cluster = await startRedisCluster(3);
    const raw = new Cluster(cluster.nodes);
    await raw.ping();
    return { cluster, raw };
  },
  async ({ cluster, raw }) => {
    await raw.quit();
    await cluster.stop();
  },
);

function singleNodeTarget(): Target {
  let handle: { url: string; raw: Redis };
  return {
    name: 'Redis (one node)',
    redis: true,
    async setup() {
      handle = await singleNode.acquire();
    },
    teardown: () => singleNode.release(),
    open: (grantState) => redisSubject(handle.url, handle.raw, grantState),
  };
}

function clusterTarget(): Target {
  let handle: { cluster: RedisClusterHandle; raw: Cluster };
  return {
    name: 'Redis Cluster (3 masters)',
    redis: true,
    async setup() {
      handle = await threeMasters.acquire();
    },
    teardown: () => threeMasters.release(),
    open: (grantState) => redisSubject(handle.cluster.nodes, handle.raw, grantState),
  };
}

async function redisSubject(target: string | { host: string; port: number }[], raw: Redis | Cluster, grantState: GrantStateSource = freshGrants): Promise<Subject> {
  const prefix = `t${randomId(6)}:`;
  const store = new RedisVerifierStore(target, { prefix, logger: silent, maxRetryMs: 100, grantState });
  onTestFinished(async () => {
    await store.close();
    await deleteKeys(raw, prefix);
  });
  // A decision before the connection is up fails closed: start once it is.
  expect(await store.whenReady()).toBe(true);
  return { store, source: new RedisVerifierEventSource(raw, { prefix }), prefix, raw, pttl: (key) => raw.pttl(key) };
}

/** Deletes every key under `prefix` on every master (SCAN, never KEYS or FLUSHALL). */
async function deleteKeys(raw: Redis | Cluster, prefix: string): Promise<void> {
  const nodes = raw instanceof Cluster ? raw.nodes('master') : [raw];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      // One DEL per key: on a cluster they live in different slots.
      await Promise.all(keys.map((key) => node.del(key)));
      cursor = next;
    } while (cursor !== '0');
  }
}

const targets: Target[] = [inProcessTarget(), singleNodeTarget(), clusterTarget()];

/** A decision input with a fresh proof and event; `over` replaces any part. */
function decision(grantId: string, nowMs: number, over: Partial<DecisionInput> = {}): DecisionInput {
  const eventId = `evt_${randomId(9)}`;
  return {
    grantId,
    nowMs,
    proof: { jkt: 'jkt-A', jti: `jti_${randomId(9)}`, keepUntilMs: nowMs + 60_000 },
    revocations: [],
    stateTtlMs: STATE_TTL,
    event: { id: eventId, body: JSON.stringify({ type: 'verification', actor: 'agent:a', subject: 'alice', grant_id: grantId, txn: 'txn_1', data: { n: eventId } }) },
    ...over,
  };
}

/** Everything waiting in the queue, read in one batch (not acked). */
async function waiting(source: VerifierEventSource): Promise<QueuedEvent[]> {
  return (await source.read(10_000)).events;
}

function ids(outcomes: DecisionOutcome[]): string[] {
  return outcomes.map(outcomeLabel);
}

describe.each(targets)('verifier store contract: $name', (target) => {
  beforeAll(() => target.setup());
  afterAll(() => target.teardown());

  it('says it is ready while it can decide, and is not once closed (Redis)', async () => {
    const { store } = await target.open();
    expect(store.ready()).toBe(true);
    await store.decide(decision('g1', Date.now()));
    expect(store.ready()).toBe(true);
    await store.close();
    // In process the state stays reachable; a closed Redis store has no connection left.
    expect(store.ready()).toBe(!target.redis);
  });

  it('allows and counts: uses, money spent, requests in the window', async () => {
    const { store } = await target.open();
    const t = Date.now();
    expect(await store.decide(decision('g1', t))).toEqual({ allow: true, uses: 1, spentMinor: 0, rateCount: 0 });
    expect(await store.decide(decision('g1', t + 1, { amount: { minor: 12_345 }, rate: { limit: 10, windowMs: 60_000 } }))).toEqual({
      allow: true,
      uses: 2,
      spentMinor: 12_345,
      rateCount: 1,
    });
    expect(await store.decide(decision('g1', t + 2, { amount: { minor: 5 }, rate: { limit: 10, windowMs: 60_000 } }))).toEqual({
      allow: true,
      uses: 3,
      spentMinor: 12_350,
      rateCount: 2,
    });
    // Another grant has counters of its own.
    expect(await store.decide(decision('g2', t + 3, { amount: { minor: 1 } }))).toEqual({ allow: true, uses: 1, spentMinor: 1, rateCount: 0 });
  });

  it('refuses a proof jti seen before with the same key, and keeps it until keepUntil', async () => {
    const { store, prefix, pttl } = await target.open();
    const t = Date.now();
    const first = decision('g1', t);
    first.proof.keepUntilMs = t + 90_000;
    expect((await store.decide(first)).allow).toBe(true);
    const again = decision('g1', t + 5, { proof: first.proof });
    expect(await store.decide(again)).toEqual({ allow: false, reason: 'replayed' });
    // The same jti under another key (jkt) is another proof.
    expect((await store.decide(decision('g1', t + 6, { proof: { ...first.proof, jkt: 'jkt-B' } }))).allow).toBe(true);
    // A replay is not counted.
    expect(await store.decide(decision('g1', t + 7))).toMatchObject({ allow: true, uses: 3 });
    const ttl = await pttl(grantStateKey(prefix, 'g1', 'proof', `jkt-A:${first.proof.jti}`), t);
    expect(ttl).toBeLessThanOrEqual(90_000);
    expect(ttl).toBeGreaterThan(90_000 - TTL_SLACK);
  });

  it('refuses a revoked grant, txn, token or agent, reporting the first in the order given', async () => {
    const { store } = await target.open();
    const t = Date.now();
    const expiresAtMs = Date.now() + 60_000;
    const checks: { kind: RevocationKind; value: string }[] = [
      { kind: 'grant', value: 'g1' },
      { kind: 'txn', value: 'txn_1' },
      { kind: 'token', value: 'jti_root' },
      { kind: 'agent', value: 'agent:a' },
    ];
    expect((await store.decide(decision('g1', t, { revocations: checks }))).allow).toBe(true);
    for (const [i, { kind, value }] of [...checks].reverse().entries()) {
      await store.revoke({ kind, value, grantIds: ['g1', 'g2'], expiresAtMs });
      // Each new revocation is earlier in the order, so it is now the one reported.
      const outcome = await store.decide(decision('g1', t + 1 + i, { revocations: checks }));
      expect(outcome).toEqual({ allow: false, reason: 'revoked', kind, value });
      expect(outcomeLabel(outcome)).toBe(`revoked:${kind}`);
    }
    // Later in the order than the first revoked one: still the first reported.
    expect(await store.decide(decision('g2', t + 10, { revocations: [checks[2]!, checks[0]!] }))).toEqual({ allow: false, reason: 'revoked', kind: 'token', value: 'jti_root' });
    // Only the grants named are affected, only the values checked count.
    expect((await store.decide(decision('g3', t + 11, { revocations: checks }))).allow).toBe(true);
    expect((await store.decide(decision('g1', t + 12, { revocations: [{ kind: 'txn', value: 'txn_2' }] }))).allow).toBe(true);
    // An already expired revocation is not written.
    await store.revoke({ kind: 'grant', value: 'g4', grantIds: ['g4'], expiresAtMs: Date.now() - 1 });
    expect((await store.decide(decision('g4', t + 13, { revocations: [{ kind: 'grant', value: 'g4' }] }))).allow).toBe(true);
  });

  it('checks in the order replay, revocation, stateless denial, uses, rate, budget, step-up', async () => {
    const { store } = await target.open();
    const t = Date.now();
    const rate = { limit: 1, windowMs: 60_000 };
    expect(await store.decide(decision('g1', t, { maxUses: 1, rate, amount: { minor: 100, totalMaxMinor: 100 } }))).toEqual({ allow: true, uses: 1, spentMinor: 100, rateCount: 1 });
    await store.revoke({ kind: 'token', value: 'jti_x', grantIds: ['g1'], expiresAtMs: Date.now() + 60_000 });
    const stepUp = { fingerprint: 'fp', newId: 'su_order', request: '{}', ttlMs: 60_000 };
    const all = decision('g1', t + 1, {
      revocations: [{ kind: 'token', value: 'jti_x' }],
      precheck: { code: 'outside_time_window' },
      maxUses: 1,
      rate,
      amount: { minor: 1, totalMaxMinor: 100, stepUp },
    });
    const seen: DecisionOutcome[] = [];
    const first = await store.decide(all);
    seen.push(await store.decide({ ...all, event: { id: 'e-replay', body: '{}' } }));
    const fresh = (over: Partial<DecisionInput>) => store.decide({ ...all, ...over, proof: { ...all.proof, jti: `jti_${randomId(8)}` } });
    seen.push(await fresh({}));
    seen.push(await fresh({ revocations: [] }));
    seen.push(await fresh({ revocations: [], precheck: undefined }));
    seen.push(await fresh({ revocations: [], precheck: undefined, maxUses: undefined }));
    seen.push(await fresh({ revocations: [], precheck: undefined, maxUses: undefined, rate: undefined }));
    seen.push(await fresh({ revocations: [], precheck: undefined, maxUses: undefined, rate: undefined, amount: { minor: 1, stepUp } }));
    expect(first).toEqual({ allow: false, reason: 'revoked', kind: 'token', value: 'jti_x' });
    expect(ids(seen)).toEqual(['replayed', 'revoked:token', 'outside_time_window', 'max_uses', 'rate_limited', 'budget_exceeded', 'approval_required']);
    expect(seen[3]).toEqual({ allow: false, reason: 'max_uses', uses: 1 });
    expect(seen[5]).toEqual({ allow: false, reason: 'budget_exceeded', spentMinor: 100 });
    // None of the denials counted anything.
    expect(await store.decide(decision('g1', t + 2))).toEqual({ allow: true, uses: 2, spentMinor: 100, rateCount: 0 });
  });

  it('reports a stateless denial after replay and revocations, without counting it', async () => {
    const { store } = await target.open();
    const t = Date.now();
    expect(await store.decide(decision('g1', t, { precheck: { code: 'insufficient_scope' }, maxUses: 0 }))).toEqual({ allow: false, reason: 'precheck', code: 'insufficient_scope' });
    expect(await store.decide(decision('g1', t + 1, { maxUses: 1 }))).toMatchObject({ allow: true, uses: 1 });
  });

  it('refuses once max_uses requests were allowed, with the count', async () => {
    const { store } = await target.open();
    const t = Date.now();
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push(await store.decide(decision('g1', t + i, { maxUses: 3 })));
    expect(outcomes).toEqual([
      { allow: true, uses: 1, spentMinor: 0, rateCount: 0 },
      { allow: true, uses: 2, spentMinor: 0, rateCount: 0 },
      { allow: true, uses: 3, spentMinor: 0, rateCount: 0 },
      { allow: false, reason: 'max_uses', uses: 3 },
    ]);
  });

  it('rate: a sliding window log, with the exact time until the next request fits', async () => {
    const { store } = await target.open();
    const t = 1_800_000_000_000;
    const rate = { limit: 3, windowMs: 1_000 };
    const at = (ms: number) => store.decide(decision('g1', t + ms, { rate }));
    expect(await at(0)).toMatchObject({ allow: true, rateCount: 1 });
    expect(await at(100)).toMatchObject({ allow: true, rateCount: 2 });
    expect(await at(200)).toMatchObject({ allow: true, rateCount: 3 });
    // The oldest (t) leaves the window at t + 1000.
    expect(await at(300)).toEqual({ allow: false, reason: 'rate_limited', retryAfterMs: 700 });
    expect(await at(999)).toEqual({ allow: false, reason: 'rate_limited', retryAfterMs: 1 });
    // Refused requests take no place in the window.
    expect(await at(1_000)).toMatchObject({ allow: true, rateCount: 3, uses: 4 });
    // Now t+100, t+200, t+1000 are in the window: the next place frees at t+1100.
    expect(await at(1_001)).toEqual({ allow: false, reason: 'rate_limited', retryAfterMs: 99 });
    expect(await at(1_100)).toMatchObject({ allow: true, rateCount: 3 });
    // Much later, the window is empty again.
    expect(await at(10_000)).toMatchObject({ allow: true, rateCount: 1 });
  });

  it('rate: never more than limit allowed in any window, with requests every few ms', async () => {
    const { store } = await target.open();
    const t = 1_800_000_000_000;
    const rate = { limit: 5, windowMs: 100 };
    const allowedAt: number[] = [];
    for (let ms = 0; ms < 400; ms += 7) {
      const outcome = await store.decide(decision('g1', t + ms, { rate }));
      if (outcome.allow) allowedAt.push(ms);
      else if (outcome.reason === 'rate_limited') {
        // retry_after is exact: the oldest of the window plus the window.
        const inWindow = allowedAt.filter((a) => a > ms - 100);
        expect(outcome.retryAfterMs).toBe(inWindow[0]! + 100 - ms);
      }
    }
    for (const start of allowedAt) expect(allowedAt.filter((a) => a >= start && a < start + 100).length).toBeLessThanOrEqual(5);
    // And the window is used fully: 5 in each of the first four 100 ms stretches.
    expect(allowedAt.length).toBe(20);
  });

  it("rate: a token's longer window is counted whole after a shorter window's decision on the same grant", async () => {
    const { store } = await target.open();
    const t = 1_800_000_000_000;
    // A parent token's rate and its delegated child's narrower one (fewer, over a longer window).
    const parent = { limit: 10, windowMs: 60_000 };
    const child = { limit: 2, windowMs: 3_600_000 };
    expect(await store.decide(decision('g1', t, { rate: child }))).toMatchObject({ allow: true, rateCount: 1 });
    expect(await store.decide(decision('g1', t + 1_000, { rate: child }))).toMatchObject({ allow: true, rateCount: 2 });
    expect(await store.decide(decision('g1', t + 1_001, { rate: child }))).toEqual({ allow: false, reason: 'rate_limited', retryAfterMs: 3_600_000 - 1_001 });
    // The parent counts over its own 60 s: the child's two requests are outside it.
    expect(await store.decide(decision('g1', t + 120_000, { rate: parent }))).toMatchObject({ allow: true, rateCount: 1 });
    // The child still sees all three of its hour: full until its second-newest (t + 1 s) leaves.
    expect(await store.decide(decision('g1', t + 121_000, { rate: child }))).toEqual({
      allow: false,
      reason: 'rate_limited',
      retryAfterMs: 1_000 + 3_600_000 - 121_000,
    });
    expect(await store.decide(decision('g1', t + 3_601_000, { rate: child }))).toMatchObject({ allow: true, rateCount: 2 });
  });

  it('rate: retry_after is exact for the own window when other tokens filled it past the own limit', async () => {
    const { store } = await target.open();
    const t = 1_800_000_000_000;
    const parent = { limit: 5, windowMs: 1_000 };
    const child = { limit: 2, windowMs: 10_000 };
    for (const ms of [0, 10, 20, 30, 40]) expect(await store.decide(decision('g1', t + ms, { rate: parent }))).toMatchObject({ allow: true });
    // Five in the child's window, which allows two: it fits again once fewer than two remain, when
    // the second-newest (t + 30) leaves, not the oldest (t).
    expect(await store.decide(decision('g1', t + 50, { rate: child }))).toEqual({ allow: false, reason: 'rate_limited', retryAfterMs: 30 + 10_000 - 50 });
    expect(await store.decide(decision('g1', t + 10_029, { rate: child }))).toMatchObject({ allow: false, reason: 'rate_limited', retryAfterMs: 1 });
    expect(await store.decide(decision('g1', t + 10_030, { rate: child }))).toMatchObject({ allow: true, rateCount: 2 });
  });

  it('rate: keeps as many entries as the largest limit asked for, and refuses a larger limit whose window reaches past what was trimmed', async () => {
    const { store, raw, prefix } = await target.open();
    const t = 1_800_000_000_000;
    const hour = 3_600_000;
    const small = { limit: 2, windowMs: hour };
    const large = { limit: 3, windowMs: 2 * hour };
    for (const ms of [0, 1, hour + 5]) expect(await store.decide(decision('g1', t + ms, { rate: small }))).toMatchObject({ allow: true });
    // Only two are kept (t + 1, t + hour + 5); t was trimmed. A limit of 3 over two hours cannot
    // count what was trimmed, so it is refused until t leaves its window: fail closed, and here
    // exact too (t, t + 1 and t + hour + 5 are three in those two hours).
    if (raw) expect(await raw.zcard(grantStateKey(prefix, 'g1', 'rate'))).toBe(2);
    expect(await store.decide(decision('g1', t + hour + 10, { rate: large }))).toEqual({ allow: false, reason: 'rate_limited', retryAfterMs: 2 * hour - hour - 10 });
    expect(await store.decide(decision('g1', t + 2 * hour, { rate: large }))).toMatchObject({ allow: true, rateCount: 3 });
    // From now on three are kept (t + 1 is trimmed next), so the larger limit is counted exactly.
    expect(await store.decide(decision('g1', t + 2 * hour + 1, { rate: large }))).toMatchObject({ allow: true, rateCount: 3 });
    if (raw) expect(await raw.zcard(grantStateKey(prefix, 'g1', 'rate'))).toBe(3);
    expect(await store.decide(decision('g1', t + 2 * hour + 2, { rate: large }))).toEqual({ allow: false, reason: 'rate_limited', retryAfterMs: hour + 5 + 2 * hour - 2 * hour - 2 });
  });

  it('budget: spent + amount may reach total_max exactly, in thousandths, and not pass it', async () => {
    const { store, raw, prefix } = await target.open();
    const t = Date.now();
    const spend = (grantId: string, minor: number, totalMaxMinor: number, i: number) => store.decide(decision(grantId, t + i, { amount: { minor, totalMaxMinor } }));
    // 0.1 + 0.2 fits a total of 0.3.
    expect(await spend('g1', 100, 300, 0)).toMatchObject({ allow: true, spentMinor: 100 });
    expect(await spend('g1', 200, 300, 1)).toMatchObject({ allow: true, spentMinor: 300 });
    expect(await spend('g1', 1, 300, 2)).toEqual({ allow: false, reason: 'budget_exceeded', spentMinor: 300 });
    expect(await spend('g1', 0, 300, 3)).toMatchObject({ allow: true, spentMinor: 300, uses: 3 });
    // 10^12 currency units: integers up to 10^15 stay exact.
    expect(await spend('big', 999_999_999_999_999, 1e15, 4)).toMatchObject({ allow: true, spentMinor: 999_999_999_999_999 });
    expect(await spend('big', 2, 1e15, 5)).toEqual({ allow: false, reason: 'budget_exceeded', spentMinor: 999_999_999_999_999 });
    expect(await spend('big', 1, 1e15, 6)).toMatchObject({ allow: true, spentMinor: 1e15 });
    expect(await spend('big', 1, 1e15, 7)).toEqual({ allow: false, reason: 'budget_exceeded', spentMinor: 1e15 });
    // Redis holds the digits, never a float's "1e+15".
    if (raw) expect(await raw.hget(grantStateKey(prefix, 'big', 'counters'), 'spent')).toBe('1000000000000000');
    await expect(spend('big', 1e15 + 1, 2e15, 8)).rejects.toThrow(RangeError);
    await expect(spend('big', 0.5, 1e15, 9)).rejects.toThrow(RangeError);
  });

  it('step-up: one pending id across retries, allowed once after approval, then a new id', async () => {
    const { store, prefix, pttl } = await target.open();
    const t = Date.now();
    const request = JSON.stringify({ amount: '180.000', currency: 'EUR', payee: 'flights' });
    const ask = (newId: string, i: number, totalMaxMinor = 1_000_000) =>
      store.decide(decision('g1', t + i, { amount: { minor: 180_000, totalMaxMinor, stepUp: { fingerprint: 'fp1', newId, request, ttlMs: 600_000 } } }));

    expect(await ask('su_1', 0)).toEqual({ allow: false, reason: 'approval_required', stepUpId: 'su_1' });
    expect(await store.stepUp('g1', 'su_1')).toEqual({ status: 'pending', request });
    expect(await ask('su_2', 1)).toEqual({ allow: false, reason: 'approval_required', stepUpId: 'su_1' });
    expect(await store.stepUp('g1', 'su_2')).toBeNull();
    const stepUpTtl = await pttl(grantStateKey(prefix, 'g1', 'stepup', 'su_1'), t);
    expect(stepUpTtl).toBeLessThanOrEqual(600_000);
    expect(stepUpTtl).toBeGreaterThan(600_000 - TTL_SLACK);
    expect(await pttl(grantStateKey(prefix, 'g1', 'stepup-for', 'fp1'), t)).toBeGreaterThan(600_000 - TTL_SLACK);

    expect(await store.approveStepUp('g1', 'nope')).toBe(false);
    expect(await store.approveStepUp('g2', 'su_1')).toBe(false);
    expect(await store.approveStepUp('g1', 'su_1')).toBe(true);
    expect(await store.approveStepUp('g1', 'su_1')).toBe(false);
    expect(await store.stepUp('g1', 'su_1')).toEqual({ status: 'approved', request });

    // Approved but over the budget: the budget refuses first, and the approval stays.
    expect(await ask('su_3', 2, 100_000)).toEqual({ allow: false, reason: 'budget_exceeded', spentMinor: 0 });
    expect(await store.stepUp('g1', 'su_1')).toEqual({ status: 'approved', request });

    expect(await ask('su_4', 3)).toEqual({ allow: true, uses: 1, spentMinor: 180_000, rateCount: 0, stepUpId: 'su_1' });
    expect(await store.stepUp('g1', 'su_1')).toEqual({ status: 'used', request });
    expect(await store.approveStepUp('g1', 'su_1')).toBe(false);
    // Used once: the same request needs a new approval, under the new id.
    expect(await ask('su_5', 4)).toEqual({ allow: false, reason: 'approval_required', stepUpId: 'su_5' });
    expect(await ask('su_6', 5)).toEqual({ allow: false, reason: 'approval_required', stepUpId: 'su_5' });
    // Another fingerprint (another request) has a step-up of its own.
    expect(
      await store.decide(decision('g1', t + 6, { amount: { minor: 180_001, stepUp: { fingerprint: 'fp2', newId: 'su_7', request, ttlMs: 600_000 } } })),
    ).toEqual({ allow: false, reason: 'approval_required', stepUpId: 'su_7' });
  });

  it('names the step-up in the decision events: asked for (with its expiry, the same on a retry), then consumed by the allow', async () => {
    const { store, source } = await target.open();
    const t = Date.now();
    const request = JSON.stringify({ amount: 150, currency: 'EUR' });
    const pay = (newId: string, i: number) => decision('gsu', t + i, { amount: { minor: 150_000, stepUp: { fingerprint: 'fp', newId, request, ttlMs: 900_000 } } });
    const asked = pay('su_a', 0);
    const retried = pay('su_b', 5);
    const paid = pay('su_c', 7);
    const again = pay('su_d', 9);
    expect(await store.decide(asked)).toEqual({ allow: false, reason: 'approval_required', stepUpId: 'su_a' });
    expect(await store.decide(retried)).toEqual({ allow: false, reason: 'approval_required', stepUpId: 'su_a' });
    expect(await store.approveStepUp('gsu', 'su_a')).toBe(true);
    expect(await store.decide(paid)).toMatchObject({ allow: true, stepUpId: 'su_a' });
    expect(await store.decide(again)).toEqual({ allow: false, reason: 'approval_required', stepUpId: 'su_d' });
    // A decision without a step-up carries none.
    const plain = decision('gsu', t + 10);
    await store.decide(plain);

    const events = (await waiting(source)).filter((e) => JSON.parse(e.body).grant_id === 'gsu');
    expect(events).toEqual([
      { id: asked.event.id, body: asked.event.body, outcome: 'approval_required', stepUpId: 'su_a', stepUpExpiresAtMs: t + 900_000 },
      // The retry finds the pending step-up: same id, and the expiry it was created with.
      { id: retried.event.id, body: retried.event.body, outcome: 'approval_required', stepUpId: 'su_a', stepUpExpiresAtMs: t + 900_000 },
      { id: paid.event.id, body: paid.event.body, outcome: 'allow', stepUpId: 'su_a' },
      { id: again.event.id, body: again.event.body, outcome: 'approval_required', stepUpId: 'su_d', stepUpExpiresAtMs: t + 9 + 900_000 },
      { id: plain.event.id, body: plain.event.body, outcome: 'allow' },
    ]);
  });

  it('keeps the counters and the rate log for stateTtlMs after each allow', async () => {
    const { store, prefix, pttl } = await target.open();
    const t = Date.now();
    await store.decide(decision('g1', t, { rate: { limit: 5, windowMs: 1000 }, amount: { minor: 1 }, stateTtlMs: 5_000_000 }));
    // The events stream is Redis' per-grant queue; in process the queue is one list.
    for (const part of target.redis ? (['counters', 'rate', 'events'] as const) : (['counters', 'rate'] as const)) {
      const ttl = await pttl(grantStateKey(prefix, 'g1', part), t);
      expect(ttl, part).toBeLessThanOrEqual(5_000_000);
      expect(ttl, part).toBeGreaterThan(5_000_000 - TTL_SLACK);
    }
    // Refreshed by the next allow.
    await store.decide(decision('g1', t + 1, { rate: { limit: 5, windowMs: 1000 }, amount: { minor: 1 }, stateTtlMs: STATE_TTL }));
    expect(await pttl(grantStateKey(prefix, 'g1', 'counters'), t + 1)).toBeGreaterThan(STATE_TTL - TTL_SLACK);
    expect(await pttl(grantStateKey(prefix, 'g1', 'rate'), t + 1)).toBeGreaterThan(STATE_TTL - TTL_SLACK);
  });

  it('queues the event of every outcome with its label, read back and acked exactly', async () => {
    const { store, source } = await target.open();
    const t = Date.now();
    await store.revoke({ kind: 'agent', value: 'agent:x', grantIds: ['gr'], expiresAtMs: Date.now() + 60_000 });
    const inputs: DecisionInput[] = [];
    const push = (d: DecisionInput): DecisionInput => {
      inputs.push(d);
      return d;
    };
    const allowed = push(decision('ge', t, { maxUses: 1 }));
    push(decision('ge', t + 1, { proof: allowed.proof }));
    push(decision('ge', t + 2, { maxUses: 1 }));
    push(decision('gr', t + 3, { revocations: [{ kind: 'agent', value: 'agent:x' }] }));
    push(decision('gp', t + 4, { precheck: { code: 'insufficient_scope' } }));
    push(decision('gq', t + 5, { rate: { limit: 0, windowMs: 1000 } }));
    push(decision('gb', t + 6, { amount: { minor: 2, totalMaxMinor: 1 } }));
    push(decision('gs', t + 7, { amount: { minor: 2, stepUp: { fingerprint: 'f', newId: 's1', request: '{}', ttlMs: 1000 } } }));
    const outcomes: DecisionOutcome[] = [];
    for (const d of inputs) outcomes.push(await store.decide(d));
    expect(ids(outcomes)).toEqual(['allow', 'replayed', 'max_uses', 'revoked:agent', 'insufficient_scope', 'rate_limited', 'budget_exceeded', 'approval_required']);
    await store.queueEvent({ id: 'evt_pre', body: '{"type":"verification"}', outcome: 'invalid_token' });

    const expected: QueuedEvent[] = [...inputs.map((d, i) => ({ id: d.event.id, body: d.event.body, outcome: ids(outcomes)[i]! })), { id: 'evt_pre', body: '{"type":"verification"}', outcome: 'invalid_token' }];
    // The approval_required event names its step-up and when it expires.
    Object.assign(expected[7]!, { stepUpId: 's1', stepUpExpiresAtMs: t + 7 + 1000 });
    const first = await waiting(source);
    expect(sortById(first)).toEqual(sortById(expected));
    // One grant's events in decision order.
    expect(first.filter((e) => e.id !== 'evt_pre' && JSON.parse(e.body).grant_id === 'ge').map((e) => e.outcome)).toEqual(['allow', 'replayed', 'max_uses']);

    // Read but not acked: read again. Acked: gone, and only those.
    const partial = await source.read(4);
    expect(partial.events).toHaveLength(4);
    await partial.ack();
    const rest = await waiting(source);
    expect(sortById(rest)).toEqual(sortById(first.filter((e) => !partial.events.some((p) => p.id === e.id))));
    expect(rest).toHaveLength(5);
    // A decision after the read joins what remains.
    const late = decision('ge', t + 8);
    await store.decide(late);
    // Redis: the reader may learn of the grant again only from its hint, written within ~50 ms.
    let withLate: VerifierEventBatch | undefined;
    await vi.waitFor(
      async () => {
        withLate = await source.read(100);
        expect(sortById(withLate.events)).toEqual(sortById([...rest, { id: late.event.id, body: late.event.body, outcome: 'allow' }]));
      },
      { timeout: 5_000, interval: 10 },
    );
    await withLate!.ack();
    expect(await waiting(source)).toEqual([]);
  });

  it('200 concurrent decisions never spend past total_max, and allow exactly what fits in execution order', async () => {
    const { store, source } = await target.open();
    const t = Date.now();
    const totalMaxMinor = 500_000_000_000_000;
    // Amounts up to 10^13 thousandths, about twice the budget in all.
    let seed = 7;
    const amounts = Array.from({ length: 200 }, () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) * 4_656 + 1);
    expect(amounts.reduce((a, b) => a + b)).toBeGreaterThan(totalMaxMinor);
    const inputs = amounts.map((minor, i) => decision('gc', t + i, { amount: { minor, totalMaxMinor } }));
    const outcomes = await Promise.all(inputs.map((d) => store.decide(d)));
    const byEvent = new Map(inputs.map((d, i) => [d.event.id, { minor: amounts[i]!, outcome: outcomes[i]! }]));

    const order = (await waiting(source)).map((e) => e.id);
    expect(order).toHaveLength(200);
    let spent = 0;
    let uses = 0;
    for (const id of order) {
      const { minor, outcome } = byEvent.get(id)!;
      if (spent + minor <= totalMaxMinor) {
        spent += minor;
        uses += 1;
        expect(outcome).toEqual({ allow: true, uses, spentMinor: spent, rateCount: 0 });
      } else {
        expect(outcome).toEqual({ allow: false, reason: 'budget_exceeded', spentMinor: spent });
      }
    }
    const allowedTotal = outcomes.reduce((sum, o, i) => sum + (o.allow ? amounts[i]! : 0), 0);
    expect(allowedTotal).toBe(spent);
    expect(allowedTotal).toBeLessThanOrEqual(totalMaxMinor);
    expect(uses).toBeGreaterThan(1);
    expect(uses).toBeLessThan(200);
  });

  it('tells each listener about revocations until it stops listening', async () => {
    const { store } = await target.open();
    const heard: RevocationNotice[] = [];
    const stop = store.onRevocation((notice) => heard.push(notice));
    if (store instanceof RedisVerifierStore) await store.listening();
    const notice: RevocationNotice = { kind: 'txn', value: 'txn_9', grantIds: ['g1', 'g2'], expiresAtMs: Date.parse('2099-01-01T00:00:00.000Z') };
    await store.revoke(notice);
    await vi.waitFor(() => expect(heard).toEqual([notice]), { timeout: 5_000, interval: 10 });
    stop();
    await store.revoke({ ...notice, value: 'txn_10' });
    // The store's own second listener proves the second announcement went out before checking the first stayed quiet.
    const later: RevocationNotice[] = [];
    const stopLater = store.onRevocation((n) => later.push(n));
    await store.revoke({ ...notice, value: 'txn_11' });
    await vi.waitFor(() => expect(later.map((n) => n.value)).toContain('txn_11'), { timeout: 5_000, interval: 10 });
    stopLater();
    expect(heard).toEqual([notice]);
  });

  describe('a grant whose state the store lost (ADR 0017)', () => {
    /** What the registry rebuilt for `g1`: 3 uses, 9.000 spent, two recent allows, a proof, a revoked token. */
    function rebuilt(t: number): GrantStateSnapshot {
      return {
        grantId: 'g1',
        uses: 3,
        spentMinor: 9_000,
        rate: [
          { atMs: t - 20_000, member: `${t - 20_000}:jkt-A:old-1` },
          { atMs: t - 10_000, member: `${t - 10_000}:jkt-A:old-2` },
        ],
        proofs: [{ jkt: 'jkt-A', jti: 'spent-proof', keepUntilMs: t + 300_000 }],
        revocations: [{ kind: 'token', value: 'trt_revoked', expiresAtMs: t + 300_000 }],
      };
    }

    it('rebuilds it before deciding: the replayed proof, the revoked token, the uses, the rate and the budget all hold', async () => {
      const t = Date.now();
      const asked: { grantId: string; pending: number }[] = [];
      const { store } = await target.open((grantId, pending) => {
        asked.push({ grantId, pending: pending.length });
        return Promise.resolve(grantId === 'g1' ? rebuilt(t) : null);
      });
      expect(await store.decide(decision('g1', t, { proof: { jkt: 'jkt-A', jti: 'spent-proof', keepUntilMs: t + 60_000 } }))).toEqual({ allow: false, reason: 'replayed' });
      expect(asked).toEqual([{ grantId: 'g1', pending: 0 }]);
      expect(await store.decide(decision('g1', t + 1, { revocations: [{ kind: 'token', value: 'trt_revoked' }] }))).toMatchObject({ allow: false, reason: 'revoked', value: 'trt_revoked' });
      expect(await store.decide(decision('g1', t + 2, { maxUses: 3 }))).toEqual({ allow: false, reason: 'max_uses', uses: 3 });
      expect(await store.decide(decision('g1', t + 3, { rate: { limit: 2, windowMs: 60_000 } }))).toEqual({ allow: false, reason: 'rate_limited', retryAfterMs: 60_000 - 20_003 });
      expect(await store.decide(decision('g1', t + 4, { amount: { minor: 1_001, totalMaxMinor: 10_000 } }))).toEqual({ allow: false, reason: 'budget_exceeded', spentMinor: 9_000 });
      expect(await store.decide(decision('g1', t + 5, { amount: { minor: 1_000, totalMaxMinor: 10_000 }, maxUses: 4 }))).toEqual({ allow: true, uses: 4, spentMinor: 10_000, rateCount: 0 });
      // Rebuilt once: the state is whole from then on.
      expect(asked).toHaveLength(1);
    });

    it('never overwrites a state that is there, and never lowers a counter', async () => {
      const t = Date.now();
      const { store } = await target.open();
      expect(await store.decide(decision('g1', t, { amount: { minor: 500 } }))).toMatchObject({ allow: true, uses: 1, spentMinor: 500 });
      expect(await store.restoreGrant({ grantId: 'g1', uses: 0, spentMinor: 0, rate: [], proofs: [], revocations: [] })).toBe(false);
      expect(await store.decide(decision('g1', t + 1, { amount: { minor: 1 } }))).toMatchObject({ allow: true, uses: 2, spentMinor: 501 });
    });

    it('rebuilds once for concurrent first decisions, and answers GrantStateMissing (503) while the registry cannot say', async () => {
      const t = Date.now();
      let calls = 0;
      let failing = true;
      const { store } = await target.open((grantId) => {
        calls += 1;
        return failing ? Promise.reject(new Error('registry unreachable')) : freshGrants(grantId, []);
      });
      await expect(store.decide(decision('g1', t))).rejects.toBeInstanceOf(GrantStateMissing);
      failing = false;
      const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => store.decide(decision('g1', t + i))));
      expect(outcomes.every((o) => o.allow)).toBe(true);
      expect(calls).toBe(2);
    });

    it('counts the decisions still waiting in its queue towards the rebuilt state', async () => {
      const t = Date.now();
      const seen: QueuedEvent[][] = [];
      const { store } = await target.open((grantId, pending) => {
        seen.push(pending);
        return freshGrants(grantId, pending);
      });
      await store.restoreGrant({ grantId: 'g2', uses: 0, spentMinor: 0, rate: [], proofs: [], revocations: [] });
      const queued = decision('g2', t);
      await store.decide(queued);
      expect((await store.pendingEvents('g2')).map((e) => e.id)).toEqual([queued.event.id]);
      expect(await store.pendingEvents('g1')).toEqual([]);
      expect(seen).toEqual([]);
    });
  });
});

describe('Redis store specifics (one node)', () => {
  let url: string;
  let raw: Redis;
  beforeAll(async () => {
    ({ url, raw } = await singleNode.acquire());
  });
  afterAll(() => singleNode.release());

  it('sends the decisions of one event-loop turn to Redis in one write, and a lone one at the end of its turn', async () => {
    const subject = await redisSubject(url, raw);
    const store = subject.store as RedisVerifierStore;
    // The grant's state is there already: its first decision does not rebuild it (ADR 0017).
    expect(await store.restoreGrant((await freshGrants('g1', []))!)).toBe(true);
    // A first decision waits for the store's first reading of Redis's clock (TIME, made when it
    // connects, off the request path): no TIME is then in flight while the writes are counted.
    expect((await store.decide(decision('g1', Date.now()))).allow).toBe(true);
    const socket = (store as unknown as { connection: { redis: { stream: Socket } } }).connection.redis.stream;
    const writes: number[] = [];
    const writev = socket._writev!.bind(socket);
    const write = socket._write.bind(socket);
    socket._writev = (chunks, callback) => {
      writes.push(chunks.length);
      writev(chunks, callback);
    };
    socket._write = (chunk, encoding, callback) => {
      writes.push(1);
      write(chunk, encoding, callback);
    };
    const now = Date.now();
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => store.decide(decision('g1', now))));
    expect(outcomes.every((o) => o.allow)).toBe(true);
    expect(writes).toEqual([20]);
    writes.length = 0;
    expect((await store.decide(decision('g1', now))).allow).toBe(true);
    expect(writes).toEqual([1]);
  });

  it('without a state source, refuses a grant it has no state for (503) and asks the registry on the restore channel, once a second', async () => {
    const prefix = `t${randomId(6)}:`;
    const store = new RedisVerifierStore(url, { prefix, logger: silent });
    const listener = raw.duplicate();
    onTestFinished(async () => {
      await store.close();
      listener.disconnect();
      await deleteKeys(raw, prefix);
    });
    const asked: string[] = [];
    listener.on('message', (_channel: string, grantId: string) => asked.push(grantId));
    await listener.subscribe(verifierKey(prefix, 'restore'));
    expect(await store.whenReady()).toBe(true);
    const t = Date.now();
    await expect(store.decide(decision('g1', t))).rejects.toBeInstanceOf(GrantStateMissing);
    await expect(store.decide(decision('g1', t + 1))).rejects.toBeInstanceOf(GrantStateMissing);
    await vi.waitFor(() => expect(asked).toEqual(['g1']), { timeout: 2_000, interval: 10 });
    // Nothing was counted, and no proof was spent, while the state was missing.
    expect(await raw.exists(grantStateKey(prefix, 'g1', 'proof', 'jkt-A:x'))).toBe(0);
    expect(await raw.hgetall(grantStateKey(prefix, 'g1', 'counters'))).toEqual({});
    // Once the registry wrote the state, the same store decides.
    expect(await store.restoreGrant({ grantId: 'g1', uses: 2, spentMinor: 0, rate: [], proofs: [], revocations: [] })).toBe(true);
    expect(await store.decide(decision('g1', t + 2))).toMatchObject({ allow: true, uses: 3 });
  });

  it('without a state source, a decision that finds no state waits a moment for the registry to write it, then decides', async () => {
    const prefix = `t${randomId(6)}:`;
    const store = new RedisVerifierStore(url, { prefix, logger: silent, stateWaitMs: 2_000 });
    onTestFinished(async () => {
      await store.close();
      await deleteKeys(raw, prefix);
    });
    expect(await store.whenReady()).toBe(true);
    const t = Date.now();
    // The registry writes a new grant's empty state when it is approved; the agent may be faster.
    const decided = Promise.all([store.decide(decision('g1', t)), store.decide(decision('g1', t + 1))]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await store.restoreGrant({ grantId: 'g1', uses: 0, spentMinor: 0, rate: [], proofs: [], revocations: [] })).toBe(true);
    expect((await decided).map((o) => o.allow)).toEqual([true, true]);
  });

  it('writes revocation keys exactly as the registry does, and honours the registry bus', async () => {
    const subject = await redisSubject(url, raw);
    const store = subject.store as RedisVerifierStore;
    const expiresAtMs = Date.now() + 45_000;
    await store.revoke({ kind: 'agent', value: 'agent:z', grantIds: ['g1', 'g2'], expiresAtMs });
    const wire = JSON.stringify({ kind: 'agent', value: 'agent:z', grantIds: ['g1', 'g2'], expiresAt: new Date(expiresAtMs).toISOString() });
    for (const grantId of ['g1', 'g2']) {
      const key = revocationKey(subject.prefix, grantId, 'agent', 'agent:z');
      expect(await raw.get(key)).toBe(wire);
      expect(await raw.pttl(key)).toBeGreaterThan(45_000 - TTL_SLACK);
    }

    // What the registry's own bus publishes is heard and honoured.
    const heard: RevocationNotice[] = [];
    store.onRevocation((n) => heard.push(n));
    await store.listening();
    const bus = new RedisRevocationBus({ url, prefix: subject.prefix, logger: { log: () => undefined, warn: () => undefined, error: () => undefined } });
    onTestFinished(() => bus.close());
    const expiresAt = new Date(Date.now() + 30_000);
    bus.publish({ kind: 'grant', value: 'g3', grantIds: ['g3'], expiresAt });
    expect(await bus.drained(5_000)).toBe(true);
    await vi.waitFor(() => expect(heard).toEqual([{ kind: 'grant', value: 'g3', grantIds: ['g3'], expiresAtMs: expiresAt.getTime() }]), { timeout: 5_000, interval: 10 });
    expect(await store.decide(decision('g3', Date.now(), { revocations: [{ kind: 'grant', value: 'g3' }] }))).toEqual({ allow: false, reason: 'revoked', kind: 'grant', value: 'g3' });
    // A malformed announcement is ignored.
    await raw.publish(revocationChannel(subject.prefix), '{"kind":"planet"}');
    await raw.publish(revocationChannel(subject.prefix), JSON.stringify({ kind: 'token', value: 'j', grantIds: ['g4'], expiresAt: new Date(expiresAtMs).toISOString() }));
    await vi.waitFor(() => expect(heard.map((n) => n.value)).toEqual(['g3', 'j']), { timeout: 5_000, interval: 10 });
  });

  it('names the grant in the event-grants hint set shortly after a decision, which the reader pops', async () => {
    const subject = await redisSubject(url, raw);
    const source = new RedisVerifierEventSource(raw, { prefix: subject.prefix, scanIntervalMs: 3_600_000 });
    // The first read scans (nothing yet); from then on only hints lead the reader to a grant.
    expect((await source.read(10)).events).toEqual([]);
    const d = decision('gh', Date.now());
    await subject.store.decide(d);
    await vi.waitFor(async () => expect(await raw.smembers(verifierKey(subject.prefix, 'event-grants'))).toEqual(['gh']), { timeout: 5_000, interval: 10 });
    const batch = await source.read(10);
    expect(batch.events.map((e) => e.id)).toEqual([d.event.id]);
    expect(await raw.scard(verifierKey(subject.prefix, 'event-grants'))).toBe(0);
    await batch.ack();
    expect(await raw.xlen(grantStateKey(subject.prefix, 'gh', 'events'))).toBe(0);
  });

  it('finds grant streams by scanning when the hint was lost', async () => {
    const subject = await redisSubject(url, raw);
    const d = decision('gl', Date.now());
    await subject.store.decide(d);
    await subject.store.close();
    await raw.del(verifierKey(subject.prefix, 'event-grants'));
    const source = new RedisVerifierEventSource(raw, { prefix: subject.prefix });
    expect((await source.read(10)).events.map((e) => e.id)).toEqual([d.event.id]);
  });

  it('fails closed on a script error (a key of the wrong type)', async () => {
    const subject = await redisSubject(url, raw);
    await raw.set(grantStateKey(subject.prefix, 'gw', 'counters'), 'not a hash');
    await expect(subject.store.decide(decision('gw', Date.now()))).rejects.toBeInstanceOf(StoreUnavailable);
  });

  it('is not ready once its connection stops being writable, before the client has seen it close', async () => {
    const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    onTestFinished(() => client.disconnect());
    const store = new RedisVerifierStore(client, { prefix: `t${randomId(6)}:`, logger: silent });
    onTestFinished(() => store.close());
    await vi.waitFor(() => expect(store.ready()).toBe(true), { timeout: 5_000, interval: 10 });
    // What Node does to the socket when Redis sends its FIN; the client's 'close' comes later.
    client.stream.end();
    expect(client.status).toBe('ready');
    expect(store.ready()).toBe(false);
  });

  describe('while Redis is unreachable', () => {
    const started: RedisServer[] = [];
    afterAll(async () => {
      await Promise.all(started.map((s) => s.kill()));
    });

    it('refuses with StoreUnavailable at a dead port, keeps queued events, and recovers when Redis starts', async () => {
      const port = await freePort();
      const prefix = `t${randomId(6)}:`;
      const store = new RedisVerifierStore(`redis://127.0.0.1:${port}`, { prefix, logger: silent, maxRetryMs: 50, grantState: freshGrants });
      onTestFinished(() => store.close());
      await expect(store.decide(decision('g1', Date.now()))).rejects.toBeInstanceOf(StoreUnavailable);
      await expect(store.approveStepUp('g1', 's')).rejects.toBeInstanceOf(StoreUnavailable);
      expect(await store.whenReady(0)).toBe(false);
      expect(store.ready()).toBe(false);
      await expect(store.queueEvent({ id: 'evt_wait_1', body: '{}', outcome: 'temporarily_unavailable' })).resolves.toBeUndefined();
      await store.queueEvent({ id: 'evt_wait_2', body: '{}', outcome: 'temporarily_unavailable' });
      expect(store.backlogSize).toBe(2);

      started.push(await startRedisServer(port));
      // The same store, never recreated, decides again once it has reconnected.
      await vi.waitFor(() => expect(store.decide(decision('g1', Date.now()))).resolves.toMatchObject({ allow: true, uses: 1 }), { timeout: 10_000, interval: 20 });
      expect(store.ready()).toBe(true);
      expect(await store.backlogDrained(5_000)).toBe(true);
      const other = new Redis({ port, host: '127.0.0.1' });
      onTestFinished(() => other.disconnect());
      const events = await waiting(new RedisVerifierEventSource(other, { prefix }));
      expect(events.filter((e) => e.id.startsWith('evt_wait')).map((e) => e.id)).toEqual(['evt_wait_1', 'evt_wait_2']);
      expect(store.aggregatedEvents).toBe(0);
    });

    it('refuses with StoreUnavailable once Redis is killed, and works again on the same store when it restarts', async () => {
      const server = await startRedisServer();
      started.push(server);
      const prefix = `t${randomId(6)}:`;
      const store = new RedisVerifierStore(server.url, { prefix, logger: silent, maxRetryMs: 50, backlogMax: 3, grantState: freshGrants });
      onTestFinished(() => store.close());
      await vi.waitFor(() => expect(store.decide(decision('g1', Date.now()))).resolves.toMatchObject({ allow: true }), { timeout: 5_000, interval: 20 });

      expect(store.ready()).toBe(true);

      await server.kill();
      await expect(store.decide(decision('g1', Date.now()))).rejects.toBeInstanceOf(StoreUnavailable);
      await expect(store.stepUp('g1', 's')).rejects.toBeInstanceOf(StoreUnavailable);
      // Not ready as soon as commands fail, also before the client has seen the socket close.
      expect(store.ready()).toBe(false);
      for (let i = 1; i <= 5; i++) await store.queueEvent({ id: `evt_down_${i}`, body: '{}', outcome: 'temporarily_unavailable' });
      const named = JSON.stringify({ type: 'verification', actor: null, subject: 'svc_1', grant_id: 'g1', txn: null, data: { service: 'svc_1', method: 'POST' } });
      for (let i = 1; i <= 3; i++) await store.queueEvent({ id: `evt_named_${i}`, body: named, outcome: 'temporarily_unavailable' });
      await store.queueEvent({ id: 'evt_replayed', body: named, outcome: 'invalid_dpop_proof' });
      // The backlog is bounded: beyond it, denials are counted by outcome and who they name (issue 19), never dropped.
      expect(store.backlogSize).toBe(3);
      expect(store.aggregatedEvents).toBe(6);

      started.push(await startRedisServer(server.port));
      await vi.waitFor(() => expect(store.decide(decision('g1', Date.now()))).resolves.toMatchObject({ allow: true, uses: 1 }), { timeout: 10_000, interval: 20 });
      expect(await store.backlogDrained(5_000)).toBe(true);
      const other = new Redis({ port: server.port, host: '127.0.0.1' });
      onTestFinished(() => other.disconnect());
      const written = await waiting(new RedisVerifierEventSource(other, { prefix }));
      expect(written.filter((e) => e.id.startsWith('evt_down')).map((e) => e.id)).toEqual(['evt_down_1', 'evt_down_2', 'evt_down_3']);
      // One summary event per outcome and subject, after the events recorded one by one.
      const summaries = written.filter((e) => e.id.startsWith('vda_')).map((e) => ({ outcome: e.outcome, body: JSON.parse(e.body) as Record<string, unknown> }));
      const summary = (count: number, outcome: string, subject: string | null, grantId: string | null) => ({
        outcome,
        body: {
          type: 'verification',
          actor: null,
          subject,
          grant_id: grantId,
          txn: null,
          data: {
            aggregated: count,
            first_at_ms: expect.any(Number),
            last_at_ms: expect.any(Number),
            reason: "the verifier's event backlog was full while Redis was unreachable: these denials are counted, not recorded one by one",
          },
        },
      });
      expect(summaries).toEqual([summary(2, 'temporarily_unavailable', null, null), summary(3, 'temporarily_unavailable', 'svc_1', 'g1'), summary(1, 'invalid_dpop_proof', 'svc_1', 'g1')]);
      expect(store.aggregatedEvents).toBe(6);
    });
  });
});

describe('Redis store specifics (cluster)', () => {
  let cluster: RedisClusterHandle;
  let raw: Cluster;
  beforeAll(async () => {
    ({ cluster, raw } = await threeMasters.acquire());
  });
  afterAll(() => threeMasters.release());

  it('spreads grants over the masters and reads every grant stream back by scanning each master', async () => {
    const subject = await redisSubject(cluster.nodes, raw);
    const grants = Array.from({ length: 12 }, (_, i) => `gc${i}`);
    const inputs = grants.map((g) => decision(g, Date.now(), { amount: { minor: 1, totalMaxMinor: 10 }, rate: { limit: 2, windowMs: 1000 } }));
    for (const d of inputs) expect(await subject.store.decide(d)).toEqual({ allow: true, uses: 1, spentMinor: 1, rateCount: 1 });
    // SCAN on a node lists only the keys it holds.
    const perMaster = await Promise.all(
      raw.nodes('master').map(async (node) => (await node.scan('0', 'MATCH', `${subject.prefix}*:counters`, 'COUNT', 10_000))[1].length),
    );
    expect(perMaster.reduce((a, b) => a + b)).toBe(12);
    expect(perMaster.filter((n) => n > 0).length).toBeGreaterThan(1);
    await raw.del(verifierKey(subject.prefix, 'event-grants'));
    const source = new RedisVerifierEventSource(raw, { prefix: subject.prefix });
    const batch = await source.read(100);
    expect(batch.events.map((e) => e.id).sort()).toEqual(inputs.map((d) => d.event.id).sort());
    await batch.ack();
    expect(await waiting(source)).toEqual([]);
  });

  it('refuses with StoreUnavailable when no node answers', async () => {
    const store = new RedisVerifierStore([{ host: '127.0.0.1', port: await freePort() }], { prefix: `t${randomId(6)}:`, logger: silent });
    onTestFinished(() => store.close());
    await expect(store.decide(decision('g1', Date.now()))).rejects.toBeInstanceOf(StoreUnavailable);
    await expect(store.queueEvent({ id: 'e', body: '{}', outcome: 'temporarily_unavailable' })).resolves.toBeUndefined();
    expect(store.backlogSize).toBe(1);
  });
});

function sortById<T extends { id: string }>(events: T[]): T[] {
  return [...events].sort((a, b) => a.id.localeCompare(b.id));
}
