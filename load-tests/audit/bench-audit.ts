/**
 * Audit-path benchmark (issue 19, goal 3): `npm run bench:audit`.
 *
 * What one verifier decision costs the rest of the system once it is queued: the registry reading
 * it from Redis, linking it into the chain and the Merkle tree, and PostgreSQL storing it. No
 * verifier and no HTTP load run, so the two figures are not mixed with anything else: the registry
 * runs as a child process on a fresh database (PostgreSQL when DATABASE_URL is set, else PGlite,
 * said loudly), and this process queues decisions in Redis exactly as the verifier's decision
 * script does (an entry per decision in the grant's stream, the grant in the hint set), with
 * bodies written by the verifier's own `VerificationEvents`.
 *
 * It queues BENCH_AUDIT_RATE (3,000) decisions a second over BENCH_AGENTS (16) grants for
 * BENCH_DURATION_S (10) seconds, in ticks of 10 ms, after a warm-up of BENCH_WARMUP_S (2) seconds at
 * the same rate, then waits until the queue is empty. It prints the registry's and PostgreSQL's CPU
 * per decision over the measured window (queueing to drained), the largest backlog seen, and how
 * long the backlog took to drain after the last decision was queued; then it checks that the chain
 * holds exactly one `verification.allowed` event per decision queued and verifies in full. Any
 * difference exits non-zero. BENCH_AUDIT_RATE=0 queues BENCH_AUDIT_EVENTS (50,000) at once instead
 * (the registry's best case: every batch full).
 *
 * Options (environment): BENCH_AUDIT_RATE, BENCH_AUDIT_EVENTS, BENCH_DURATION_S, BENCH_WARMUP_S,
 * BENCH_AGENTS, BENCH_CPU_PROFILE=<dir> (a V8 profile of the registry), BENCH_PIN (0: no pinning),
 * BENCH_DRAIN_TIMEOUT_S (120), REDIS_URL, DATABASE_URL. Only 127.0.0.1 is used; the run stops by
 * itself and stops every process it started, also on error.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { queuedEventStreamFields } from '@writ/contracts';
import { grantStateKey, VerificationEvents, verifierKey } from '@writ/core';
import { Redis } from 'ioredis';
import { loadConfig } from '../../apps/registry/src/config/config.js';
import { Database } from '../../apps/registry/src/infra/database.service.js';
import { AuditService } from '../../apps/registry/src/modules/audit/audit.service.js';
import { createRegistry } from '../../apps/registry/src/registry.js';
import pg from 'pg';
import { choosePinning, onRegistryCpus } from '../support/cpus.js';
import { commandCpuSeconds, cpuSecondsBetween, processCpuSeconds, redisCpuSeconds, threadCpuSeconds } from '../support/cpu.js';
import { startProcess, stopAll, stopProcess } from '../support/processes.js';
import { createBenchStorage, freePort, startRegistry } from '../support/registry.js';
import { BENCH_REDIS_URL, BENCH_TRUST_DOMAIN, benchRegistryEnv, numberOption, releaseRedis, uniquePrefix } from '../verify/setup.js';

const RATE = numberOption('BENCH_AUDIT_RATE', 3000, 0);
const EVENTS = numberOption('BENCH_AUDIT_EVENTS', 50_000);
const DURATION_S = numberOption('BENCH_DURATION_S', 10);
const WARMUP_S = numberOption('BENCH_WARMUP_S', 2, 0);
const AGENTS = numberOption('BENCH_AGENTS', 16);
const DRAIN_TIMEOUT_S = numberOption('BENCH_DRAIN_TIMEOUT_S', 120);
const FLOOR = process.env.BENCH_AUDIT_FLOOR !== '0';
/** Node options for the ingestion floor alone (for example a CPU profile). */
const FLOOR_NODE_ARGS = (process.env.BENCH_AUDIT_FLOOR_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '');
/** How far the floor goes (ingest-floor.ts): `read` (the transport alone), `hash` (no storage), `store` (all of it). */
const FLOOR_UNTIL = process.env.BENCH_AUDIT_FLOOR_UNTIL ?? 'store';
if (!['read', 'hash', 'store'].includes(FLOOR_UNTIL)) throw new Error(`BENCH_AUDIT_FLOOR_UNTIL must be read, hash or store, not ${JSON.stringify(FLOOR_UNTIL)}`);
const TICK_MS = 10;
/** Issue 19, goal 3: the audit path of one decision, registry plus PostgreSQL. */
const GOAL_US = 25;

const { pinning, why: pinWhy } = choosePinning(process.env.BENCH_PIN);
const failures: string[] = [];

