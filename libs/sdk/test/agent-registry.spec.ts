import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AccessDenied,
  type Clock,
  InvalidAuthorizationDetails,
  InvalidClient,
  InvalidClientMetadata,
  InvalidDpopProof,
  InvalidGrant,
  InvalidToken,
  Revoked,
  sha256Base64url,
  UseDpopNonce,
  verifyDpopProof,
} from '@writ/core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AgentKey,
  AgentKeyFileError,
  capability,
  envelope,
  GrantDenied,
  GrantExpired,
  GrantRevoked,
  loadOrCreateAgentKey,
  StepUpDenied,
  StepUpExpired,
  WaitTimeout,
  WritAgent,
  WritResponseError,
} from '../src/agent/index.js';
import { verifyJws } from '@writ/server/node-crypto';
import { fakeTxnToken, grantView, rootClaims, StandInRegistry } from './support/stand-in.js';

let offsetMs = 0;
const clock: Clock = { now: () => Date.now() + offsetMs };
let registry: StandInRegistry;
let dir: string;

beforeAll(async () => {
  registry = await new StandInRegistry(clock).start();
});
afterAll(async () => {
  await registry.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'writ-agent-'));
});
afterEach(() => {
  registry.received.length = 0;
  registry.handlers.clear();
  registry.issuer = undefined;
  registry.requiredNonce = undefined;
  offsetMs = 0;
  rmSync(dir, { recursive: true, force: true });
});

/** An enrolled agent with an in-memory key, known to the stand-in as `clientId`. */
function agentOf(clientId = 'agt_1', key = AgentKey.generate()): WritAgent {
  registry.agents.set(clientId, key.publicJwk);
  return new WritAgent({ key, clientId, registryUrl: registry.url, clock });
}

const payload = (jwt: string): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
const header = (jwt: string): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;

/** The private_key_jwt assertion of a registry call made with the Authorization header. */
function headerAssertion(headers: Record<string, unknown>): string {
  const match = /^private_key_jwt (\S+)$/.exec(String(headers.authorization));
  expect(match).not.toBeNull();
  return match![1]!;
}

