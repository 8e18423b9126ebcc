/**
 * Verifier benchmark (issue #5): `npm run bench:verify`.
 *
 * Boots the registry as a child process on a fresh database (the real PostgreSQL when DATABASE_URL
 * is set, embedded PGlite otherwise, said loudly), enrols agents with approved grants whose
 * envelopes hold every check but bind none, gets each a root token from the token endpoint, then
 * starts two servers as child processes on the same Redis (REDIS_URL, default
 * redis://127.0.0.1:6379, under a key prefix of this run's own):
 *
 * (a) the floor (floor-server.ts): bare Fastify doing one ES256 verification of the DPoP proof and
 *     one Redis round trip per request, nothing else;
 * (b) the verifier (`npm run start:verifier`) with all its checks.
 *
 * Every request carries a fresh DPoP proof, signed before the measured window. It measures:
 *
 * 1. throughput: closed loop, BENCH_CONNECTIONS keep-alive connections, the floor and the
 *    verifier in turn (after a warm-up of each), BENCH_ROUNDS (6) rounds of BENCH_DURATION_S (4)
 *    each, alternating which goes first; req/s and latency of each, and the ratio (b)/(a) of req/s
 *    over all rounds and round by round (short rounds side by side: drift on a shared machine
 *    falls on both servers alike);
 * 2. steady load: open loop at BENCH_RATE req/s (1,000) for BENCH_STEADY_S (15) against each
 *    server, in BENCH_STEADY_SLICES (3) alternating slices, latency measured from each request's
 *    scheduled send time (the floor's tail is what the machine itself adds at that rate);
 * 3. revocation-to-deny: BENCH_REVOCATIONS (30) times, a fresh grant and token, one client sending
 *    verify requests back to back, the grant revoked through the registry's GrantsService (the
 *    registry now in this process, on the same database, port and Redis); the time from the start
 *    of the revoke call to the first `revoked` answer.
 *
 * Every answer is counted: the loads must be allowed throughout, each revocation must end in
 * `revoked` and nothing else; afterwards the verifier's use counters in Redis must add up to the
 * allowed answers, the floor's single-use keys to its, and (once the registry has appended the
 * verifier's queued decisions, which it does on the same machine during the loads) the audit chain
 * must verify and hold one `verification.allowed` per allowed answer. Any difference exits
 * non-zero. The goals (ratio at least 0.8, p99 under 5 ms at 1,000 req/s, revocation p99 under
 * 100 ms) are reported as met or missed from the figures of this run; they do not set the exit code.
 *
 * CPU time per request of the server, Redis, the registry and this generator, and how busy the
 * machine was, are printed with each run: on two shared cores they tell where the time went.
 *
 * `--k6-fixture`: sets the same up (the registry in this process), then serves the token and key
 * material to the k6 scripts of load-tests/k6 on a local fixture endpoint until stopped; see
 * load-tests/k6/README.md.
 *
 * Options (environment): BENCH_DURATION_S (4), BENCH_ROUNDS (6), BENCH_WARMUP_S (3),
 * BENCH_CONNECTIONS (32), BENCH_AGENTS (16), BENCH_RATE (1000), BENCH_STEADY_S (15), BENCH_STEADY_SLICES (3),
 * BENCH_REVOCATIONS (30), BENCH_MAX_RATE (12000: sizes the first pool of signed requests),
 * BENCH_VERIFIER_COMMAND (a shell command line started instead of `npm run start:verifier`),
 * BENCH_K6_HOLD_S (900: how long the fixture mode serves), BENCH_DRAIN_TIMEOUT_S (300: how long
 * the registry may take to append the queued decisions), REDIS_URL, DATABASE_URL. All traffic
 * goes to 127.0.0.1; the run stops by itself and stops every process it started, also on error.
 */
import 'reflect-metadata';
import { appendFileSync } from 'node:fs';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { grantStateKey, verifierKey } from '@writ/core';
import { Redis } from 'ioredis';
import { loadConfig } from '../../apps/registry/src/config/config.js';
import { AuditService } from '../../apps/registry/src/modules/audit/audit.service.js';
import { Database } from '../../apps/registry/src/infra/database.service.js';
import { GrantsService } from '../../apps/registry/src/modules/grants/grants.service.js';
import { createRegistry } from '../../apps/registry/src/registry.js';
import { choosePinning } from '../support/cpus.js';
import { commandCpuSeconds, cpuSecondsBetween, groupCpuSeconds, machineTicks, ownCpuSeconds, processCpuSeconds, redisCpuSeconds } from '../support/cpu.js';
import { buildRequest, closedLoop, Connection, describeCounts, type Endpoint, openLoop, type RunResult, verdictOf } from '../support/load.js';
import { type Started, stopAll, stopProcess } from '../support/processes.js';
import { approvedGrant, type BenchAgent, createBenchStorage, enrolAgent, fetchToken, freePort, startRegistry } from '../support/registry.js';
import { median, percentiles } from '../support/stats.js';
import { StealSampler, type StealWindow, tailAgainstSteal } from '../support/steal.js';
import { serveK6Fixture } from './k6-fixture.js';
import {
  BENCH_GRANT,
  BENCH_REDIS_URL,
  BENCH_TRUST_DOMAIN,
  benchRegistryEnv,
  numberOption,
  countKeys,
  releaseRedis,
  holder,
  requestPool,
  seed,
  serviceAuthorization,
  startFloor,
  startVerifier,
  type TokenHolder,
  uniquePrefix,
  urlOf,
  verifyBody,
} from './setup.js';