interface Queuer {
  /** Queues `count` decisions, spread over the grants in turn; resolves once Redis has them. */
  queue(count: number): Promise<void>;
  queued: number;
}

function queuer(redis: Redis, prefix: string, grants: string[]): Queuer {
  const events = new VerificationEvents('bench-audit');
  const heads = grants.map((grantId, i) => events.head({ actor: `agt_bench_${i}`, service: 'svc_bench', grantId, txn: `txn_${grantId}`, jti: `tok_${grantId}` }));
  let next = 0;
  const state = {
    queued: 0,
    async queue(count: number): Promise<void> {
      const pipeline = redis.pipeline();
      const touched = new Set<string>();
      for (let i = 0; i < count; i++) {
        const g = next++ % grants.length;
        const body = events.decision(heads[g]!, { method: 'GET', url: 'https://flights.example/api/flights', action: 'read', proofJti: randomUUID(), proofJkt: 'bench-jkt-0123456789abcdef0123456789abcdef0123', atMs: Date.now() });
        pipeline.xadd(grantStateKey(prefix, grants[g]!, 'events'), '*', ...queuedEventStreamFields({ id: `vd_${randomUUID()}`, body, outcome: 'allow' }));
        touched.add(grants[g]!);
      }
      if (touched.size > 0) pipeline.sadd(verifierKey(prefix, 'event-grants'), ...touched);
      const results = await pipeline.exec();
      const failed = results?.find(([error]) => error !== null);
      if (failed) throw failed[0]!;
      state.queued += count;
    },
  };
  return state;
}

async function backlog(redis: Redis, prefix: string, grants: string[]): Promise<number> {
  const lengths = await Promise.all(grants.map((g) => redis.xlen(grantStateKey(prefix, g, 'events'))));
  return lengths.reduce((a, b) => a + b, 0);
}

/** Queues at `rate` a second for `seconds`, sampling the backlog; the largest backlog seen. */
async function queueAtRate(q: Queuer, redis: Redis, prefix: string, grants: string[], rate: number, seconds: number): Promise<number> {
  const started = performance.now();
  let sent = 0;
  let maxBacklog = 0;
  let lastSample = 0;
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    if (due > sent) {
      await q.queue(due - sent);
      sent = due;
    }
    if (performance.now() - lastSample >= 100) {
      lastSample = performance.now();
      maxBacklog = Math.max(maxBacklog, await backlog(redis, prefix, grants));
    }
    await new Promise((done) => setTimeout(done, TICK_MS));
  }
  return maxBacklog;
}

/** Waits until nothing is queued; seconds taken, or undefined after DRAIN_TIMEOUT_S. */
async function drained(redis: Redis, prefix: string, grants: string[]): Promise<number | undefined> {
  const started = performance.now();
  while (performance.now() - started < DRAIN_TIMEOUT_S * 1000) {
    if ((await backlog(redis, prefix, grants)) === 0) return (performance.now() - started) / 1000;
    await new Promise((done) => setTimeout(done, 20));
  }
  return undefined;
}

/** CPU µs per decision of the main thread and of the other threads. */
function byThread(m: Measured): string {
  return m.threads ? `main thread ${us(m.threads.main, m.measured)}, other threads ${us(m.threads.others, m.measured)}` : '?';
}

function us(seconds: number | undefined, count: number): string {
  return seconds === undefined || count === 0 ? '?' : ((seconds * 1e6) / count).toFixed(1);
}

