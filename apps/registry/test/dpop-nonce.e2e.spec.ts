import { randomUUID } from 'node:crypto';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ACTOR_TOKEN_TYP, CLIENT_ASSERTION_TYP, type Clock, createDpopProof, JWT_TOKEN_TYPE, SELF_SIGNED_TOKEN_TYPE, SUBJECT_TOKEN_TYP, TOKEN_EXCHANGE_GRANT, TXN_TOKEN_TYPE } from '@writ/core';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { e2eStorage } from './support/databases.js';
import { type Agent, createTokenFixture, ISSUER, type Response, TOKEN_URL } from './support/token-fixture.js';

type TokenFixture = ReturnType<typeof createTokenFixture<'alice' | 'bob'>>;

const NONCE = /^[A-Za-z0-9_-]{48}$/;

const grantRequest = {
  service: 'https://flights.example',
  authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }],
  envelope: { max_uses: 10 },
  purpose: 'Check my bookings',
  duration_s: 3600,
  delegation: { max_depth: 1 },
};

describe.each([e2eStorage])('DPoP server nonces at the token endpoint on $name', (storage) => {
  /** The registry of the describe block running now: each block starts its own. */
  let current: TokenFixture;
  const clock: Clock = { now: () => current.clock.now() };
  afterEach(() => {
    current.setClockOffset(0);
  });

  /** A registry on a database and data dir of its own, with one service, alice and bob enrolled, and alice's grant approved. */
  async function start(dpopNonce: 'off' | 'required') {
    const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-dpop-nonce-', owners: ['alice', 'bob'], ownerOf: { bob: 'alice' }, grantRequest, env: { WRIT_DPOP_NONCE: dpopNonce } });
    current = fx;
    const {
      app,
      agents: { alice, bob },
    } = await fx.start();
    const grantId = await fx.approvedGrant(alice);
    return { app, alice, bob, grantId, stop: () => fx.close() };
  }

  /** A JWT from the agent with iss = sub = its client_id, aud = issuer, single-use jti, on the test clock, of the kind `typ` names (ADR 0015). */
  function selfSigned(agent: Agent, typ: string): Promise<string> {
    const iat = Math.floor(clock.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', typ })
      .setIssuer(agent.clientId)
      .setSubject(agent.clientId)
      .setAudience(ISSUER)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 60)
      .setJti(randomUUID())
      .sign(agent.privateKey);
  }

  /** A fresh proof (new jti) for the token endpoint. */
  function proof(agent: Agent, options: { nonce?: string; accessToken?: string } = {}): Promise<string> {
    return createDpopProof({ privateKey: agent.privateKey, publicJwk: agent.publicJwk, htm: 'POST', htu: TOKEN_URL, clock, ...options });
  }

  function post(app: NestFastifyApplication, form: Record<string, string>, dpop: string): Promise<Response> {
    return app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop },
      payload: new URLSearchParams(form).toString(),
    });
  }

  /** A root token request with a fresh client assertion and subject token. */
  async function rootRequest(app: NestFastifyApplication, agent: Agent, grantId: string, dpop: string, params: Record<string, string> = {}): Promise<Response> {
    return post(
      app,
      {
        grant_type: TOKEN_EXCHANGE_GRANT,
        requested_token_type: TXN_TOKEN_TYPE,
        subject_token_type: SELF_SIGNED_TOKEN_TYPE,
        subject_token: await selfSigned(agent, SUBJECT_TOKEN_TYP),
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await selfSigned(agent, CLIENT_ASSERTION_TYP),
        request_details: JSON.stringify({ grant_id: grantId }),
        ...params,
      },
      dpop,
    );
  }

  /** What the tests pin of an answer: status, JSON body and the headers nonces touch. */
  function answer(res: Response) {
    return {
      status: res.statusCode,
      body: res.json<unknown>(),
      cacheControl: res.headers['cache-control'],
      challenge: res.headers['www-authenticate'],
    };
  }

  describe('with WRIT_DPOP_NONCE off', () => {
    let registry: Awaited<ReturnType<typeof start>>;
    beforeAll(async () => {
      registry = await start('off');
    });
    afterAll(() => registry.stop());

    it('issues a token for a proof without nonce and sends no DPoP-Nonce header', async () => {
      const { app, alice, grantId } = registry;
      const res = await rootRequest(app, alice, grantId, await proof(alice));
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE });
      expect(res.headers['dpop-nonce']).toBeUndefined();
    });

    it('sends no DPoP-Nonce header with an error either', async () => {
      const { app, alice, grantId } = registry;
      const res = await rootRequest(app, alice, grantId, await proof(alice), { grant_type: 'client_credentials' });
      expect(res.statusCode).toBe(400);
      expect(res.headers['dpop-nonce']).toBeUndefined();
    });
  });

  describe('with WRIT_DPOP_NONCE required', () => {
    let registry: Awaited<ReturnType<typeof start>>;
    beforeAll(async () => {
      registry = await start('required');
    });
    afterAll(() => registry.stop());

    /** A nonce the registry hands out now, taken from an answer to a proof without one. */
    async function currentNonce(): Promise<string> {
      const { app, alice, grantId } = registry;
      const nonce = (await rootRequest(app, alice, grantId, await proof(alice))).headers['dpop-nonce'];
      expect(nonce).toMatch(NONCE);
      return nonce as string;
    }

    it('answers a proof without nonce with 400 use_dpop_nonce and the nonce to use in DPoP-Nonce (RFC 9449 §8)', async () => {
      const { app, alice, grantId } = registry;
      const res = await rootRequest(app, alice, grantId, await proof(alice));
      expect(answer(res)).toEqual({
        status: 400,
        body: { error: 'use_dpop_nonce', error_description: 'DPoP proof nonce is required' },
        cacheControl: 'no-store',
        challenge: undefined,
      });
      expect(res.headers['dpop-nonce']).toMatch(NONCE);
    });

    it('issues a token when the client retries with the nonce it was handed, and hands a fresh nonce with it', async () => {
      const { app, alice, grantId } = registry;
      const nonce = await currentNonce();
      const res = await rootRequest(app, alice, grantId, await proof(alice, { nonce }));
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.json()).toMatchObject({ token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE });
      expect(res.headers['dpop-nonce']).toMatch(NONCE);
    });

    it('refuses a nonce three minutes old with use_dpop_nonce and a new nonce that then works', async () => {
      const { app, alice, grantId } = registry;
      const stale = await currentNonce();
      current.setClockOffset(3 * 60_000);
      const res = await rootRequest(app, alice, grantId, await proof(alice, { nonce: stale }));
      expect(answer(res)).toEqual({
        status: 400,
        body: { error: 'use_dpop_nonce', error_description: 'DPoP proof nonce is stale or unknown' },
        cacheControl: 'no-store',
        challenge: undefined,
      });
      const fresh = res.headers['dpop-nonce'] as string;
      expect(fresh).toMatch(NONCE);
      expect(fresh).not.toBe(stale);
      expect((await rootRequest(app, alice, grantId, await proof(alice, { nonce: fresh }))).statusCode).toBe(200);
    });

    it('refuses a nonce it did not issue with use_dpop_nonce', async () => {
      const { app, alice, grantId } = registry;
      const res = await rootRequest(app, alice, grantId, await proof(alice, { nonce: 'not-a-nonce-of-this-registry' }));
      expect(answer(res)).toEqual({
        status: 400,
        body: { error: 'use_dpop_nonce', error_description: 'DPoP proof nonce is stale or unknown' },
        cacheControl: 'no-store',
        challenge: undefined,
      });
      expect(res.headers['dpop-nonce']).toMatch(NONCE);
    });

    it('refuses a nonce claim that is not a string as an invalid proof (400, no challenge: RFC 9449 §5), still handing a nonce', async () => {
      const { app, alice, grantId } = registry;
      const dpop = await new SignJWT({ jti: randomUUID(), htm: 'POST', htu: TOKEN_URL, iat: Math.floor(clock.now() / 1000), nonce: 42 })
        .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: alice.publicJwk })
        .sign(alice.privateKey);
      const res = await rootRequest(app, alice, grantId, dpop);
      expect(answer(res)).toEqual({
        status: 400,
        body: { error: 'invalid_dpop_proof', error_description: 'DPoP proof nonce claim must be a string' },
        cacheControl: 'no-store',
        challenge: undefined,
      });
      expect(res.headers['dpop-nonce']).toMatch(NONCE);
    });

    it('hands a nonce with an error that has nothing to do with DPoP', async () => {
      const { app, alice, grantId } = registry;
      const res = await rootRequest(app, alice, grantId, await proof(alice), { grant_type: 'client_credentials' });
      expect(answer(res)).toMatchObject({ status: 400, body: { error: 'unsupported_grant_type' }, cacheControl: 'no-store' });
      expect(res.headers['dpop-nonce']).toMatch(NONCE);
    });

    it('requires the nonce for a delegation too', async () => {
      const { app, alice, bob, grantId } = registry;
      const root = await rootRequest(app, alice, grantId, await proof(alice, { nonce: await currentNonce() }));
      expect(root.statusCode).toBe(200);
      const parent = root.json<{ access_token: string }>().access_token;
      const delegate = async (dpop: string) =>
        post(
          app,
          {
            grant_type: TOKEN_EXCHANGE_GRANT,
            requested_token_type: TXN_TOKEN_TYPE,
            subject_token_type: TXN_TOKEN_TYPE,
            subject_token: parent,
            actor_token_type: JWT_TOKEN_TYPE,
            actor_token: await selfSigned(bob, ACTOR_TOKEN_TYP),
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: await selfSigned(alice, CLIENT_ASSERTION_TYP),
          },
          dpop,
        );

      const refused = await delegate(await proof(alice, { accessToken: parent }));
      expect(answer(refused)).toEqual({
        status: 400,
        body: { error: 'use_dpop_nonce', error_description: 'DPoP proof nonce is required' },
        cacheControl: 'no-store',
        challenge: undefined,
      });
      const nonce = refused.headers['dpop-nonce'] as string;
      const accepted = await delegate(await proof(alice, { accessToken: parent, nonce }));
      expect(accepted.statusCode).toBe(200);
      expect(accepted.headers['dpop-nonce']).toMatch(NONCE);
    });
  });
});
