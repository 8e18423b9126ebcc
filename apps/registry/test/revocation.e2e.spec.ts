import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { jwkThumbprint, TXN_TOKEN_TYPE } from '@writ/core';
import { generateKeyPair } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuditEventEntity } from '../src/modules/audit/audit.entity.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import type { GrantsService } from '../src/modules/grants/grants.service.js';
import { REVOCATION_BUS, type RevocationBus, type RevocationEvent } from '../src/modules/revocations/revocation-bus.js';
import { RevocationsService } from '../src/modules/revocations/revocations.service.js';
import type { Database } from '../src/infra/database.service.js';
import { e2eStorage } from './support/databases.js';
import { type Agent, createTokenFixture, ISSUER, type Response } from './support/token-fixture.js';

describe.each([e2eStorage])('revocation on $name', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-revocation-', owners: ['alice', 'bob', 'carol', 'dave'], ownerOf: { bob: 'alice', carol: 'alice', dave: 'alice' } });
  const { approvedGrant, delegate, enrol, expectError, rootToken, selfSigned, verify } = fx;
  let app: NestFastifyApplication;
  let db: Database;
  let grants: GrantsService;
  let alice: Agent, bob: Agent, carol: Agent, dave: Agent;

  let revocations: RevocationsService;
  const published: RevocationEvent[] = [];

  /** A form post to /oauth/revoke or /oauth/introspect, authenticated as `client` unless it is null. */
  async function oauth(path: 'revoke' | 'introspect', client: Agent | null, form: Record<string, string>): Promise<Response> {
    const auth: Record<string, string> = client
      ? { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await selfSigned(client.clientId, client.privateKey) }
      : {};
    return app.inject({
      method: 'POST',
      url: `/oauth/${path}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ ...form, ...auth }).toString(),
    });
  }

  async function introspect(token: string, client: Agent = alice): Promise<Record<string, unknown>> {
    const res = await oauth('introspect', client, { token });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    return res.json<Record<string, unknown>>();
  }

  async function child(holder: Agent, parent: string, actor: Agent): Promise<string> {
    const res = await delegate(holder, parent, actor);
    expect(res.statusCode).toBe(200);
    return res.json<{ access_token: string }>().access_token;
  }

  beforeAll(async () => {
    ({ app, db, grants, agents: { alice, bob, carol, dave } } = await fx.start());
    revocations = app.get(RevocationsService);
    app.get<symbol, RevocationBus>(REVOCATION_BUS).subscribe((event) => published.push(event));
  });

  afterEach(() => {
    fx.setClockOffset(0);
  });

  afterAll(async () => {
    await fx.close();
  });

  it('advertises the revocation and introspection endpoints', async () => {
    const res = await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    expect(res.json()).toMatchObject({ revocation_endpoint: `${ISSUER}/oauth/revoke`, introspection_endpoint: `${ISSUER}/oauth/introspect` });
  });

  it('introspects an active root token', async () => {
    const grantId = await approvedGrant(alice);
    const token = await rootToken(alice, grantId);
    const claims = await verify(token);
    const body = await introspect(token);
    expect(body).toMatchObject({
      active: true,
      iss: ISSUER,
      sub: 'alice',
      aud: 'writ.test',
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      txn: claims.txn,
      scope: claims.scope,
      client_id: alice.clientId,
      cnf: { jkt: await jwkThumbprint(alice.publicJwk) },
      act: { sub: alice.clientId },
      token_type: TXN_TOKEN_TYPE,
      grant_id: grantId,
    });
  });

  it("tells a token's subject, actors, transaction and grant only to its holder and the agents in its act chain", async () => {
    const root = await rootToken(alice, await approvedGrant(alice));
    const bobs = await child(alice, root, bob);
    // The holder and the agent it came through learn about it.
    expect(await introspect(bobs, bob)).toMatchObject({ active: true, sub: 'alice', act: { sub: bob.clientId, act: { sub: alice.clientId } } });
    expect(await introspect(bobs, alice)).toMatchObject({ active: true });
    // Anyone else, of the same person or another, gets exactly the answer for an unknown token.
    const mallory = await enrol('mallory');
    for (const outsider of [carol, mallory]) expect(await introspect(bobs, outsider)).toEqual({ active: false });
    // A delegatee is not in its parent's chain.
    expect(await introspect(root, bob)).toEqual({ active: false });
    expect(await introspect(root, mallory)).toEqual({ active: false });
  });

  it('introspects garbage, a foreign token and an expired token as inactive', async () => {
    expect(await introspect('not-a-token')).toEqual({ active: false });
    expect(await introspect(await selfSigned(alice.clientId, alice.privateKey))).toEqual({ active: false });
    const token = await rootToken(alice, await approvedGrant(alice));
    fx.setClockOffset(3_600_000);
    expect(await introspect(token)).toEqual({ active: false });
  });

  it('revokes a token through RFC 7009 and announces it once committed', async () => {
    const token = await rootToken(alice, await approvedGrant(alice));
    const { jti } = await verify(token);
    const res = await oauth('revoke', alice, { token, token_type_hint: 'access_token' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(await introspect(token)).toEqual({ active: false });
    expect(published).toContainEqual(expect.objectContaining({ kind: 'token', value: jti }));
    const rows: unknown[] = await db.dataSource.query(`SELECT 1 FROM revocations WHERE kind = 'token' AND value = $1`, [jti]);
    expect(rows).toHaveLength(1);
    const event = await db.dataSource.getRepository(AuditEventEntity).findOneByOrFail({ type: 'revocation.token', actor: alice.clientId });
    expect(event.data).toMatchObject({ kind: 'token', value: jti });
  });

  it('answers 200 without effect for an unknown token or a client that neither holds nor requested it', async () => {
    expect((await oauth('revoke', alice, { token: 'garbage' })).statusCode).toBe(200);
    const token = await rootToken(alice, await approvedGrant(alice));
    expect((await oauth('revoke', dave, { token })).statusCode).toBe(200);
    expect(await introspect(token)).toMatchObject({ active: true });
  });

  it('a revoked grant deactivates the root and its children, and refuses further delegation', async () => {
    const grantId = await approvedGrant(alice);
    const root = await rootToken(alice, grantId);
    const bobs = await child(alice, root, bob);
    expect(await introspect(bobs)).toMatchObject({ active: true, act: { sub: bob.clientId, act: { sub: alice.clientId } } });
    await revocations.revoke('grant', grantId, 'alice', 'owner revoked');
    expect(published).toContainEqual(expect.objectContaining({ kind: 'grant', value: grantId }));
    expect(await introspect(root)).toEqual({ active: false });
    expect(await introspect(bobs)).toEqual({ active: false });
    expectError(await delegate(alice, root, carol), 400, 'invalid_grant', 'subject token is revoked');
  });

  it('a grant no longer approved deactivates its tokens', async () => {
    const grantId = await approvedGrant(alice);
    const root = await rootToken(alice, grantId);
    await grants.revoke(grantId, 'alice');
    expect(await introspect(root)).toEqual({ active: false });
  });

  it('a revoked txn deactivates the whole tree', async () => {
    const root = await rootToken(alice, await approvedGrant(alice));
    const bobs = await child(alice, root, bob);
    const carols = await child(bob, bobs, carol);
    expect(await introspect(carols)).toMatchObject({ active: true });
    await revocations.revoke('txn', (await verify(root)).txn, 'alice', 'stop');
    for (const token of [root, bobs, carols]) expect(await introspect(token)).toEqual({ active: false });
    expectError(await delegate(alice, root, dave), 400, 'invalid_grant', 'subject token is revoked');
  });

  it('a revoked agent in the middle of the chain deactivates what it handed on, not its parent', async () => {
    const erin = await enrol('alice');
    const root = await rootToken(alice, await approvedGrant(alice));
    const erins = await child(alice, root, erin);
    const carols = await child(erin, erins, carol);
    await revocations.revoke('agent', erin.clientId, 'erin', 'compromised');
    expect(await introspect(carols)).toEqual({ active: false });
    expect(await introspect(erins)).toEqual({ active: false });
    expect(await introspect(root)).toMatchObject({ active: true });
    expectError(await delegate(carol, carols, dave), 400, 'invalid_grant', 'subject token is revoked');
  });

  it('records an audit event per revocation, and the chain still verifies', async () => {
    const events = db.dataSource.getRepository(AuditEventEntity);
    for (const type of ['revocation.token', 'revocation.grant', 'revocation.txn', 'revocation.agent']) {
      expect(await events.countBy({ type })).toBeGreaterThan(0);
    }
    expect((await app.get(AuditService).verify()).chain.ok).toBe(true);
  });

  it('refuses an unauthenticated client with 401 invalid_client', async () => {
    const token = await rootToken(alice, await approvedGrant(alice));
    for (const path of ['revoke', 'introspect'] as const) {
      const res = await oauth(path, null, { token });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ error: 'invalid_client' });
    }
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await app.inject({
      method: 'POST',
      url: '/oauth/introspect',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ token, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await selfSigned(alice.clientId, privateKey) }).toString(),
    });
    expect(forged.statusCode).toBe(401);
    expect(forged.json()).toMatchObject({ error: 'invalid_client' });
    expect(await introspect(token)).toMatchObject({ active: true });
  });
});
