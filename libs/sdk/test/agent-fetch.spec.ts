import {
  ApprovalRequired,
  BudgetExceeded,
  type Clock,
  InsufficientScope,
  InvalidDpopProof,
  InvalidRequest,
  InvalidToken,
  type OAuthError,
  OutsideTimeWindow,
  RateLimited,
  Revoked,
  TemporarilyUnavailable,
  UseDpopNonce,
  verifyDpopProof,
} from '@writ/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentKey, type TransactionToken, writDenialOf, WritAgent } from '../src/agent/index.js';
import { allow, routeFlights, StandInRegistry, StandInService } from './support/stand-in.js';

let offsetMs = 0;
const clock: Clock = { now: () => Date.now() + offsetMs };
let registry: StandInRegistry;
let service: StandInService;
const FLIGHTS = 'https://flights.example/api/flights';
const BOOKINGS = 'https://flights.example/api/bookings';

beforeAll(async () => {
  registry = await new StandInRegistry(clock).start();
  service = await new StandInService().start();
});
afterAll(async () => {
  await Promise.all([registry.close(), service.close()]);
});
afterEach(() => {
  registry.received.length = 0;
  registry.tokenLifeS = 300;
  service.received.length = 0;
  service.verified.length = 0;
  service.answers = [allow()];
  offsetMs = 0;
});

function agentOf(clientId = 'agt_1'): WritAgent {
  const key = AgentKey.generate();
  registry.agents.set(clientId, key.publicJwk);
  return new WritAgent({ key, clientId, registryUrl: registry.url, clock, fetch: routeFlights(service) });
}

