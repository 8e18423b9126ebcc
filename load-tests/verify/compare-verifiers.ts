/**
 * The verifier of another commit against this tree's, side by side: `npm run bench:verify:compare
 * -- <git revision>` (for example `HEAD~3` or `main`).
 *
 * A change to the request path moves the verifier's cost by a few per cent, and on a shared
 * machine two runs of `bench:verify` minutes apart differ by more than that. This runs both
 * verifiers at once instead, on one registry, one Redis and one generator, both on the server's
 * CPU, and measures them in short closed-loop slices taken in turn (the order swapped every slice),
 * so that drift falls on both alike. It prints each slice, then the medians of the slice ratios
 * (this tree / the other) of CPU per request and of req/s.
 *
 * The other commit is checked out into a temporary git worktree whose `node_modules` links to this
 * tree's packages (its own workspace packages, `@writ/*`, point into the worktree), so the
 * dependencies are the same and only the code differs; the worktree is removed at the end.
 *
 * Options (environment): COMPARE_SLICES (12), COMPARE_SLICE_S (3), BENCH_CONNECTIONS (32),
 * BENCH_PIN, REDIS_URL (default redis://127.0.0.1:6379), DATABASE_URL (PGlite without it).
 * Traffic goes to 127.0.0.1 only; the run stops by itself and stops what it started.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { choosePinning } from '../support/cpus.js';
import { groupCpuSeconds } from '../support/cpu.js';
import { closedLoop, type Endpoint } from '../support/load.js';
import { ROOT, type Started, stopAll } from '../support/processes.js';
import { createBenchStorage, fetchToken, freePort, startRegistry } from '../support/registry.js';
import { median } from '../support/stats.js';
import { BENCH_REDIS_URL, BENCH_TRUST_DOMAIN, benchRegistryEnv, holder, numberOption, releaseRedis, requestPool, seed, serviceAuthorization, startVerifier, uniquePrefix, urlOf } from './setup.js';

const SLICES = numberOption('COMPARE_SLICES', 12);
const SLICE_S = numberOption('COMPARE_SLICE_S', 3);
const CONNECTIONS = numberOption('BENCH_CONNECTIONS', 32);
/** Signed requests per second of slice: more than a verifier answers here. */
const POOL_RATE = 9000;

/** The same package layout as this tree's, with the worktree's own workspace packages. */
function linkModules(worktree: string): void {
  const modules = join(worktree, 'node_modules');
  mkdirSync(join(modules, '@writ'), { recursive: true });
  for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
    if (entry !== '@writ') symlinkSync(join(ROOT, 'node_modules', entry), join(modules, entry));
  }
  // A library the other commit does not have yet is a dangling link there, which nothing imports.
  for (const [name, folder] of [
    ['core', 'libs/core'],
    ['contracts', 'libs/contracts'],
    ['server', 'libs/server'],
    ['sdk', 'libs/sdk'],
    ['verifier', 'apps/verifier'],
    ['registry', 'apps/registry'],
  ] as const) {
    symlinkSync(join('..', '..', folder), join(modules, '@writ', name));
  }
}

