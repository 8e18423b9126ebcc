/**
 * The registry side of the benchmarks: a fresh database (the real PostgreSQL when DATABASE_URL is
 * set, embedded PGlite otherwise), agents enrolled with approved grants through the registry's own
 * services, the registry as a child process, and root tokens from its token endpoint.
 */
import 'reflect-metadata';
import { generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { CLIENT_ASSERTION_TYP, SELF_SIGNED_TOKEN_TYPE, SUBJECT_TOKEN_TYP, TOKEN_EXCHANGE_GRANT, TXN_TOKEN_TYPE } from '@writ/core';
import { JWT_BEARER_ASSERTION_TYPE } from '../../apps/registry/src/modules/agents/client-auth.service.js';
import { AgentsService } from '../../apps/registry/src/modules/agents/agents.service.js';
import { GrantsService } from '../../apps/registry/src/modules/grants/grants.service.js';
import { createPostgresDatabase } from '../../apps/registry/test/support/databases.js';
import { approveGrant } from '../../apps/registry/test/support/humans.js';
import { onRegistryCpus, type Pinning } from './cpus.js';
import { startProcess, type Started } from './processes.js';
import { jws } from './signing.js';

/** A public or private EC P-256 JWK, as node:crypto exports it. */
export interface EcJwk {
  kty: string;
  crv: string;
  x: string;
  y: string;
  d?: string;
}

export interface BenchAgent {
  clientId: string;
  owner: string;
  key: KeyObject;
  publicJwk: EcJwk;
  /** The private key as a JWK, for load generators that sign themselves (k6). */
  privateJwk: EcJwk;
  /** The approved grant this agent's tokens name. */
  grantId: string;
}

/** Where the registry keeps its data for one run: `env` goes to every registry started on it. */
export interface BenchStorage {
  env: Record<string, string>;
  /** One line for the output: which storage, and that it is fresh. */
  description: string;
  /** The fresh PostgreSQL database, when DATABASE_URL is set. */
  databaseUrl: string | undefined;
  /** Drops the database and removes the data directory (keys, PGlite). */
  dispose(): Promise<void>;
}

/** A fresh database named `<prefix><random>` on DATABASE_URL's server, else PGlite in a temporary directory. */
export async function createBenchStorage(prefix: string): Promise<BenchStorage> {
  const adminUrl = process.env.DATABASE_URL;
  const created = adminUrl ? await createPostgresDatabase(adminUrl, prefix) : undefined;
  const databaseUrl = created && 'url' in created.target ? created.target.url : undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-bench-'));
  const description = databaseUrl
    ? `PostgreSQL ${new URL(databaseUrl).host}${new URL(databaseUrl).pathname} (fresh database)`
    : 'embedded PGlite (DATABASE_URL is not set: the goals are measured on PostgreSQL)';
  return {
    env: { WRIT_DATA_DIR: dataDir, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) },
    description,
    databaseUrl,
    dispose: async () => {
      await created?.drop().catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** The service every benchmark grant is on. */
export const FLIGHTS = {
  uri: 'https://flights.example',
  display_name: 'Flights',
  catalogue: [{ type: 'flight_booking', actions: ['read', 'book'] }],
};

/** The one capability of the benchmark grants. */
export const FLIGHT_BOOKING = { type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read', 'book'] };

/**
 * Enrols an agent of `owner` (initial access token, then registration with a fresh ES256 key),
 * requests `grant` for it and has the owner approve it. `grant` is a `POST /grants` body.
 */
export async function enrolAgent(app: NestFastifyApplication, owner: string, grant: object): Promise<BenchAgent> {
  const agents = app.get(AgentsService);
  const { token } = await agents.mintInitialAccessToken(owner);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const publicJwk = { kty: kty!, crv: crv!, x: x!, y: y! };
  const { client_id: clientId } = await agents.register(token, { client_name: `bench agent of ${owner}`, jwks: { keys: [publicJwk] } });
  const grantId = await approvedGrant(app, clientId, owner, grant);
  return { clientId, owner, key: privateKey, publicJwk, privateJwk: privateKey.export({ format: 'jwk' }) as EcJwk, grantId };
}

/** Requests `grant` for the agent and has `owner` approve it; answers the grant's id. */
export async function approvedGrant(app: NestFastifyApplication, clientId: string, owner: string, grant: object): Promise<string> {
  const grants = app.get(GrantsService);
  const requested = await grants.request(clientId, owner, grant);
  // The owner signs the approval with a software passkey, through the real approval ceremony.
  await approveGrant(app, requested.id, owner);
  return requested.id;
}

/** A root-token request (RFC 8693) as an agent sends it: form body and DPoP proof, each single-use. */
export interface TokenRequest {
  body: string;
  dpop: string;
}

/** A token exchange for `grantId` (the agent's own grant by default), signed now. */
export function tokenRequest(agent: BenchAgent, issuer: string, grantId = agent.grantId): TokenRequest {
  const iat = Math.floor(Date.now() / 1000);
  // ADR 0015: each kind of JWT an agent signs carries its own typ.
  const selfSigned = (typ: string): string =>
    jws({ alg: 'ES256', typ }, { iss: agent.clientId, sub: agent.clientId, aud: issuer, iat, exp: iat + 240, jti: randomUUID() }, agent.key);
  const body = new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT,
    requested_token_type: TXN_TOKEN_TYPE,
    subject_token_type: SELF_SIGNED_TOKEN_TYPE,
    subject_token: selfSigned(SUBJECT_TOKEN_TYP),
    client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
    client_assertion: selfSigned(CLIENT_ASSERTION_TYP),
    request_details: JSON.stringify({ grant_id: grantId }),
  }).toString();
  const dpop = jws({ typ: 'dpop+jwt', alg: 'ES256', jwk: agent.publicJwk }, { jti: randomUUID(), htm: 'POST', htu: `${issuer}/oauth/token`, iat }, agent.key);
  return { body, dpop };
}

/** A root token from the registry's token endpoint, over HTTP. */
export async function fetchToken(issuer: string, agent: BenchAgent, grantId = agent.grantId): Promise<string> {
  const { body, dpop } = tokenRequest(agent, issuer, grantId);
  const res = await fetch(`${issuer}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', dpop }, body });
  const answer = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
  if (res.status !== 200 || !answer.access_token) throw new Error(`token endpoint answered ${res.status}: ${answer.error} ${answer.error_description ?? ''}`);
  return answer.access_token;
}

/** The registry (`apps/registry/src/main.ts`) as a child process on `env`; `cpuProfileDir` makes it write a V8 CPU profile there. */
export function startRegistry(env: Record<string, string>, cpuProfileDir?: string, pinning?: Pinning): Promise<Started> {
  const profile = cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(cpuProfileDir)}`] : [];
  // Node options for the registry alone (BENCH_REGISTRY_NODE_ARGS), for example a GC trace.
  const extra = (process.env.BENCH_REGISTRY_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '');
  return startProcess({
    name: 'registry',
    ...onRegistryCpus(pinning, process.execPath, [...profile, ...extra, '--import', '@swc-node/register/esm-register', 'apps/registry/src/main.ts']),
    env: { ...process.env, ...env, SWC_NODE_PROJECT: 'apps/registry/tsconfig.json', NODE_ENV: 'production' },
    ready: /registry {2}\S+/,
  });
}