const DURATION_S = numberOption('BENCH_DURATION_S', 4);
const ROUNDS = numberOption('BENCH_ROUNDS', 6);
const WARMUP_S = numberOption('BENCH_WARMUP_S', 3, 0);
const CONNECTIONS = numberOption('BENCH_CONNECTIONS', 32);
const AGENTS = numberOption('BENCH_AGENTS', 16);
const RATE = numberOption('BENCH_RATE', 1000);
const STEADY_S = numberOption('BENCH_STEADY_S', 15);
const STEADY_SLICES = numberOption('BENCH_STEADY_SLICES', 3);
const STEADY_LEAD_S = numberOption('BENCH_STEADY_LEAD_S', 0.5, 0);
/** A file to which each steady slice's timed requests and steal windows are appended (JSON Lines). */
const STEADY_TRACE = process.env.BENCH_STEADY_TRACE || undefined;
const REVOCATIONS = numberOption('BENCH_REVOCATIONS', 30, 0);
const MAX_RATE = numberOption('BENCH_MAX_RATE', 12_000);
const K6_HOLD_S = numberOption('BENCH_K6_HOLD_S', 900);
const DRAIN_TIMEOUT_S = numberOption('BENCH_DRAIN_TIMEOUT_S', 300);
/** Connections the open loop may use at once. */
const OPEN_LOOP_CONNECTIONS = 64;
/** Allowed answers a revocation client sees before the grant is revoked. */
const REVOCATION_WARM = 20;
/** The steady phase's slow requests are lined up with /proc/stat steal in windows this long... */
const STEAL_WINDOW_MS = 200;
/** ...and a window counts as stolen when the hypervisor took at least this share of one CPU in it. */
const STOLEN_SHARE = 0.2;
/** A revocation not seen by then counts as never seen. */
const REVOCATION_TIMEOUT_MS = 5000;

const { pinning, why: pinWhy } = choosePinning(process.env.BENCH_PIN);

const GOALS = { ratio: 0.8, steadyP99Ms: 5, revocationP99Ms: 100 };

/** What went wrong with the counts; any entry makes the exit code 1. */
const failures: string[] = [];

type Server = 'floor' | 'verifier';

/** CPU readings around a run: what each part of the system spent, and how busy the whole machine was. */
interface Cpu {
  server: number | undefined;
  registry: number | undefined;
  redis: number | undefined;
  postgres: Map<number, number> | undefined;
  generator: number;
  machine: { busy: number; steal: number; total: number } | undefined;
}

/**
 * The processes whose CPU time is read: the server measured, the registry (while it is a child
 * process), Redis, and PostgreSQL's processes when the database is on this machine.
 */
interface Measured {
  server: Started;
  registry: Started | undefined;
  redis: Redis;
  localPostgres: boolean;
}

async function cpuNow(m: Measured): Promise<Cpu> {
  return {
    server: groupCpuSeconds(m.server.child.pid!),
    registry: m.registry ? processCpuSeconds(m.registry.child.pid!) : undefined,
    redis: await redisCpuSeconds(m.redis),
    postgres: m.localPostgres ? commandCpuSeconds('postgres') : undefined,
    generator: ownCpuSeconds(),
    machine: machineTicks(),
  };
}

/**
 * CPU µs per allowed request of the server, Redis, the registry (appending the verifier's
 * decisions to the audit chain), PostgreSQL (every process of it on this machine, `-` when the
 * database is elsewhere or embedded) and this generator; and the machine's busy share of all its cores,
 * with the share of it the hypervisor stole (`busy/steal%`).
 */
