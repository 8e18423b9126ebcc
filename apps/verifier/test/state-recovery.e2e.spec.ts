import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createDpopProof, type Envelope } from '@writ/core';
import { decodeJwt } from 'jose';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Database } from '../../registry/src/infra/database.service.js';
import { REVOCATION_BUS, type RevocationBus } from '../../registry/src/modules/revocations/revocation-bus.js';
import { RevocationsService } from '../../registry/src/modules/revocations/revocations.service.js';
import { DatabaseEventJournal } from '../../registry/src/modules/verifier-state/event-journal.repository.js';
import { VerifierStateKeeper } from '../../registry/src/modules/verifier-state/verifier-state.keeper.js';
import type { TestDatabase } from '../../registry/test/support/databases.js';
import { type Agent, createTokenFixture, ISSUER } from '../../registry/test/support/token-fixture.js';
import { loadVerifierConfig } from '../src/config.js';
import { createVerifierServer, type VerifierServer } from '../src/server.js';
import { InProcessVerifierStore } from '../src/store/in-process-store.js';
import { RedisVerifierStore } from '../src/store/redis-store.js';
import type { VerifierStore, VerifierStoreAdmin } from '../src/store/store.js';
import { startRedisServer, type RedisServer } from './support/redis-cluster.js';

/**
 * Issue 16, findings 2 and 3 (ADR 0017): after the verifier's store loses its state (the embedded
 * stack restarts; Redis is flushed or restarts empty), every decision is the one it would have
 * been without the loss. Each scenario exhausts a budget, a use count and a rate, revokes a token
 * and spends a proof; then the store loses everything; then each of them is still refused, and no
 * grant has spent a cent more than its total.
 */

const API = 'https://flights.example/api';
const URL_BOOK = `${API}/bookings`;

/** A grant of `agent` with `envelope`, approved, and a root token on it. */
interface Held {
  grantId: string;
  token: string;
}

