import { KeyStore } from '../../registry/src/modules/keys/key-store.js';
import { GrantsService } from '../../registry/src/modules/grants/grants.service.js';
import { createDpopProof } from '@writ/core';
import { type CryptoKey, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { e2eStore } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

const DPOP_ALGS = 'algs="ES256 EdDSA Ed25519"';

/** The whole answer of a denial the service provider should pass on with a DPoP challenge. */
function challenged(error: string, description: string, status: number) {
  return {
    allow: false,
    error,
    error_description: description,
    status,
    www_authenticate: `DPoP error="${error === 'revoked' ? 'invalid_token' : error}", error_description="${description}", ${DPOP_ALGS}`,
  };
}

describe.each([e2eStore])('POST /v1/verify on the $name store', (storeUnderTest) => {
  // bob receives hops of alice's grants, so he is her agent (issue 16, finding 6).
  const vf = createVerifierFixture(storeUnderTest, undefined, undefined, { bob: 'alice' });
  let verifier: VerifierServer;
  let alice: Agent;
  let bob: Agent;

  beforeAll(async () => {
    const started = await vf.start();
    verifier = started.verifier;
    ({ alice, bob } = started.agents as { alice: Agent; bob: Agent });
  });
  afterAll(() => vf.close());

  async function request(token: string, overrides: Record<string, unknown> = {}, agent: Agent = alice) {
    return { token, dpop: await vf.proof(agent, token), method: 'POST', url: `${API}/bookings`, action: 'book', ...overrides };
  }

  describe('an allowed request', () => {
    it('answers who acts, for whom, in which transaction, with what is left', async () => {
      const { grantId, token } = await vf.tokenFor(alice, { max_uses: 10 });
      const claims = await vf.fx.verify(token);
      const res = await vf.verify(verifier, await request(token));
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(res.body).toEqual({
        allow: true,
        sub: claims.sub,
        act: { sub: alice.clientId },
        txn: claims.txn,
        grant_id: grantId,
        jti: claims.jti,
        scope: 'flight_booking:book flight_booking:read',
        capability: claims.tctx.authorization_details[0],
        remaining: { uses: 9 },
      });
    });

    it('counts every request of the grant, across its tokens, until max_uses', async () => {
      const { grantId, token } = await vf.tokenFor(alice, { max_uses: 3 });
      const second = await vf.fx.rootToken(alice, grantId);
      const answers = [];
      for (const t of [token, second, token, second]) answers.push((await vf.verify(verifier, await request(t))).body);
      expect(answers.map((a) => (a.allow ? a.remaining.uses : a.error))).toEqual([2, 1, 0, 'budget_exceeded']);
      expect(answers[3]).toEqual({ allow: false, error: 'budget_exceeded', error_description: 'max_uses reached', status: 403 });
    });

    it('allows a delegated token at the next hop, and names the whole chain', async () => {
      const { token } = await vf.tokenFor(alice);
      const res = await vf.fx.delegate(alice, token, bob, { requestDetails: { authorization_details: [{ type: 'flight_booking', locations: [API], actions: ['read'], limits: { max_passengers: 2 } }], envelope: { max_uses: 50 } } });
      expect(res.json()).toHaveProperty('access_token');
      const child = res.json<{ access_token: string }>().access_token;
      const read = await vf.verify(verifier, await request(child, { action: 'read' }, bob));
      expect(read.body).toMatchObject({ allow: true, act: { sub: bob.clientId, act: { sub: alice.clientId } } });
      // The child only reads: booking is refused, though its parent may book.
      const book = await vf.verify(verifier, await request(child, {}, bob));
      expect(book.body).toEqual(challenged('insufficient_scope', `no capability allows 'book' at ${API}/bookings`, 403));
    });
  });

  describe('token checks', () => {
    let token: string;
    let signingKey: { kid: string; privateKey: CryptoKey };

    beforeAll(async () => {
      ({ token } = await vf.tokenFor(alice));
      signingKey = await vf.registry().get(KeyStore).active();
    });

    /** The claims of a real token, changed, signed with the registry's own key. */
    async function forged(change: (claims: Record<string, unknown>) => void, header: Record<string, unknown> = {}): Promise<string> {
      const claims = { ...(await vf.fx.verify(token)) } as Record<string, unknown>;
      change(claims);
      return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'txntoken+jwt', kid: signingKey.kid, ...header }).sign(signingKey.privateKey);
    }

    async function expectInvalidToken(bad: string, description: string) {
      const res = await vf.verify(verifier, await request(bad));
      expect(res.status).toBe(200);
      expect(res.body).toEqual(challenged('invalid_token', description, 401));
    }

    it('refuses a missing token', () => expectInvalidToken('', 'token is missing'));
    it('refuses a token that is not a JWS', () => expectInvalidToken('not-a-token', 'token is malformed'));
    it('refuses a token whose typ is not txntoken+jwt', async () => expectInvalidToken(await forged(() => undefined, { typ: 'JWT' }), 'token typ must be txntoken+jwt'));
    it('refuses a token without kid', async () => expectInvalidToken(await forged(() => undefined, { kid: undefined }), 'token kid header is missing'));
    it('refuses a token signed by a key the JWKS does not have, after fetching it again', async () => {
      await expectInvalidToken(await forged(() => undefined, { kid: 'unknown-kid' }), 'token signing key is unknown');
    });
    it('refuses a token whose signature does not verify', async () => {
      const other = await generateKeyPair('ES256');
      const claims = await vf.fx.verify(token);
      const bad = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'txntoken+jwt', kid: signingKey.kid }).sign(other.privateKey);
      await expectInvalidToken(bad, 'token signature is invalid');
    });
    it('refuses a cached token\'s signature on another payload, however often the real token was verified', async () => {
      // The real token is verified, so cached, first.
      expect((await vf.verify(verifier, await request(token))).body.allow).toBe(true);
      const [header, , signature] = token.split('.');
      const claims = await vf.fx.verify(token);
      const payload = Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else' })).toString('base64url');
      await expectInvalidToken(`${header}.${payload}.${signature}`, 'token signature is invalid');
      expect((await vf.verify(verifier, await request(token))).body.allow).toBe(true);
    });
    it('refuses an expired token', async () => {
      const now = Math.floor(Date.now() / 1000);
      await expectInvalidToken(await forged((c) => Object.assign(c, { iat: now - 600, exp: now - 120 })), 'token expired');
    });
    it('refuses a token issued in the future', async () => {
      const now = Math.floor(Date.now() / 1000);
      await expectInvalidToken(await forged((c) => Object.assign(c, { iat: now + 120, exp: now + 300 })), 'token iat is in the future');
    });
    it('refuses a token from another issuer', async () => expectInvalidToken(await forged((c) => (c.iss = 'https://evil.example')), 'token issuer is not trusted'));
    it('refuses a token for another trust domain', async () => expectInvalidToken(await forged((c) => (c.aud = 'other.example')), 'token audience is not this trust domain'));
    it('refuses an aud array even when it holds the trust domain', async () =>
      expectInvalidToken(await forged((c) => (c.aud = ['writ.test', 'other'])), 'token aud must be the trust domain, not an array'));
    it('refuses claims that break the token profile', async () =>
      expectInvalidToken(await forged((c) => delete (c as { cnf?: unknown }).cnf), 'token claims are invalid: cnf'));
  });

  describe('DPoP proof checks (RFC 9449 §4.3)', () => {
    let token: string;
    beforeAll(async () => ({ token } = await vf.tokenFor(alice)));

    async function expectInvalidProof(dpop: string, description: string, overrides: Record<string, unknown> = {}) {
      const res = await vf.verify(verifier, { ...(await request(token)), dpop, ...overrides });
      expect(res.status).toBe(200);
      expect(res.body).toEqual(challenged('invalid_dpop_proof', description, 401));
    }
    const header = (overrides: Record<string, unknown> = {}) => ({ typ: 'dpop+jwt', alg: 'ES256', jwk: alice.publicJwk, ...overrides });

    it('(1) refuses a request without a proof', () => expectInvalidProof('', 'DPoP proof is missing'));
    it('(2) refuses two proofs joined in one header', async () => expectInvalidProof(`${await vf.proof(alice, token)},${await vf.proof(alice, token)}`, 'DPoP proof is not a single compact JWS'));
    it('(3) refuses a proof without jti', async () => {
      const { jti: _jti, ...claims } = vf.proofClaims(token);
      await expectInvalidProof(await vf.handMade(header(), claims, alice.privateKey), 'DPoP proof jti claim is missing');
    });
    it('(4) refuses a proof whose typ is not dpop+jwt', async () => expectInvalidProof(await vf.handMade(header({ typ: 'JWT' }), vf.proofClaims(token), alice.privateKey), 'DPoP proof typ must be dpop+jwt'));
    it('(5) refuses a proof with a symmetric or unaccepted alg', async () =>
      expectInvalidProof(await vf.handMade(header({ alg: 'ES384' }), vf.proofClaims(token), alice.privateKey).catch(() => 'eyJhbGciOiJIUzI1NiIsInR5cCI6ImRwb3Arand0In0.e30.c2ln'), 'DPoP proof alg is not an accepted asymmetric algorithm'));
    it('(6) refuses a proof whose signature does not verify with its jwk', async () => {
      const proof = await vf.handMade(header(), vf.proofClaims(token), bob.privateKey);
      await expectInvalidProof(proof, 'DPoP proof signature is invalid');
    });
    it('(7) refuses a proof whose jwk holds a private key', async () => expectInvalidProof(await vf.handMade(header({ jwk: { ...alice.publicJwk, d: 'AAAA' } }), vf.proofClaims(token), alice.privateKey), 'DPoP proof jwk contains private key material'));
    it('(8) refuses a proof for another method', async () => expectInvalidProof(await vf.proof(alice, token, `${API}/bookings`, 'GET'), 'DPoP proof htm does not match the request method'));
    it('(9) refuses a proof for another URI', async () => expectInvalidProof(await vf.proof(alice, token, `${API}/other`), 'DPoP proof htu does not match the request URI'));
    it('(9) accepts the URI with another query, compared without query and fragment', async () => {
      const res = await vf.verify(verifier, { ...(await request(token)), url: `${API}/bookings?page=2#x` });
      expect(res.body.allow).toBe(true);
    });
    it('(11) refuses a proof older than five minutes', async () => expectInvalidProof(await vf.handMade(header(), vf.proofClaims(token, { iat: Math.floor(Date.now() / 1000) - 301 }), alice.privateKey), 'DPoP proof iat is too old'));
    it('(11) refuses a proof from the future', async () => expectInvalidProof(await vf.handMade(header(), vf.proofClaims(token, { iat: Math.floor(Date.now() / 1000) + 60 }), alice.privateKey), 'DPoP proof iat is in the future'));
    it('(12) refuses a proof without ath', async () => expectInvalidProof(await vf.handMade(header(), vf.proofClaims(undefined), alice.privateKey), 'DPoP proof ath claim is missing but an access token is presented'));
    it('(12) refuses a proof made for another token', async () => {
      const { token: other } = await vf.tokenFor(alice);
      await expectInvalidProof(await vf.proof(alice, other), 'DPoP proof ath does not match the access token');
    });
    it('(12) refuses a proof by another key than the token is bound to (a stolen token)', async () => expectInvalidProof(await vf.proof(bob, token), 'DPoP proof key does not match the token cnf.jkt'));
    it('(11.1) refuses a proof used a second time, on any verifier of the store', async () => {
      const body = await request(token);
      expect((await vf.verify(verifier, body)).body.allow).toBe(true);
      const replica = await vf.newVerifier();
      expect((await vf.verify(replica, body)).body).toEqual(challenged('invalid_dpop_proof', 'DPoP proof jti was already used', 401));
    });
  });

  describe('DPoP server nonces (RFC 9449 §4.3 (10), §8, §9)', () => {
    const secret = Buffer.alloc(32, 7).toString('base64url');
    let token: string;
    let withNonces: VerifierServer;
    beforeAll(async () => {
      ({ token } = await vf.tokenFor(alice));
      withNonces = await vf.newVerifier({ env: { WRIT_VERIFIER_DPOP_NONCE_SECRET: secret } });
    });
    const proofWith = (nonce?: string) =>
      createDpopProof({ privateKey: alice.privateKey, publicJwk: alice.publicJwk, htm: 'POST', htu: `${API}/bookings`, accessToken: token, clock: vf.fx.clock, ...(nonce ? { nonce } : {}) });

    it('asks for a nonce, hands one out, and accepts the proof that carries it', async () => {
      const first = await vf.verify(withNonces, { ...(await request(token)), dpop: await proofWith() });
      expect(first.body).toMatchObject({ ...challenged('use_dpop_nonce', 'DPoP proof nonce is required', 401), dpop_nonce: expect.stringMatching(/^[A-Za-z0-9_-]{48}$/) });
      const retried = await vf.verify(withNonces, { ...(await request(token)), dpop: await proofWith(first.body.dpop_nonce as string) });
      expect(retried.body.allow).toBe(true);
    });

    it('refuses a nonce it did not issue, with a fresh one', async () => {
      const res = await vf.verify(withNonces, { ...(await request(token)), dpop: await proofWith('A'.repeat(48)) });
      expect(res.body).toMatchObject({ ...challenged('use_dpop_nonce', 'DPoP proof nonce is stale or unknown', 401), dpop_nonce: expect.any(String) });
    });

    it('refuses to start with a secret that is not 32 bytes of base64url', async () => {
      await expect(vf.newVerifier({ env: { WRIT_VERIFIER_DPOP_NONCE_SECRET: 'short' } })).rejects.toThrow(
        'WRIT_VERIFIER_DPOP_NONCE_SECRET: must be 32 random bytes in base64url (43 characters)',
      );
    });
  });

  describe('what the service provider may ask', () => {
    let token: string;
    beforeAll(async () => ({ token } = await vf.tokenFor(alice)));

    it('refuses a URL outside the calling service provider', async () => {
      const url = 'https://hotels.example/api/bookings';
      const res = await vf.verify(verifier, { ...(await request(token)), url, dpop: await vf.proof(alice, token, url) });
      expect(res.body).toEqual(challenged('insufficient_scope', `${url} is not under this service provider's URI https://flights.example/`, 403));
    });

    it('refuses an action no capability allows', async () => {
      const res = await vf.verify(verifier, await request(token, { action: 'cancel' }));
      expect(res.body).toEqual(challenged('insufficient_scope', `no capability allows 'cancel' at ${API}/bookings`, 403));
    });

    it('refuses an amount on a grant that allows no money', async () => {
      const res = await vf.verify(verifier, await request(token, { amount: 10, currency: 'EUR' }));
      expect(res.body).toEqual(challenged('invalid_request', 'this grant allows no amount', 400));
    });

    it.each([
      ['no credentials', undefined, 'service credentials are missing: use HTTP Basic with the service id and credential'],
      ['a wrong credential', 'wrong', 'unknown service or wrong credential'],
    ])('answers 401 invalid_client to %s', async (_name, credential, description) => {
      const res = await vf.verify(verifier, await request(token), credential === undefined ? null : vf.basic(undefined, credential));
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: 'invalid_client', error_description: description });
      expect(res.headers['www-authenticate']).toBe('Basic realm="writ-verifier"');
    });

    it.each([
      ['an unknown field', { extra: 1 }, 'Unrecognized key: "extra"'],
      ['no action', { action: undefined }, 'action: Invalid input: expected string, received undefined'],
      ['a method that is not a token', { method: 'GE T' }, 'method: method is an HTTP method token'],
    ])('answers 400 invalid_request to a body with %s', async (_name, change, description) => {
      const res = await vf.verify(verifier, { ...(await request(token)), ...change });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: 'invalid_request', error_description: description });
    });

    it.each([
      ['__proto__', '{"allow":true}', 'Unrecognized key: "__proto__"'],
      ['constructor', '{"prototype":{"allow":true}}', 'Unrecognized key: "constructor"'],
    ])('answers 400 invalid_request to a body with a %s key, whose value reaches no prototype', async (key, value, description) => {
      const body = JSON.stringify(await request(token));
      const payload = `${body.slice(0, -1)},"${key}":${value}}`;
      const res = await verifier.app.inject({ method: 'POST', url: '/v1/verify', headers: { 'content-type': 'application/json', authorization: vf.basic() }, payload });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_request', error_description: description });
      expect(res.headers['cache-control']).toBe('no-store');
      expect(({} as Record<string, unknown>).allow).toBeUndefined();
    });

    it('answers 400 invalid_request to a body that is not JSON', async () => {
      const res = await verifier.app.inject({ method: 'POST', url: '/v1/verify', headers: { 'content-type': 'application/json', authorization: vf.basic() }, payload: '{' });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_request', error_description: 'request body must be a JSON verify request' });
      expect(res.headers['cache-control']).toBe('no-store');
    });

    it('answers 404 not_found, never cached, anywhere but its routes', async () => {
      const res = await verifier.app.inject({ method: 'GET', url: '/v1/verify' });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({ error: 'not_found', error_description: 'no such endpoint' });
      expect(res.headers['cache-control']).toBe('no-store');
      const health = await verifier.app.inject({ method: 'GET', url: '/healthz' });
      expect(health.json()).toEqual({ ok: true });
      expect(health.headers['cache-control']).toBe('no-store');
      const ready = await verifier.app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toEqual({ ready: true, queue: expect.any(Object) });
      expect(ready.headers['cache-control']).toBe('no-store');
    });
  });

  describe('envelope and revocation', () => {
    it('spends the budget in thousandths, asks a human above approval_above, and passes the approved request once', async () => {
      const envelope = { amount: { currency: 'EUR', per_request_max: 200, total_max: 300, approval_above: 150 } };
      const { grantId, token } = await vf.tokenFor(alice, envelope);
      const pay = async (amount: number) => (await vf.verify(verifier, await request(token, { amount, currency: 'EUR' }))).body;
      expect(await pay(100.125)).toMatchObject({ allow: true, remaining: { amount: 199.875 } });
      expect(await pay(250)).toEqual({ allow: false, error: 'budget_exceeded', error_description: 'amount 250 exceeds per_request_max 200', status: 403 });
      const stepUp = await pay(160);
      expect(stepUp).toMatchObject({ allow: false, error: 'approval_required', status: 403 });
      const id = stepUp.step_up_id as string;
      expect(id).toMatch(/^su_/);
      expect(await pay(160)).toMatchObject({ error: 'approval_required', step_up_id: id });
      const shown = JSON.parse((await vf.store().stepUp(grantId, id))!.request);
      expect(shown).toMatchObject({ grant_id: grantId, amount: 160, currency: 'EUR', action: 'book', agent: alice.clientId });
      expect(await vf.store().approveStepUp(grantId, id)).toBe(true);
      expect(await pay(160)).toMatchObject({ allow: true, step_up_id: id, remaining: { amount: 39.875 } });
      expect(await pay(160)).toEqual({ allow: false, error: 'budget_exceeded', error_description: 'amount 160 would bring the total above total_max 300', status: 403 });
      expect(await pay(39.875)).toMatchObject({ allow: true, remaining: { amount: 0 } });
    });

    it('rate-limits the grant with retry_after', async () => {
      const { token } = await vf.tokenFor(alice, { rate: { limit: 2, window_s: 60 } });
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push((await vf.verify(verifier, await request(token))).body);
      expect(answers.map((a) => a.allow)).toEqual([true, true, false]);
      expect(answers[2]).toEqual({ allow: false, error: 'rate_limited', error_description: 'rate limit of 2 per 60s reached', status: 429, retry_after: 60 });
    });

    it('denies every token of a revoked grant, on every verifier, and drops them from the cache', async () => {
      const { grantId, token } = await vf.tokenFor(alice);
      const replica = await vf.newVerifier();
      expect((await vf.verify(verifier, await request(token))).body.allow).toBe(true);
      expect((await vf.verify(replica, await request(token))).body.allow).toBe(true);
      expect(replica.tokens.size).toBeGreaterThan(0);
      await vf.registry().get(GrantsService).revoke(grantId, alice.owner);
      // The announcement empties the replicas' caches of the grant (before anything re-verifies it).
      await expect.poll(() => replica.tokens.get(token, Date.now()), { timeout: 2000, interval: 5 }).toBeUndefined();
      for (const server of [verifier, replica]) {
        await expect.poll(async () => (await vf.verify(server, await request(token))).body, { timeout: 2000, interval: 10 }).toEqual(challenged('revoked', 'the grant was revoked', 401));
      }
    });
  });

  describe('the registry keys', () => {
    it('fetches the JWKS again when a token names a new kid (key rotation)', async () => {
      const { grantId } = await vf.tokenFor(alice);
      await vf.registry().get(KeyStore).rotate();
      const token = await vf.fx.rootToken(alice, grantId);
      expect((await vf.verify(verifier, await request(token))).body.allow).toBe(true);
    });

    it('is not ready (503 on /readyz) until it has fetched the signing keys, and fetches them again by itself', async () => {
      const jwksUrl = `${vf.registryUrl()}/.well-known/jwks.json`;
      let registryAway = true;
      const cut = await vf.newVerifier({ fetch: (input, init) => (input === jwksUrl && registryAway ? Promise.reject(new TypeError('fetch failed')) : fetch(input, init)) });
      const ready = async () => {
        const res = await cut.app.inject({ method: 'GET', url: '/readyz' });
        return { status: res.statusCode, body: res.json<unknown>() };
      };
      await vi.waitFor(async () => expect(await ready()).toEqual({ status: 503, body: { ready: false, reasons: ["the registry's token signing keys have not been fetched"], queue: expect.any(Object) } }));
      // Still alive: only readiness says it cannot decide.
      expect((await cut.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

      registryAway = false;
      // The next fetch waits out the unknown-kid cooldown (5 s after the last one) on the verifier's clock.
      vf.fx.setClockOffset(6_000);
      try {
        await expect.poll(ready, { timeout: 5_000, interval: 20 }).toEqual({ status: 200, body: { ready: true, queue: expect.any(Object) } });
      } finally {
        vf.fx.setClockOffset(0);
      }
    });

    it('denies with 503 when the JWKS cannot be fetched for an unknown kid', async () => {
      const { token } = await vf.tokenFor(alice);
      const jwksUrl = `${vf.registryUrl()}/.well-known/jwks.json`;
      const cut = await vf.newVerifier({ fetch: (input, init) => (input === jwksUrl ? Promise.reject(new TypeError('fetch failed')) : fetch(input, init)) });
      const res = await vf.verify(cut, await request(token));
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ allow: false, error: 'temporarily_unavailable', error_description: 'token signing keys could not be fetched', status: 503 });
    });
  });
});