function cpuColumns(before: Cpu, after: Cpu, requests: number): { perRequest: string; busy: string } {
  const perRequest = (seconds: number | undefined): string => (seconds === undefined || requests === 0 ? '-' : ((seconds / requests) * 1e6).toFixed(0));
  const us = (a: number | undefined, b: number | undefined): string => perRequest(a === undefined || b === undefined ? undefined : b - a);
  const postgres = before.postgres && after.postgres ? cpuSecondsBetween(before.postgres, after.postgres) : undefined;
  const share = (of: 'busy' | 'steal'): string => (((after.machine![of] - before.machine![of]) / (after.machine!.total - before.machine!.total)) * 100).toFixed(0);
  const busy = before.machine && after.machine && after.machine.total > before.machine.total ? `${share('busy')}/${share('steal')}%` : '-';
  return { perRequest: [us(before.server, after.server), us(before.redis, after.redis), us(before.registry, after.registry), perRequest(postgres), us(before.generator, after.generator)].join(' / '), busy };
}

function fmt(ms: number): string {
  return ms.toFixed(ms < 10 ? 2 : 1);
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((cell, i) => (i === 0 ? String(cell).padEnd(widths[i]!) : String(cell).padStart(widths[i]!))).join('  ');
}

const RUN_WIDTHS = [24, 8, 8, 8, 8, 8, 9, 30, 10];
const RUN_HEADER = row(['run', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'allowed', 'cpu us/req srv/rds/reg/pg/gen', 'busy/steal'], RUN_WIDTHS);

/** Checks that a load run was allowed throughout; records a failure otherwise. */
function expectAllAllowed(label: string, result: RunResult): void {
  const denied = [...result.denied.values()].reduce((a, b) => a + b, 0);
  const errors = [...result.errors.values()].reduce((a, b) => a + b, 0);
  if (denied > 0 || errors > 0) failures.push(`${label}: ${denied} denied (${describeCounts(result.denied)}), ${errors} errors (${describeCounts(result.errors)})`);
  if (result.allowed === 0) failures.push(`${label}: nothing was allowed`);
}

interface Phase1 {
  rate: Record<Server, number>;
  latency: Record<Server, number[]>;
  allowed: Record<Server, number>;
  /** (b)/(a) of each round: the two runs of a round are next to each other in time. */
  roundRatios: number[];
}

async function throughput(servers: Record<Server, Measured>, endpoints: Record<Server, Endpoint>, holders: TokenHolder[]): Promise<Phase1> {
  console.log('');
  console.log(`1. throughput, closed loop: ${CONNECTIONS} keep-alive connections; warm-up ${WARMUP_S} s each, then ${ROUNDS} rounds of ${DURATION_S} s each, alternating`);
  console.log('   (cpu us/req: CPU time per allowed request of the server, Redis, the registry (it appends the verifier\'s decisions');
  console.log('   to the audit chain), PostgreSQL (all its processes on this machine), this load generator; busy/steal: share of');
  console.log('   both cores in use, by anything on the machine, and the share the hypervisor gave to other machines (steal): time');
  console.log('   no process here had)');
  console.log(`   ${RUN_HEADER}`);
  // Requests signed per run (about 2 KB each): MAX_RATE's worth, or 1.5 times the best rate seen
  // if more (a warmed-up server can be much faster than in a short warm-up).
  const estimate: Record<Server, number> = { floor: MAX_RATE / 1.5, verifier: MAX_RATE / 1.5 };
  const seen: Record<Server, number> = { floor: 0, verifier: 0 };
  const totals: Phase1 = { rate: { floor: 0, verifier: 0 }, latency: { floor: [], verifier: [] }, allowed: { floor: 0, verifier: 0 }, roundRatios: [] };
  const elapsed: Record<Server, number> = { floor: 0, verifier: 0 };
  const run = async (server: Server, seconds: number, label: string, counted: boolean): Promise<number> => {
    const next = requestPool(endpoints[server], holders, Math.ceil(seconds * estimate[server] * 1.5) + 1000);
    const before = await cpuNow(servers[server]);
    const result = await closedLoop({ port: endpoints[server].port, connections: CONNECTIONS, durationS: seconds, next });
    const after = await cpuNow(servers[server]);
    const cpu = cpuColumns(before, after, result.allowed);
    const rate = result.allowed / result.elapsedS;
    seen[server] = Math.max(seen[server], rate);
    estimate[server] = Math.max(seen[server], MAX_RATE / 1.5);
    const p = percentiles(result.latencyMs);
    console.log(`   ${row([label, rate.toFixed(0), fmt(p.p50), fmt(p.p90), fmt(p.p99), fmt(p.max), result.allowed, cpu.perRequest, cpu.busy], RUN_WIDTHS)}`);
    if (result.exhausted) console.log(`   note: the pool of signed requests ran out after ${result.elapsedS.toFixed(1)} s; raise BENCH_MAX_RATE`);
    expectAllAllowed(label, result);
    totals.allowed[server] += result.allowed;
    if (counted) {
      elapsed[server] += result.elapsedS;
      totals.rate[server] += result.allowed;
      totals.latency[server].push(...result.latencyMs);
    }
    return rate;
  };
  if (WARMUP_S > 0) {
    await run('floor', WARMUP_S, 'warm-up floor', false);
    await run('verifier', WARMUP_S, 'warm-up verifier', false);
  }
  for (let round = 1; round <= ROUNDS; round++) {
    const order: Server[] = round % 2 === 1 ? ['floor', 'verifier'] : ['verifier', 'floor'];
    const rates: Record<Server, number> = { floor: 0, verifier: 0 };
    for (const server of order) rates[server] = await run(server, DURATION_S, `round ${round} ${server === 'floor' ? 'floor (a)' : 'verifier (b)'}`, true);
    totals.roundRatios.push(rates.verifier / rates.floor);
  }
  for (const server of ['floor', 'verifier'] as const) totals.rate[server] /= elapsed[server];
  for (const [server, label] of [
    ['floor', `floor (a), ${ROUNDS} rounds`],
    ['verifier', `verifier (b), ${ROUNDS} rounds`],
  ] as const) {
    const p = percentiles(totals.latency[server]);
    console.log(`   ${row([label, totals.rate[server].toFixed(0), fmt(p.p50), fmt(p.p90), fmt(p.p99), fmt(p.max), '', '', ''], RUN_WIDTHS)}`);
  }
  const rounds = totals.roundRatios;
  console.log(`   ratio (b)/(a) of req/s: ${(totals.rate.verifier / totals.rate.floor).toFixed(2)} over all rounds; round by round ${rounds.map((r) => r.toFixed(2)).join(' ')} (median ${median(rounds).toFixed(2)})`);
  return totals;
}

