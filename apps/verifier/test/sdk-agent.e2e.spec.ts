import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AccessDenied, ApprovalRequired, type Clock, InsufficientScope, InvalidDpopProof, RateLimited } from '@writ/core';
import { writVerifier } from '@writ/sdk';
import { capability, envelope, GrantDenied, StepUpDenied, type TransactionToken, writDenialOf, WritAgent } from '@writ/sdk/agent';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentsService } from '../../registry/src/modules/agents/agents.service.js';
import { StepUpsService } from '../../registry/src/modules/step-ups/step-ups.service.js';
import { e2eStorage } from '../../registry/test/support/databases.js';
import { approveGrant, denyGrant, humanWithPasskey } from '../../registry/test/support/humans.js';
import { createTokenFixture, ISSUER } from '../../registry/test/support/token-fixture.js';
import { e2eStore } from './support/stores.js';
import { createVerifierFixture } from './support/verifier-fixture.js';

/**
 * The agent side of the SDK end to end: agents enroll with a token a human minted, ask for a
 * grant, wait while the human approves it with a passkey, exchange it, and call a service
 * protected by the SDK middleware through the real verifier, then delegate to a second agent.
 * The agents reach the registry by its issuer URL and the service by its public URL; a routing
 * `fetch` sends those to the loopback ports the servers listen on.
 */

const SERVICE = 'https://flights.example';
const FLIGHTS = `${SERVICE}/api/flights`;
const BOOKINGS = `${SERVICE}/api/bookings`;
const PAYMENTS = `${SERVICE}/api/payments`;
const flights = capability('flight_booking').at(`${SERVICE}/api`).actions('read', 'book');

/** One request an agent sent, by its public URL; `status` is 0 until answered. */
interface Sent {
  method: string;
  url: URL;
  headers: Headers;
  status: number;
}

/** A `fetch` that sends public origins to the loopback servers standing behind them, recording every exchange. */
function router(): { fetch: typeof fetch; routes: Map<string, string>; sent: Sent[] } {
  const routes = new Map<string, string>();
  const sent: Sent[] = [];
  const routed: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const target = routes.get(url.origin);
    if (target === undefined) throw new TypeError(`no route to ${url.origin}`);
    // Recorded when sent (a long-poll is seen while in flight); the status once answered.
    const entry: Sent = { method: init?.method ?? 'GET', url, headers: new Headers(init?.headers), status: 0 };
    sent.push(entry);
    const response = await fetch(`${target}${url.pathname}${url.search}`, init);
    entry.status = response.status;
    return response;
  };
  return { fetch: routed, routes, sent };
}