async function main(): Promise<void> {
  const prefix = uniquePrefix();
  const storage = await createBenchStorage('writ_bench_audit_');
  const redis = new Redis(BENCH_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect().catch((error: unknown) => {
      throw new Error(`Redis at ${BENCH_REDIS_URL} is needed (the decisions are queued there): ${(error as Error).message}`);
    });
    const port = await freePort();
    const env = benchRegistryEnv({ storageEnv: storage.env, port, trustDomain: BENCH_TRUST_DOMAIN, redisUrl: BENCH_REDIS_URL, prefix });
    console.log(`storage     ${storage.description}`);
    console.log(`redis       ${new URL(BENCH_REDIS_URL).host}, keys under ${prefix} (deleted at the end)`);
    console.log(`cpus        ${pinWhy}`);
    const registry = await startRegistry(env, process.env.BENCH_CPU_PROFILE, pinning);
    const pid = registry.child.pid!;
    console.log(`registry    ${env.WRIT_ISSUER} (child process ${pid})`);
    const grants = Array.from({ length: AGENTS }, () => `grt_bench_${randomUUID()}`);
    const q = queuer(redis, prefix, grants);
    const m = await measure(redis, prefix, grants, q, pid, Boolean(storage.databaseUrl));
    console.log(`decisions   ${m.measured} measured in ${m.wallS.toFixed(1)} s (${(m.measured / m.wallS).toFixed(0)}/s appended on average)`);
    console.log(`backlog     at most ${m.maxBacklog} waiting; drained ${m.drainS === undefined ? 'NOT within the timeout' : `${m.drainS.toFixed(2)} s after the last was queued`}`);
    console.log(`cpu us per decision: registry ${us(m.processS, m.measured)}, PostgreSQL ${us(m.postgresS, m.measured)} (all its processes), Redis ${us(m.redisS, m.measured)} (queueing included)`);
    console.log(`            registry by thread: ${byThread(m)}`);
    const auditS = m.processS !== undefined && m.postgresS !== undefined ? m.processS + m.postgresS : undefined;
    console.log(`audit path  ${us(auditS, m.measured)} us per decision (registry + PostgreSQL); goal <= ${GOAL_US}: ${auditS !== undefined && (auditS * 1e6) / m.measured <= GOAL_US ? 'met' : 'MISSED'}`);

    await stopProcess(registry);
    const { app } = await createRegistry(loadConfig(env), { logger: false });
    try {
      const [row] = await app.get(Database).dataSource.query<{ n: string }[]>(`SELECT count(*) AS n FROM audit_events WHERE grant_id = ANY($1) AND type = 'verification.allowed'`, [grants]);
      const count = Number(row?.n ?? 0);
      const started = performance.now();
      const { chain } = await app.get(AuditService).verify({ full: true });
      console.log(`chain       ${chain.ok ? 'verifies' : `BROKEN at seq ${chain.brokenSeq}: ${chain.reason}`} (${chain.count} events, checked in ${((performance.now() - started) / 1000).toFixed(1)} s); verification.allowed ${count} of ${q.queued} queued`);
      if (!chain.ok) failures.push(`audit chain broken at seq ${chain.brokenSeq}`);
      if (count !== q.queued) failures.push(`${q.queued} decisions queued but ${count} verification.allowed events in the chain`);
    } finally {
      await app.close();
    }
    if (storage.databaseUrl && FLOOR) await floorPhase(redis, storage.databaseUrl, auditS === undefined ? undefined : (auditS * 1e6) / m.measured);
    else console.log(`\nfloor       not run (${storage.databaseUrl ? 'BENCH_AUDIT_FLOOR=0' : 'it needs PostgreSQL: set DATABASE_URL'})`);
  } finally {
    await stopAll();
    await releaseRedis(redis, prefix);
    await storage.dispose();
  }
}

interface Measured {
  measured: number;
  wallS: number;
  maxBacklog: number;
  drainS: number | undefined;
  processS: number | undefined;
  postgresS: number | undefined;
  redisS: number | undefined;
  /** The process's CPU seconds in the window: its main thread's and its other threads'. */
  threads: { main: number; others: number } | undefined;
}

/** Warm-up, then the measured window (queueing to drained): the CPU of `pid`, PostgreSQL and Redis. */
async function measure(redis: Redis, prefix: string, grants: string[], q: Queuer, pid: number, postgres: boolean): Promise<Measured> {
  if (RATE > 0 && WARMUP_S > 0) {
    await queueAtRate(q, redis, prefix, grants, RATE, WARMUP_S);
    await drained(redis, prefix, grants);
  }
  const warm = q.queued;
  const before = { process: processCpuSeconds(pid), threads: threadCpuSeconds(pid), postgres: commandCpuSeconds('postgres'), redis: await redisCpuSeconds(redis), at: performance.now() };
  let maxBacklog: number;
  if (RATE > 0) {
    console.log(`\nqueueing    ${RATE} decisions/s over ${AGENTS} grants for ${DURATION_S} s (after a warm-up of ${WARMUP_S} s), then until drained`);
    maxBacklog = await queueAtRate(q, redis, prefix, grants, RATE, DURATION_S);
  } else {
    console.log(`\nqueueing    ${EVENTS} decisions over ${AGENTS} grants at once, then until drained`);
    for (let left = EVENTS; left > 0; left -= 1000) await q.queue(Math.min(1000, left));
    maxBacklog = await backlog(redis, prefix, grants);
  }
  const drainS = await drained(redis, prefix, grants);
  const after = { process: processCpuSeconds(pid), threads: threadCpuSeconds(pid), postgres: commandCpuSeconds('postgres'), redis: await redisCpuSeconds(redis), at: performance.now() };
  if (drainS === undefined) failures.push(`the backlog did not drain within BENCH_DRAIN_TIMEOUT_S (${DRAIN_TIMEOUT_S} s)`);
  return {
    measured: q.queued - warm,
    wallS: (after.at - before.at) / 1000,
    maxBacklog,
    drainS,
    processS: before.process !== undefined && after.process !== undefined ? after.process - before.process : undefined,
    postgresS: postgres && before.postgres && after.postgres ? cpuSecondsBetween(before.postgres, after.postgres) : undefined,
    redisS: before.redis !== undefined && after.redis !== undefined ? after.redis - before.redis : undefined,
    threads: before.threads && after.threads ? { main: after.threads.main - before.threads.main, others: after.threads.others - before.threads.others } : undefined,
  };
}