describe('enrolling', () => {
  it('registers the public key with the enrollment token and saves the registration in the key file', async () => {
    const keyFile = join(dir, 'agent.json');
    const agent = await WritAgent.enroll({ registryUrl: registry.url, enrollmentToken: 'enrol-me_123', name: 'Trip planner', keyFile, clock });
    expect(agent.clientId).toBe('agt_new');

    const [registration] = registry.requests('/oauth/register');
    expect(registration!.headers.authorization).toBe('Bearer enrol-me_123');
    expect(registration!.body).toEqual({ client_name: 'Trip planner', jwks: { keys: [agent.key.publicJwk] }, token_endpoint_auth_method: 'private_key_jwt' });
    expect(JSON.stringify(registration!.body)).not.toContain('"d"');

    const saved = JSON.parse(readFileSync(keyFile, 'utf8')) as Record<string, unknown>;
    expect(saved.writ).toEqual({ registry: registry.url, client_id: 'agt_new', client_name: 'Trip planner', registered_at: expect.any(String) as string });
    expect(saved.d).toEqual(expect.any(String));
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  });

  it('loads the agent from its key file after a restart, without enrolling again', async () => {
    const keyFile = join(dir, 'agent.json');
    const enrolled = await WritAgent.enroll({ registryUrl: `${registry.url}/`, enrollmentToken: 'enrol-me_123', name: 'Trip planner', keyFile, clock });
    const loaded = await WritAgent.load({ keyFile, clock });
    expect({ clientId: loaded.clientId, registryUrl: loaded.registryUrl, jkt: loaded.key.jkt }).toEqual({ clientId: 'agt_new', registryUrl: registry.url, jkt: enrolled.key.jkt });
    expect(registry.requests('/oauth/register')).toHaveLength(1);
    await loaded.requestGrant({ service: 'https://flights.example', authorization_details: [capability('flight_booking').at('https://flights.example/api').actions('read')], purpose: 'p', duration_s: 60 });
    expect(registry.checkAssertion(headerAssertion(registry.requests('/grants')[0]!.headers)).iss).toBe('agt_new');
  });

  it('refuses to enroll a key that is already registered, without asking the registry', async () => {
    const keyFile = join(dir, 'agent.json');
    await WritAgent.enroll({ registryUrl: registry.url, enrollmentToken: 'enrol-me_123', name: 'Trip planner', keyFile, clock });
    const again = WritAgent.enroll({ registryUrl: registry.url, enrollmentToken: 'enrol-me_123', name: 'Trip planner', keyFile, clock });
    await expect(again).rejects.toThrow(InvalidClientMetadata);
    await expect(again).rejects.toThrow(/already registered as agt_new .*WritAgent\.load/);
    expect(registry.requests('/oauth/register')).toHaveLength(1);
  });

  it('passes the registry refusal of the enrollment token on as its typed error, and saves nothing', async () => {
    const keyFile = join(dir, 'agent.json');
    const error = await WritAgent.enroll({ registryUrl: registry.url, enrollmentToken: 'used-token', name: 'x', keyFile, clock }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidToken);
    expect(error).toMatchObject({ code: 'invalid_token', description: 'initial access token is unknown' });
    expect((await loadOrCreateAgentKey(keyFile)).registration).toBeUndefined();
  });

  it('refuses to load a key file that holds no registration, or one from another registry', async () => {
    const keyFile = join(dir, 'agent.json');
    await loadOrCreateAgentKey(keyFile);
    await expect(WritAgent.load({ keyFile })).rejects.toMatchObject({ problem: 'not_enrolled' });
    await WritAgent.enroll({ registryUrl: registry.url, enrollmentToken: 'enrol-me_123', name: 'x', keyFile: join(dir, 'b.json'), clock });
    await expect(WritAgent.load({ keyFile: join(dir, 'b.json'), registryUrl: 'https://elsewhere.example' })).rejects.toThrow(/registered at http:\/\/127\.0\.0\.1:\d+, not at https:\/\/elsewhere\.example/);
    await expect(WritAgent.load({ keyFile: join(dir, 'missing.json') })).rejects.toThrow(AgentKeyFileError);
  });

  it('refuses a registry whose metadata names another issuer (RFC 8414 §3.3)', async () => {
    registry.issuer = 'https://impostor.example';
    const error = await WritAgent.enroll({ registryUrl: registry.url, enrollmentToken: 'enrol-me_123', name: 'x', key: AgentKey.generate(), clock }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WritResponseError);
    expect((error as Error).message).toMatch(/names the issuer https:\/\/impostor\.example/);
    expect(registry.requests('/oauth/register')).toHaveLength(0);
  });
});