interface SteadyFigures {
  p: ReturnType<typeof percentiles>;
  lag: ReturnType<typeof percentiles>;
  service: ReturnType<typeof percentiles>;
  achieved: number;
  allowed: number;
}

type Phase2 = Record<Server, SteadyFigures>;

/**
 * The open loop at RATE against each server, in STEADY_SLICES slices of STEADY_S / STEADY_SLICES
 * seconds each, alternating (the order swapped every slice, as the closed-loop rounds are): the
 * floor's tail at the same rate on the same machine at the same time is what the machine itself
 * adds, beside the verifier's.
 */
async function steady(servers: Record<Server, Measured>, endpoints: Record<Server, Endpoint>, holders: TokenHolder[]): Promise<Phase2> {
  const sliceS = STEADY_S / STEADY_SLICES;
  console.log('');
  console.log(`2. steady load, open loop: ${RATE} req/s for ${STEADY_S} s against each server, in ${STEADY_SLICES} slices of ${fmt(sliceS)} s alternating`);
  console.log(`   (latency from each request's scheduled send time; lag: how late this generator itself sent; each slice starts`);
  console.log(`   with a lead-in of ${STEADY_LEAD_S} s at the same rate whose answers are checked and counted but not timed)`);
  const widths = [24, 9, 8, 8, 8, 8, 9, 30, 10];
  console.log(`   ${row(['run', 'achieved', 'p50 ms', 'p99 ms', 'max ms', 'lag p99', 'allowed', 'cpu us/req srv/rds/reg/pg/gen', 'busy/steal'], widths)}`);
  const pooled: Record<Server, { latency: number[]; lag: number[]; service: number[]; answered: number; elapsedS: number; allowed: number; answers: [number, number][]; windows: StealWindow[] }> = {
    floor: { latency: [], lag: [], service: [], answered: 0, elapsedS: 0, allowed: 0, answers: [], windows: [] },
    verifier: { latency: [], lag: [], service: [], answered: 0, elapsedS: 0, allowed: 0, answers: [], windows: [] },
  };
  for (let slice = 1; slice <= STEADY_SLICES; slice++) {
    const order: Server[] = slice % 2 === 1 ? ['verifier', 'floor'] : ['floor', 'verifier'];
    for (const server of order) {
      const label = `slice ${slice} ${server}`;
      const next = requestPool(endpoints[server], holders, Math.ceil(RATE * (STEADY_LEAD_S + sliceS)));
      const before = await cpuNow(servers[server]);
      const sampler = new StealSampler(STEAL_WINDOW_MS);
      sampler.start();
      const result = await openLoop({ port: endpoints[server].port, rate: RATE, durationS: sliceS, leadS: STEADY_LEAD_S, connections: OPEN_LOOP_CONNECTIONS, next });
      // The lead-in's windows say nothing about the measured requests.
      const windows = sampler.stop().filter((w) => w.to > result.measuredFrom);
      const after = await cpuNow(servers[server]);
      const cpu = cpuColumns(before, after, result.allowed);
      const p = percentiles(result.latencyMs);
      const lag = percentiles(result.sendLagMs);
      console.log(`   ${row([label, (result.answered / result.elapsedS).toFixed(1), fmt(p.p50), fmt(p.p99), fmt(p.max), fmt(lag.p99), result.allowed, cpu.perRequest, cpu.busy], widths)}`);
      expectAllAllowed(`steady load, ${label}`, result);
      if (result.answered < result.scheduled) failures.push(`steady load, ${label}: ${result.scheduled - result.answered} of ${result.scheduled} scheduled requests not answered`);
      const into = pooled[server];
      into.latency.push(...result.latencyMs);
      into.lag.push(...result.sendLagMs);
      into.service.push(...result.serviceMs);
      into.answered += result.answered;
      into.elapsedS += result.elapsedS;
      into.allowed += result.allowed;
      into.answers.push(...result.answers);
      // For a closer look: each measured request's [scheduled, answered] and the steal windows.
      if (STEADY_TRACE) appendFileSync(STEADY_TRACE, `${JSON.stringify({ server, slice, measuredFrom: result.measuredFrom, answers: result.answers, windows })}\n`);
      into.windows.push(...windows);
    }
  }
  const figures = {} as Phase2;
  for (const server of ['floor', 'verifier'] as const) {
    const all = pooled[server];
    const f: SteadyFigures = { p: percentiles(all.latency), lag: percentiles(all.lag), service: percentiles(all.service), achieved: all.answered / all.elapsedS, allowed: all.allowed };
    figures[server] = f;
    console.log(`   ${server.padEnd(8)}    ${f.achieved.toFixed(1)} req/s; latency ms p50 ${fmt(f.p.p50)}  p90 ${fmt(f.p.p90)}  p99 ${fmt(f.p.p99)}  max ${fmt(f.p.max)}`);
    console.log(`               of which the generator sent late by p50 ${fmt(f.lag.p50)}  p99 ${fmt(f.lag.p99)} ms; from actual send p50 ${fmt(f.service.p50)}  p99 ${fmt(f.service.p99)} ms`);
    if (all.windows.length > 0) {
      const t = tailAgainstSteal(all.answers, all.windows, GOALS.steadyP99Ms, STOLEN_SHARE);
      const pct = (part: number, whole: number): string => (whole === 0 ? '-' : `${((part / whole) * 100).toFixed(0)} %`);
      console.log(
        `               over ${GOALS.steadyP99Ms} ms: ${t.slow} of ${t.slow + t.fast}; of them ${pct(t.slowInStolen, t.slow)} overlapped a ${STEAL_WINDOW_MS}-ms window in which the hypervisor took >= ${STOLEN_SHARE * 100} % of a CPU (the others: ${pct(t.fastInStolen, t.fast)}; such windows: ${pct(t.stolenTime, 1)} of the time)`,
      );
    }
  }
  return figures;
}

