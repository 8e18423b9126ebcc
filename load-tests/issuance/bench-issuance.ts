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
import { type ChildProcess, spawn } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SELF_SIGNED_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, TXN_TOKEN_TYPE } from '@writ/core';
import pg from 'pg';
import { JWT_BEARER_ASSERTION_TYPE } from '../../apps/registry/src/modules/agents/client-auth.service.js';
import { loadConfig } from '../../apps/registry/src/config/config.js';
import { AgentsService } from '../../apps/registry/src/modules/agents/agents.service.js';
import { GrantsService } from '../../apps/registry/src/modules/grants/grants.service.js';
import { ServicesService } from '../../apps/registry/src/modules/services/services.service.js';
import { createRegistry } from '../../apps/registry/src/registry.js';
import { createPostgresDatabase } from '../../apps/registry/test/support/databases.js';
import { percentiles } from '../support/stats.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 15);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const AGENTS = Number(process.env.BENCH_AGENTS ?? 16);
/** Upper bound on what one run can consume: pre-signed requests beyond this are never needed. */
const MAX_RATE = Number(process.env.BENCH_MAX_RATE ?? 4000);

const ROOT = resolve(import.meta.dirname, '../..');

interface BenchAgent {
  clientId: string;
  key: KeyObject;
  publicJwk: Record<string, unknown>;
  grantId: string;
}

interface PreparedRequest {
  body: string;
  dpop: string;
}

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** A compact ES256 JWS signed with node:crypto (the load generator's own fast path). */
function jws(header: object, payload: object, key: KeyObject): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

function prepare(agent: BenchAgent, issuer: string): PreparedRequest {
  const iat = Math.floor(Date.now() / 1000);
  const selfSigned = (): string =>
    jws({ alg: 'ES256' }, { iss: agent.clientId, sub: agent.clientId, aud: issuer, iat, exp: iat + 240, jti: randomUUID() }, agent.key);
  const body = new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT,
    requested_token_type: TXN_TOKEN_TYPE,
    subject_token_type: SELF_SIGNED_TOKEN_TYPE,
    subject_token: selfSigned(),
    client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
    client_assertion: selfSigned(),
    request_details: JSON.stringify({ grant_id: agent.grantId }),
  }).toString();
  const dpop = jws(
    { typ: 'dpop+jwt', alg: 'ES256', jwk: agent.publicJwk },
    { jti: randomUUID(), htm: 'POST', htu: `${issuer}/oauth/token`, iat },
    agent.key,
  );
  return { body, dpop };
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** Enrols the agents, registers the service and approves one grant per agent, in-process. */
async function seed(env: Record<string, string>): Promise<BenchAgent[]> {
  const { app } = await createRegistry(loadConfig(env), { logger: false });
  try {
    await app.get(ServicesService).register({
      uri: 'https://flights.example',
      display_name: 'Flights',
      catalogue: [{ type: 'flight_booking', actions: ['read', 'book'] }],
    });
    const agents: BenchAgent[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const owner = `bench-owner-${i}`;
      const { token } = await app.get(AgentsService).mintInitialAccessToken(owner);
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
      const publicJwk = { kty, crv, x, y };
      const { client_id: clientId } = await app.get(AgentsService).register(token, { client_name: `bench agent ${i}`, jwks: { keys: [publicJwk] } });
      const grants = app.get(GrantsService);
      const grant = await grants.request(clientId, owner, {
        service: 'https://flights.example',
        authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read', 'book'] }],
        envelope: { max_uses: 1_000_000 },
        purpose: 'issuance benchmark',
        duration_s: 3600,
      });
      await grants.approve(grant.id, owner);
      agents.push({ clientId, key: createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })), publicJwk, grantId: grant.id });
    }
    return agents;
  } finally {
    await app.close();
  }
}

function startRegistry(env: Record<string, string>): Promise<ChildProcess> {
  const profile = process.env.BENCH_CPU_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env.BENCH_CPU_PROFILE)}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', '@swc-node/register/esm-register', 'apps/registry/src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env, SWC_NODE_PROJECT: 'apps/registry/tsconfig.json', NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error('registry did not start within 60 s')), 60_000);
    child.once('exit', (code) => fail(new Error(`registry exited with code ${code}`)));
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('registry ')) {
        clearTimeout(timer);
        done(child);
      }
    });
  });
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
  for (let i = 0; i < count; i++) pool.push(prepare(agents[i % agents.length]!, issuer));
  let at = 0;
  return () => pool[at++];
}

async function main(): Promise<void> {
  const adminUrl = process.env.DATABASE_URL;
  const created = adminUrl ? await createPostgresDatabase(adminUrl, 'writ_bench_') : undefined;
  const dbUrl = created && 'url' in created.target ? created.target.url : undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-bench-'));
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    WRIT_DATA_DIR: dataDir,
    WRIT_ISSUER: issuer,
    REGISTRY_PORT: String(port),
    ...(dbUrl ? { DATABASE_URL: dbUrl } : {}),
  };
  console.log(`storage     ${dbUrl ? `PostgreSQL ${new URL(dbUrl).host}${new URL(dbUrl).pathname} (fresh database)` : 'embedded PGlite (DATABASE_URL is not set: the goal is measured on PostgreSQL)'}`);
  let child: ChildProcess | undefined;
  try {
    const agents = await seed(env);
    child = await startRegistry(env);
    console.log(`registry    ${issuer} (child process ${child.pid}), ${AGENTS} agents with approved grants`);
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
    if (child && child.exitCode === null) {
      const exited = new Promise((done) => child!.once('exit', done));
      child.kill('SIGTERM');
      await exited;
    }
    await created?.drop().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