/** What the service forwarded to the verifier for each request: the agent's token, proof, method and URL. */
const verified = (): { token: string; dpop: string; method: string; url: string }[] => service.verified.map((r) => r.body as { token: string; dpop: string; method: string; url: string });
const proofClaims = (proof: string): Record<string, unknown> => JSON.parse(Buffer.from(proof.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;

/** The verifier's denial answer (docs/verifier.md), which the SDK middleware turns into the response. */
function deny(error: string, status: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { allow: false, error, error_description: `${error} for this request`, status, ...extra };
}

describe('agent.fetch', () => {
  it('sends the token with the DPoP scheme and a fresh proof bound to method, URL and token', async () => {
    const agent = agentOf();
    const token = await agent.token('grt_1');
    const response = await agent.fetch(`${FLIGHTS}?from=LIS#top`, {}, { token });
    expect(response.status).toBe(200);
    await agent.fetch(`${FLIGHTS}?from=LIS`, {}, { token });

    const [first, second] = verified();
    expect(service.received[0]!.headers.authorization).toBe(`DPoP ${token.value}`);
    expect(first).toMatchObject({ token: token.value, method: 'GET', url: 'https://flights.example/api/flights?from=LIS' });
    const proof = await verifyDpopProof(first!.dpop, { htm: 'GET', htu: FLIGHTS, accessToken: token.value, expectedJkt: agent.key.jkt, clock });
    expect(proof.htu).toBe(FLIGHTS);
    expect(proofClaims(second!.dpop).jti).not.toBe(proof.jti);
  });

  it('signs the method as fetch sends it', async () => {
    const agent = agentOf();
    const token = await agent.token('grt_1');
    await agent.fetch(BOOKINGS, { method: 'post', body: '{}' }, { token });
    expect(verified()[0]!.method).toBe('POST');
    expect(proofClaims(verified()[0]!.dpop).htm).toBe('POST');
  });

  it('retries exactly once with the nonce a service asks for (RFC 9449 §9), resending the body, then sends it from the start', async () => {
    service.answers = [deny('use_dpop_nonce', 401, { www_authenticate: 'DPoP error="use_dpop_nonce", error_description="DPoP proof nonce is required"', dpop_nonce: 'rs-nonce-1' }), allow()];
    const agent = agentOf();
    const token = await agent.token('grt_1');
    const response = await agent.fetch(BOOKINGS, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"flight":"TP1351"}' }, { token });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ body: '{"flight":"TP1351"}' });
    expect(service.received.map((r) => r.body)).toEqual(['{"flight":"TP1351"}', '{"flight":"TP1351"}']);
    const [first, retry] = verified();
    expect(proofClaims(first!.dpop).nonce).toBeUndefined();
    expect(proofClaims(retry!.dpop).nonce).toBe('rs-nonce-1');

    await agent.fetch(FLIGHTS, {}, { token });
    expect(verified()).toHaveLength(3);
    expect(proofClaims(verified()[2]!.dpop).nonce).toBe('rs-nonce-1');
  });

  it('resends a stream body on the nonce retry', async () => {
    service.answers = [deny('use_dpop_nonce', 401, { dpop_nonce: 'rs-nonce-2' }), allow()];
    const agent = agentOf();
    const token = await agent.token('grt_1');
    const body = new Blob(['streamed ', 'booking']).stream();
    const response = await agent.fetch(BOOKINGS, { method: 'POST', body, duplex: 'half' } as RequestInit, { token });
    expect(response.status).toBe(200);
    expect(service.received.map((r) => r.body)).toEqual(['streamed booking', 'streamed booking']);
  });

  it('throws UseDpopNonce when the service asks again after the retry: two requests, never more', async () => {
    service.answers = [deny('use_dpop_nonce', 401, { dpop_nonce: 'n1' }), deny('use_dpop_nonce', 401, { dpop_nonce: 'n2' })];
    const agent = agentOf();
    const error = await agent.fetch(FLIGHTS, {}, { token: await agent.token('grt_1') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UseDpopNonce);
    expect(error).toMatchObject({ nonce: 'n2' });
    expect(service.received).toHaveLength(2);
  });

  const denials: [string, Record<string, unknown>, new (...args: never[]) => OAuthError, Record<string, unknown>][] = [
    ['insufficient_scope', deny('insufficient_scope', 403), InsufficientScope, { status: 403 }],
    ['approval_required', deny('approval_required', 403, { step_up_id: 'su_42' }), ApprovalRequired, { stepUpId: 'su_42' }],
    ['rate_limited', deny('rate_limited', 429, { retry_after: 11.2 }), RateLimited, { retryAfter: 12 }],
    ['revoked (challenged as invalid_token)', deny('revoked', 401), Revoked, { code: 'revoked' }],
    ['invalid_token', deny('invalid_token', 401), InvalidToken, { description: 'invalid_token for this request' }],
    ['invalid_dpop_proof', deny('invalid_dpop_proof', 401), InvalidDpopProof, {}],
    ['budget_exceeded', deny('budget_exceeded', 403), BudgetExceeded, {}],
    ['outside_time_window', deny('outside_time_window', 403), OutsideTimeWindow, {}],
    ['invalid_request (with its DPoP challenge)', deny('invalid_request', 400), InvalidRequest, {}],
    ['a verifier that cannot decide (503)', { nonsense: true }, TemporarilyUnavailable, { code: 'temporarily_unavailable' }],
  ];

  it.each(denials)('throws the libs/core error for a %s denial by the SDK middleware', async (_name, answer, type, fields) => {
    service.answers = [answer];
    const agent = agentOf();
    const error = await agent.fetch(BOOKINGS, { method: 'POST', body: '{}' }, { token: await agent.token('grt_1') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(type);
    expect(error).toMatchObject(fields);
  });

  it("returns the service's own errors and redirects as they are", async () => {
    const agent = agentOf();
    const token = await agent.token('grt_1');
    const own = await agent.fetch('https://flights.example/api/own-error', { method: 'POST', body: 'x' }, { token });
    expect(own.status).toBe(400);
    expect(await own.json()).toEqual({ error: 'invalid_request', error_description: 'the flight number is missing' });
    expect((await agent.fetch('https://flights.example/api/nowhere', {}, { token })).status).toBe(404);
    const moved = await agent.fetch('https://flights.example/api/moved', {}, { token });
    expect(moved.status).toBe(302);
    expect(service.received.filter((r) => r.path === '/api/flights')).toHaveLength(0);
  });

  it('returns a denial as the response with throwOnDenial: false, readable with writDenialOf', async () => {
    service.answers = [deny('approval_required', 403, { step_up_id: 'su_7' })];
    const agent = agentOf();
    const response = await agent.fetch(BOOKINGS, { method: 'POST', body: '{}' }, { token: await agent.token('grt_1'), throwOnDenial: false });
    expect(response.status).toBe(403);
    const denial = await writDenialOf(response);
    expect(denial).toBeInstanceOf(ApprovalRequired);
    expect((denial as ApprovalRequired).stepUpId).toBe('su_7');
    expect(await response.json()).toEqual({ error: 'approval_required', error_description: 'approval_required for this request', step_up_id: 'su_7' });
    expect(await writDenialOf(new Response('{}', { status: 200 }))).toBeUndefined();
  });

  it("sends a token bound to another agent's key with this agent's proof, and throws the service's refusal", async () => {
    const token = await agentOf('agt_1').token('grt_1');
    const thief = agentOf('agt_2');
    service.answers = [deny('invalid_dpop_proof', 401, { error_description: 'DPoP proof key does not match the token cnf.jkt' })];
    await expect(thief.fetch(FLIGHTS, {}, { token })).rejects.toSatisfy((e) => e instanceof InvalidDpopProof && e.description === 'DPoP proof key does not match the token cnf.jkt');
    const [sent] = verified();
    expect(sent!.token).toBe(token.value);
    await expect(verifyDpopProof(sent!.dpop, { htm: 'GET', htu: FLIGHTS, accessToken: token.value, expectedJkt: token.claims.cnf.jkt, clock })).rejects.toThrow(/does not match the token cnf.jkt/);
  });

  it('refuses a value that is not a transaction token without sending anything', async () => {
    await expect(agentOf('agt_1').fetch(FLIGHTS, {}, { token: 'not.a.token' })).rejects.toThrow(/not a transaction token/);
    expect(service.received).toHaveLength(0);
  });
});

describe('token renewal', () => {
  const exchanges = (): number => registry.requests('/oauth/token').length;

  it('renews a root token shortly before it expires, by exchanging again, so a long-running agent keeps working', async () => {
    const agent = agentOf();
    const token = await agent.token('grt_1');
    offsetMs = 200_000;
    await agent.fetch(FLIGHTS, {}, { token });
    expect(exchanges()).toBe(1);
    offsetMs = 275_000;
    await agent.fetch(FLIGHTS, {}, { token });
    expect(exchanges()).toBe(2);
    const [, renewed] = verified();
    expect(renewed!.token).not.toBe(token.value);
    // The renewed token is used from then on, without exchanging again.
    await agent.fetch(FLIGHTS, {}, { token });
    expect(exchanges()).toBe(2);
    expect(verified()[2]!.token).toBe(renewed!.token);
  });

  it('keeps using the current token while a renewal fails, and throws the failure once it has expired', async () => {
    const agent = agentOf();
    const token = await agent.token('grt_1');
    registry.handlers.set('POST /oauth/token', (_request, reply) => reply.code(503).send({ error: 'temporarily_unavailable', error_description: 'restarting' }));
    try {
      offsetMs = 285_000;
      expect((await agent.fetch(FLIGHTS, {}, { token })).status).toBe(200);
      expect(verified()[0]!.token).toBe(token.value);
      offsetMs = 301_000;
      await expect(agent.fetch(FLIGHTS, {}, { token })).rejects.toThrow(TemporarilyUnavailable);
      expect(exchanges()).toBe(3);
    } finally {
      registry.handlers.clear();
    }
  });

  it('renews once for requests made together', async () => {
    const agent = agentOf();
    const token = await agent.token('grt_1');
    offsetMs = 290_000;
    await Promise.all([agent.fetch(FLIGHTS, {}, { token }), agent.fetch(FLIGHTS, {}, { token }), agent.fetch(FLIGHTS, {}, { token })]);
    expect(exchanges()).toBe(2);
    expect(new Set(verified().map((v) => v.token)).size).toBe(1);
  });

  it('renews a short-lived token in the last half of its life at most', async () => {
    registry.tokenLifeS = 20;
    const agent = agentOf();
    const token = await agent.token('grt_1');
    offsetMs = 5_000;
    await agent.fetch(FLIGHTS, {}, { token });
    expect(exchanges()).toBe(1);
    offsetMs = 11_000;
    await agent.fetch(FLIGHTS, {}, { token });
    expect(exchanges()).toBe(2);
  });

  it('uses a delegated token until it expires, then fails with the refusal', async () => {
    const planner = agentOf('agt_planner');
    const booker = agentOf('agt_booker');
    const child = await planner.delegate(await planner.token('grt_1'), { to: booker.clientId, actorToken: await booker.actorToken() });
    offsetMs = 400_000;
    service.answers = [deny('invalid_token', 401, { error_description: 'token expired' })];
    await expect(booker.fetch(FLIGHTS, {}, { token: child.value })).rejects.toSatisfy((e) => e instanceof InvalidToken && e.description === 'token expired');
    expect(exchanges()).toBe(2);
    expect(verified()[0]!.token).toBe(child.value);
  });

  it('asks a token source again when its token is about to expire, once for requests made together', async () => {
    const planner = agentOf('agt_planner');
    const booker = agentOf('agt_booker');
    const root = await planner.token('grt_1');
    let asked = 0;
    const source = async (): Promise<TransactionToken> => {
      asked += 1;
      return planner.delegate(root, { to: booker.clientId, actorToken: await booker.actorToken() });
    };
    await Promise.all([booker.fetch(FLIGHTS, {}, { tokenSource: source }), booker.fetch(FLIGHTS, {}, { tokenSource: source })]);
    await booker.fetch(FLIGHTS, {}, { tokenSource: source });
    expect(asked).toBe(1);
    offsetMs = 285_000;
    await booker.fetch(FLIGHTS, {}, { tokenSource: source });
    expect(asked).toBe(2);
    const tokens = verified().map((v) => v.token);
    expect(tokens[3]).not.toBe(tokens[0]);
  });

  it('accepts a token source that answers the compact JWT', async () => {
    const agent = agentOf();
    const { value } = await agent.token('grt_1');
    const response = await agent.fetch(FLIGHTS, {}, { tokenSource: () => Promise.resolve(value) });
    expect(response.status).toBe(200);
  });
});