/** The registry on a database that outlives a restart, and verifiers on `store`. */
function createStack(kind: 'embedded' | 'redis') {
  const dataDir = mkdtempSync(join(tmpdir(), 'writ-recovery-db-'));
  // PGlite on disk, as `npm start` keeps it: it survives the restart.
  const storage = { name: 'embedded PGlite on disk', create: (): Promise<TestDatabase> => Promise.resolve({ name: 'pglite-disk', target: { pgliteDir: dataDir }, drop: () => Promise.resolve() }) };
  let store: VerifierStore & VerifierStoreAdmin;
  let redis: RedisServer | undefined;
  let env: Record<string, string> = {};
  let detach = (): void => undefined;
  const fx = createTokenFixture(storage, {
    dataDirPrefix: 'writ-recovery-',
    owners: ['alice'],
    get env() {
      return env;
    },
    get verifierEvents() {
      return kind === 'embedded' ? (store as InProcessVerifierStore) : undefined;
    },
    get verifierAdmin() {
      return kind === 'embedded' ? store : undefined;
    },
    // As `npm start` wires it: the embedded store's queue is a table, its lost state comes from
    // the registry, the registry's revocations reach it directly.
    beforeInit: ({ app, db }: { app: NestFastifyApplication; db: Database }) => {
      if (!(store instanceof InProcessVerifierStore)) return;
      detach = store.attach({ journal: new DatabaseEventJournal(db), grantState: app.get(VerifierStateKeeper).snapshot, revocations: app.get<RevocationBus>(REVOCATION_BUS) });
    },
  });
  let verifier: VerifierServer;
  let app: NestFastifyApplication;
  let registryUrl: string;
  let service: { id: string; credential: string };
  let alice: Agent;
  const prefix = `recovery-${Date.now()}:`;

  function newStore(): VerifierStore & VerifierStoreAdmin {
    // On Redis the verifier runs as a separate process would: without a state source, it asks the
    // registry on the restore channel and answers 503 meanwhile.
    return kind === 'embedded' ? new InProcessVerifierStore() : new RedisVerifierStore(redis!.url, { prefix, logger: { warn: () => undefined } });
  }

  async function listen(opened: NestFastifyApplication): Promise<void> {
    app = opened;
    await app.listen({ host: '127.0.0.1', port: 0 });
    registryUrl = await app.getUrl();
    const config = loadVerifierConfig({ WRIT_ISSUER: ISSUER, WRIT_REGISTRY_URL: registryUrl, WRIT_TRUST_DOMAIN: 'writ.test', VERIFIER_PORT: '0' });
    verifier = await createVerifierServer({ config, store, clock: fx.clock });
  }

  return {
    fx,
    async start() {
      if (kind === 'redis') {
        redis = await startRedisServer();
        env = { REDIS_URL: redis.url, WRIT_REDIS_PREFIX: prefix };
      }
      store = newStore();
      const started = await fx.start();
      ({ service } = started);
      alice = started.agents.alice;
      await listen(started.app);
    },
    /** The whole embedded stack stops and starts again on the same database: a fresh store. */
    async restart() {
      await verifier.close();
      detach();
      await store.close();
      store = newStore();
      const started = await fx.restart();
      await listen(started.app);
    },
    /** Redis loses every key (FLUSHALL); registry and verifier keep running. */
    async flushRedis() {
      const raw = new Redis(redis!.url);
      await raw.flushall();
      raw.disconnect();
    },
    /** Redis dies (SIGKILL) and starts again on its port with nothing (no persistence); registry and verifier reconnect. */
    async restartRedisEmpty() {
      const { port } = redis!;
      await redis!.kill();
      redis = await startRedisServer(port);
    },
    app: () => app,
    redisUrl: () => redis!.url,
    /** Revokes one token, as its person would. */
    revokeToken: (jti: string) => app.get(RevocationsService).revoke('token', jti, 'alice'),
    async tokenFor(envelope: Envelope): Promise<Held> {
      const grantId = await fx.approvedGrant(alice, { envelope });
      return { grantId, token: await fx.rootToken(alice, grantId) };
    },
    proof(token: string): Promise<string> {
      return createDpopProof({ privateKey: alice.privateKey, publicJwk: alice.publicJwk, htm: 'POST', htu: URL_BOOK, accessToken: token, clock: fx.clock });
    },
    async verify(token: string, dpop: string, extra: Record<string, unknown> = {}) {
      const res = await verifier.app.inject({
        method: 'POST',
        url: '/v1/verify',
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${service.id}:${service.credential}`).toString('base64')}` },
        payload: JSON.stringify({ token, dpop, method: 'POST', url: URL_BOOK, action: 'book', ...extra }),
      });
      return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
    },
    async close() {
      await verifier?.close();
      detach();
      await fx.close();
      await store?.close();
      await redis?.kill();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

type Stack = ReturnType<typeof createStack>;

/** What each scenario sets up before the loss, and checks after it. */
interface Exhausted {
  money: Held;
  uses: Held;
  rate: Held;
  revoked: Held;
  replay: { held: Held; dpop: string };
  /** EUR allowed on `money` so far. */
  spent: number;
}

async function exhaust(stack: Stack): Promise<Exhausted> {
  const money = await stack.tokenFor({ amount: { currency: 'EUR', total_max: 100 }, max_uses: 50 });
  let spent = 0;
  for (const amount of [60, 40]) {
    expect((await stack.verify(money.token, await stack.proof(money.token), { amount, currency: 'EUR' })).body).toMatchObject({ allow: true });
    spent += amount;
  }
  expect((await stack.verify(money.token, await stack.proof(money.token), { amount: 0.01, currency: 'EUR' })).body).toMatchObject({ allow: false, error: 'budget_exceeded' });

  const uses = await stack.tokenFor({ max_uses: 2 });
  for (let i = 0; i < 2; i++) expect((await stack.verify(uses.token, await stack.proof(uses.token))).body).toMatchObject({ allow: true });
  expect((await stack.verify(uses.token, await stack.proof(uses.token))).body).toMatchObject({ allow: false, error: 'budget_exceeded', error_description: 'max_uses reached' });

  const rate = await stack.tokenFor({ rate: { limit: 2, window_s: 3600 }, max_uses: 100 });
  for (let i = 0; i < 2; i++) expect((await stack.verify(rate.token, await stack.proof(rate.token))).body).toMatchObject({ allow: true });
  expect((await stack.verify(rate.token, await stack.proof(rate.token))).body).toMatchObject({ allow: false, error: 'rate_limited' });

  const revoked = await stack.tokenFor({ max_uses: 100 });
  expect((await stack.verify(revoked.token, await stack.proof(revoked.token))).body).toMatchObject({ allow: true });
  await stack.revokeToken(decodeJwt(revoked.token).jti!);
  await vi.waitFor(async () => expect((await stack.verify(revoked.token, await stack.proof(revoked.token))).body).toMatchObject({ allow: false, error: 'revoked' }), { timeout: 2_000, interval: 20 });

  const held = await stack.tokenFor({ max_uses: 100 });
  const dpop = await stack.proof(held.token);
  expect((await stack.verify(held.token, dpop)).body).toMatchObject({ allow: true });
  expect((await stack.verify(held.token, dpop)).body).toMatchObject({ allow: false, error: 'invalid_dpop_proof', error_description: 'DPoP proof jti was already used' });
  return { money, uses, rate, revoked, replay: { held, dpop }, spent };
}

/**
 * The answer once the grant's state is back: while it is being rebuilt the verifier answers 503
 * (a deny); each of those is checked, never an allow, and the request is sent again (a fresh proof
 * each time, or the same `dpop` when it is the proof under test: a 503 does not spend it).
 */
async function settled(stack: Stack, token: string, dpop: string | null, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { status, body } = await stack.verify(token, dpop ?? (await stack.proof(token)), extra);
    if (status !== 503) return body;
    // Redis reconnecting, then the grant's state being rebuilt: both deny.
    expect(body).toMatchObject({ allow: false, error: 'temporarily_unavailable' });
    expect(["the grant's verifier state is being rebuilt: deny, and retry in a second", 'the verifier cannot reach its store: deny']).toContain(body.error_description);
    if (Date.now() > deadline) throw new Error('the state was never rebuilt');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** After the loss: every refusal stands, and the money grant never passes its total. */
async function expectStillRefused(stack: Stack, before: Exhausted): Promise<void> {
  const { money, uses, rate, revoked, replay } = before;
  expect(await settled(stack, money.token, null, { amount: 0.01, currency: 'EUR' })).toMatchObject({ allow: false, error: 'budget_exceeded' });
  expect(await settled(stack, uses.token, null)).toMatchObject({ allow: false, error: 'budget_exceeded', error_description: 'max_uses reached' });
  expect(await settled(stack, rate.token, null)).toMatchObject({ allow: false, error: 'rate_limited' });
  expect(await settled(stack, revoked.token, null)).toMatchObject({ allow: false, error: 'revoked', error_description: 'the token was revoked' });
  expect(await settled(stack, replay.held.token, replay.dpop)).toMatchObject({ allow: false, error: 'invalid_dpop_proof', error_description: 'DPoP proof jti was already used' });
  // What was not exhausted still works: the grant with uses left allows a fresh request.
  expect(await settled(stack, replay.held.token, null)).toMatchObject({ allow: true });
  let spent = before.spent;
  for (const amount of [5, 0.01]) {
    const answer = await settled(stack, money.token, null, { amount, currency: 'EUR' });
    if (answer.allow === true) spent += amount;
  }
  expect(spent).toBeLessThanOrEqual(100);
}

describe('the embedded stack restarts (issue 16, finding 2)', () => {
  const stack = createStack('embedded');
  beforeAll(() => stack.start(), 60_000);
  afterAll(() => stack.close());

  it('refuses after the restart everything it refused before: an exhausted budget, uses and rate, a revoked token, a spent proof', async () => {
    const before = await exhaust(stack);
    await stack.restart();
    await expectStillRefused(stack, before);
  });
});

describe('Redis loses its data (issue 16, finding 3)', () => {
  const stack = createStack('redis');
  beforeAll(() => stack.start(), 60_000);
  afterAll(() => stack.close());

  it('refuses after a FLUSHALL everything it refused before, answering 503 (never allow) until the registry has rebuilt the state', async () => {
    const before = await exhaust(stack);
    // The decisions reached the audit chain (the durable record); what a loss costs before that
    // is docs/verifier.md "What is durable where".
    await waitForEmptyQueue(stack);
    await stack.flushRedis();
    // Right after the loss no grant has state: each decision waits for the registry to rebuild it
    // (asked on the restore channel, and the epoch check) or answers 503; never from zero.
    await expectStillRefused(stack, before);
  });

  it('refuses after Redis restarts empty (no persistence) everything it refused before', async () => {
    const before = await exhaust(stack);
    await waitForEmptyQueue(stack);
    await stack.restartRedisEmpty();
    await expectStillRefused(stack, before);
  });
});

/** Waits until the registry has moved every queued decision into the audit chain. */
async function waitForEmptyQueue(stack: Stack): Promise<void> {
  await vi.waitFor(
    async () => {
      const raw = new Redis(stack.redisUrl());
      try {
        const keys = await raw.keys('*:events');
        const lengths = await Promise.all(keys.map((key) => raw.xlen(key)));
        expect(lengths.reduce((a, b) => a + b, 0)).toBe(0);
      } finally {
        raw.disconnect();
      }
    },
    { timeout: 10_000, interval: 50 },
  );
}