/** The flights service, protected by the SDK middleware in front of the verifier at `verifierUrl`. */
async function flightsService(verifierUrl: string, service: { id: string; credential: string }): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify();
  await app.register(writVerifier, { verifierUrl, serviceId: service.id, credential: service.credential, publicUrl: SERVICE });
  const answer = (request: { writ: { sub: string; act: { sub: string }; jti: string } | null }) => ({ for: request.writ!.sub, by: request.writ!.act.sub, jti: request.writ!.jti });
  app.get('/api/flights', { preHandler: app.writ.require({ action: 'read' }) }, answer);
  app.post('/api/bookings', { preHandler: app.writ.require({ action: 'book' }) }, answer);
  app.post<{ Body: { amount: number } }>(
    '/api/payments',
    { preHandler: app.writ.require({ action: 'book', amount: (request) => ({ amount: (request.body as { amount: number }).amount, currency: 'EUR' }) }) },
    answer,
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

const proofClaims = (headers: Headers): Record<string, unknown> => JSON.parse(Buffer.from(headers.get('dpop')!.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;

/** Resolves once `sent` holds a request matching `match` (the agent's long-poll is in flight). */
async function until(sent: Sent[], match: (s: Sent) => boolean): Promise<void> {
  for (let i = 0; i < 500 && !sent.some(match); i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(sent.some(match)).toBe(true);
}

/** The registry's database: PostgreSQL when DATABASE_URL is set, embedded PGlite otherwise. */
const storage = e2eStorage;

// The agent does not care which store the verifier runs on: Redis when set, in process otherwise.
describe.each([e2eStore])(`an SDK agent against the real registry (${storage.name}) and verifier ($name store)`, (store) => {
  const vf = createVerifierFixture(store, ['alice'], storage);
  const net = router();
  const clock: Clock = { now: () => vf.fx.clock.now() };
  let registry: NestFastifyApplication;
  let service: { id: string; credential: string };
  let provider: { app: FastifyInstance; url: string };
  let dir: string;
  let planner: WritAgent;
  let booker: WritAgent;

  beforeAll(async () => {
    const started = await vf.start();
    registry = started.app;
    service = started.service;
    provider = await flightsService(await started.verifier.listen(), service);
    net.routes.set(new URL(ISSUER).origin, vf.registryUrl());
    net.routes.set(SERVICE, provider.url);
    dir = mkdtempSync(join(tmpdir(), 'writ-sdk-agent-'));
  });
  afterEach(() => {
    vf.fx.setClockOffset(0);
    net.routes.set(SERVICE, provider.url);
  });
  afterAll(async () => {
    await provider.app.close();
    await vf.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Enrolls an agent of alice with a fresh enrollment token, as the approval UI mints them. */
  async function enroll(name: string): Promise<WritAgent> {
    const { token } = await registry.get(AgentsService).mintInitialAccessToken('alice');
    return WritAgent.enroll({ registryUrl: ISSUER, enrollmentToken: token, name, keyFile: join(dir, `${name}.json`), fetch: net.fetch, clock });
  }

  /** Requests a grant, has alice approve it with her passkey while the agent waits, and answers its id. */
  async function approvedGrant(agent: WritAgent, limits = envelope().maxUses(50), delegation = { max_depth: 1 }): Promise<string> {
    const { grant_id } = await agent.requestGrant({ service: SERVICE, authorization_details: [flights], envelope: limits, purpose: 'Book my trip to Lisbon', duration_s: 3600, delegation });
    const waiting = agent.waitForGrant(grant_id, { timeoutMs: 20_000 });
    await until(net.sent, (s) => s.url.pathname === `/grants/${grant_id}` && s.url.searchParams.has('wait'));
    await approveGrant(registry, grant_id, 'alice');
    await waiting;
    return grant_id;
  }

  it('enrolls with a minted enrollment token and loads again from its key file', async () => {
    planner = await enroll('planner');
    expect(planner.clientId).toMatch(/^agt_/);
    const file = JSON.parse(readFileSync(join(dir, 'planner.json'), 'utf8')) as { writ: { client_id: string; registry: string } };
    expect(file.writ).toMatchObject({ client_id: planner.clientId, registry: ISSUER });
    const restarted = await WritAgent.load({ keyFile: join(dir, 'planner.json'), fetch: net.fetch, clock });
    expect(restarted.clientId).toBe(planner.clientId);
  });

  it('waits for the grant with the long-poll while the human approves it with a passkey, without polling', async () => {
    const { grant_id, status } = await planner.requestGrant({ service: SERVICE, authorization_details: [flights], envelope: envelope().maxUses(50), purpose: 'Book my trip to Lisbon', duration_s: 3600 });
    expect(status).toBe('pending');
    const waiting = planner.waitForGrant(grant_id, { timeoutMs: 20_000 });
    await until(net.sent, (s) => s.url.pathname === `/grants/${grant_id}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await approveGrant(registry, grant_id, 'alice');
    const grant = await waiting;
    expect(grant).toMatchObject({ grant_id, status: 'approved', authorization_details: [flights.build()] });
    // One long-poll, answered when the human decided: nothing in between.
    expect(net.sent.filter((s) => s.url.pathname === `/grants/${grant_id}`).map((s) => s.url.searchParams.get('wait'))).toEqual(['20']);
  });

  it('exchanges the grant for a root token and calls the service, which the verifier allows', async () => {
    const grantId = await approvedGrant(planner);
    const token = await planner.token(grantId);
    expect(token.claims).toMatchObject({ sub: 'alice', act: { sub: planner.clientId }, cnf: { jkt: planner.key.jkt }, tctx: { grant_id: grantId, depth: 0 } });
    const response = await planner.fetch(BOOKINGS, { method: 'POST' }, { token });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ for: 'alice', by: planner.clientId, jti: token.claims.jti });
  });

  it('cannot have its request replayed: the same proof is refused the second time', async () => {
    const token = await planner.token(await approvedGrant(planner));
    expect((await planner.fetch(FLIGHTS, {}, { token })).status).toBe(200);
    const captured = net.sent.at(-1)!;
    const replay = await fetch(`${provider.url}/api/flights`, { headers: { authorization: captured.headers.get('authorization')!, dpop: captured.headers.get('dpop')! } });
    expect(replay.status).toBe(401);
    const denial = await writDenialOf(replay);
    expect(denial).toBeInstanceOf(InvalidDpopProof);
    expect(denial?.description).toBe('DPoP proof jti was already used');
  });

  it('renews the root token shortly before it expires, so the next call still goes through', async () => {
    const token = await planner.token(await approvedGrant(planner));
    const exchanges = (): number => net.sent.filter((s) => s.url.pathname === '/oauth/token').length;
    const before = exchanges();
    vf.fx.setClockOffset(285_000);
    const response = await planner.fetch(FLIGHTS, {}, { token });
    expect(response.status).toBe(200);
    const { jti } = (await response.json()) as { jti: string };
    expect(jti).not.toBe(token.claims.jti);
    expect(exchanges()).toBe(before + 1);
  });

  it('delegates a narrower capability: the delegatee reads, and is refused booking with InsufficientScope', async () => {
    booker = await enroll('booker');
    const root = await planner.token(await approvedGrant(planner));
    const child = await planner.delegate(root, { to: booker.clientId, actorToken: await booker.actorToken(), authorization_details: [flights.actions('read')], envelope: { max_uses: 5 } });
    expect(child.claims).toMatchObject({ txn: root.claims.txn, act: { sub: booker.clientId, act: { sub: planner.clientId } }, cnf: { jkt: booker.key.jkt }, tctx: { depth: 1, parent: root.claims.jti } });

    const read = await booker.fetch(FLIGHTS, {}, { token: child.value });
    expect(await read.json()).toEqual({ for: 'alice', by: booker.clientId, jti: child.claims.jti });
    const refused = await booker.fetch(BOOKINGS, { method: 'POST' }, { token: child.value }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InsufficientScope);
    expect(refused).toMatchObject({ code: 'insufficient_scope', status: 403 });
    // The token is bound to the booker's key: even the planner that obtained it cannot use it.
    await expect(planner.fetch(FLIGHTS, {}, { token: child })).rejects.toSatisfy(
      (e) => e instanceof InvalidDpopProof && e.description === 'DPoP proof key does not match the token cnf.jkt',
    );
  });

  it('lets a delegatee renew through a token source that asks the delegator again', async () => {
    const root = await planner.token(await approvedGrant(planner));
    let asked = 0;
    const source = async (): Promise<TransactionToken> => {
      asked += 1;
      return planner.delegate(root, { to: booker.clientId, actorToken: await booker.actorToken(), authorization_details: [flights.actions('read')] });
    };
    expect((await booker.fetch(FLIGHTS, {}, { tokenSource: source })).status).toBe(200);
    expect((await booker.fetch(FLIGHTS, {}, { tokenSource: source })).status).toBe(200);
    expect(asked).toBe(1);
    vf.fx.setClockOffset(285_000);
    expect((await booker.fetch(FLIGHTS, {}, { tokenSource: source })).status).toBe(200);
    expect(asked).toBe(2);
  });

  it('ends the wait with GrantDenied when the human denies the grant', async () => {
    const { grant_id } = await planner.requestGrant({ service: SERVICE, authorization_details: [flights], purpose: 'Book a first-class seat', duration_s: 600 });
    // The handler is attached at once: the rejection may come while denyGrant is still finishing.
    const waiting = planner.waitForGrant(grant_id, { timeoutMs: 20_000 }).catch((e: unknown) => e);
    await until(net.sent, (s) => s.url.pathname === `/grants/${grant_id}`);
    await denyGrant(registry, grant_id, 'alice');
    const error = await waiting;
    expect(error).toBeInstanceOf(GrantDenied);
    expect(error).toBeInstanceOf(AccessDenied);
    expect(error).toMatchObject({ code: 'access_denied', grant: { grant_id, status: 'denied' } });
  });

  /** Alice decides a step-up with her passkey, once the registry has learnt of it from the verifier's event. */
  async function decideStepUp(stepUpId: string, decision: 'approve' | 'deny'): Promise<void> {
    const stepUps = registry.get(StepUpsService);
    await expect.poll(() => stepUps.getForHuman('alice', stepUpId), { timeout: 15_000, interval: 50 }).not.toBeNull();
    const passkey = await humanWithPasskey(registry, 'alice');
    const { ceremony, document, options } = await stepUps.beginDecision('alice', stepUpId, { decision });
    await stepUps.finishDecision('alice', stepUpId, { ceremony, document, response: passkey.assert(options) });
  }

  /** A payment of `amount` EUR by `agent`. */
  const pay = (agent: WritAgent, token: TransactionToken, amount: number) =>
    agent.fetch(PAYMENTS, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount }) }, { token });

  it('throws ApprovalRequired above approval_above, waits while the human approves the step-up with a passkey, and the retried payment passes once', async () => {
    const token = await planner.token(await approvedGrant(planner, envelope().amount('EUR', { per_request_max: 500, approval_above: 100 })));
    expect((await pay(planner, token, 80)).status).toBe(200);
    const refused = await pay(planner, token, 150).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ApprovalRequired);
    const stepUpId = (refused as ApprovalRequired).stepUpId!;
    expect(stepUpId).toMatch(/^su_/);
    // The same request again, before the human decides: the same step-up.
    await expect(pay(planner, token, 150)).rejects.toMatchObject({ code: 'approval_required', stepUpId });

    const waiting = planner.waitForStepUp(stepUpId, { timeoutMs: 20_000 });
    await until(net.sent, (s) => s.url.pathname === `/step-ups/${stepUpId}`);
    await decideStepUp(stepUpId, 'approve');
    expect(await waiting).toMatchObject({ step_up_id: stepUpId, status: 'approved', amount: 150, currency: 'EUR', txn: token.claims.txn });

    expect((await pay(planner, token, 150)).status).toBe(200);
    // Approved for one request only: the next one asks again.
    await expect(pay(planner, token, 150)).rejects.toThrow(ApprovalRequired);
  });

  it('ends the step-up wait with StepUpDenied when the human refuses the payment', async () => {
    const token = await planner.token(await approvedGrant(planner, envelope().amount('EUR', { approval_above: 100 })));
    const { stepUpId } = (await pay(planner, token, 300).catch((e: unknown) => e)) as ApprovalRequired;
    const waiting = planner.waitForStepUp(stepUpId!, { timeoutMs: 20_000 }).catch((e: unknown) => e);
    await decideStepUp(stepUpId!, 'deny');
    const error = await waiting;
    expect(error).toBeInstanceOf(StepUpDenied);
    expect(error).toMatchObject({ code: 'access_denied', stepUp: { step_up_id: stepUpId, status: 'denied' } });
  });

  it('throws RateLimited with the seconds to wait', async () => {
    const token = await planner.token(await approvedGrant(planner, envelope().rate(1, 60)));
    expect((await planner.fetch(FLIGHTS, {}, { token })).status).toBe(200);
    const error = await planner.fetch(FLIGHTS, {}, { token }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimited);
    expect((error as RateLimited).retryAfter).toBeGreaterThan(0);
    expect((error as RateLimited).retryAfter).toBeLessThanOrEqual(60);
  });

  it('retries once with the nonce a verifier that requires nonces hands out, then sends it from the start', async () => {
    const nonceVerifier = await vf.newVerifier({ env: { WRIT_VERIFIER_DPOP_NONCE_SECRET: randomBytes(32).toString('base64url') } });
    const strict = await flightsService(await nonceVerifier.listen(), service);
    net.routes.set(SERVICE, strict.url);
    try {
      const agent = await enroll('nonce-agent');
      const token = await agent.token(await approvedGrant(agent));
      const from = net.sent.length;
      const calls = (): Sent[] => net.sent.slice(from).filter((s) => s.url.href === FLIGHTS);
      expect((await agent.fetch(FLIGHTS, {}, { token })).status).toBe(200);
      const [refused, retried] = calls();
      expect(refused!.status).toBe(401);
      expect(proofClaims(refused!.headers).nonce).toBeUndefined();
      expect(retried!.status).toBe(200);
      expect(proofClaims(retried!.headers).nonce).toEqual(expect.any(String));
      expect((await agent.fetch(FLIGHTS, {}, { token })).status).toBe(200);
      expect(calls()).toHaveLength(3);
    } finally {
      await strict.app.close();
    }
  });
});

describe.each([e2eStorage])('an SDK agent at a registry that requires DPoP nonces ($name)', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-sdk-nonce-', owners: [], env: { WRIT_DPOP_NONCE: 'required' } });
  const net = router();
  let registry: NestFastifyApplication;
  let dir: string;

  beforeAll(async () => {
    ({ app: registry } = await fx.start());
    await registry.listen({ host: '127.0.0.1', port: 0 });
    net.routes.set(new URL(ISSUER).origin, await registry.getUrl());
    dir = mkdtempSync(join(tmpdir(), 'writ-sdk-nonce-'));
  });
  afterAll(async () => {
    await fx.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function enroll(name: string): Promise<WritAgent> {
    const { token } = await registry.get(AgentsService).mintInitialAccessToken('alice');
    return WritAgent.enroll({ registryUrl: ISSUER, enrollmentToken: token, name, keyFile: join(dir, `${name}.json`), fetch: net.fetch, clock: fx.clock });
  }

  it('retries the token exchange once with the nonce, then sends the current nonce with every exchange and delegation', async () => {
    const planner = await enroll('planner');
    const booker = await enroll('booker');
    const { grant_id } = await planner.requestGrant({ service: SERVICE, authorization_details: [flights], envelope: { max_uses: 5 }, purpose: 'Book my trip', duration_s: 3600, delegation: { max_depth: 1 } });
    await approveGrant(registry, grant_id, 'alice');
    const exchanges = (): Sent[] => net.sent.filter((s) => s.url.pathname === '/oauth/token');

    const root = await planner.token(grant_id);
    const [refused, retried] = exchanges();
    expect(refused!.status).toBe(400);
    expect(proofClaims(refused!.headers).nonce).toBeUndefined();
    expect(retried!.status).toBe(200);
    expect(proofClaims(retried!.headers).nonce).toEqual(expect.any(String));

    await planner.token(grant_id);
    const child = await planner.delegate(root, { to: booker.clientId, actorToken: await booker.actorToken(), authorization_details: [flights.actions('read')] });
    expect(child.claims.act).toEqual({ sub: booker.clientId, act: { sub: planner.clientId } });
    expect(exchanges().map((s) => s.status)).toEqual([400, 200, 200, 200]);
  });
});
