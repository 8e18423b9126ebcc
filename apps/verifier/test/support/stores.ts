import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { RedisVerifierEventSource } from '../../../registry/src/modules/audit/redis-verifier-events.js';
import { InProcessVerifierStore } from '../../src/store/in-process-store.js';
import { RedisVerifierStore } from '../../src/store/redis-store.js';
import { startRedisCluster } from './redis-cluster.js';
import type { StoreUnderTest } from './verifier-fixture.js';

/**
 * The Redis at REDIS_URL, under a key prefix of its own. `commandTimeoutMs` (500 ms by default, as
 * deployed) bounds each decision: a suite whose subject is not timing but what many concurrent
 * decisions add up to gives it more, so that a busy test machine answers late rather than 503.
 */
function redisStore(options: { commandTimeoutMs?: number } = {}): StoreUnderTest {
  return {
    name: 'Redis',
    create: () => {
      const prefix = `test-${randomUUID().slice(0, 8)}:`;
      const store = new RedisVerifierStore(process.env.REDIS_URL!, { prefix, ...options });
      return Promise.resolve({ store, registryEnv: { REDIS_URL: process.env.REDIS_URL!, WRIT_REDIS_PREFIX: prefix }, close: () => store.close() });
    },
  };
}

/**
 * The stores the end-to-end suites run on: always the embedded one; Redis too when `REDIS_URL`
 * is set (as CI sets it), each suite under its own key prefix so runs never collide; and a
 * three-master Redis Cluster on loopback ports, started for the suite (redis-server must be
 * installed). On the cluster the registry's revocations reach the store through its admin side
 * (the registry's own Redis client is single-node, ADR 0008) and the registry reads decisions
 * with a cluster client.
 */
export const storesUnderTest: StoreUnderTest[] = [
  {
    name: 'in-process',
    create: () => {
      const store = new InProcessVerifierStore();
      return Promise.resolve({ store, registryEnv: {}, close: () => store.close() });
    },
  },
  ...(process.env.REDIS_URL ? [redisStore()] : []),
  {
    name: 'Redis Cluster',
    create: async () => {
      const cluster = await startRedisCluster(3);
      const prefix = `test-${randomUUID().slice(0, 8)}:`;
      const store = new RedisVerifierStore(cluster.nodes, { prefix });
      const reader = new Cluster(cluster.nodes);
      return {
        store,
        registryEnv: {},
        verifierEvents: new RedisVerifierEventSource(reader, { prefix, scanIntervalMs: 1_000 }),
        close: async () => {
          await store.close();
          reader.disconnect();
          await cluster.stop();
        },
      };
    },
  },
];

/**
 * The one store an end-to-end suite runs on when the store is not its subject: Redis when
 * REDIS_URL is set (as CI sets it), the in-process store otherwise. How the three stores decide
 * is the store contract's subject (store.contract.spec.ts runs it on each).
 */
export const e2eStore: StoreUnderTest = storesUnderTest.find((store) => store.name === 'Redis') ?? storesUnderTest[0]!;

/** {@link e2eStore} with a longer bound on each decision (Redis only; the in-process store has none). */
export function e2eStoreWithTimeout(commandTimeoutMs: number): StoreUnderTest {
  return process.env.REDIS_URL ? redisStore({ commandTimeoutMs }) : e2eStore;
}
