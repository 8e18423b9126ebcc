/**
 * Root-token issuance benchmark (issue #3): `npm run bench:issuance`.
 *
 * Boots the registry as a child process on a fresh database (the real PostgreSQL when
 * DATABASE_URL is set, embedded PGlite otherwise, said loudly), enrols agents with approved
 * grants, then sends RFC 8693 token exchanges (private_key_jwt client assertion + self-signed
 * subject token + DPoP proof, each single-use) over keep-alive HTTP from this process for a fixed
 * time. Prints tokens/s, latency percentiles, the error breakdown, and checks afterwards that the
 * audit chain is unbroken and holds one `token.issued` event per 200.
 *
 * Requests are signed before the measured window (the load generator shares the two cores with the
 * registry and PostgreSQL; signing is the client's cost, not the server's), in batches that stay
 * well inside the 300 s acceptance window of proofs and assertions.
 *
 * Options (environment): BENCH_DURATION_S (default 15), BENCH_CONNECTIONS (32), BENCH_AGENTS (16),
 * BENCH_WARMUP_S (3), BENCH_CPU_PROFILE (a folder: the registry writes a V8 CPU profile there). Traffic goes to 127.0.0.1 only; the run stops by itself.
 */
import 'reflect-metadata';
import { Agent, request } from 'node:http';
import pg from 'pg';
import { loadConfig } from '../../apps/registry/src/config/config.js';
import { ServicesService } from '../../apps/registry/src/modules/services/services.service.js';
import { createRegistry } from '../../apps/registry/src/registry.js';
import { stopProcess, type Started } from '../support/processes.js';
import { type BenchAgent, createBenchStorage, enrolAgent, FLIGHT_BOOKING, FLIGHTS, freePort, startRegistry, type TokenRequest, tokenRequest } from '../support/registry.js';
import { percentiles } from '../support/stats.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 15);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const AGENTS = Number(process.env.BENCH_AGENTS ?? 16);
/** Upper bound on what one run can consume: pre-signed requests beyond this are never needed. */
const MAX_RATE = Number(process.env.BENCH_MAX_RATE ?? 4000);

type PreparedRequest = TokenRequest;

/** Enrols the agents, registers the service and approves one grant per agent, in-process. */
async function seed(env: Record<string, string>): Promise<BenchAgent[]> {
  const { app } = await createRegistry(loadConfig(env), { logger: false });
  try {
    await app.get(ServicesService).register(FLIGHTS);
    const agents: BenchAgent[] = [];
    for (let i = 0; i < AGENTS; i++) {
      agents.push(
        await enrolAgent(app, `bench-owner-${i}`, {
          service: FLIGHTS.uri,
          authorization_details: [FLIGHT_BOOKING],
          envelope: { max_uses: 1_000_000 },
          purpose: 'issuance benchmark',
          duration_s: 3600,
        }),
      );
    }
    return agents;
  } finally {
    await app.close();
  }
}

interface Outcome {
  status: number;
  error?: string;
  ms: number;
}

function send(agent: Agent, port: number, req: PreparedRequest): Promise<Outcome> {
  const started = process.hrtime.bigint();
  return new Promise((done) => {
    const r = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(req.body), dpop: req.dpop },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          const status = res.statusCode ?? 0;
          if (status === 200) return done({ status, ms });
          let error = 'unreadable';
          try {
            error = (JSON.parse(Buffer.concat(chunks).toString()) as { error_description?: string }).error_description ?? 'no description';
          } catch {
            // keep 'unreadable'
          }
          done({ status, error, ms });
        });
      },
    );
    r.on('error', (e) => done({ status: 0, error: e.message, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
    r.end(req.body);
  });
}

/** Runs `CONNECTIONS` closed-loop clients for `seconds`, drawing pre-signed requests from `next`. */
async function drive(port: number, seconds: number, next: () => PreparedRequest | undefined): Promise<{ outcomes: Outcome[]; elapsedS: number; exhausted: boolean }> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const outcomes: Outcome[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let exhausted = false;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) {
        const req = next();
        if (!req) {
          exhausted = true;
          return;
        }
        outcomes.push(await send(agent, port, req));
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  agent.destroy();
  return { outcomes, elapsedS, exhausted };
}

