import { randomUUID } from 'node:crypto';
import { InProcessVerifierStore } from '../../src/store/in-process-store.js';
import { RedisVerifierStore } from '../../src/store/redis-store.js';
import type { StoreUnderTest } from './verifier-fixture.js';

/**
 * The stores the end-to-end suites run on: always the embedded one; Redis too when `REDIS_URL`
 * is set (as CI sets it), each suite under its own key prefix so runs never collide.
 */
export const storesUnderTest: StoreUnderTest[] = [
  {
    name: 'in-process',
    create: () => {
      const store = new InProcessVerifierStore();
      return Promise.resolve({ store, registryEnv: {}, close: () => store.close() });
    },
  },
  ...(process.env.REDIS_URL
    ? [
        {
          name: 'Redis',
          create: () => {
            const prefix = `test-${randomUUID().slice(0, 8)}:`;
            const store = new RedisVerifierStore(process.env.REDIS_URL!, { prefix });
            return Promise.resolve({ store, registryEnv: { REDIS_URL: process.env.REDIS_URL!, WRIT_REDIS_PREFIX: prefix }, close: () => store.close() });
          },
        },
      ]
    : []),
];
