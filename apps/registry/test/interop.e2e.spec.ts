import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ACTOR_TOKEN_TYP, CLIENT_ASSERTION_TYP, createDpopProof, jwkThumbprint, SELF_SIGNED_TOKEN_TYPE, SUBJECT_TOKEN_TYP, TOKEN_EXCHANGE_GRANT, TXN_TOKEN_TYPE } from '@writ/core';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { ServicesService } from '../src/modules/services/services.service.js';
import { e2eStorage } from './support/databases.js';
import { type Agent, capability, createTokenFixture, grantRequest, ISSUER, type Response, TOKEN_URL } from './support/token-fixture.js';

/**
 * Issue 16 finding 10: what an unmodified, standards-following OAuth client needs from the
 * registry. Each answer is pinned whole: status, body and the headers that matter.
 */
describe.each([e2eStorage])('interoperability with independent OAuth clients on $name', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-interop-', owners: ['alice'] });
  const { approvedGrant, delegate, enrol, post, proof, rootToken, selfSigned, verify } = fx;
  let app: NestFastifyApplication;
  let planner: Agent;
  let booker: Agent;

  beforeAll(async () => {
    ({ app, agents: { alice: planner } } = await fx.start());
    booker = await enrol('alice');
  });
  afterEach(() => fx.setClockOffset(0));
  afterAll(() => fx.close());

  /** Status, OAuth body and the headers a token endpoint error is judged by. */
  function answer(res: Response) {
    return { status: res.statusCode, body: res.json<unknown>(), challenge: res.headers['www-authenticate'], cacheControl: res.headers['cache-control'] };
  }

  const tokenError = (error: string, description: string) => ({ status: 400, body: { error, error_description: description }, challenge: undefined, cacheControl: 'no-store' });

  describe('token endpoint errors follow RFC 6749 §5.2', () => {
    it('answers a root request without a DPoP proof with 400 invalid_dpop_proof and no WWW-Authenticate (RFC 9449 §5)', async () => {
      const grantId = await approvedGrant(planner);
      const res = await post(
        {
          grant_type: TOKEN_EXCHANGE_GRANT,
          requested_token_type: TXN_TOKEN_TYPE,
          subject_token_type: SELF_SIGNED_TOKEN_TYPE,
          subject_token: await selfSigned(planner.clientId, planner.privateKey, undefined, SUBJECT_TOKEN_TYP),
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await selfSigned(planner.clientId, planner.privateKey),
          request_details: JSON.stringify({ grant_id: grantId }),
        },
        '',
      );
      expect(answer(res)).toEqual(tokenError('invalid_dpop_proof', 'DPoP proof is missing'));
    });

    it("answers a delegation proved with another key than the parent's with 400 invalid_dpop_proof and no WWW-Authenticate", async () => {
      const parent = await rootToken(planner, await approvedGrant(planner));
      const res = await delegate(planner, parent, booker, { dpop: await proof(booker, parent) });
      expect(answer(res)).toEqual(tokenError('invalid_dpop_proof', 'DPoP proof key does not match the token cnf.jkt'));
    });
  });

  describe('a delegation proof without ath (RFC 9449 §4.2 asks for ath only at resources)', () => {
    it("is accepted when its key is the parent token's cnf.jkt", async () => {
      const parent = await rootToken(planner, await approvedGrant(planner));
      const res = await delegate(planner, parent, booker, { dpop: await proof(planner) });
      expect(res.statusCode).toBe(200);
      expect((await verify(res.json<{ access_token: string }>().access_token)).act).toEqual({ sub: booker.clientId, act: { sub: planner.clientId } });
    });

    it('is refused when its key is not the parent token key', async () => {
      const parent = await rootToken(planner, await approvedGrant(planner));
      expect(answer(await delegate(planner, parent, booker, { dpop: await proof(booker) }))).toEqual(tokenError('invalid_dpop_proof', 'DPoP proof key does not match the token cnf.jkt'));
    });

    it('has its ath checked when it carries one', async () => {
      const grantId = await approvedGrant(planner);
      const [parent, other] = [await rootToken(planner, grantId), await rootToken(planner, grantId)];
      expect(answer(await delegate(planner, parent, booker, { dpop: await proof(planner, other) }))).toEqual(tokenError('invalid_dpop_proof', 'DPoP proof ath does not match the access token'));
    });
  });

  describe('the fully-specified JOSE algorithm Ed25519 (RFC 9864)', () => {
    /** An agent of alice with an Ed25519 key, registered as any RFC 7591 client would. */
    async function edAgent(): Promise<Agent> {
      const agents = app.get(AgentsService);
      const { token } = await agents.mintInitialAccessToken('alice');
      const { publicKey, privateKey } = await generateKeyPair('Ed25519', { extractable: true });
      const publicJwk = await exportJWK(publicKey);
      const { client_id: clientId } = await agents.register(token, { client_name: 'an Ed25519 client', jwks: { keys: [publicJwk] } });
      return { clientId, owner: 'alice', privateKey, publicJwk };
    }

    /** A JWT of the kind `typ` by `agent`, its header naming the algorithm Ed25519. */
    function ed25519Jwt(agent: Agent, typ: string): Promise<string> {
      const iat = Math.floor(fx.clock.now() / 1000);
      return new SignJWT({ iss: agent.clientId, sub: agent.clientId, aud: ISSUER, iat, exp: iat + 60, jti: crypto.randomUUID() }).setProtectedHeader({ alg: 'Ed25519', typ }).sign(agent.privateKey);
    }

    const ed25519Proof = (agent: Agent, accessToken?: string): Promise<string> =>
      createDpopProof({ privateKey: agent.privateKey, publicJwk: agent.publicJwk, alg: 'Ed25519', htm: 'POST', htu: TOKEN_URL, clock: fx.clock, ...(accessToken !== undefined && { accessToken }) });

    it('is accepted for the client assertion, the subject token, the actor token and the DPoP proofs', async () => {
      const [holder, actor] = [await edAgent(), await edAgent()];
      const me = await app.inject({ method: 'GET', url: '/agents/me', headers: { authorization: `private_key_jwt ${await ed25519Jwt(holder, CLIENT_ASSERTION_TYP)}` } });
      expect(me.statusCode).toBe(200);

      const grantId = await approvedGrant(holder);
      const root = await post(
        {
          grant_type: TOKEN_EXCHANGE_GRANT,
          requested_token_type: TXN_TOKEN_TYPE,
          subject_token_type: SELF_SIGNED_TOKEN_TYPE,
          subject_token: await ed25519Jwt(holder, SUBJECT_TOKEN_TYP),
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await ed25519Jwt(holder, CLIENT_ASSERTION_TYP),
          request_details: JSON.stringify({ grant_id: grantId }),
        },
        await ed25519Proof(holder),
      );
      expect(root.statusCode).toBe(200);
      const parent = root.json<{ access_token: string }>().access_token;
      expect((await verify(parent)).cnf.jkt).toBe(await jwkThumbprint(holder.publicJwk));

      const hop = await post(
        {
          grant_type: TOKEN_EXCHANGE_GRANT,
          requested_token_type: TXN_TOKEN_TYPE,
          subject_token_type: TXN_TOKEN_TYPE,
          subject_token: parent,
          actor_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          actor_token: await ed25519Jwt(actor, ACTOR_TOKEN_TYP),
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await ed25519Jwt(holder, CLIENT_ASSERTION_TYP),
        },
        await ed25519Proof(holder, parent),
      );
      expect(hop.statusCode).toBe(200);
      expect((await verify(hop.json<{ access_token: string }>().access_token)).cnf.jkt).toBe(await jwkThumbprint(actor.publicJwk));
    });

    it('is refused for a P-256 key, naming the algorithm the key signs with', async () => {
      const iat = Math.floor(fx.clock.now() / 1000);
      // A P-256 signature labelled Ed25519 never reaches a signature check.
      const mislabelled = await new SignJWT({ iss: planner.clientId, sub: planner.clientId, aud: ISSUER, iat, exp: iat + 60, jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: 'ES256', typ: CLIENT_ASSERTION_TYP })
        .sign(planner.privateKey);
      const [header, payload, signature] = mislabelled.split('.') as [string, string, string];
      const relabelled = `${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(header, 'base64url').toString()), alg: 'Ed25519' })).toString('base64url')}.${payload}.${signature}`;
      const res = await app.inject({ method: 'GET', url: '/agents/me', headers: { authorization: `private_key_jwt ${relabelled}` } });
      expect({ status: res.statusCode, body: res.json<unknown>() }).toEqual({ status: 401, body: { error: 'invalid_client', error_description: "client assertion alg must be ES256, the registered key's algorithm" } });
    });
  });

  it('publishes RFC 8414 metadata a generic client can parse: response types, authorization_details types, both Ed25519 names', async () => {
    await app.get(ServicesService).register({ uri: 'https://hotels.example', display_name: 'Hotels', catalogue: [{ type: 'hotel_booking', actions: ['read'] }, { type: 'flight_booking', actions: ['read'] }] });
    const res = await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      issuer: ISSUER,
      token_endpoint: TOKEN_URL,
      response_types_supported: [],
      authorization_details_types_supported: ['flight_booking', 'hotel_booking'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['ES256', 'EdDSA', 'Ed25519'],
      dpop_signing_alg_values_supported: ['ES256', 'EdDSA', 'Ed25519'],
    });
  });

  describe('POST /grants refuses a location with a dot segment or an encoded path step (ADR 0002)', () => {
    it.each([
      'https://flights.example/api/../admin',
      'https://flights.example/api/..',
      'https://flights.example/api/./v2',
      'https://flights.example/api/%2e%2e/admin',
      'https://flights.example/api/%2E%2E/admin',
      'https://flights.example/api/%2e./admin',
      'https://flights.example/api%2fadmin',
      'https://flights.example/api%2F..%2Fadmin',
      'https://flights.example/api/%5c..%5cadmin',
    ])('%s', async (location) => {
      const res = await app.inject({
        method: 'POST',
        url: '/grants',
        headers: { authorization: `private_key_jwt ${await selfSigned(planner.clientId, planner.privateKey)}` },
        payload: { ...grantRequest, authorization_details: [{ ...capability, locations: [location] }] },
      });
      expect({ status: res.statusCode, body: res.json<unknown>() }).toEqual({
        status: 400,
        body: { error: 'invalid_authorization_details', error_description: `capability 0 (flight_booking): location '${location}' has a dot segment or an encoded dot, slash or backslash` },
      });
    });

    it('still accepts dots inside a segment', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/grants',
        headers: { authorization: `private_key_jwt ${await selfSigned(planner.clientId, planner.privateKey)}` },
        payload: { ...grantRequest, authorization_details: [{ ...capability, locations: ['https://flights.example/api/v1.2'] }] },
      });
      expect(res.statusCode).toBe(201);
    });
  });
});
