/**
 * The floor of `npm run bench:verify`: bare Fastify answering `POST /v1/verify` (the verifier's
 * request body, docs/verifier.md) with only the work no verifier can avoid, so that the verifier's
 * throughput can be read as a fraction of it:
 *
 * 1. parse the JSON body (Fastify's parser, 32 KiB limit like the verifier);
 * 2. one ES256 verification of the DPoP proof with node:crypto, over the proof's signing input,
 *    with the public key of its `jwk` header (imported once per distinct header: importing a JWK
 *    costs about as much as the verification, and a key seen before need not be imported again);
 * 3. one Redis round trip, `SET <prefix>floor:<jti> 1 NX PX 300000` (the proof's single use);
 * 4. answer `{ "allow": true }`.
 *
 * Nothing else: no token signature, no claims, no envelope, no audit event. Run as a child process
 * (`node --import @swc-node/register/esm-register load-tests/verify/floor-server.ts`, environment
 * REDIS_URL, WRIT_REDIS_PREFIX, FLOOR_HOST, FLOOR_PORT; prints `floor listening on <url>`, stops on
 * SIGTERM) or in process with {@link startFloorServer}.
 */
import { createPublicKey, type JsonWebKey, type KeyObject, verify } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { fastify } from 'fastify';
import { Redis } from 'ioredis';

export interface FloorServerOptions {
  redisUrl: string;
  /** Put before every key (`WRIT_REDIS_PREFIX`). */
  prefix: string;
  host?: string;
  /** 0: any free port. */
  port?: number;
}

export interface FloorServer {
  url: string;
  close(): Promise<void>;
}

/** Imported keys kept, by the proof header that carried them; cleared when full. */
const KEY_CACHE_MAX = 10_000;
/** How long a proof's `jti` is kept: the verifier's proof age limit. */
const JTI_TTL_MS = 300_000;

type Decision = { allow: true } | { allow: false; error: string; error_description: string };

function deny(error: string, description: string): Decision {
  return { allow: false, error, error_description: description };
}

export async function startFloorServer(options: FloorServerOptions): Promise<FloorServer> {
  const redis = new Redis(options.redisUrl, { connectionName: 'writ-floor', maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  const keys = new Map<string, KeyObject>();

  const keyOf = (header: string): KeyObject | undefined => {
    const known = keys.get(header);
    if (known) return known;
    try {
      const { jwk } = JSON.parse(Buffer.from(header, 'base64url').toString()) as { jwk?: JsonWebKey };
      if (!jwk || typeof jwk !== 'object') return undefined;
      const key = createPublicKey({ key: jwk, format: 'jwk' });
      if (keys.size >= KEY_CACHE_MAX) keys.clear();
      keys.set(header, key);
      return key;
    } catch {
      return undefined;
    }
  };

  const app = fastify({ logger: false, bodyLimit: 32 * 1024 });
  app.post('/v1/verify', async (request, reply): Promise<Decision | { error: string }> => {
    void reply.header('cache-control', 'no-store');
    const dpop = (request.body as { dpop?: unknown } | null)?.dpop;
    if (typeof dpop !== 'string') {
      void reply.code(400);
      return { error: 'invalid_request' };
    }
    const first = dpop.indexOf('.');
    const second = dpop.indexOf('.', first + 1);
    if (first <= 0 || second <= first) return deny('invalid_dpop_proof', 'DPoP proof is not a compact JWS');
    const key = keyOf(dpop.slice(0, first));
    if (!key) return deny('invalid_dpop_proof', 'DPoP proof header carries no usable jwk');
    const signature = Buffer.from(dpop.slice(second + 1), 'base64url');
    if (!verify('sha256', Buffer.from(dpop.slice(0, second)), { key, dsaEncoding: 'ieee-p1363' }, signature)) {
      return deny('invalid_dpop_proof', 'DPoP proof signature does not verify');
    }
    let jti: unknown;
    try {
      ({ jti } = JSON.parse(Buffer.from(dpop.slice(first + 1, second), 'base64url').toString()) as { jti?: unknown });
    } catch {
      jti = undefined;
    }
    if (typeof jti !== 'string' || jti === '') return deny('invalid_dpop_proof', 'DPoP proof has no jti');
    let stored: string | null;
    try {
      stored = await redis.set(`${options.prefix}floor:${jti}`, '1', 'PX', JTI_TTL_MS, 'NX');
    } catch {
      void reply.code(503);
      return deny('temporarily_unavailable', 'Redis is unreachable');
    }
    return stored === 'OK' ? { allow: true } : deny('invalid_dpop_proof', 'DPoP proof jti was already used');
  });

  const host = options.host ?? '127.0.0.1';
  try {
    await app.listen({ host, port: options.port ?? 0 });
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  const { port } = app.server.address() as { port: number };
  return {
    url: `http://${host}:${port}`,
    close: async () => {
      await app.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

async function main(): Promise<void> {
  const server = await startFloorServer({
    redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
    prefix: process.env.WRIT_REDIS_PREFIX || 'writ:',
    host: process.env.FLOOR_HOST || '127.0.0.1',
    port: Number(process.env.FLOOR_PORT ?? 0),
  });
  console.log(`floor listening on ${server.url}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void server.close().finally(() => process.exit(0)));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
