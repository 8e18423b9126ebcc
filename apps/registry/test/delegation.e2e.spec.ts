import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ACTOR_TOKEN_TYP, jwkThumbprint, tokenHash, TXN_TOKEN_TYPE } from '@writ/core';
import { generateKeyPair } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { AuditEventEntity } from '../src/modules/audit/audit.entity.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import type { GrantsService } from '../src/modules/grants/grants.service.js';
import type { Database } from '../src/infra/database.service.js';
import { e2eStorage } from './support/databases.js';
import { type Agent, capability, createTokenFixture } from './support/token-fixture.js';

describe.each([e2eStorage])('delegation on $name', (storage) => {
  // bob, carol and dave are agents of alice, the person who approves the grants (finding 6).
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-delegation-', owners: ['alice', 'bob', 'carol', 'dave'], ownerOf: { bob: 'alice', carol: 'alice', dave: 'alice' } });
  const { approvedGrant, delegate, enrol, expectError, proof, rootToken, selfSigned, verify } = fx;
  let app: NestFastifyApplication;
  let db: Database;
  let grants: GrantsService;
  let alice: Agent, bob: Agent, carol: Agent, dave: Agent;

  beforeAll(async () => {
    ({ app, db, grants, agents: { alice, bob, carol, dave } } = await fx.start());
  });

  afterEach(() => {
    fx.setClockOffset(0);
  });

  afterAll(async () => {
    await fx.close();
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
    fx.setClockOffset(100_000);
    const res = await delegate(alice, parentToken, bob);
    expect(res.statusCode).toBe(200);
    const child = await verify(res.json<{ access_token: string }>().access_token);
    expect(child.exp).toBe(parent.exp);
    expect(res.json<{ expires_in: number }>().expires_in).toBeLessThanOrEqual(200);
  });

  it("hands a delegation to another person's agent that the approved document names in allowed_agents", async () => {
    const strangers = await enrol('mallory');
    const named = await rootToken(alice, await approvedGrant(alice, { delegation: { max_depth: 1, allowed_agents: [strangers.clientId] } }));
    const res = await delegate(alice, named, strangers);
    expect(res.statusCode).toBe(200);
    expect((await verify(res.json<{ access_token: string }>().access_token)).act).toEqual({ sub: strangers.clientId, act: { sub: alice.clientId } });
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

    it("another person's agent, when the grant names no allowed_agents", async () => {
      const strangers = await enrol('mallory');
      expectError(
        await delegate(alice, parentToken, strangers),
        400,
        'invalid_grant',
        "actor belongs to another person than the grant's owner, and the grant's delegation.allowed_agents does not name it",
      );
    });

    it('an unregistered actor', async () => {
      const { privateKey } = await generateKeyPair('ES256');
      const actorToken = await selfSigned('agt_unknown', privateKey, undefined, ACTOR_TOKEN_TYP);
      expectError(await delegate(alice, parentToken, bob, { actorToken }), 400, 'invalid_grant', 'actor is not a registered agent');
    });

    it('a disabled actor', async () => {
      const erin = await enrol('erin');
      await app.get(AgentsService).disable(erin.clientId, 'erin');
      expectError(await delegate(alice, parentToken, erin), 400, 'invalid_grant', 'actor is disabled');
    });

    it('an actor token not signed by the actor', async () => {
      const actorToken = await selfSigned(bob.clientId, carol.privateKey, undefined, ACTOR_TOKEN_TYP);
      expectError(await delegate(alice, parentToken, bob, { actorToken }), 400, 'invalid_grant', 'actor token signature is invalid');
    });

    it('a replayed actor token', async () => {
      const actorToken = await selfSigned(bob.clientId, bob.privateKey, undefined, ACTOR_TOKEN_TYP);
      expect((await delegate(alice, parentToken, bob, { actorToken })).statusCode).toBe(200);
      expectError(await delegate(alice, parentToken, bob, { actorToken }), 400, 'invalid_grant', 'actor token jti was already used');
    });

    it("a DPoP proof made with a key other than the parent token's", async () => {
      const dpop = await proof(dave, parentToken);
      expectError(await delegate(alice, parentToken, bob, { dpop }), 400, 'invalid_dpop_proof', 'DPoP proof key does not match the token cnf.jkt');
    });

    it('a client that does not hold the subject token', async () => {
      expectError(await delegate(dave, parentToken, bob), 400, 'invalid_grant', 'only the holder of the subject token can delegate');
    });

    it('a parent whose grant was revoked', async () => {
      const revokedGrant = await approvedGrant(alice);
      const token = await rootToken(alice, revokedGrant);
      await grants.revoke(revokedGrant, 'alice');
      // Revoking a grant records a revocation that kills every token derived from it (ADR 0008).
      expectError(await delegate(alice, token, bob), 400, 'invalid_grant', 'subject token is revoked');
    });

    it('an expired parent', async () => {
      const token = await rootToken(alice, await approvedGrant(alice));
      fx.setClockOffset(301_000 + 5_000);
      expectError(await delegate(alice, token, bob), 400, 'invalid_grant', 'subject token is expired');
    });
  });
});
