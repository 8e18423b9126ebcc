import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { jwkThumbprint, SELF_SIGNED_TOKEN_TYPE, SUBJECT_TOKEN_TYP, TOKEN_EXCHANGE_GRANT, tokenHash, TXN_TOKEN_TYPE } from '@writ/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditEventEntity } from '../src/modules/audit/audit.entity.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import type { GrantsService } from '../src/modules/grants/grants.service.js';
import { denyGrant } from './support/humans.js';
import type { Database } from '../src/infra/database.service.js';
import { e2eStorage } from './support/databases.js';
import { type Agent, createTokenFixture, ISSUER, TOKEN_URL } from './support/token-fixture.js';

const grantRequest = {
  service: 'https://flights.example',
  authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }],
  envelope: { max_uses: 10 },
  purpose: 'Check my bookings',
  duration_s: 600,
};

describe.each([e2eStorage])('root token issuance on $name', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-tokens-http-', owners: ['alice', 'bob'], grantRequest });
  const { approvedGrant, expectError, proof, selfSigned, verify } = fx;
  let app: NestFastifyApplication;
  let db: Database;
  let grants: GrantsService;
  let alice: Agent;
  let bob: Agent;

  interface Exchange {
    params?: Record<string, string>;
    requestDetails?: object;
    dpop?: string | null;
    assertion?: string;
    subjectToken?: string;
  }

  async function exchange(agent: Agent, grantId: string, options: Exchange = {}) {
    const form = new URLSearchParams({
      grant_type: TOKEN_EXCHANGE_GRANT,
      requested_token_type: TXN_TOKEN_TYPE,
      subject_token_type: SELF_SIGNED_TOKEN_TYPE,
      subject_token: options.subjectToken ?? (await selfSigned(agent.clientId, agent.privateKey, undefined, SUBJECT_TOKEN_TYP)),
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: options.assertion ?? (await selfSigned(agent.clientId, agent.privateKey)),
      request_details: JSON.stringify(options.requestDetails ?? { grant_id: grantId }),
      ...options.params,
    });
    const dpop = options.dpop === undefined ? await proof(agent) : options.dpop;
    return app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(dpop === null ? {} : { dpop }) },
      payload: form.toString(),
    });
  }

  beforeAll(async () => {
    ({ app, db, grants, agents: { alice, bob } } = await fx.start());
  });

  afterAll(async () => {
    await fx.close();
  });

  it('issues a DPoP-bound root token for an approved grant, recorded in the audit chain before the answer', async () => {
    const grantId = await approvedGrant(alice);
    const res = await exchange(alice, grantId);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json<{ access_token: string; token_type: string; issued_token_type: string; expires_in: number }>();
    expect(body).toMatchObject({ token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE, expires_in: 300 });

    const claims = await verify(body.access_token);
    expect(claims).toMatchObject({
      sub: 'alice',
      scope: expect.any(String) as string,
      req_wl: alice.clientId,
      act: { sub: alice.clientId },
      cnf: { jkt: await jwkThumbprint(alice.publicJwk) },
      tctx: { grant_id: grantId, depth: 0, purpose: 'Check my bookings', authorization_details: grantRequest.authorization_details, envelope: grantRequest.envelope },
    });
    expect(claims.tctx.parent).toBeUndefined();

    const event = await db.dataSource.getRepository(AuditEventEntity).findOneBy({ type: 'token.issued', txn: claims.txn });
    expect(event).toMatchObject({ grant_id: grantId, actor: alice.clientId, subject: 'alice' });
    expect(event!.data).toEqual({ jti: claims.jti, token_hash: await tokenHash(body.access_token), jkt: claims.cnf.jkt, exp: claims.exp, scope: claims.scope });
    expect((await app.get(AuditService).verify()).chain.ok).toBe(true);
  });

  it('keeps one unbroken audit chain under a 50-request concurrent burst of issuances', async () => {
    const grantId = await approvedGrant(alice);
    const before = await db.dataSource.getRepository(AuditEventEntity).countBy({ type: 'token.issued' });
    const responses = await Promise.all(Array.from({ length: 50 }, () => exchange(alice, grantId)));
    expect(responses.map((r) => r.statusCode)).toEqual(Array.from({ length: 50 }, () => 200));
    expect(await db.dataSource.getRepository(AuditEventEntity).countBy({ type: 'token.issued' })).toBe(before + 50);
    const { chain } = await app.get(AuditService).verify();
    expect(chain.ok).toBe(true);
  });

  it('lists the token endpoint in the metadata', async () => {
    const res = await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    expect(res.json()).toMatchObject({ token_endpoint: TOKEN_URL, grant_types_supported: [TOKEN_EXCHANGE_GRANT] });
  });

  describe('refuses', () => {
    let grantId: string;
    beforeAll(async () => {
      grantId = await approvedGrant(alice);
    });

    it('another grant_type', async () => {
      expectError(await exchange(alice, grantId, { params: { grant_type: 'client_credentials' } }), 400, 'unsupported_grant_type', `grant_type must be ${TOKEN_EXCHANGE_GRANT}`);
    });

    it('a repeated parameter', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await proof(alice) },
        payload: `grant_type=${encodeURIComponent(TOKEN_EXCHANGE_GRANT)}&grant_type=x`,
      });
      expectError(res, 400, 'invalid_request', 'parameter grant_type is repeated');
    });

    it('a missing DPoP proof', async () => {
      expectError(await exchange(alice, grantId, { dpop: null }), 400, 'invalid_dpop_proof', 'DPoP proof is missing');
    });

    it('a replayed DPoP proof', async () => {
      const dpop = await proof(alice);
      expect((await exchange(alice, grantId, { dpop })).statusCode).toBe(200);
      expectError(await exchange(alice, grantId, { dpop }), 400, 'invalid_dpop_proof', 'DPoP proof jti was already used');
    });

    it('a DPoP proof for another URL', async () => {
      expectError(await exchange(alice, grantId, { dpop: await proof(alice, undefined, `${ISSUER}/grants`) }), 400, 'invalid_dpop_proof', 'DPoP proof htu does not match the request URI');
    });

    it('a client assertion signed by another key', async () => {
      const assertion = await selfSigned(alice.clientId, bob.privateKey);
      expectError(await exchange(alice, grantId, { assertion }), 401, 'invalid_client', 'client assertion signature is invalid');
    });

    it('a subject token signed by another key', async () => {
      const subjectToken = await selfSigned(alice.clientId, bob.privateKey, undefined, SUBJECT_TOKEN_TYP);
      expectError(await exchange(alice, grantId, { subjectToken }), 400, 'invalid_grant', 'subject token signature is invalid');
    });

    it('a pending, a denied and a revoked grant', async () => {
      const pending = await grants.request(alice.clientId, 'alice', grantRequest);
      expectError(await exchange(alice, pending.id), 400, 'invalid_grant', 'grant is pending');
      await denyGrant(app, pending.id, 'alice');
      expectError(await exchange(alice, pending.id), 400, 'invalid_grant', 'grant is denied');
      const revoked = await approvedGrant(alice);
      await grants.revoke(revoked, 'alice');
      expectError(await exchange(alice, revoked), 400, 'invalid_grant', 'grant is revoked');
    });

    it('a grant past its expiry, which is expired on the spot', async () => {
      const shortLived = await approvedGrant(alice, { duration_s: 60 });
      fx.setClockOffset(61_000);
      try {
        expectError(await exchange(alice, shortLived), 400, 'invalid_grant', 'grant is expired');
      } finally {
        fx.setClockOffset(0);
      }
      expect((await grants.get(shortLived))?.status).toBe('expired');
    });

    it("another agent's grant exactly like an unknown one", async () => {
      expectError(await exchange(bob, grantId), 400, 'invalid_grant', 'grant not found');
      expectError(await exchange(alice, 'grt_doesnotexist'), 400, 'invalid_grant', 'grant not found');
    });

    it('a request wider than the grant', async () => {
      const wider = [{ ...grantRequest.authorization_details[0]!, actions: ['read', 'book'] }];
      const res = await exchange(alice, grantId, { requestDetails: { grant_id: grantId, authorization_details: wider } });
      expectError(res, 400, 'invalid_authorization_details', "capability 0 (flight_booking): action 'book' is not in the parent");
    });
  });
});
