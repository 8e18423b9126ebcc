import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import {
  type Clock,
  createDpopProof,
  JWT_TOKEN_TYPE,
  jwkThumbprint,
  SELF_SIGNED_TOKEN_TYPE,
  TOKEN_EXCHANGE_GRANT,
  tokenHash,
  TXN_TOKEN_TYPE,
  type TxnTokenClaims,
  verifyTxnToken,
} from '@writ/core';
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { AuditEventEntity } from '../src/modules/audit/audit.entity.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { GrantsService } from '../src/modules/grants/grants.service.js';
import { KeyStore } from '../src/modules/keys/key-store.js';
import { ServicesService } from '../src/modules/services/services.service.js';
import { createRegistry } from '../src/registry.js';
import type { Database } from '../src/infra/database.service.js';
import { storages, type TestDatabase } from './support/databases.js';

const ISSUER = 'https://registry.writ.test';
const TOKEN_URL = `${ISSUER}/oauth/token`;

const capability = {
  type: 'flight_booking',
  locations: ['https://flights.example/api'],
  actions: ['read', 'book'],
  limits: { max_passengers: 2 },
};

const grantRequest = {
  service: 'https://flights.example',
  authorization_details: [capability],
  envelope: { max_uses: 10 },
  purpose: 'Book my trip',
  duration_s: 3600,
  delegation: { max_depth: 2 },
};

