/**
 * What `npm run bench:verify` and its k6 fixture mode share: the grant every benchmark agent holds,
 * the agent's request the service provider asks about, the seeding of a fresh registry, the floor
 * server and the verifier as child processes, and pools of verify requests signed in advance.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { WEEKDAYS } from '@writ/core';
import type { Redis } from 'ioredis';
import { loadConfig } from '../../apps/registry/src/config/config.js';
import { ServicesService } from '../../apps/registry/src/modules/services/services.service.js';
import { createRegistry } from '../../apps/registry/src/registry.js';
import { onServerCpu, type Pinning } from '../support/cpus.js';
import { buildRequest, type Endpoint } from '../support/load.js';
import { startProcess, type Started } from '../support/processes.js';
import { type BenchAgent, enrolAgent, FLIGHT_BOOKING, FLIGHTS } from '../support/registry.js';
import { accessTokenHash, ProofSigner } from '../support/signing.js';

/**
 * The grant of every benchmark agent: every envelope check present (rate, time window, amount,
 * uses) and none binding, so the verifier does all its work and the benchmark measures it, not
 * denials.
 */
export const BENCH_GRANT = {
  service: FLIGHTS.uri,
  authorization_details: [FLIGHT_BOOKING],
  envelope: {
    rate: { limit: 1_000_000, window_s: 60 },
    time_windows: [{ days: [...WEEKDAYS], start: '00:00', end: '00:00', tz: 'UTC' }],
    amount: { currency: 'EUR', per_request_max: 1000, total_max: 1_000_000_000 },
    max_uses: 1_000_000_000,
  },
  purpose: 'verify benchmark',
  duration_s: 4 * 3600,
};

/** The agent's request each verify call asks about (`POST /v1/verify` body fields besides token and proof). */
/** The Redis both benchmarks use (`REDIS_URL`), and the trust domain of their registry and verifiers. */
export const BENCH_REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
export const BENCH_TRUST_DOMAIN = 'writ.bench';

export const AGENT_REQUEST = { method: 'POST', url: 'https://flights.example/api/bookings', action: 'book', amount: 1, currency: 'EUR' };

/** An agent with a root token on its grant, and what it needs to prove possession per request. */
export interface TokenHolder {
  agent: BenchAgent;
  token: string;
  ath: string;
  signer: ProofSigner;
}

export function holder(agent: BenchAgent, token: string): TokenHolder {
  return { agent, token, ath: accessTokenHash(token), signer: new ProofSigner(agent.key, agent.publicJwk) };
}

/** A verify request body with a fresh DPoP proof. */
export function verifyBody(h: TokenHolder): string {
  return JSON.stringify({ token: h.token, dpop: h.signer.proof(AGENT_REQUEST.method, AGENT_REQUEST.url, h.ath), ...AGENT_REQUEST });
}

/**
 * `count` verify requests for `endpoint`, signed now, spread over the holders in turn; `next`
 * hands them out once each. Proofs are accepted for 300 s after their `iat`: sign a pool just
 * before the run that uses it.
 */
export function requestPool(endpoint: Endpoint, holders: TokenHolder[], count: number): () => Buffer | undefined {
  const pool: Buffer[] = new Array<Buffer>(count);
  for (let i = 0; i < count; i++) pool[i] = buildRequest(endpoint, verifyBody(holders[i % holders.length]!));
  let at = 0;
  return () => {
    const message = pool[at];
    // Let each request go once it has been handed out.
    pool[at++] = undefined as unknown as Buffer;
    return message;
  };
}

/** `Authorization: Basic base64(<service_id>:<credential>)`, the service provider's header to the verifier. */
export function serviceAuthorization(serviceId: string, credential: string): string {
  return `Basic ${Buffer.from(`${serviceId}:${credential}`).toString('base64')}`;
}

export interface Seeded {
  serviceId: string;
  credential: string;
  agents: BenchAgent[];
}

/**
 * Registers the flights service and enrols `count` agents, each with an approved {@link BENCH_GRANT},
 * in this process, on the registry storage `env` names; the app is closed afterwards (PGlite is
 * opened by one process at a time).
 */
export async function seed(env: Record<string, string>, count: number): Promise<Seeded> {
  const { app } = await createRegistry(loadConfig(env), { logger: false });
  try {
    const { service, credential } = await app.get(ServicesService).register(FLIGHTS);
    const agents: BenchAgent[] = [];
    for (let i = 0; i < count; i++) agents.push(await enrolAgent(app, `bench-owner-${i}`, BENCH_GRANT));
    return { serviceId: service.id, credential, agents };
  } finally {
    await app.close();
  }
}

