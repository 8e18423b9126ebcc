import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { type AuditEvent, CLIENT_ASSERTION_TYP, jwkThumbprint, randomId, sha256Base64url } from '@writ/core';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { Database } from '../src/infra/database.service.js';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { JWT_BEARER_ASSERTION_TYPE } from '../src/modules/agents/client-auth.service.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { createRegistry } from '../src/registry.js';
import { storages, type TestDatabase } from './support/databases.js';

const ISSUER = 'https://registry.writ.test';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

type Alg = 'ES256' | 'EdDSA';

interface AgentKey {
  alg: Alg;
  privateKey: CryptoKey;
  publicJwk: JWK;
  privateJwk: JWK;
}

async function agentKey(alg: Alg = 'ES256'): Promise<AgentKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, privateKey, publicJwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) };
}

interface AssertionOptions {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  /** Seconds relative to now. */
  iat?: number;
  exp?: number | undefined;
  jti?: string | undefined;
  key?: AgentKey;
  /** The JOSE typ header; CLIENT_ASSERTION_TYP by default, none with null. */
  typ?: string | null;
  /** The JOSE alg header; the signing key's by default. */
  alg?: string;
}

describe.each(storages)('agents and agent authentication on $name', ({ create }) => {
  let app: NestFastifyApplication;
  let testDb: TestDatabase;
  let dataDir: string;
  let agents: AgentsService;
  let audit: AuditService;
  /** Moves the registry's clock (not the test's) forward. */
  let offsetMs = 0;
  const clock = { now: () => Date.now() + offsetMs };

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-agents-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: ISSUER, WRIT_CHECKPOINT_EVERY: '5' });
    ({ app } = await createRegistry(config, { logger: false, database: testDb.target, clock }));
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    agents = app.get(AgentsService);
    audit = app.get(AuditService);
  });

  afterAll(async () => {
    await app.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  function registerRequest(token: string | undefined, body: unknown) {
    return app.inject({
      method: 'POST',
      url: '/oauth/register',
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      payload: body as Record<string, unknown>,
    });
  }

  async function registered(key: AgentKey, owner = 'user:alice'): Promise<{ clientId: string; key: AgentKey }> {
    const { token } = await agents.mintInitialAccessToken(owner);
    const res = await registerRequest(token, { client_name: 'Trip planner', jwks: { keys: [key.publicJwk] } });
    expect(res.statusCode).toBe(201);
    return { clientId: res.json<{ client_id: string }>().client_id, key };
  }

  function assertion(clientId: string, key: AgentKey, options: AssertionOptions = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      iss: options.iss ?? clientId,
      sub: options.sub ?? clientId,
      aud: options.aud ?? ISSUER,
      iat: now + (options.iat ?? 0),
    };
    if (!('exp' in options) || options.exp !== undefined) claims.exp = now + (options.exp ?? 60);
    if (!('jti' in options) || options.jti !== undefined) claims.jti = options.jti ?? randomId();
    const signer = options.key ?? key;
    return new SignJWT(claims).setProtectedHeader({ alg: options.alg ?? signer.alg, ...(options.typ !== null && { typ: options.typ ?? CLIENT_ASSERTION_TYP }) }).sign(signer.privateKey);
  }

  function me(jwt: string | undefined) {
    return app.inject({ method: 'GET', url: '/agents/me', headers: jwt === undefined ? {} : { authorization: `private_key_jwt ${jwt}` } });
  }

  async function events(): Promise<AuditEvent[]> {
    const all: AuditEvent[] = [];
    for await (const event of audit.export()) all.push(event);
    return all;
  }

  describe('registration (RFC 7591)', () => {
    it('is advertised in the RFC 8414 metadata', async () => {
      const res = await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
      expect(res.json()).toMatchObject({ registration_endpoint: `${ISSUER}/oauth/register`, token_endpoint_auth_methods_supported: ['private_key_jwt'] });
    });

    it('registers an agent with its public key and answers per RFC 7591 §3.2.1', async () => {
      const key = await agentKey();
      const { token } = await agents.mintInitialAccessToken('user:alice');
      const res = await registerRequest(token, {
        client_name: 'Trip planner',
        jwks: { keys: [{ ...key.publicJwk, kid: 'k1' }] },
        token_endpoint_auth_method: 'private_key_jwt',
        // RFC 7591 §2: metadata the server does not understand is ignored.
        logo_uri: 'https://agent.example/logo.png',
      });
      expect(res.statusCode).toBe(201);
      expect(res.headers['cache-control']).toBe('no-store');
      const body = res.json<Record<string, unknown>>();
      expect(body).toEqual({
        client_id: expect.stringMatching(/^agt_[A-Za-z0-9_-]{22}$/),
        client_id_issued_at: expect.any(Number),
        client_name: 'Trip planner',
        jwks: { keys: [{ ...key.publicJwk, kid: 'k1', alg: 'ES256', use: 'sig' }] },
        token_endpoint_auth_method: 'private_key_jwt',
        grant_types: [TOKEN_EXCHANGE],
      });
      expect(Math.abs((body.client_id_issued_at as number) - Date.now() / 1000)).toBeLessThan(5);

      const agent = await agents.find(body.client_id as string);
      expect(agent).toMatchObject({ owner: 'user:alice', status: 'active', jkt: await jwkThumbprint(key.publicJwk), disabled_at: null });
    });

    it('registers an Ed25519 key, naming it by its thumbprint when it has no kid', async () => {
      const key = await agentKey('EdDSA');
      const { token } = await agents.mintInitialAccessToken('user:bob');
      const res = await registerRequest(token, { client_name: 'Mailer', jwks: { keys: [key.publicJwk] } });
      expect(res.statusCode).toBe(201);
      expect(res.json<{ jwks: unknown }>().jwks).toEqual({ keys: [{ ...key.publicJwk, kid: await jwkThumbprint(key.publicJwk), alg: 'EdDSA', use: 'sig' }] });
    });

    it('registers an Ed25519 key whose alg member is the fully-specified Ed25519 (RFC 9864), which then signs under either name', async () => {
      const key = await agentKey('EdDSA');
      const { clientId } = await registered({ ...key, publicJwk: { ...key.publicJwk, alg: 'Ed25519' } });
      expect((await agents.find(clientId))?.jwks).toEqual({ keys: [{ ...key.publicJwk, kid: await jwkThumbprint(key.publicJwk), alg: 'Ed25519', use: 'sig' }] });
      for (const alg of ['Ed25519', 'EdDSA']) expect((await me(await assertion(clientId, key, { alg }))).statusCode, alg).toBe(200);
    });

    it('records the minting and the registration in the audit chain, never the token', async () => {
      const key = await agentKey();
      const { token, expiresAt } = await agents.mintInitialAccessToken('user:carol', 120);
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const res = await registerRequest(token, { client_name: 'Audited', jwks: { keys: [key.publicJwk] } });
      const clientId = res.json<{ client_id: string }>().client_id;
      const all = await events();
      const [minted, registeredEvent] = all.slice(-2);
      const prefix = (await sha256Base64url(token)).slice(0, 12);
      expect(minted).toMatchObject({
        type: 'agent.enrollment_token_minted',
        actor: 'user:carol',
        subject: 'user:carol',
        data: { owner: 'user:carol', token_hash_prefix: prefix, expires_at: expiresAt.toISOString() },
      });
      expect(registeredEvent).toMatchObject({
        type: 'agent.registered',
        actor: 'user:carol',
        subject: clientId,
        data: { client_id: clientId, client_name: 'Audited', owner: 'user:carol', jkt: await jwkThumbprint(key.publicJwk), token_hash_prefix: prefix },
      });
      expect(JSON.stringify(all)).not.toContain(token);
      const rows: unknown[] = await app.get(Database).dataSource.query('SELECT * FROM initial_access_tokens');
      expect(JSON.stringify(rows)).not.toContain(token);
    });

    describe('rejects the initial access token with 401 invalid_token and a Bearer challenge', () => {
      function expectRejected(res: Awaited<ReturnType<typeof registerRequest>>, description: string): void {
        expect(res.statusCode).toBe(401);
        expect(res.headers['www-authenticate']).toBe(`Bearer error="invalid_token", error_description="${description}"`);
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.json()).toEqual({ error: 'invalid_token', error_description: description });
      }
      const metadata = async () => ({ client_name: 'x', jwks: { keys: [(await agentKey()).publicJwk] } });

      it('when it is missing', async () => {
        expectRejected(await registerRequest(undefined, await metadata()), 'initial access token is missing');
      });

      it('when the Authorization scheme is not Bearer', async () => {
        const { token } = await agents.mintInitialAccessToken('user:alice');
        const res = await app.inject({ method: 'POST', url: '/oauth/register', headers: { authorization: `Basic ${token}` }, payload: await metadata() });
        expectRejected(res, 'initial access token is missing');
      });

      it('when it is unknown', async () => {
        expectRejected(await registerRequest(randomId(32), await metadata()), 'initial access token is unknown');
      });

      it('when it was already used', async () => {
        const { token } = await agents.mintInitialAccessToken('user:alice');
        expect((await registerRequest(token, await metadata())).statusCode).toBe(201);
        expectRejected(await registerRequest(token, await metadata()), 'initial access token was already used');
      });

      it('when it is expired', async () => {
        const { token } = await agents.mintInitialAccessToken('user:alice', 60);
        offsetMs = 61_000;
        try {
          expectRejected(await registerRequest(token, await metadata()), 'initial access token is expired');
        } finally {
          offsetMs = 0;
        }
      });

      it('accepts exactly one of two concurrent registrations with one token', async () => {
        const { token } = await agents.mintInitialAccessToken('user:alice');
        const results = await Promise.all([registerRequest(token, await metadata()), registerRequest(token, await metadata())]);
        expect(results.map((r) => r.statusCode).sort()).toEqual([201, 401]);
        const loser = results.find((r) => r.statusCode === 401)!;
        expectRejected(loser, 'initial access token was already used');
      });
    });

    describe('rejects metadata with 400 invalid_client_metadata (RFC 7591 §3.2.2)', () => {
      async function expectInvalid(body: unknown, description: string) {
        const { token } = await agents.mintInitialAccessToken('user:alice');
        const res = await registerRequest(token, body);
        expect(res.statusCode).toBe(400);
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.json()).toEqual({ error: 'invalid_client_metadata', error_description: description });
        return token;
      }

      it('a private key in jwks', async () => {
        const key = await agentKey();
        await expectInvalid({ client_name: 'x', jwks: { keys: [key.privateJwk] } }, 'jwks key contains private key material');
      });

      it('a symmetric key', async () => {
        await expectInvalid({ client_name: 'x', jwks: { keys: [{ kty: 'oct', k: randomId(32) }] } }, 'jwks key must be an asymmetric public key, not a symmetric (kty oct) key');
      });

      it('jwks_uri', async () => {
        const key = await agentKey();
        await expectInvalid({ client_name: 'x', jwks_uri: 'https://agent.example/jwks.json' }, 'jwks_uri is not supported: register the public key in jwks');
        await expectInvalid({ client_name: 'x', jwks: { keys: [key.publicJwk] }, jwks_uri: 'https://agent.example/jwks.json' }, 'jwks_uri is not supported: register the public key in jwks');
      });

      it('two keys', async () => {
        const [a, b] = [await agentKey(), await agentKey()];
        await expectInvalid({ client_name: 'x', jwks: { keys: [a.publicJwk, b.publicJwk] } }, 'jwks must contain exactly one key');
      });

      it('no key', async () => {
        await expectInvalid({ client_name: 'x', jwks: { keys: [] } }, 'jwks must contain exactly one key');
      });

      it('a token_endpoint_auth_method other than private_key_jwt', async () => {
        const key = await agentKey();
        await expectInvalid(
          { client_name: 'x', jwks: { keys: [key.publicJwk] }, token_endpoint_auth_method: 'client_secret_basic' },
          'token_endpoint_auth_method must be private_key_jwt',
        );
      });

      it('an RSA key, a P-384 key, an alg that does not match the key, and a point off the curve', async () => {
        const rsa = await generateKeyPair('RS256', { extractable: true });
        await expectInvalid({ client_name: 'x', jwks: { keys: [await exportJWK(rsa.publicKey)] } }, 'jwks key must be an EC P-256 or OKP Ed25519 public key');
        const p384 = await generateKeyPair('ES384', { extractable: true });
        await expectInvalid({ client_name: 'x', jwks: { keys: [await exportJWK(p384.publicKey)] } }, 'jwks key must be an EC P-256 or OKP Ed25519 public key');
        const key = await agentKey();
        await expectInvalid({ client_name: 'x', jwks: { keys: [{ ...key.publicJwk, alg: 'ES384' }] } }, 'jwks key alg must be ES256 for this key type');
        const other = await agentKey();
        await expectInvalid({ client_name: 'x', jwks: { keys: [{ ...key.publicJwk, y: other.publicJwk.y }] } }, 'jwks key is not a valid public key');
      });

      it('a missing client_name', async () => {
        const key = await agentKey();
        await expectInvalid({ jwks: { keys: [key.publicJwk] } }, 'client_name is required');
      });

      it('a key that is already registered to another agent', async () => {
        const key = await agentKey();
        await registered(key);
        await expectInvalid({ client_name: 'again', jwks: { keys: [key.publicJwk] } }, 'jwks key is already registered to another agent');
      });

      it('and leaves the initial access token usable', async () => {
        const key = await agentKey();
        const token = await expectInvalid({ client_name: 'x', jwks: { keys: [key.privateJwk] } }, 'jwks key contains private key material');
        expect((await registerRequest(token, { client_name: 'x', jwks: { keys: [key.publicJwk] } })).statusCode).toBe(201);
      });
    });
  });

  describe('client authentication (RFC 7523 private_key_jwt)', () => {
    it('authenticates a call with the assertion in the Authorization header', async () => {
      const key = await agentKey();
      const { clientId } = await registered(key, 'user:dave');
      const res = await me(await assertion(clientId, key));
      expect(res.statusCode).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.json()).toEqual({ client_id: clientId, owner: 'user:dave', jkt: await jwkThumbprint(key.publicJwk) });
    });

    it('authenticates a call with the assertion in a form body, and in a JSON body', async () => {
      const key = await agentKey('EdDSA');
      const { clientId } = await registered(key);
      const form = new URLSearchParams({ client_id: clientId, client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: await assertion(clientId, key) });
      const byForm = await app.inject({ method: 'POST', url: '/agents/me', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form.toString() });
      expect(byForm.statusCode).toBe(200);
      expect(byForm.json()).toMatchObject({ client_id: clientId });
      const byJson = await app.inject({
        method: 'POST',
        url: '/agents/me',
        payload: { client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: await assertion(clientId, key) },
      });
      expect(byJson.statusCode).toBe(200);
    });

    it('takes the typ client-authentication+jwt as a media type: any case, with or without application/ (RFC 7515 §4.1.9)', async () => {
      const key = await agentKey();
      const { clientId } = await registered(key);
      for (const typ of ['client-authentication+jwt', 'Client-Authentication+JWT', 'application/client-authentication+jwt', 'APPLICATION/client-authentication+jwt']) {
        expect((await me(await assertion(clientId, key, { typ }))).statusCode, typ).toBe(200);
      }
    });

    describe('answers 401 invalid_client', () => {
      let agent: { clientId: string; key: AgentKey };
      beforeAll(async () => {
        agent = await registered(await agentKey());
      });

      /** Header transport: the challenge names the private_key_jwt scheme (RFC 6749 §5.2). */
      async function expectHeaderRejected(jwt: string | undefined, description: string) {
        const res = await me(jwt);
        expect(res.statusCode).toBe(401);
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.json()).toEqual({ error: 'invalid_client', error_description: description });
        if (jwt === undefined) expect(res.headers['www-authenticate']).toBeUndefined();
        else expect(res.headers['www-authenticate']).toBe(`private_key_jwt error="invalid_client", error_description="${description}"`);
      }

      async function expectFormRejected(params: Record<string, string>, description: string) {
        const res = await app.inject({
          method: 'POST',
          url: '/agents/me',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams(params).toString(),
        });
        expect(res.statusCode).toBe(401);
        expect(res.headers['www-authenticate']).toBeUndefined();
        expect(res.json()).toEqual({ error: 'invalid_client', error_description: description });
      }

      it('for an unknown client', async () => {
        const stranger = await agentKey();
        await expectHeaderRejected(await assertion('agt_nobody', stranger), 'unknown client');
      });

      it('for a disabled client, and records who disabled it', async () => {
        const key = await agentKey();
        const { clientId } = await registered(key, 'user:erin');
        expect(await agents.disable(clientId, 'user:erin')).toBe('disabled');
        expect(await agents.disable(clientId, 'user:erin')).toBe('already_disabled');
        expect(await agents.disable('agt_nobody', 'user:erin')).toBe('unknown');
        expect((await events()).filter((e) => e.type === 'agent.disabled' && e.subject === clientId)).toEqual([
          expect.objectContaining({ actor: 'user:erin', data: { client_id: clientId, owner: 'user:erin' } }),
        ]);
        expect(await agents.find(clientId)).toMatchObject({ status: 'disabled', disabled_at: expect.any(Date) });
        await expectHeaderRejected(await assertion(clientId, key), 'client is disabled');
        // Without the key, a caller cannot tell a disabled agent from a bad signature.
        await expectHeaderRejected(await assertion(clientId, key, { key: await agentKey() }), 'client assertion signature is invalid');
      });

      it('for an assertion signed by another key', async () => {
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { key: await agentKey() }), 'client assertion signature is invalid');
      });

      it('for an assertion signed with another algorithm than the registered key', async () => {
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { key: await agentKey('EdDSA') }), "client assertion alg must be ES256, the registered key's algorithm");
      });

      it('for an expired assertion', async () => {
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { iat: -120, exp: -60 }), 'client assertion is expired');
      });

      it('for an assertion without exp', async () => {
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { exp: undefined }), 'client assertion exp claim is required');
      });

      it('for an assertion without the typ client-authentication+jwt: the old untyped shape, a plain JWT, another kind an agent signs', async () => {
        for (const typ of [null, 'JWT', 'jwt', 'writ-actor+jwt', 'writ-subject+jwt', 'application/jwt', 'text/client-authentication+jwt', 'client-authentication+jwt; x=1']) {
          await expectHeaderRejected(await assertion(agent.clientId, agent.key, { typ }), 'client assertion typ must be client-authentication+jwt');
        }
      });

      it('for an assertion whose aud is an array, even one naming only this issuer', async () => {
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { aud: ['https://other.example', ISSUER] }), 'client assertion aud must be a single string, not an array');
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { aud: [ISSUER] }), 'client assertion aud must be a single string, not an array');
      });

      it('for an assertion whose audience is not this issuer', async () => {
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { aud: 'https://other.example' }), 'client assertion audience is not this issuer');
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { aud: `${ISSUER}/oauth/token` }), 'client assertion audience is not this issuer');
      });

      it('for a replayed jti', async () => {
        const jwt = await assertion(agent.clientId, agent.key);
        expect((await me(jwt)).statusCode).toBe(200);
        await expectHeaderRejected(jwt, 'client assertion jti was already used');
        // The same jti in a fresh assertion is a replay too.
        const jti = randomId();
        expect((await me(await assertion(agent.clientId, agent.key, { jti }))).statusCode).toBe(200);
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { jti }), 'client assertion jti was already used');
      });

      it('for two concurrent uses of one assertion, exactly once', async () => {
        const jwt = await assertion(agent.clientId, agent.key);
        const results = await Promise.all([me(jwt), me(jwt), me(jwt)]);
        expect(results.map((r) => r.statusCode).sort()).toEqual([200, 401, 401]);
      });

      it('for an assertion without jti', async () => {
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { jti: undefined }), 'client assertion jti is required (1 to 256 characters)');
      });

      it('when iss and sub differ, or differ from the client_id parameter', async () => {
        const other = await registered(await agentKey());
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { sub: other.clientId }), 'client assertion iss and sub must equal client_id');
        await expectFormRejected(
          { client_id: other.clientId, client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: await assertion(agent.clientId, agent.key) },
          'client assertion iss and sub must equal client_id',
        );
      });

      it('for a wrong client_assertion_type', async () => {
        await expectFormRejected(
          { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer', client_assertion: await assertion(agent.clientId, agent.key) },
          `client_assertion_type must be ${JWT_BEARER_ASSERTION_TYPE}`,
        );
        await expectFormRejected({ client_assertion: await assertion(agent.clientId, agent.key) }, `client_assertion_type must be ${JWT_BEARER_ASSERTION_TYPE}`);
      });

      it('for a lifetime longer than 300 s', async () => {
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { exp: 301 }), 'client assertion lifetime is too long');
        // Measured from iat as well: a backdated assertion cannot stretch its life.
        await expectHeaderRejected(await assertion(agent.clientId, agent.key, { iat: -200, exp: 120 }), 'client assertion lifetime is too long');
      });

      it('for a missing assertion', async () => {
        await expectHeaderRejected(undefined, 'client assertion is missing');
        await expectHeaderRejected('', 'client assertion is missing');
        await expectFormRejected({ client_assertion_type: JWT_BEARER_ASSERTION_TYPE }, 'client assertion is missing');
      });

      it('for something that is not a JWS', async () => {
        await expectHeaderRejected('not-a-jwt', 'client assertion is not a compact JWS');
      });
    });

    it('refuses an assertion in both the body and the header with 400 invalid_request', async () => {
      const { clientId, key } = await registered(await agentKey());
      const res = await app.inject({
        method: 'POST',
        url: '/agents/me',
        headers: { authorization: `private_key_jwt ${await assertion(clientId, key)}` },
        payload: { client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: await assertion(clientId, key) },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_request', error_description: 'client assertion must be sent in the body or in the Authorization header, not both' });
    });

    it('sweeps expired jti rows', async () => {
      const { clientId, key } = await registered(await agentKey());
      expect((await me(await assertion(clientId, key, { exp: 30 }))).statusCode).toBe(200);
      const count = async (): Promise<number> =>
        Number((await app.get(Database).dataSource.query(`SELECT count(*) AS n FROM client_assertion_jtis WHERE client_id = $1`, [clientId]))[0].n);
      expect(await count()).toBe(1);
      offsetMs = 60_000;
      try {
        // Signed with the real clock, valid at the registry's later time.
        const now = Math.floor(clock.now() / 1000);
        const later = await new SignJWT({ iss: clientId, sub: clientId, aud: ISSUER, iat: now, exp: now + 60, jti: randomId() })
          .setProtectedHeader({ alg: 'ES256', typ: CLIENT_ASSERTION_TYP })
          .sign(key.privateKey);
        expect((await me(later)).statusCode).toBe(200);
      } finally {
        offsetMs = 0;
      }
      expect(await count()).toBe(1);
    });
  });

  it('keeps the audit chain intact across every registration and disabling', async () => {
    const all = await events();
    expect(all.filter((e) => e.type === 'agent.registered').length).toBeGreaterThan(10);
    expect(all.filter((e) => e.type === 'agent.disabled')).toHaveLength(1);
    const result = await audit.verify();
    expect(result.chain).toMatchObject({ ok: true, count: all.length });
    expect(result.checkpoints.failed).toEqual([]);
    expect(result.checkpoints.verified).toBe(Math.floor(all.length / 5));
  });
});