interface Agent {
  clientId: string;
  owner: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

type Response = Awaited<ReturnType<NestFastifyApplication['inject']>>;

describe.each(storages)('delegation on $name', ({ create }) => {
  let app: NestFastifyApplication;
  let db: Database;
  let testDb: TestDatabase;
  let dataDir: string;
  let grants: GrantsService;
  let offsetMs = 0;
  const clock: Clock = { now: () => Date.now() + offsetMs };
  let alice: Agent;
  let bob: Agent;
  let carol: Agent;
  let dave: Agent;

  async function enrol(owner: string): Promise<Agent> {
    const agents = app.get(AgentsService);
    const { token } = await agents.mintInitialAccessToken(owner);
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const { client_id: clientId } = await agents.register(token, { client_name: `agent of ${owner}`, jwks: { keys: [publicJwk] } });
    return { clientId, owner, privateKey, publicJwk };
  }

  /** A JWT from `signer` with iss = sub = `clientId`, aud = issuer, single-use jti, on the test clock. */
  function selfSigned(clientId: string, signer: CryptoKey, jti: string = randomUUID()): Promise<string> {
    const iat = Math.floor(clock.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(ISSUER)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 60)
      .setJti(jti)
      .sign(signer);
  }

  function proof(agent: Agent, accessToken?: string): Promise<string> {
    return createDpopProof({ privateKey: agent.privateKey, publicJwk: agent.publicJwk, htm: 'POST', htu: TOKEN_URL, clock, ...(accessToken ? { accessToken } : {}) });
  }

  function post(form: Record<string, string>, dpop: string): Promise<Response> {
    return app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop },
      payload: new URLSearchParams(form).toString(),
    });
  }

  async function approvedGrant(agent: Agent, overrides: object = {}): Promise<string> {
    const grant = await grants.request(agent.clientId, agent.owner, { ...grantRequest, ...overrides });
    await grants.approve(grant.id, agent.owner);
    return grant.id;
  }

  async function rootToken(agent: Agent, grantId: string): Promise<string> {
    const res = await post(
      {
        grant_type: TOKEN_EXCHANGE_GRANT,
        requested_token_type: TXN_TOKEN_TYPE,
        subject_token_type: SELF_SIGNED_TOKEN_TYPE,
        subject_token: await selfSigned(agent.clientId, agent.privateKey),
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await selfSigned(agent.clientId, agent.privateKey),
        request_details: JSON.stringify({ grant_id: grantId }),
      },
      await proof(agent),
    );
    expect(res.statusCode).toBe(200);
    return res.json<{ access_token: string }>().access_token;
  }

  interface Delegation {
    requestDetails?: object;
    actorToken?: string;
    dpop?: string;
  }

  /** `holder` hands `parent` to `actor`. */
  async function delegate(holder: Agent, parent: string, actor: Agent, options: Delegation = {}): Promise<Response> {
    return post(
      {
        grant_type: TOKEN_EXCHANGE_GRANT,
        requested_token_type: TXN_TOKEN_TYPE,
        subject_token_type: TXN_TOKEN_TYPE,
        subject_token: parent,
        actor_token_type: JWT_TOKEN_TYPE,
        actor_token: options.actorToken ?? (await selfSigned(actor.clientId, actor.privateKey)),
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await selfSigned(holder.clientId, holder.privateKey),
        ...(options.requestDetails ? { request_details: JSON.stringify(options.requestDetails) } : {}),
      },
      options.dpop ?? (await proof(holder, parent)),
    );
  }

  async function verify(token: string): Promise<TxnTokenClaims> {
    const jwk = (await app.get(KeyStore).jwks()).keys[0]!;
    return verifyTxnToken(token, { key: (await importJWK(jwk, 'ES256')) as CryptoKey, issuer: ISSUER, audience: 'writ.test', clock });
  }

  function expectError(res: Response, status: number, error: string, description: string): void {
    expect({ status: res.statusCode, body: res.json<unknown>() }).toEqual({ status, body: { error, error_description: description } });
  }

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-delegation-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: ISSUER, WRIT_TRUST_DOMAIN: 'writ.test' });
    ({ app, db } = await createRegistry(config, { logger: false, database: testDb.target, clock }));
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    grants = app.get(GrantsService);
    await app.get(ServicesService).register({ uri: 'https://flights.example', display_name: 'Flights', catalogue: [{ type: 'flight_booking', actions: ['read', 'book'] }] });
    alice = await enrol('alice');
    bob = await enrol('bob');
    carol = await enrol('carol');
    dave = await enrol('dave');
  });

  afterEach(() => {
    offsetMs = 0;
  });

  afterAll(async () => {
    await app.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("hands a narrower token bound to the actor's key, linked to its parent in the audit chain", async () => {
    const grantId = await approvedGrant(alice);
    const parentToken = await rootToken(alice, grantId);
    const parent = await verify(parentToken);
    const narrower = [{ ...capability, actions: ['read'] }];
    const res = await delegate(alice, parentToken, bob, { requestDetails: { authorization_details: narrower, envelope: { max_uses: 5 } } });
    expect(res.statusCode).toBe(200);
    const body = res.json<{ access_token: string; token_type: string; issued_token_type: string; expires_in: number }>();
    expect(body).toMatchObject({ token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE });

    const child = await verify(body.access_token);
    expect(child).toMatchObject({
      iss: parent.iss,
      aud: parent.aud,
      txn: parent.txn,
      sub: 'alice',
      req_wl: alice.clientId,
      act: { sub: bob.clientId, act: { sub: alice.clientId } },
      cnf: { jkt: await jwkThumbprint(bob.publicJwk) },
      tctx: { grant_id: grantId, depth: 1, parent: parent.jti, purpose: parent.tctx.purpose, approval: parent.tctx.approval, authorization_details: narrower, envelope: { max_uses: 5 } },
    });
    expect(child.jti).not.toBe(parent.jti);
    expect(child.exp).toBeLessThanOrEqual(parent.exp);

    const events = db.dataSource.getRepository(AuditEventEntity);
    const issued = await events.findOneByOrFail({ type: 'token.issued', txn: parent.txn });
    const delegated = await events.findOneByOrFail({ type: 'token.delegated', txn: parent.txn });
    expect(delegated).toMatchObject({ grant_id: grantId, actor: alice.clientId, subject: 'alice', parent_id: issued.id });
    expect(delegated.data).toMatchObject({
      jti: child.jti,
      parent_jti: parent.jti,
      actor: bob.clientId,
      token_hash: await tokenHash(body.access_token),
      jkt: child.cnf.jkt,
    });
    expect((await app.get(AuditService).verify()).chain.ok).toBe(true);
  });

  it('fans out: one parent, two children, two events under one txn', async () => {
    const parentToken = await rootToken(alice, await approvedGrant(alice));
    const parent = await verify(parentToken);
    const toBob = await delegate(alice, parentToken, bob);
    const toCarol = await delegate(alice, parentToken, carol);
    expect([toBob.statusCode, toCarol.statusCode]).toEqual([200, 200]);
    const children = await Promise.all([toBob, toCarol].map((r) => verify(r.json<{ access_token: string }>().access_token)));
    expect(children.map((c) => c.act)).toEqual([
      { sub: bob.clientId, act: { sub: alice.clientId } },
      { sub: carol.clientId, act: { sub: alice.clientId } },
    ]);
    expect(children.every((c) => c.txn === parent.txn && c.tctx.parent === parent.jti)).toBe(true);
    const events = await db.dataSource.getRepository(AuditEventEntity).findBy({ type: 'token.delegated', txn: parent.txn });
    expect(events.map((e) => e.data.actor).sort()).toEqual([bob.clientId, carol.clientId].sort());
    expect(new Set(events.map((e) => e.parent_id)).size).toBe(1);
  });

  it('never lets a child outlive its parent', async () => {
    const parentToken = await rootToken(alice, await approvedGrant(alice));
    const parent = await verify(parentToken);
    offsetMs = 100_000;
    const res = await delegate(alice, parentToken, bob);
    expect(res.statusCode).toBe(200);
    const child = await verify(res.json<{ access_token: string }>().access_token);
    expect(child.exp).toBe(parent.exp);
    expect(res.json<{ expires_in: number }>().expires_in).toBeLessThanOrEqual(200);
  });

  describe('refuses', () => {
    let grantId: string;
    let parentToken: string;
    beforeAll(async () => {
      grantId = await approvedGrant(alice);
      parentToken = await rootToken(alice, grantId);
    });

    it('a wider action', async () => {
      const wider = [{ ...capability, actions: ['read', 'book', 'cancel'] }];
      expectError(await delegate(alice, parentToken, bob, { requestDetails: { authorization_details: wider } }), 400, 'invalid_authorization_details', "capability 0 (flight_booking): action 'cancel' is not in the parent");
    });

    it('a wider location', async () => {
      const wider = [{ ...capability, locations: ['https://flights.example'] }];
      expectError(await delegate(alice, parentToken, bob, { requestDetails: { authorization_details: wider } }), 400, 'invalid_authorization_details', 'capability 0 (flight_booking): location https://flights.example is not covered');
    });

    it('a wider limit', async () => {
      const wider = [{ ...capability, limits: { max_passengers: 3 } }];
      expectError(await delegate(alice, parentToken, bob, { requestDetails: { authorization_details: wider } }), 400, 'invalid_authorization_details', 'capability 0 (flight_booking): limit max_passengers 3 exceeds 2');
    });

    it('a wider envelope', async () => {
      expectError(await delegate(alice, parentToken, bob, { requestDetails: { envelope: { max_uses: 20 } } }), 400, 'invalid_authorization_details', 'envelope is wider than its parent: max_uses 20 exceeds 10');
    });

    it('a hop past the grant depth limit', async () => {
      const shallow = await rootToken(alice, await approvedGrant(alice, { delegation: { max_depth: 1 } }));
      const res = await delegate(alice, shallow, bob);
      expect(res.statusCode).toBe(200);
      const bobs = res.json<{ access_token: string }>().access_token;
      expectError(await delegate(bob, bobs, carol), 400, 'invalid_grant', 'delegation depth limit reached');
    });

    it('a grant that allows no delegation at all', async () => {
      const none = await rootToken(alice, await approvedGrant(alice, { delegation: undefined }));
      expectError(await delegate(alice, none, bob), 400, 'invalid_grant', 'delegation depth limit reached');
    });

    it('an actor the delegation policy does not allow', async () => {
      const onlyBob = await rootToken(alice, await approvedGrant(alice, { delegation: { max_depth: 2, allowed_agents: [bob.clientId] } }));
      expectError(await delegate(alice, onlyBob, carol), 400, 'invalid_grant', "actor is not allowed by the grant's delegation policy");
      expect((await delegate(alice, onlyBob, bob)).statusCode).toBe(200);
    });

    it('an unregistered actor', async () => {
      const { privateKey } = await generateKeyPair('ES256');
      const actorToken = await selfSigned('agt_unknown', privateKey);
      expectError(await delegate(alice, parentToken, bob, { actorToken }), 400, 'invalid_grant', 'actor is not a registered agent');
    });

    it('a disabled actor', async () => {
      const erin = await enrol('erin');
      await app.get(AgentsService).disable(erin.clientId, 'erin');
      expectError(await delegate(alice, parentToken, erin), 400, 'invalid_grant', 'actor is disabled');
    });

    it('an actor token not signed by the actor', async () => {
      const actorToken = await selfSigned(bob.clientId, carol.privateKey);
      expectError(await delegate(alice, parentToken, bob, { actorToken }), 400, 'invalid_grant', 'actor token signature is invalid');
    });

    it('a replayed actor token', async () => {
      const actorToken = await selfSigned(bob.clientId, bob.privateKey);
      expect((await delegate(alice, parentToken, bob, { actorToken })).statusCode).toBe(200);
      expectError(await delegate(alice, parentToken, bob, { actorToken }), 400, 'invalid_grant', 'actor token jti was already used');
    });

    it("a DPoP proof made with a key other than the parent token's", async () => {
      const dpop = await proof(dave, parentToken);
      expectError(await delegate(alice, parentToken, bob, { dpop }), 401, 'invalid_dpop_proof', 'DPoP proof key does not match the token cnf.jkt');
    });

    it('a client that does not hold the subject token', async () => {
      expectError(await delegate(dave, parentToken, bob), 400, 'invalid_grant', 'only the holder of the subject token can delegate');
    });

    it('a parent whose grant was revoked', async () => {
      const revokedGrant = await approvedGrant(alice);
      const token = await rootToken(alice, revokedGrant);
      await grants.revoke(revokedGrant, 'alice');
      expectError(await delegate(alice, token, bob), 400, 'invalid_grant', 'grant is revoked');
    });

    it('an expired parent', async () => {
      const token = await rootToken(alice, await approvedGrant(alice));
      offsetMs = 301_000 + 5_000;
      expectError(await delegate(alice, token, bob), 400, 'invalid_grant', 'subject token is expired');
    });
  });
});
