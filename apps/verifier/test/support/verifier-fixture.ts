import { createHash, randomUUID } from 'node:crypto';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { VerifyAnswer } from '@writ/contracts';
import { createDpopProof, type Envelope } from '@writ/core';
import { CompactSign, type CryptoKey, type JWK } from 'jose';
import { storages } from '../../../registry/test/support/databases.js';
import { type Agent, createTokenFixture, ISSUER } from '../../../registry/test/support/token-fixture.js';
import { REVOCATION_BUS, type RevocationBus } from '../../../registry/src/modules/revocations/revocation-bus.js';
import { loadVerifierConfig } from '../../src/config.js';
import { createVerifierServer, type VerifierServer } from '../../src/server.js';
import type { VerifierEventSource, VerifierStore, VerifierStoreAdmin } from '../../src/store/store.js';

/** Where the registry fixture's grants live: the flights service's API. */
export const API = 'https://flights.example/api';

/** A store under test: the embedded one, or Redis, with what the registry needs to reach it. */
export interface StoreUnderTest {
  name: string;
  /**
   * `registryEnv` empty: the registry hands its revocations to the store in process. `verifierEvents`:
   * where the registry reads decisions from (default: the store itself when `registryEnv` is empty).
   */
  create(): Promise<{ store: VerifierStore & VerifierStoreAdmin; registryEnv: Record<string, string>; verifierEvents?: VerifierEventSource; close(): Promise<void> }>;
}

/**
 * A real registry (embedded PGlite unless `storage` says otherwise, listening on loopback: the verifier fetches its JWKS and asks
 * it who a service is over HTTP) and verifiers on `storeUnderTest`, on the registry fixture's
 * clock. With the embedded store the registry's in-process revocations are handed to the store,
 * as `npm start` wires them; with Redis the registry writes them there itself.
 */
export function createVerifierFixture(
  storeUnderTest: StoreUnderTest,
  owners: readonly string[] = ['alice', 'bob'],
  storage: (typeof storages)[number] = storages[0]!,
  /** The person an agent of `owners` belongs to when not its own name: a hop stays with the grant's owner's agents (issue 16, finding 6). */
  ownerOf: Partial<Record<string, string>> = {},
) {
  let registryEnv: Record<string, string> = {};
  let events: VerifierEventSource | undefined;
  const fx = createTokenFixture(storage, {
    dataDirPrefix: 'writ-verifier-',
    owners,
    ownerOf,
    get env() {
      return registryEnv;
    },
    // Embedded: the registry drains the in-process store's queue, as when both share a process.
    get verifierEvents() {
      return events ?? (Object.keys(registryEnv).length === 0 ? (store as unknown as VerifierEventSource) : undefined);
    },
    // Without REDIS_URL the registry approves step-ups through the store's admin side (in process,
    // or the cluster, which the registry's own Redis client does not speak to); with it, in Redis.
    get verifierAdmin() {
      return Object.keys(registryEnv).length === 0 ? store : undefined;
    },
  });
  let app: NestFastifyApplication;
  let registryUrl: string;
  let store: VerifierStore & VerifierStoreAdmin;
  let closeStore: () => Promise<void>;
  let service: { id: string; credential: string };
  let agents: Record<string, Agent>;
  const verifiers: VerifierServer[] = [];
  let unsubscribe = (): void => undefined;

  async function start() {
    const created = await storeUnderTest.create();
    ({ store, registryEnv, verifierEvents: events } = created);
    closeStore = () => created.close();
    const started = await fx.start();
    ({ app, service, agents } = started);
    await app.listen({ host: '127.0.0.1', port: 0 });
    registryUrl = await app.getUrl();
    if (Object.keys(registryEnv).length === 0) {
      unsubscribe = app.get<RevocationBus>(REVOCATION_BUS).subscribe((event) => {
        void store.revoke({ kind: event.kind, value: event.value, grantIds: event.grantIds, expiresAtMs: event.expiresAt.getTime() });
      });
    }
    const verifier = await newVerifier();
    return { app, service, agents, store, verifier, dataDir: started.dataDir };
  }

  /** Another verifier process on the same store (replicas share only the store). */
  async function newVerifier(options: { store?: VerifierStore; fetch?: typeof fetch; env?: Record<string, string> } = {}): Promise<VerifierServer> {
    const config = loadVerifierConfig({ WRIT_ISSUER: ISSUER, WRIT_REGISTRY_URL: registryUrl, WRIT_TRUST_DOMAIN: 'writ.test', VERIFIER_PORT: '0', ...options.env });
    const server = await createVerifierServer({ config, store: options.store ?? store, clock: fx.clock, ...(options.fetch ? { fetch: options.fetch } : {}) });
    verifiers.push(server);
    return server;
  }

  async function close(): Promise<void> {
    unsubscribe();
    for (const server of verifiers) await server.close();
    await fx.close();
    await closeStore();
  }

  function basic(id = service.id, credential = service.credential): string {
    return `Basic ${Buffer.from(`${id}:${credential}`).toString('base64')}`;
  }

  /** A fresh DPoP proof by `agent` for `method url`, bound to `token`. */
  function proof(agent: Agent, token: string, url = `${API}/bookings`, method = 'POST'): Promise<string> {
    return createDpopProof({ privateKey: agent.privateKey, publicJwk: agent.publicJwk, htm: method, htu: url, accessToken: token, clock: fx.clock });
  }

  /** A compact JWS with any header and payload, signed with `key`: for proofs and tokens that break one rule. */
  async function handMade(header: Record<string, unknown>, payload: Record<string, unknown>, key: CryptoKey): Promise<string> {
    return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader(header as { alg: string }).sign(key);
  }

  /** The proof claims `proof` would make, for hand-made variants. */
  function proofClaims(token: string | undefined, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const ath = token === undefined ? undefined : createHash('sha256').update(token).digest('base64url');
    return { jti: randomUUID(), htm: 'POST', htu: `${API}/bookings`, iat: Math.floor(fx.clock.now() / 1000), ...(ath ? { ath } : {}), ...overrides };
  }

  /** Posts a verify request to `server` (the first verifier by default). */
  async function verify(server: VerifierServer, body: Record<string, unknown>, authorization: string | null = basic()) {
    const res = await server.app.inject({
      method: 'POST',
      url: '/v1/verify',
      headers: { 'content-type': 'application/json', ...(authorization === null ? {} : { authorization }) },
      payload: JSON.stringify(body),
    });
    return { status: res.statusCode, body: res.json<VerifyAnswer & Record<string, unknown>>(), headers: res.headers };
  }

  /** A grant of `agent` with `envelope`, approved, and a root token on it. */
  async function tokenFor(agent: Agent, envelope: Envelope = { max_uses: 100 }): Promise<{ grantId: string; token: string }> {
    const grantId = await fx.approvedGrant(agent, { envelope });
    return { grantId, token: await fx.rootToken(agent, grantId) };
  }

  return { fx, start, close, newVerifier, registry: () => app, registryUrl: () => registryUrl, store: () => store, hash: (token: string) => createHash('sha256').update(token).digest('base64url'), basic, proof, handMade, proofClaims, verify, tokenFor, publicJwkOf: (agent: Agent): JWK => agent.publicJwk };
}
