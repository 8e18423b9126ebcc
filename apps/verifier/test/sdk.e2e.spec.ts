import { writVerifier } from '@writ/sdk';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import { storesUnderTest } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

/**
 * A service provider built with the SDK's Fastify plugin, in front of the real verifier (over
 * HTTP) and the real registry: what the agent sees at the service's door.
 */
describe('the SDK middleware in front of the real verifier', () => {
  const vf = createVerifierFixture(storesUnderTest[0]!);
  let alice: Agent;
  let bob: Agent;
  let provider: FastifyInstance;

  beforeAll(async () => {
    const started = await vf.start();
    ({ alice, bob } = started.agents as { alice: Agent; bob: Agent });
    const verifierUrl = await started.verifier.listen();
    provider = Fastify();
    await provider.register(writVerifier, { verifierUrl, serviceId: started.service.id, credential: started.service.credential, publicUrl: 'https://flights.example' });
    provider.post('/api/bookings', { preHandler: provider.writ.require({ action: 'book' }) }, (request) => ({ booked_for: request.writ?.sub, by: request.writ?.act.sub }));
    await provider.ready();
  });
  afterAll(async () => {
    await provider.close();
    await vf.close();
  });

  async function book(headers: Record<string, string>) {
    const res = await provider.inject({ method: 'POST', url: '/api/bookings', headers });
    return { status: res.statusCode, body: res.json<Record<string, unknown>>(), challenge: res.headers['www-authenticate'] };
  }

  it('lets a DPoP-bound token with a fresh proof through, with the verified claims on the request', async () => {
    const { token } = await vf.tokenFor(alice);
    const res = await book({ authorization: `DPoP ${token}`, dpop: await vf.proof(alice, token) });
    expect(res).toEqual({ status: 200, body: { booked_for: 'alice', by: alice.clientId }, challenge: undefined });
  });

  it('accepts the token in the Txn-Token header too', async () => {
    const { token } = await vf.tokenFor(alice);
    const res = await book({ 'txn-token': token, dpop: await vf.proof(alice, token) });
    expect(res.status).toBe(200);
  });

  it('refuses the same token sent as a Bearer token (RFC 9449 §7.2), without asking the verifier', async () => {
    const { token } = await vf.tokenFor(alice);
    const res = await book({ authorization: `Bearer ${token}`, dpop: await vf.proof(alice, token) });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_token');
    expect(res.challenge).toMatch(/^DPoP error="invalid_token"/);
  });

  it("refuses a stolen token presented with the thief's own proof", async () => {
    const { token } = await vf.tokenFor(alice);
    const res = await book({ authorization: `DPoP ${token}`, dpop: await vf.proof(bob, token) });
    expect(res).toEqual({
      status: 401,
      body: { error: 'invalid_dpop_proof', error_description: 'DPoP proof key does not match the token cnf.jkt' },
      challenge: 'DPoP error="invalid_dpop_proof", error_description="DPoP proof key does not match the token cnf.jkt", algs="ES256 EdDSA Ed25519"',
    });
  });

  it('refuses a replayed request', async () => {
    const { token } = await vf.tokenFor(alice);
    const headers = { authorization: `DPoP ${token}`, dpop: await vf.proof(alice, token) };
    expect((await book(headers)).status).toBe(200);
    expect(await book(headers)).toMatchObject({ status: 401, body: { error: 'invalid_dpop_proof', error_description: 'DPoP proof jti was already used' } });
  });

  it('passes the budget refusal on as 403', async () => {
    const { token } = await vf.tokenFor(alice, { max_uses: 1 });
    expect((await book({ authorization: `DPoP ${token}`, dpop: await vf.proof(alice, token) })).status).toBe(200);
    expect(await book({ authorization: `DPoP ${token}`, dpop: await vf.proof(alice, token) })).toEqual({
      status: 403,
      body: { error: 'budget_exceeded', error_description: 'max_uses reached' },
      challenge: undefined,
    });
  });

  it('passes the rate limit on as 429 with Retry-After', async () => {
    const { token } = await vf.tokenFor(alice, { rate: { limit: 1, window_s: 60 } });
    expect((await book({ authorization: `DPoP ${token}`, dpop: await vf.proof(alice, token) })).status).toBe(200);
    const res = await provider.inject({ method: 'POST', url: '/api/bookings', headers: { authorization: `DPoP ${token}`, dpop: await vf.proof(alice, token, `${API}/bookings`) } });
    expect(res.statusCode).toBe(429);
    expect(res.headers['retry-after']).toBe('60');
    expect(res.json()).toEqual({ error: 'rate_limited', error_description: 'rate limit of 1 per 60s reached' });
  });
});
