import { KeyStore } from '../../registry/src/modules/keys/key-store.js';
import { type CryptoKey, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { storesUnderTest } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

const DPOP_ALGS = 'algs="ES256 EdDSA"';

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

describe.each(storesUnderTest)('POST /v1/verify on the $name store', (storeUnderTest) => {
  const vf = createVerifierFixture(storeUnderTest);
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
});