function preparedPool(agents: BenchAgent[], issuer: string, count: number): () => PreparedRequest | undefined {
  const pool: PreparedRequest[] = [];
  for (let i = 0; i < count; i++) pool.push(tokenRequest(agents[i % agents.length]!, issuer));
  let at = 0;
  return () => pool[at++];
}

async function main(): Promise<void> {
  const storage = await createBenchStorage('writ_bench_');
  const dbUrl = storage.databaseUrl;
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = { ...storage.env, WRIT_ISSUER: issuer, REGISTRY_PORT: String(port) };
  console.log(`storage     ${storage.description}`);
  let child: Started | undefined;
  try {
    const agents = await seed(env);
    child = await startRegistry(env, process.env.BENCH_CPU_PROFILE);
    console.log(`registry    ${issuer} (child process ${child.child.pid}), ${AGENTS} agents with approved grants`);
    console.log(`load        ${CONNECTIONS} keep-alive connections, closed loop, ${WARMUP_S} s warm-up then ${DURATION_S} s measured`);

    process.stdout.write('signing     warm-up requests... ');
    const warm = await drive(port, WARMUP_S, preparedPool(agents, issuer, WARMUP_S * MAX_RATE));
    console.log(`done (${warm.outcomes.length} requests)`);

    process.stdout.write(`signing     up to ${DURATION_S * MAX_RATE} measured requests... `);
    const next = preparedPool(agents, issuer, DURATION_S * MAX_RATE);
    console.log('done');
    const run = await drive(port, DURATION_S, next);

    const ok = run.outcomes.filter((o) => o.status === 200);
    const failures = new Map<string, number>();
    for (const o of run.outcomes) if (o.status !== 200) failures.set(`${o.status} ${o.error}`, (failures.get(`${o.status} ${o.error}`) ?? 0) + 1);
    const p = percentiles(ok.map((o) => o.ms));
    const rate = ok.length / run.elapsedS;
    console.log('');
    console.log(`tokens/s    ${rate.toFixed(0)}   (${ok.length} tokens in ${run.elapsedS.toFixed(1)} s)`);
    console.log(`latency ms  p50 ${p.p50.toFixed(1)}   p90 ${p.p90.toFixed(1)}   p99 ${p.p99.toFixed(1)}   max ${p.max.toFixed(1)}`);
    console.log(`errors      ${failures.size === 0 ? 'none' : [...failures].map(([k, n]) => `${n} x ${k}`).join('; ')}`);
    if (run.exhausted) console.log(`note        the pre-signed pool ran out: raise BENCH_MAX_RATE (now ${MAX_RATE})`);
    console.log(`goal        >= 1000 tokens/s: ${rate >= 1000 ? 'met' : 'NOT met'};  p99 < 50 ms: ${p.p99 < 50 ? 'met' : 'NOT met'}`);

    // Durable and unbroken: the chain verifies and holds one token.issued per 200 answered.
    const { chain } = (await (await fetch(`${issuer}/audit/verify`)).json()) as { chain: { ok: boolean; count: number; brokenSeq?: number } };
    let issued = -1;
    if (dbUrl) {
      const client = new pg.Client({ connectionString: dbUrl });
      await client.connect();
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM audit_events WHERE type = 'token.issued'`);
      issued = Number(rows[0]!.n);
      await client.end();
    }
    const expected = ok.length + warm.outcomes.filter((o) => o.status === 200).length;
    console.log(`audit       chain ${chain.ok ? 'verifies' : `BROKEN at seq ${chain.brokenSeq}`} (${chain.count} events)${issued >= 0 ? `; token.issued events ${issued}, tokens answered ${expected}: ${issued === expected ? 'equal' : 'DIFFERENT'}` : ''}`);
    if (!chain.ok || (issued >= 0 && issued !== expected)) process.exitCode = 1;
  } finally {
    if (child) await stopProcess(child);
    await storage.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