describe('registry calls', () => {
  it('authenticate with a fresh private_key_jwt assertion each: typ client-authentication+jwt, iss = sub = client_id, aud = issuer, single-use jti, short exp', async () => {
    const agent = agentOf();
    await agent.getGrant('grt_1');
    await agent.getGrant('grt_1');
    const assertions = registry.requests('/grants/grt_1').map((r) => headerAssertion(r.headers));
    const claims = assertions.map((a) => registry.checkAssertion(a));
    expect(claims[0]).toMatchObject({ iss: 'agt_1', sub: 'agt_1', aud: registry.url });
    expect((claims[0]!.exp as number) - (claims[0]!.iat as number)).toBeLessThanOrEqual(60);
    expect(claims[0]!.jti).not.toBe(claims[1]!.jti);
    expect(header(assertions[0]!)).toEqual({ kid: agent.key.jkt, typ: 'client-authentication+jwt', alg: 'ES256' });
  });

  it('fetch the metadata once', async () => {
    const agent = agentOf();
    await agent.getGrant('grt_1');
    await agent.getGrant('grt_1');
    expect(registry.requests('/.well-known/oauth-authorization-server')).toHaveLength(1);
  });

  it('turn an error answer into the libs/core error of its code', async () => {
    registry.handlers.set('GET /grants/:id', (_request, reply) => reply.code(401).send({ error: 'invalid_client', error_description: 'client is disabled' }));
    const error = await agentOf().getGrant('grt_1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidClient);
    expect(error).toMatchObject({ code: 'invalid_client', status: 401, description: 'client is disabled' });
  });

  it('report an answer without a protocol code as WritResponseError', async () => {
    registry.handlers.set('GET /grants/:id', (_request, reply) => reply.code(404).send({ error: 'not_found', error_description: 'grant not found' }));
    await expect(agentOf().getGrant('grt_x')).rejects.toMatchObject({ name: 'WritResponseError', status: 404, error: 'not_found', description: 'grant not found' });
    registry.handlers.set('GET /grants/:id', (_request, reply) => reply.code(502).type('text/html').send('<h1>Bad gateway</h1>'));
    await expect(agentOf().getGrant('grt_x')).rejects.toMatchObject({ status: 502, error: undefined });
  });
});

describe('requestGrant', () => {
  it('sends the built capabilities and envelope', async () => {
    const agent = agentOf();
    const answer = await agent.requestGrant({
      service: 'https://flights.example',
      authorization_details: [capability('flight_booking').at('https://flights.example/api').actions('read', 'book')],
      envelope: envelope().maxUses(10),
      purpose: 'Book my trip',
      duration_s: 3600,
      delegation: { max_depth: 1 },
    });
    expect(answer).toEqual({ grant_id: 'grt_1', status: 'pending', expires_at: '2030-01-01T00:00:00.000Z' });
    expect(registry.requests('/grants')[0]!.body).toEqual({
      service: 'https://flights.example',
      authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read', 'book'] }],
      envelope: { max_uses: 10 },
      purpose: 'Book my trip',
      duration_s: 3600,
      delegation: { max_depth: 1 },
    });
  });

  it('refuses invalid capabilities before sending anything', async () => {
    const request = agentOf().requestGrant({ service: 'svc_1', authorization_details: [{ type: 'x', locations: ['ftp://x'], actions: ['read'] }], purpose: 'p', duration_s: 60 });
    await expect(request).rejects.toThrow(InvalidAuthorizationDetails);
    expect(registry.requests('/grants')).toHaveLength(0);
  });
});

describe('waitForGrant', () => {
  /** Answers `pending` (held `holdMs`, at most the asked wait) `pendingTimes` times, then `final`. */
  function decideAfter(pendingTimes: number, final: string, holdMs = 100): void {
    let calls = 0;
    registry.handlers.set('GET /grants/:id', async (request) => {
      calls += 1;
      if (calls <= pendingTimes) {
        const wait = Number((request.query as { wait?: string }).wait ?? 0);
        await new Promise((resolve) => setTimeout(resolve, Math.min(holdMs, wait * 1000)));
        return grantView('pending');
      }
      return grantView(final);
    });
  }

  it('long-polls with ?wait= of at most 60 s, asking again while pending, and resolves with the approved grant', async () => {
    decideAfter(2, 'approved');
    const grant = await agentOf().waitForGrant('grt_1');
    expect(grant).toMatchObject({ grant_id: 'grt_1', status: 'approved', authorization_details: [{ type: 'flight_booking' }] });
    expect(registry.requests('/grants/grt_1').map((r) => r.query.wait)).toEqual(['60', '60', '60']);
  });

  it('asks for no longer than the time left', async () => {
    decideAfter(0, 'approved');
    await agentOf().waitForGrant('grt_1', { timeoutMs: 12_300 });
    expect(registry.requests('/grants/grt_1')[0]!.query.wait).toBe('13');
  });

  it('rejects with WaitTimeout when still pending at the deadline, aborting the long-poll in flight', async () => {
    decideAfter(100, 'approved', 60_000);
    const started = Date.now();
    const error = await agentOf().waitForGrant('grt_1', { timeoutMs: 700 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WaitTimeout);
    expect(error).toMatchObject({ code: 'wait_timeout', kind: 'grant', id: 'grt_1', timeoutMs: 700 });
    expect(Date.now() - started).toBeLessThan(2_000);
    const [poll] = registry.requests('/grants/grt_1');
    expect(poll!.query.wait).toBe('1');
    await poll!.closedEarly;
  });

  it('with timeoutMs 0 reads the grant once and answers at once', async () => {
    decideAfter(100, 'approved', 60_000);
    await expect(agentOf().waitForGrant('grt_1', { timeoutMs: 0 })).rejects.toThrow(WaitTimeout);
    expect(registry.requests('/grants/grt_1').map((r) => r.query.wait)).toEqual(['0']);
  });

  it('stops when the signal aborts: the request in flight is aborted and the wait rejects with the reason', async () => {
    decideAfter(100, 'approved', 60_000);
    const controller = new AbortController();
    const waiting = agentOf().waitForGrant('grt_1', { signal: controller.signal });
    while (registry.requests('/grants/grt_1').length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort(new Error('the user gave up'));
    await expect(waiting).rejects.toThrow('the user gave up');
    await registry.requests('/grants/grt_1')[0]!.closedEarly;
    expect(registry.requests('/grants/grt_1')).toHaveLength(1);
  });

  it('rejects at once with an already aborted signal', async () => {
    await expect(agentOf().waitForGrant('grt_1', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    expect(registry.requests('/grants/grt_1')).toHaveLength(0);
  });

  it('throws a typed error for a denied, expired or revoked grant, carrying the grant', async () => {
    const agent = agentOf();
    decideAfter(0, 'denied');
    const denied = await agent.waitForGrant('grt_1').catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(GrantDenied);
    expect(denied).toBeInstanceOf(AccessDenied);
    expect(denied).toMatchObject({ code: 'access_denied', grant: { status: 'denied' } });
    decideAfter(0, 'expired');
    await expect(agent.waitForGrant('grt_1')).rejects.toSatisfy((e) => e instanceof GrantExpired && e instanceof InvalidGrant);
    decideAfter(0, 'revoked');
    await expect(agent.waitForGrant('grt_1')).rejects.toSatisfy((e) => e instanceof GrantRevoked && e instanceof Revoked && e.code === 'revoked');
  });

  it('waits out a registry that fails for a moment, then goes on waiting', async () => {
    let calls = 0;
    registry.handlers.set('GET /grants/:id', (_request, reply) => {
      calls += 1;
      return calls === 1 ? reply.code(503).send({ error: 'temporarily_unavailable', error_description: 'restarting' }) : grantView('approved');
    });
    await expect(agentOf().waitForGrant('grt_1', { timeoutMs: 10_000 })).resolves.toMatchObject({ status: 'approved' });
    expect(calls).toBe(2);
  });

  it('does not retry an error that waiting cannot fix', async () => {
    registry.handlers.set('GET /grants/:id', (_request, reply) => reply.code(404).send({ error: 'not_found', error_description: 'grant not found' }));
    await expect(agentOf().waitForGrant('grt_x', { timeoutMs: 10_000 })).rejects.toMatchObject({ status: 404 });
    expect(registry.requests('/grants/grt_x')).toHaveLength(1);
  });
});

describe('waitForStepUp', () => {
  it('long-polls GET /step-ups/:id?wait= and resolves with the approved step-up, keeping what the registry adds', async () => {
    let calls = 0;
    registry.handlers.set('GET /step-ups/:id', () => {
      calls += 1;
      return calls === 1 ? { step_up_id: 'su_1', status: 'pending' } : { step_up_id: 'su_1', status: 'approved', amount: 180, currency: 'EUR' };
    });
    const stepUp = await agentOf().waitForStepUp('su_1', { timeoutMs: 30_000 });
    expect(stepUp).toEqual({ step_up_id: 'su_1', status: 'approved', amount: 180, currency: 'EUR' });
    expect(registry.requests('/step-ups/su_1').map((r) => r.query.wait)).toEqual(['30', '30']);
    expect(registry.checkAssertion(headerAssertion(registry.requests('/step-ups/su_1')[0]!.headers)).iss).toBe('agt_1');
  });

  it('throws StepUpDenied or StepUpExpired, both AccessDenied', async () => {
    registry.handlers.set('GET /step-ups/:id', () => ({ step_up_id: 'su_1', status: 'denied' }));
    await expect(agentOf().waitForStepUp('su_1')).rejects.toSatisfy((e) => e instanceof StepUpDenied && e instanceof AccessDenied && e.stepUp.step_up_id === 'su_1');
    registry.handlers.set('GET /step-ups/:id', () => ({ step_up_id: 'su_1', status: 'expired' }));
    await expect(agentOf().waitForStepUp('su_1')).rejects.toThrow(StepUpExpired);
  });

  it('times out like a grant wait', async () => {
    registry.handlers.set('GET /step-ups/:id', async () => {
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      return { step_up_id: 'su_1', status: 'pending' };
    });
    await expect(agentOf().waitForStepUp('su_1', { timeoutMs: 300 })).rejects.toMatchObject({ kind: 'step_up', id: 'su_1' });
  });
});

describe('token', () => {
  it('exchanges a self-signed subject token with private_key_jwt and a DPoP proof for a root token', async () => {
    const agent = agentOf();
    const token = await agent.token('grt_1', { authorization_details: [capability('flight_booking').at('https://flights.example/api').actions('read')], envelope: { max_uses: 2 } });
    const [exchange] = registry.requests('/oauth/token');
    const form = exchange!.body as Record<string, string>;
    expect(form).toMatchObject({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      requested_token_type: 'urn:ietf:params:oauth:token-type:txn_token',
      subject_token_type: 'urn:ietf:params:oauth:token-type:self_signed',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    });
    expect(JSON.parse(form.request_details!)).toEqual({
      grant_id: 'grt_1',
      authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }],
      envelope: { max_uses: 2 },
    });
    const subject = verifyJws(form.subject_token!, agent.key.publicJwk).payload;
    expect(subject).toMatchObject({ iss: 'agt_1', sub: 'agt_1', aud: registry.url });
    // ADR 0015: each kind of JWT the agent signs says which it is.
    expect([header(form.subject_token!).typ, header(form.client_assertion!).typ]).toEqual(['writ-subject+jwt', 'client-authentication+jwt']);
    expect(subject.jti).not.toBe(payload(form.client_assertion!).jti);
    const proof = await verifyDpopProof(String(exchange!.headers.dpop), { htm: 'POST', htu: `${registry.url}/oauth/token`, clock });
    expect(proof.jkt).toBe(agent.key.jkt);
    expect(payload(String(exchange!.headers.dpop)).ath).toBeUndefined();

    expect(token.claims).toMatchObject({ req_wl: 'agt_1', cnf: { jkt: agent.key.jkt }, tctx: { grant_id: 'grt_1' } });
    expect(token.expiresAt.getTime()).toBe(token.claims.exp * 1000);
  });

  it('counts expiry on its own clock when the registry clock is ahead', async () => {
    registry.handlers.set('POST /oauth/token', () => {
      const agentNowS = Math.floor(clock.now() / 1000);
      // The registry's clock is 100 s ahead: exp is 400 s after the agent's now, expires_in says 300.
      return { access_token: fakeTxnToken(rootClaims('agt_1', agentKey.jkt, agentNowS + 100)), token_type: 'DPoP', expires_in: 300 };
    });
    const agentKey = AgentKey.generate();
    const before = clock.now();
    const token = await agentOf('agt_1', agentKey).token('grt_1');
    expect(token.expiresAt.getTime()).toBeGreaterThanOrEqual(before + 300_000);
    expect(token.expiresAt.getTime()).toBeLessThan(token.claims.exp * 1000);
  });

  it('retries exactly once with the nonce a registry requires (RFC 9449 §8), then sends it from the start', async () => {
    registry.requiredNonce = 'nonce-1';
    const agent = agentOf();
    await agent.token('grt_1');
    const [first, second] = registry.requests('/oauth/token');
    expect(payload(String(first!.headers.dpop)).nonce).toBeUndefined();
    expect(payload(String(second!.headers.dpop)).nonce).toBe('nonce-1');
    // A fresh assertion and subject token for the retry: single-use values are never sent twice.
    expect((second!.body as Record<string, string>).client_assertion).not.toBe((first!.body as Record<string, string>).client_assertion);
    await agent.token('grt_1');
    expect(registry.requests('/oauth/token')).toHaveLength(3);
    expect(payload(String(registry.requests('/oauth/token')[2]!.headers.dpop)).nonce).toBe('nonce-1');
  });

  it('gives up after one retry when the registry keeps asking for a nonce', async () => {
    let n = 0;
    registry.handlers.set('POST /oauth/token', (_request, reply) => {
      n += 1;
      return reply.code(400).header('dpop-nonce', `nonce-${n}`).send({ error: 'use_dpop_nonce', error_description: 'DPoP proof nonce is stale or unknown' });
    });
    const error = await agentOf().token('grt_1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UseDpopNonce);
    expect(error).toMatchObject({ nonce: 'nonce-2', description: 'DPoP proof nonce is stale or unknown' });
    expect(registry.requests('/oauth/token')).toHaveLength(2);
  });

  it('passes a refusal on as its typed error', async () => {
    registry.handlers.set('POST /oauth/token', (_request, reply) => reply.code(400).send({ error: 'invalid_grant', error_description: 'grant is pending' }));
    await expect(agentOf().token('grt_1')).rejects.toSatisfy((e) => e instanceof InvalidGrant && e.description === 'grant is pending');
  });

  it('refuses a token_type other than DPoP', async () => {
    registry.handlers.set('POST /oauth/token', () => ({ access_token: 'abc', token_type: 'Bearer', expires_in: 300 }));
    await expect(agentOf().token('grt_1')).rejects.toThrow(/token_type is Bearer, not DPoP/);
  });
});

describe('delegation', () => {
  it('makes an actor token: iss = sub = its client_id, aud = issuer, short exp, single-use jti', async () => {
    const booker = agentOf('agt_booker');
    const [a, b] = [await booker.actorToken(), await booker.actorToken({ ttlSeconds: 30 })];
    const claims = verifyJws(a, booker.key.publicJwk).payload;
    expect(claims).toMatchObject({ iss: 'agt_booker', sub: 'agt_booker', aud: registry.url });
    expect((claims.exp as number) - (claims.iat as number)).toBe(60);
    expect((payload(b).exp as number) - (payload(b).iat as number)).toBe(30);
    expect(claims.jti).not.toBe(payload(b).jti);
    // ADR 0015: typed as a consent, so the registry never takes it for the booker's client assertion.
    expect(header(a)).toMatchObject({ typ: 'writ-actor+jwt', alg: 'ES256' });
    await expect(booker.actorToken({ ttlSeconds: 301 })).rejects.toThrow(TypeError);
  });

  it('exchanges the held token for a narrower one bound to the delegatee', async () => {
    const planner = agentOf('agt_planner');
    const booker = agentOf('agt_booker');
    const root = await planner.token('grt_1');
    const readOnly = [capability('flight_booking').at('https://flights.example/api').actions('read')];
    const child = await planner.delegate(root, { to: booker.clientId, actorToken: await booker.actorToken(), authorization_details: readOnly, envelope: { max_uses: 1 } });

    const exchange = registry.requests('/oauth/token')[1]!;
    const form = exchange.body as Record<string, string>;
    expect(form).toMatchObject({
      subject_token_type: 'urn:ietf:params:oauth:token-type:txn_token',
      subject_token: root.value,
      actor_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    });
    expect(registry.checkAssertion(form.client_assertion!).iss).toBe('agt_planner');
    expect(JSON.parse(form.request_details!)).toEqual({ authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }], envelope: { max_uses: 1 } });
    // Proof of possession of the parent: the planner's key, bound to the parent's hash.
    expect(payload(String(exchange.headers.dpop)).ath).toBe(await sha256Base64url(root.value));
    expect(child.claims).toMatchObject({ act: { sub: 'agt_booker', act: { sub: 'agt_planner' } }, cnf: { jkt: booker.key.jkt } });
  });

  it('sends no request_details when nothing is narrowed', async () => {
    const planner = agentOf('agt_planner');
    const booker = agentOf('agt_booker');
    await planner.delegate(await planner.token('grt_1'), { to: booker.clientId, actorToken: await booker.actorToken() });
    expect((registry.requests('/oauth/token')[1]!.body as Record<string, string>).request_details).toBeUndefined();
  });

  it("refuses an actor token that is not the named delegatee's, without asking the registry", async () => {
    const planner = agentOf('agt_planner');
    const booker = agentOf('agt_booker');
    const root = await planner.token('grt_1');
    await expect(planner.delegate(root, { to: 'agt_other', actorToken: await booker.actorToken() })).rejects.toThrow(/not the consent of agt_other/);
    expect(registry.requests('/oauth/token')).toHaveLength(1);
  });

  it("passes the registry's refusal of a token the agent does not hold on as InvalidDpopProof", async () => {
    const planner = agentOf('agt_planner');
    const thief = agentOf('agt_thief');
    const root = await planner.token('grt_1');
    const error = await thief.delegate(root, { to: planner.clientId, actorToken: await planner.actorToken() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidDpopProof);
    expect(error).toMatchObject({ description: 'DPoP proof key does not match the token cnf.jkt' });
  });

  it('renews a root token about to expire before delegating it', async () => {
    const planner = agentOf('agt_planner');
    const booker = agentOf('agt_booker');
    const root = await planner.token('grt_1');
    offsetMs = 290_000;
    await planner.delegate(root, { to: booker.clientId, actorToken: await booker.actorToken() });
    const [, renewal, delegation] = registry.requests('/oauth/token');
    expect((renewal!.body as Record<string, string>).subject_token_type).toBe('urn:ietf:params:oauth:token-type:self_signed');
    expect((delegation!.body as Record<string, string>).subject_token).not.toBe(root.value);
  });
});
