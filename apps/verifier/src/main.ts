import { ConfigError, loadVerifierConfig } from './config.js';
import { createVerifierServer } from './server.js';
import { InProcessVerifierStore } from './store/in-process-store.js';
import { RedisVerifierStore } from './store/redis-store.js';
import type { VerifierStore } from './store/store.js';

async function main(): Promise<void> {
  const config = loadVerifierConfig();
  let store: VerifierStore;
  let storage: string;
  if (config.redisUrl) {
    store = new RedisVerifierStore(config.redisUrl, {
      prefix: config.redisPrefix,
      commandTimeoutMs: config.redisTimeoutMs,
      logger: { warn: (message) => console.warn(`verifier: ${message}`) },
    });
    storage = `Redis (${new URL(config.redisUrl).host}, prefix ${config.redisPrefix})`;
    // Serve once connected; if Redis is not there yet, serve anyway: every request is a 503 deny
    // until it comes, and the store connects by itself.
    if (!(await (store as RedisVerifierStore).whenReady(5_000))) console.warn('verifier: Redis is not reachable yet; denying with 503 until it is');
  } else {
    store = new InProcessVerifierStore({ prefix: config.redisPrefix });
    storage = 'the in-process store (one verifier; revocations and audit events reach it only when the registry runs in the same process, as `npm start` does)';
  }
  const server = await createVerifierServer({ config, store });
  const url = await server.listen();
  console.log(`verifier listening on ${url}  for ${config.issuer}  on ${storage}`);
  // Ctrl-C or a stop: finish in-flight requests, flush what waits for Redis, exit normally.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void server.close().then(() => store.close()).finally(() => process.exit(0)));
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