interface Phase3 {
  toDenyMs: number[];
  commitMs: number[];
  allowedAfterRevoke: number[];
}

/** One revocation: warm a client up on a fresh grant, revoke, time the first `revoked` answer. */
async function revokeOnce(app: NestFastifyApplication, issuer: string, agent: BenchAgent, endpoint: Endpoint, into: Phase3, n: number): Promise<void> {
  const grantId = await approvedGrant(app, agent.clientId, agent.owner, BENCH_GRANT);
  const h = holder(agent, await fetchToken(issuer, agent, grantId));
  // Signed ahead; more are signed on the spot if the revocation takes long.
  const pool = Array.from({ length: 400 }, () => buildRequest(endpoint, verifyBody(h)));
  const next = (): Buffer => pool.pop() ?? buildRequest(endpoint, verifyBody(h));
  const connection = new Connection(endpoint.port);
  await connection.open();
  const grants = app.get(GrantsService);
  let allowed = 0;
  let revokeStart: number | undefined;
  let revoking: Promise<void> | undefined;
  let committedAfter: number | undefined;
  let allowedAfter = 0;
  const give = (why: string): void => {
    failures.push(`revocation ${n}: ${why}`);
  };
  try {
    const deadline = performance.now() + REVOCATION_TIMEOUT_MS + 2000;
    for (;;) {
      if (performance.now() > deadline) return give(`no revoked answer within ${REVOCATION_TIMEOUT_MS} ms`);
      const verdict = verdictOf(await connection.request(next()));
      const now = performance.now();
      if (verdict.kind === 'allowed') {
        if (revokeStart === undefined) {
          allowed += 1;
          if (allowed === REVOCATION_WARM) {
            revokeStart = performance.now();
            const started = revokeStart;
            revoking = grants.revoke(grantId, agent.owner, 'revocation benchmark').then(() => {
              committedAfter = performance.now() - started;
            });
          }
        } else {
          allowedAfter += 1;
          if (now - revokeStart > REVOCATION_TIMEOUT_MS) return give(`still allowed ${REVOCATION_TIMEOUT_MS} ms after the revoke call started`);
        }
        continue;
      }
      if (verdict.kind === 'denied' && verdict.error === 'revoked' && revokeStart !== undefined) {
        into.toDenyMs.push(now - revokeStart);
        into.allowedAfterRevoke.push(allowedAfter);
        // And it stays denied.
        const again = verdictOf(await connection.request(next()));
        if (again.kind !== 'denied' || again.error !== 'revoked') give(`the answer after the first revoked one was ${again.kind} ${'error' in again ? again.error : ''}`);
        return;
      }
      return give(`unexpected answer ${revokeStart === undefined ? 'before' : 'after'} the revocation: ${verdict.kind} ${'error' in verdict ? verdict.error : ''}`);
    }
  } finally {
    connection.destroy();
    await revoking;
    if (committedAfter !== undefined) into.commitMs.push(committedAfter);
  }
}