/** Fails the run unless the floor stored exactly the decisions queued to it, seq 1 to that count. */
async function checkFloorStored(databaseUrl: string, queued: number): Promise<void> {
  const db = new pg.Client(databaseUrl);
  await db.connect();
  try {
    const [row] = (await db.query<{ n: string | null; last: string | null }>('SELECT sum(count) AS n, max(first_seq + count - 1) AS last FROM floor_groups')).rows;
    const stored = Number(row?.n ?? 0);
    console.log(`stored      ${stored} of ${queued} queued, seq 1 to ${row?.last ?? 0}`);
    if (stored !== queued || Number(row?.last ?? 0) !== queued) failures.push(`the ingestion floor stored ${stored} decisions (last seq ${row?.last}) of ${queued} queued`);
  } finally {
    await db.end();
  }
}

/**
 * The same load, on keys of its own, recorded by the ingestion floor (ingest-floor.ts) into tables
 * of its own in the same database: what recording a decision costs at the least, in a layout of one
 * row per group, beside what the registry costs in this run.
 */
async function floorPhase(redis: Redis, databaseUrl: string, registryPathUs: number | undefined): Promise<void> {
  const prefix = uniquePrefix();
  try {
    const floor = await startProcess({
      name: 'ingest floor',
      ...onRegistryCpus(pinning, process.execPath, [...FLOOR_NODE_ARGS, '--import', '@swc-node/register/esm-register', 'load-tests/audit/ingest-floor.ts']),
      env: { ...process.env, SWC_NODE_PROJECT: 'load-tests/tsconfig.json', NODE_ENV: 'production', REDIS_URL: BENCH_REDIS_URL, WRIT_REDIS_PREFIX: prefix, DATABASE_URL: databaseUrl, INGEST_FLOOR_UNTIL: FLOOR_UNTIL },
      ready: /ingest floor ready/,
    });
    const what = { read: 'reading and acking only', hash: 'reading, parsing and hashing, storing nothing', store: 'one row per group' }[FLOOR_UNTIL];
    console.log(`\nfloor       the ingestion floor (audit/ingest-floor.ts, child process ${floor.child.pid}): the same load on keys of its own, ${what}`);
    const grants = Array.from({ length: AGENTS }, () => `grt_floor_${randomUUID()}`);
    const q = queuer(redis, prefix, grants);
    const m = await measure(redis, prefix, grants, q, floor.child.pid!, true);
    await stopProcess(floor);
    console.log(`backlog     at most ${m.maxBacklog} waiting; drained ${m.drainS === undefined ? 'NOT within the timeout' : `${m.drainS.toFixed(2)} s after the last was queued`}`);
    console.log(`cpu us per decision: floor ${us(m.processS, m.measured)}, PostgreSQL ${us(m.postgresS, m.measured)} (all its processes), Redis ${us(m.redisS, m.measured)} (queueing included)`);
    console.log(`            floor by thread: ${byThread(m)}`);
    const floorS = m.processS !== undefined && m.postgresS !== undefined ? m.processS + m.postgresS : undefined;
    const floorUs = floorS === undefined ? undefined : (floorS * 1e6) / m.measured;
    console.log(`floor path  ${us(floorS, m.measured)} us per decision; the registry's audit path is ${floorUs && registryPathUs ? (registryPathUs / floorUs).toFixed(2) : '?'} times it`);
    // Read and acked: the drain above. Stored: counted here.
    if (FLOOR_UNTIL === 'store') await checkFloorStored(databaseUrl, q.queued);
  } finally {
    await releaseRedis(redis, prefix);
  }
}

const stopping = (): void => {
  void stopAll().finally(() => process.exit(130));
};
process.once('SIGINT', stopping);
process.once('SIGTERM', stopping);

main().then(
  () => {
    if (failures.length > 0) {
      console.error(`\nFAILED:\n${failures.map((f) => `  - ${f}`).join('\n')}`);
      process.exitCode = 1;
    }
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  },
);