/**
 * The registry's environment for a benchmark run: its storage, issuer and port on 127.0.0.1, the
 * run's Redis and key prefix, and a token life of one hour, so that no token expires during a run
 * whatever its options.
 */
export function benchRegistryEnv(options: { storageEnv: Record<string, string>; port: number; trustDomain: string; redisUrl: string; prefix: string }): Record<string, string> {
  return {
    ...options.storageEnv,
    WRIT_ISSUER: `http://127.0.0.1:${options.port}`,
    WRIT_TRUST_DOMAIN: options.trustDomain,
    REGISTRY_PORT: String(options.port),
    REGISTRY_HOST: '127.0.0.1',
    REDIS_URL: options.redisUrl,
    WRIT_REDIS_PREFIX: options.prefix,
    WRIT_TOKEN_TTL_S: '3600',
  };
}

/** A numeric option from the environment (`fallback` when unset or empty); a bad one stops the run with its name. */
export function numberOption(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number of at least ${min}`);
  return value;
}

/** A Redis key prefix of its own for one run: nothing it writes meets another run's keys. */
export function uniquePrefix(): string {
  return `writbench-${randomBytes(4).toString('hex')}:`;
}

/** Deletes every key under `prefix`; answers how many there were. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = nextCursor;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** At the end of a run: deletes its keys when the connection still works, and closes it either way. */
export async function releaseRedis(redis: Redis, prefix: string): Promise<void> {
  if (redis.status === 'ready') {
    await deleteKeys(redis, prefix).catch(() => undefined);
    await redis.quit().catch(() => undefined);
  } else redis.disconnect();
}

/** How many keys match `pattern`. */
export async function countKeys(redis: Redis, pattern: string): Promise<number> {
  let n = 0;
  let cursor = '0';
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = nextCursor;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}

/** The floor server (floor-server.ts) as a child process, in a process group of its own. */
export function startFloor(redisUrl: string, prefix: string, pinning?: Pinning): Promise<Started> {
  // BENCH_FLOOR_NODE_ARGS: node options for the floor alone (for example a CPU profile).
  const nodeArgs = process.env.BENCH_FLOOR_NODE_ARGS ? process.env.BENCH_FLOOR_NODE_ARGS.split(' ') : [];
  return startProcess({
    name: 'floor server',
    ...onServerCpu(pinning, process.execPath, [...nodeArgs, '--import', '@swc-node/register/esm-register', 'load-tests/verify/floor-server.ts']),
    env: { ...process.env, SWC_NODE_PROJECT: 'load-tests/tsconfig.json', NODE_ENV: 'production', REDIS_URL: redisUrl, WRIT_REDIS_PREFIX: prefix, FLOOR_HOST: '127.0.0.1', FLOOR_PORT: '0' },
    ready: /listening on (http:\/\/127\.0\.0\.1:\d+)/,
    group: true,
  });
}

export interface VerifierEnv {
  issuer: string;
  trustDomain: string;
  redisUrl: string;
  prefix: string;
}

/**
 * The verifier as a child process: `npm run start:verifier` (or BENCH_VERIFIER_COMMAND, a shell
 * command line, to measure something else in its place), in a process group of its own so that
 * npm, its shell and node all stop together.
 */
export function startVerifier(env: VerifierEnv, pinning?: Pinning): Promise<Started> {
  const override = process.env.BENCH_VERIFIER_COMMAND;
  return startProcess({
    name: 'verifier',
    // Pinned with its shell or npm: node inherits the CPU.
    ...(override ? onServerCpu(pinning, '/bin/sh', ['-c', override]) : onServerCpu(pinning, 'npm', ['run', '--silent', 'start:verifier'])),
    env: {
      ...process.env,
      NODE_ENV: 'production',
      WRIT_ISSUER: env.issuer,
      WRIT_TRUST_DOMAIN: env.trustDomain,
      REDIS_URL: env.redisUrl,
      WRIT_REDIS_PREFIX: env.prefix,
      VERIFIER_HOST: '127.0.0.1',
      VERIFIER_PORT: '0',
    },
    ready: /listening on (http:\/\/127\.0\.0\.1:\d+)/,
    group: true,
  });
}

/** The URL a started server printed. */
export function urlOf(started: Started): URL {
  return new URL(started.ready[1]!);
}