async function revocation(registry: { app: NestFastifyApplication; issuer: string }, endpoint: Endpoint): Promise<Phase3> {
  console.log('');
  console.log(`3. revocation-to-deny: ${REVOCATIONS} times, a fresh grant and token, one client sending verify requests back to back;`);
  console.log(`   after ${REVOCATION_WARM} allowed answers, GrantsService.revoke; time from the start of that call to the first 'revoked' answer`);
  const agent = await enrolAgent(registry.app, 'bench-revoker', BENCH_GRANT);
  const result: Phase3 = { toDenyMs: [], commitMs: [], allowedAfterRevoke: [] };
  for (let i = 1; i <= REVOCATIONS; i++) {
    await revokeOnce(registry.app, registry.issuer, agent, endpoint, result, i);
    await new Promise((done) => setTimeout(done, 20));
  }
  const p = percentiles(result.toDenyMs);
  const c = percentiles(result.commitMs);
  if (result.toDenyMs.length === 0) console.log(`   to deny ms  none seen (0 of ${REVOCATIONS})`);
  else console.log(`   to deny ms  p50 ${fmt(p.p50)}   p90 ${fmt(p.p90)}   p99 ${fmt(p.p99)}   max ${fmt(p.max)}   (${result.toDenyMs.length} of ${REVOCATIONS} seen)`);
  console.log(`   of which    the revoke call itself (durable write) p50 ${fmt(c.p50)}  p99 ${fmt(c.p99)} ms; allowed answers after it started: max ${Math.max(0, ...result.allowedAfterRevoke)}`);
  return result;
}

/** Decision events of the load grants still waiting in Redis for the registry (the streams docs/adr/0011 names). */
async function backlog(redis: Redis, prefix: string, agents: BenchAgent[]): Promise<number> {
  const lengths = await Promise.all([verifierKey(prefix, 'events'), ...agents.map((a) => grantStateKey(prefix, a.grantId, 'events'))].map((key) => redis.xlen(key)));
  return lengths.reduce((a, b) => a + b, 0);
}

/**
 * Waits until the registry has appended the verifier's decisions of the loads to the audit chain,
 * so that the revocations do not share the machine with that backlog, and says how long it took.
 */