async function compare(revision: string): Promise<void> {
  const commit = execFileSync('git', ['rev-parse', '--short', `${revision}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim();
  const here = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--', 'apps', 'libs'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
  const parent = mkdtempSync(join(tmpdir(), 'writ-compare-'));
  const worktree = join(parent, 'tree');
  const { pinning, why } = choosePinning(process.env.BENCH_PIN);
  const storage = await createBenchStorage('writ_bench_compare_');
  const prefix = uniquePrefix();
  const redis = new Redis(BENCH_REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    execFileSync('git', ['worktree', 'add', '--detach', worktree, commit], { cwd: ROOT, stdio: 'ignore' });
    linkModules(worktree);
    await redis.connect();
    const port = await freePort();
    const env = benchRegistryEnv({ storageEnv: storage.env, port, trustDomain: BENCH_TRUST_DOMAIN, redisUrl: BENCH_REDIS_URL, prefix });
    const issuer = env.WRIT_ISSUER!;
    console.log(`storage     ${storage.description}`);
    console.log(`cpus        ${why}`);
    const seeded = await seed(env, 16);
    const authorization = serviceAuthorization(seeded.serviceId, seeded.credential);
    await startRegistry(env, undefined, pinning);
    const holders = await Promise.all(seeded.agents.map(async (agent) => holder(agent, await fetchToken(issuer, agent))));

    const trees = [
      { label: `${commit} (${revision})`, dir: worktree },
      { label: `${here}${dirty ? ' + uncommitted' : ''} (this tree)`, dir: ROOT },
    ];
    const servers: { label: string; started: Started; endpoint: Endpoint; rates: number[]; cpu: number[] }[] = [];
    for (const tree of trees) {
      // The same command as `npm run start:verifier`, from the tree's own folder.
      process.env.BENCH_VERIFIER_COMMAND = `cd '${tree.dir}' && SWC_NODE_PROJECT=apps/verifier/tsconfig.json exec node --import @swc-node/register/esm-register apps/verifier/src/main.ts`;
      const started = await startVerifier({ issuer, trustDomain: BENCH_TRUST_DOMAIN, redisUrl: BENCH_REDIS_URL, prefix }, pinning);
      servers.push({ label: tree.label, started, endpoint: { port: Number(urlOf(started).port), path: '/v1/verify', headers: { authorization } }, rates: [], cpu: [] });
    }
    delete process.env.BENCH_VERIFIER_COMMAND;

    const run = async (i: number, seconds: number): Promise<{ rate: number; cpu: number }> => {
      const server = servers[i]!;
      const next = requestPool(server.endpoint, holders, Math.ceil(seconds * POOL_RATE));
      const before = groupCpuSeconds(server.started.child.pid!);
      const result = await closedLoop({ port: server.endpoint.port, connections: CONNECTIONS, durationS: seconds, next });
      const after = groupCpuSeconds(server.started.child.pid!);
      if (result.allowed === 0 || result.allowed !== result.answered || result.errors.size > 0) {
        throw new Error(`${server.label}: not every answer was an allow (${[...result.denied, ...result.errors].map(([k, n]) => `${n} x ${k}`).join('; ')})`);
      }
      if (result.exhausted) console.log('   note: the pool of signed requests ran out; the slice was shorter');
      return { rate: result.allowed / result.elapsedS, cpu: before === undefined || after === undefined ? NaN : ((after - before) / result.allowed) * 1e6 };
    };

    console.log(`verifiers   A = ${servers[0]!.label}, B = ${servers[1]!.label}`);
    console.log(`\n${SLICES} slices of ${SLICE_S} s on each, in turn, ${CONNECTIONS} connections (after a 3 s warm-up of each)`);
    for (let i = 0; i < servers.length; i++) await run(i, 3);
    for (let slice = 1; slice <= SLICES; slice++) {
      const order = slice % 2 === 1 ? [0, 1] : [1, 0];
      for (const i of order) {
        const { rate, cpu } = await run(i, SLICE_S);
        servers[i]!.rates.push(rate);
        servers[i]!.cpu.push(cpu);
      }
      const [a, b] = servers as [(typeof servers)[0], (typeof servers)[0]];
      console.log(`   slice ${String(slice).padStart(2)}  A ${a.rates.at(-1)!.toFixed(0).padStart(5)} req/s ${a.cpu.at(-1)!.toFixed(0).padStart(4)} us/req   B ${b.rates.at(-1)!.toFixed(0).padStart(5)} req/s ${b.cpu.at(-1)!.toFixed(0).padStart(4)} us/req`);
    }
    const [a, b] = servers as [(typeof servers)[0], (typeof servers)[0]];
    const cpuRatios = a.cpu.map((cpu, k) => b.cpu[k]! / cpu);
    const rateRatios = a.rates.map((rate, k) => b.rates[k]! / rate);
    console.log('');
    console.log(`B/A CPU per request: median ${median(cpuRatios).toFixed(3)} (slices ${Math.min(...cpuRatios).toFixed(2)} to ${Math.max(...cpuRatios).toFixed(2)})`);
    console.log(`B/A req/s:           median ${median(rateRatios).toFixed(3)} (slices ${Math.min(...rateRatios).toFixed(2)} to ${Math.max(...rateRatios).toFixed(2)})`);
    console.log('Below 1 for CPU (above 1 for req/s) means this tree is cheaper. One comparison moves by several per cent from run to run: repeat it.');
  } finally {
    await stopAll();
    await releaseRedis(redis, prefix);
    await storage.dispose();
    try {
      execFileSync('git', ['worktree', 'remove', '--force', worktree], { cwd: ROOT, stdio: 'ignore' });
    } catch {
      // Not created (a bad revision): nothing to remove.
    }
    rmSync(parent, { recursive: true, force: true });
    execFileSync('git', ['worktree', 'prune'], { cwd: ROOT, stdio: 'ignore' });
  }
}

const revision = process.argv[2];
if (revision === undefined || revision.startsWith('-')) {
  console.error('usage: npm run bench:verify:compare -- <git revision>   (the verifier of that commit against this tree\'s)');
  process.exit(2);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping`);
    void stopAll().finally(() => process.exit(130));
  });
}
compare(revision).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
