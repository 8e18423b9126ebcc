import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import {
  ACTOR_TOKEN_TYP,
  CLIENT_ASSERTION_TYP,
  type Clock,
  createDpopProof,
  JWT_TOKEN_TYPE,
  SELF_SIGNED_TOKEN_TYPE,
  SUBJECT_TOKEN_TYP,
  TOKEN_EXCHANGE_GRANT,
  TXN_TOKEN_TYPE,
  type TxnTokenClaims,
  verifyTxnToken,
} from '@writ/core';
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import { expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import type { Database } from '../../src/infra/database.service.js';
import { AgentsService } from '../../src/modules/agents/agents.service.js';
import { GrantsService } from '../../src/modules/grants/grants.service.js';
import { KeyStore } from '../../src/modules/keys/key-store.js';
import { ServicesService } from '../../src/modules/services/services.service.js';
import { createRegistry } from '../../src/registry.js';
import type { VerifierEventSource } from '../../src/modules/audit/redis-verifier-events.js';
import type { VerifierStepUps } from '../../src/modules/step-ups/verifier-step-ups.js';
import type { storages, TestDatabase } from './databases.js';
import { approveGrant } from './humans.js';

export const ISSUER = 'https://registry.writ.test';
export const TOKEN_URL = `${ISSUER}/oauth/token`;

/** The one capability of the default grant request: flight bookings at one location, read and book. */
export const capability = {
  type: 'flight_booking',
  locations: ['https://flights.example/api'],
  actions: ['read', 'book'],
  limits: { max_passengers: 2 },
};

/** The grant request `approvedGrant` makes unless the fixture is given another one. */
export const grantRequest = {
  service: 'https://flights.example',
  authorization_details: [capability],
  envelope: { max_uses: 10 },
  purpose: 'Book my trip',
  duration_s: 3600,
  delegation: { max_depth: 2 },
};

/** A registered agent of `owner`, with its ES256 key pair. */
export interface Agent {
  clientId: string;
  owner: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export type Response = Awaited<ReturnType<NestFastifyApplication['inject']>>;

/** What `delegate` may change about the token-exchange request it makes. */
export interface Delegation {
  requestDetails?: object;
  actorToken?: string;
  dpop?: string;
}

export interface TokenFixtureOptions<Owner extends string> {
  /** Prefix of the temporary data directory (keys), removed by `close`. */
  dataDirPrefix: string;
  /** The owners that `start` enrols an agent for, in this order. */
  owners: readonly Owner[];
  /**
   * The person an agent of `owners` belongs to, when not the one it is named after: a grant is
   * delegated only to its owner's own agents unless it names others (issue 16, finding 6).
   */
  ownerOf?: Partial<Record<Owner, string>>;
  /** The request `approvedGrant` makes (before its overrides); `grantRequest` by default. */
  grantRequest?: object;
  /** More configuration for the registry, as environment variables (`WRIT_DPOP_NONCE`, ...). */
  env?: Record<string, string>;
  /** An in-process verifier store whose decisions the registry appends to its audit chain. */
  verifierEvents?: VerifierEventSource;
  /** Where the registry writes approved step-ups (an in-process verifier store); Redis when `env` has REDIS_URL. */
  verifierAdmin?: VerifierStepUps;
  /** Runs on each opened registry (at `start` and `restart`) before it starts: wiring a store to it, say. */
  beforeInit?: (registry: { app: NestFastifyApplication; db: Database }) => void | Promise<void>;
}

/** The booted registry, as `start` hands it over. */
export interface StartedRegistry<Owner extends string> {
  app: NestFastifyApplication;
  db: Database;
  grants: GrantsService;
  /** One enrolled agent per owner given in the options. */
  agents: Record<Owner, Agent>;
  /** The flights service the grants are on, with the credential it calls the verifier with. */
  service: { id: string; credential: string };
  /** The registry's data folder (WRIT_DATA_DIR): its keys. */
  dataDir: string;
}

/**
 * A registry on `storage` for the token endpoint's end-to-end tests, on a test clock that tests
 * can move, with helpers to enrol agents and to sign, prove, post, issue and delegate. The
 * helpers are plain functions (destructure them freely); they work once `start` has resolved.
 *
 * ```ts
 * const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-x-', owners: ['alice'] });
 * beforeAll(async () => ({ app, agents: { alice } } = await fx.start()));
 * afterEach(() => fx.setClockOffset(0));
 * afterAll(() => fx.close());
 * ```
 */
export function createTokenFixture<Owner extends string>(storage: (typeof storages)[number], options: TokenFixtureOptions<Owner>) {
  let app: NestFastifyApplication;
  let testDb: TestDatabase;
  let dataDir: string;
  let grants: GrantsService;
  let offsetMs = 0;
  /** The clock the registry and the helpers run on: the system clock plus the offset. */
  const clock: Clock = { now: () => Date.now() + offsetMs };
  const request = options.grantRequest ?? grantRequest;

  /** Boots the registry on a fresh database, registers the flights service and enrols the owners' agents. */
  async function start(): Promise<StartedRegistry<Owner>> {
    testDb = await storage.create();
    dataDir = mkdtempSync(join(tmpdir(), options.dataDirPrefix));
    const registry = await open();
    const { service, credential } = await app
      .get(ServicesService)
      .register({ uri: 'https://flights.example', display_name: 'Flights', catalogue: [{ type: 'flight_booking', actions: ['read', 'book'] }] });
    const agents = {} as Record<Owner, Agent>;
    for (const owner of options.owners) agents[owner] = await enrol(options.ownerOf?.[owner] ?? owner);
    started = { app, db: registry.db, grants, agents, service: { id: service.id, credential }, dataDir };
    return started;
  }

  let started: StartedRegistry<Owner> | undefined;

  /** Opens the registry on the fixture's database and data directory (its keys). */
  async function open(): Promise<{ app: NestFastifyApplication; db: Database }> {
    const config = loadConfig({ ...options.env, WRIT_DATA_DIR: dataDir, WRIT_ISSUER: ISSUER, WRIT_TRUST_DOMAIN: 'writ.test' });
    const { verifierEvents, verifierAdmin } = options;
    const registry = await createRegistry(config, {
      logger: false,
      database: testDb.target,
      clock,
      ...(verifierEvents ? { verifierEvents } : {}),
      ...(verifierAdmin ? { verifierAdmin } : {}),
    });
    app = registry.app;
    await options.beforeInit?.(registry);
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    grants = app.get(GrantsService);
    return registry;
  }

  /**
   * Stops the registry and opens it again on the same database and keys (a restart): agents,
   * service and grants stay. `options.beforeInit` runs again, before the new app starts.
   */
  async function restart(): Promise<StartedRegistry<Owner>> {
    await app.close();
    const registry = await open();
    started = { ...started!, app, db: registry.db, grants };
    return started;
  }

  /** Closes the app, drops the database and removes the data directory. */
  async function close(): Promise<void> {
    await app.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }

  /** Moves the test clock `ms` away from the system clock (0 puts it back). */
  function setClockOffset(ms: number): void {
    offsetMs = ms;
  }

  /** Registers an agent of `owner` with a fresh ES256 key, through a one-time initial access token. */
  async function enrol(owner: string): Promise<Agent> {
    const agents = app.get(AgentsService);
    const { token } = await agents.mintInitialAccessToken(owner);
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const { client_id: clientId } = await agents.register(token, { client_name: `agent of ${owner}`, jwks: { keys: [publicJwk] } });
    return { clientId, owner, privateKey, publicJwk };
  }

  /**
   * A JWT from `signer` with iss = sub = `clientId`, aud = issuer, single-use jti, on the test
   * clock, of the kind `typ` names (ADR 0015): a client assertion unless told otherwise
   * ({@link SUBJECT_TOKEN_TYP}, {@link ACTOR_TOKEN_TYP}); null signs the untyped shape of before.
   */
  function selfSigned(clientId: string, signer: CryptoKey, jti: string = randomUUID(), typ: string | null = CLIENT_ASSERTION_TYP): Promise<string> {
    const iat = Math.floor(clock.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', ...(typ !== null && { typ }) })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(ISSUER)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 60)
      .setJti(jti)
      .sign(signer);
  }

  /** A DPoP proof by `agent` for POST `htu` (the token endpoint), bound to `accessToken` if given. */
  function proof(agent: Agent, accessToken?: string, htu: string = TOKEN_URL): Promise<string> {
    return createDpopProof({ privateKey: agent.privateKey, publicJwk: agent.publicJwk, htm: 'POST', htu, clock, ...(accessToken ? { accessToken } : {}) });
  }

  /** Posts `form` to /oauth/token with the DPoP proof `dpop`. */
  function post(form: Record<string, string>, dpop: string): Promise<Response> {
    return app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop },
      payload: new URLSearchParams(form).toString(),
    });
  }

  /** Requests the fixture's grant (with `overrides`) for `agent` and has its owner approve it; answers its id. */
  async function approvedGrant(agent: Agent, overrides: object = {}): Promise<string> {
    const grant = await grants.request(agent.clientId, agent.owner, { ...request, ...overrides });
    await approveGrant(app, grant.id, agent.owner);
    return grant.id;
  }

  /** The token endpoint's form for `agent`'s root token on `grantId`: fresh single-use assertions. */
  async function rootTokenForm(agent: Agent, grantId: string): Promise<Record<string, string>> {
    return {
      grant_type: TOKEN_EXCHANGE_GRANT,
      requested_token_type: TXN_TOKEN_TYPE,
      subject_token_type: SELF_SIGNED_TOKEN_TYPE,
      subject_token: await selfSigned(agent.clientId, agent.privateKey, undefined, SUBJECT_TOKEN_TYP),
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await selfSigned(agent.clientId, agent.privateKey),
      request_details: JSON.stringify({ grant_id: grantId }),
    };
  }

  /** Exchanges `agent`'s self-signed token for a root txn token on `grantId`, expecting 200. */
  async function rootToken(agent: Agent, grantId: string): Promise<string> {
    const res = await post(await rootTokenForm(agent, grantId), await proof(agent));
    expect(res.statusCode).toBe(200);
    return res.json<{ access_token: string }>().access_token;
  }

  /** `holder` hands `parent` to `actor`. */
  async function delegate(holder: Agent, parent: string, actor: Agent, delegation: Delegation = {}): Promise<Response> {
    return post(
      {
        grant_type: TOKEN_EXCHANGE_GRANT,
        requested_token_type: TXN_TOKEN_TYPE,
        subject_token_type: TXN_TOKEN_TYPE,
        subject_token: parent,
        actor_token_type: JWT_TOKEN_TYPE,
        actor_token: delegation.actorToken ?? (await selfSigned(actor.clientId, actor.privateKey, undefined, ACTOR_TOKEN_TYP)),
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await selfSigned(holder.clientId, holder.privateKey),
        ...(delegation.requestDetails ? { request_details: JSON.stringify(delegation.requestDetails) } : {}),
      },
      delegation.dpop ?? (await proof(holder, parent)),
    );
  }

  /** Verifies a txn token against the registry's current key, on the test clock. */
  async function verify(token: string): Promise<TxnTokenClaims> {
    const jwk = (await app.get(KeyStore).jwks()).keys[0]!;
    return verifyTxnToken(token, { key: (await importJWK(jwk, 'ES256')) as CryptoKey, issuer: ISSUER, audience: 'writ.test', clock });
  }

  /** Expects exactly this status and OAuth error body, nothing more. */
  function expectError(res: Response, status: number, error: string, description: string): void {
    expect({ status: res.statusCode, body: res.json<unknown>() }).toEqual({ status, body: { error, error_description: description } });
  }

  return { start, restart, close, setClockOffset, clock, enrol, selfSigned, proof, post, approvedGrant, rootTokenForm, rootToken, delegate, verify, expectError };
}