async function drain(redis: Redis, prefix: string, agents: BenchAgent[]): Promise<void> {
  const waiting = await backlog(redis, prefix, agents);
  const started = performance.now();
  let left = waiting;
  while (left > 0 && performance.now() - started < DRAIN_TIMEOUT_S * 1000) {
    await new Promise((done) => setTimeout(done, 250));
    left = await backlog(redis, prefix, agents);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log('');
  if (left > 0) {
    console.log(`audit       ${waiting} verifier decisions were waiting for the registry when the loads stopped; ${left} still wait after ${DRAIN_TIMEOUT_S} s`);
    failures.push(`audit: ${left} verifier decisions not appended within BENCH_DRAIN_TIMEOUT_S (${DRAIN_TIMEOUT_S} s)`);
  } else {
    console.log(`audit       ${waiting} verifier decisions were waiting for the registry when the loads stopped; appended in ${seconds.toFixed(1)} s`);
  }
}

/** The audit chain verifies and holds one `verification.allowed` per allowed answer of the load grants, and no denial. */
async function auditCheck(app: NestFastifyApplication, issuer: string, agents: BenchAgent[], allowed: number): Promise<void> {
  const rows: { type: string; n: string }[] = await app
    .get(Database)
    .dataSource.query(`SELECT type, count(*) AS n FROM audit_events WHERE grant_id = ANY($1) AND type LIKE 'verification.%' GROUP BY type`, [agents.map((a) => a.grantId)]);
  const count = (type: string): number => Number(rows.find((r) => r.type === type)?.n ?? 0);
  const started = performance.now();
  // In this process (GET /audit/verify is the operator's): the registry's own verification, in full.
  const { chain } = await app.get(AuditService).verify({ full: true });
  const seconds = (performance.now() - started) / 1000;
  console.log(`   audit chain ${chain.ok ? 'verifies' : `BROKEN at seq ${chain.brokenSeq}`} (${chain.count} events, checked in ${seconds.toFixed(1)} s); verification.allowed events of the load grants ${count('verification.allowed')}, verification.denied ${count('verification.denied')}`);
  if (!chain.ok) failures.push(`audit chain broken at seq ${chain.brokenSeq}`);
  if (count('verification.allowed') !== allowed || count('verification.denied') !== 0) {
    failures.push(`audit: ${allowed} allowed answers but ${count('verification.allowed')} verification.allowed and ${count('verification.denied')} verification.denied events`);
  }
}

/** The verifier's `uses` counters of the load grants, summed; undefined when it keeps none under the shared key names. */
async function usesCounted(redis: Redis, prefix: string, agents: BenchAgent[]): Promise<number | undefined> {
  let total = 0;
  let found = false;
  for (const agent of agents) {
    const uses = await redis.hget(grantStateKey(prefix, agent.grantId, 'counters'), 'uses');
    if (uses !== null) {
      found = true;
      total += Number(uses);
    }
  }
  return found ? total : undefined;
}

async function bench(): Promise<void> {
  const storage = await createBenchStorage('writ_bench_verify_');
  const prefix = uniquePrefix();
  const redis = new Redis(BENCH_REDIS_URL, { connectionName: 'writ-bench-verify', maxRetriesPerRequest: 1, lazyConnect: true });
  let inProcess: NestFastifyApplication | undefined;
  let cleaned: Promise<void> | undefined;
  cleanup = () =>
    (cleaned ??= (async () => {
      await inProcess?.close().catch(() => undefined);
      await stopAll();
      await releaseRedis(redis, prefix);
      await storage.dispose();
    })());
  try {
    await redis.connect().catch((error: unknown) => {
      throw new Error(`Redis at ${BENCH_REDIS_URL} is needed (the floor server and the verifier keep their state there): ${(error as Error).message}`);
    });
    const port = await freePort();
    const env = benchRegistryEnv({ storageEnv: storage.env, port, trustDomain: BENCH_TRUST_DOMAIN, redisUrl: BENCH_REDIS_URL, prefix });
    const issuer = env.WRIT_ISSUER!;
    console.log(`storage     ${storage.description}`);
    console.log(`redis       ${new URL(BENCH_REDIS_URL).host}, keys under ${prefix} (deleted at the end)`);
    const seeded = await seed(env, AGENTS);
    const authorization = serviceAuthorization(seeded.serviceId, seeded.credential);

    if (process.argv.includes('--k6-fixture')) {
      inProcess = (await createRegistry(loadConfig(env), { logger: false })).app;
      await inProcess.listen({ host: '127.0.0.1', port });
      const holders = await Promise.all(seeded.agents.map(async (agent) => holder(agent, await fetchToken(issuer, agent))));
      const [floor, verifier] = await Promise.all([startFloor(BENCH_REDIS_URL, prefix), startVerifier({ issuer, trustDomain: BENCH_TRUST_DOMAIN, redisUrl: BENCH_REDIS_URL, prefix })]);
      console.log(`registry    ${issuer} (in this process), ${AGENTS} agents with approved grants`);
      console.log(`floor       ${urlOf(floor).origin}; verifier ${urlOf(verifier).origin}`);
      await serveK6Fixture({ app: inProcess, issuer, holders, authorization, floorUrl: urlOf(floor).origin, verifierUrl: urlOf(verifier).origin, holdS: K6_HOLD_S });
      return;
    }

    console.log(`cpus        ${pinWhy}`);
    let registry: Started | undefined = await startRegistry(env, process.env.BENCH_CPU_PROFILE, pinning);
    console.log(`registry    ${issuer} (child process ${registry.child.pid}), ${AGENTS} agents with approved grants`);
    const holders = await Promise.all(seeded.agents.map(async (agent) => holder(agent, await fetchToken(issuer, agent))));
    const [floor, verifier] = await Promise.all([startFloor(BENCH_REDIS_URL, prefix, pinning), startVerifier({ issuer, trustDomain: BENCH_TRUST_DOMAIN, redisUrl: BENCH_REDIS_URL, prefix }, pinning)]);
    const localPostgres = storage.databaseUrl !== undefined && ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(storage.databaseUrl).hostname);
    const servers: Record<Server, Measured> = { floor: { server: floor, registry, redis, localPostgres }, verifier: { server: verifier, registry, redis, localPostgres } };
    const endpoints: Record<Server, Endpoint> = {
      floor: { port: Number(urlOf(floor).port), path: '/v1/verify', headers: { authorization } },
      verifier: { port: Number(urlOf(verifier).port), path: '/v1/verify', headers: { authorization } },
    };
    console.log(`floor       ${urlOf(floor).origin} (child process ${floor.child.pid})`);
    console.log(`verifier    ${urlOf(verifier).origin} (child process group ${verifier.child.pid})`);

    // One request each first: a setup mistake shows here with the server's own words.
    for (const server of ['floor', 'verifier'] as const) {
      const connection = new Connection(endpoints[server].port);
      const answer = await connection.request(buildRequest(endpoints[server], verifyBody(holders[0]!))).finally(() => connection.destroy());
      if (verdictOf(answer).kind !== 'allowed') throw new Error(`the ${server} does not allow a valid request: HTTP ${answer.status} ${answer.body}`);
    }

    const phase1 = await throughput(servers, endpoints, holders);
    const phase2 = await steady(servers, endpoints, holders);

    // Counted before the revocations add their own grants' uses.
    const verifierAllowed = 1 + phase1.allowed.verifier + phase2.verifier.allowed;
    const floorAllowed = 1 + phase1.allowed.floor + phase2.floor.allowed;
    const uses = await usesCounted(redis, prefix, seeded.agents);
    const floorKeys = await countKeys(redis, `${prefix}floor:*`);
    await drain(redis, prefix, seeded.agents);

    // The registry moves into this process for the revocations (PGlite is opened by one process
    // at a time): same database, port, keys and Redis.
    await stopProcess(registry);
    registry = undefined;
    inProcess = (await createRegistry(loadConfig(env), { logger: false })).app;
    await inProcess.listen({ host: '127.0.0.1', port });
    const phase3 = REVOCATIONS > 0 ? await revocation({ app: inProcess, issuer }, endpoints.verifier) : undefined;

    console.log('');
    console.log('counts');
    console.log(`   verifier    ${verifierAllowed} allowed answers; its use counters in Redis add up to ${uses ?? '(none found under the shared key names: not checked)'}`);
    if (uses !== undefined && uses !== verifierAllowed) failures.push(`verifier: ${verifierAllowed} allowed answers but use counters add up to ${uses}`);
    console.log(`   floor       ${floorAllowed} allowed answers; ${floorKeys} single-use proof keys in Redis`);
    if (floorKeys !== floorAllowed) failures.push(`floor: ${floorAllowed} allowed answers but ${floorKeys} proof keys`);

    await auditCheck(inProcess, issuer, seeded.agents, verifierAllowed);

    const ratio = phase1.rate.verifier / phase1.rate.floor;
    const revocationP = phase3 ? percentiles(phase3.toDenyMs) : undefined;
    const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
    const widths = [40, 22, 12, 7];
    console.log('');
    console.log(row(['summary', 'measured', 'goal', ''], widths));
    console.log(row(['(a) floor, closed loop', `${phase1.rate.floor.toFixed(0)} req/s`, '', ''], widths));
    console.log(row(['(b) verifier, closed loop', `${phase1.rate.verifier.toFixed(0)} req/s`, '', ''], widths));
    console.log(row(['ratio (b)/(a)', ratio.toFixed(2), `>= ${GOALS.ratio}`, met(ratio >= GOALS.ratio)], widths));
    console.log(row(['ratio (b)/(a), median of the rounds', median(phase1.roundRatios).toFixed(2), '', ''], widths));
    console.log(row([`verifier at ${RATE} req/s, p50 / p99`, `${fmt(phase2.verifier.p.p50)} / ${fmt(phase2.verifier.p.p99)} ms`, `p99 < ${GOALS.steadyP99Ms} ms`, met(phase2.verifier.p.p99 < GOALS.steadyP99Ms)], widths));
    console.log(row([`floor at ${RATE} req/s, p50 / p99`, `${fmt(phase2.floor.p.p50)} / ${fmt(phase2.floor.p.p99)} ms`, '', ''], widths));
    if (revocationP) {
      const seen = phase3!.toDenyMs.length;
      console.log(row(['revocation-to-deny, p50 / p99', seen === 0 ? 'none seen' : `${fmt(revocationP.p50)} / ${fmt(revocationP.p99)} ms`, `p99 < ${GOALS.revocationP99Ms} ms`, met(seen === REVOCATIONS && revocationP.p99 < GOALS.revocationP99Ms)], widths));
    }
    console.log(row(['answers counted', failures.length === 0 ? 'as expected' : `${failures.length} problem(s)`, '', failures.length === 0 ? 'ok' : 'FAILED'], widths));
    for (const failure of failures) console.log(`   ${failure}`);
    if (failures.length > 0) process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

/** Stops what this run started and removes what it created (database, data directory, Redis keys); idempotent. */
let cleanup: () => Promise<void> = stopAll;

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${signal}: stopping the processes started here and removing what the run created`);
    void cleanup().finally(() => process.exit(130));
  });
}

bench().catch(async (error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  await cleanup().catch(() => undefined);
  process.exit(1);
});
