import { randomUUID } from 'node:crypto';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ACTOR_TOKEN_TYP, CLIENT_ASSERTION_TYP, SELF_SIGNED_TOKEN_TYPE, SUBJECT_TOKEN_TYP, TOKEN_EXCHANGE_GRANT, TXN_TOKEN_TYPE } from '@writ/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { e2eStorage } from './support/databases.js';
import { type Agent, createTokenFixture, grantRequest, type Response } from './support/token-fixture.js';

/**
 * ADR 0015: the three kinds of JWT an agent signs (client assertion, subject token, actor token)
 * carry the same claims; each is accepted only as its own kind, and all share one single-use
 * jti space per agent. Every attack here goes through the registry's HTTP app.
 */
describe.each([e2eStorage])('agent-signed JWT kinds on $name', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-jwt-kinds-', owners: ['alice'] });
  const { approvedGrant, delegate, enrol, expectError, post, proof, rootToken, selfSigned, verify } = fx;
  let app: NestFastifyApplication;
  /** The delegating agent, here the attacker. */
  let planner: Agent;
  /** The delegatee, whose consent the planner holds. */
  let booker: Agent;

  beforeAll(async () => {
    ({ app, agents: { alice: planner } } = await fx.start());
    booker = await enrol('alice');
  });
  afterEach(() => fx.setClockOffset(0));
  afterAll(() => fx.close());

  /** The booker's consent to receive a delegation, as the SDK's actorToken() makes it. */
  const consentOf = (agent: Agent, jti?: string): Promise<string> => selfSigned(agent.clientId, agent.privateKey, jti, ACTOR_TOKEN_TYP);

  function me(assertion: string): Promise<Response> {
    return app.inject({ method: 'GET', url: '/agents/me', headers: { authorization: `private_key_jwt ${assertion}` } });
  }

  /** A root token request of `agent`'s grant, with the given JWTs, proved with `prover`'s key. */
  async function rootRequest(grantId: string, jwts: { subjectToken: string; assertion: string }, prover: Agent): Promise<Response> {
    return post(
      {
        grant_type: TOKEN_EXCHANGE_GRANT,
        requested_token_type: TXN_TOKEN_TYPE,
        subject_token_type: SELF_SIGNED_TOKEN_TYPE,
        subject_token: jwts.subjectToken,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: jwts.assertion,
        request_details: JSON.stringify({ grant_id: grantId }),
      },
      await proof(prover),
    );
  }

  /** Expects the 401 invalid_client of a header-borne assertion, with its private_key_jwt challenge (ADR 0005). */
  function expectHeaderClientError(res: Response, description: string): void {
    expect({ status: res.statusCode, body: res.json<unknown>(), challenge: res.headers['www-authenticate'] }).toEqual({
      status: 401,
      body: { error: 'invalid_client', error_description: description },
      challenge: `private_key_jwt error="invalid_client", error_description="${description}"`,
    });
  }

  it("refuses a delegatee's consent as its client assertion", async () => {
    const consent = await consentOf(booker);
    expectHeaderClientError(await me(consent), 'client assertion typ must be client-authentication+jwt');
    // The consent was not spent by the refused attempt: it still serves its one purpose.
    const parent = await rootToken(planner, await approvedGrant(planner));
    expect((await delegate(planner, parent, booker, { actorToken: consent })).statusCode).toBe(200);
  });

  it('refuses a consent as a subject token', async () => {
    const grantId = await approvedGrant(planner);
    const res = await rootRequest(grantId, { subjectToken: await consentOf(planner), assertion: await selfSigned(planner.clientId, planner.privateKey) }, planner);
    expectError(res, 400, 'invalid_grant', 'subject token typ must be writ-subject+jwt');
  });

  it('refuses a subject token as a client assertion, and as an actor token', async () => {
    const subjectToken = await selfSigned(booker.clientId, booker.privateKey, undefined, SUBJECT_TOKEN_TYP);
    expectHeaderClientError(await me(subjectToken), 'client assertion typ must be client-authentication+jwt');
    const parent = await rootToken(planner, await approvedGrant(planner));
    expectError(await delegate(planner, parent, booker, { actorToken: subjectToken }), 400, 'invalid_grant', 'actor token typ must be writ-actor+jwt');
  });

  it('refuses a client assertion as an actor token', async () => {
    const parent = await rootToken(planner, await approvedGrant(planner));
    const assertion = await selfSigned(booker.clientId, booker.privateKey);
    expectError(await delegate(planner, parent, booker, { actorToken: assertion }), 400, 'invalid_grant', 'actor token typ must be writ-actor+jwt');
  });

  it.each([
    ['the old untyped shape', null],
    ['a plain JWT typ', 'JWT'],
  ])('refuses %s for every kind, saying which typ it must be', async (_, typ) => {
    const old = (): Promise<string> => selfSigned(booker.clientId, booker.privateKey, undefined, typ);
    expectHeaderClientError(await me(await old()), 'client assertion typ must be client-authentication+jwt');
    const parent = await rootToken(planner, await approvedGrant(planner));
    expectError(await delegate(planner, parent, booker, { actorToken: await old() }), 400, 'invalid_grant', 'actor token typ must be writ-actor+jwt');
    const grantId = await approvedGrant(booker);
    expectError(await rootRequest(grantId, { subjectToken: await old(), assertion: await selfSigned(booker.clientId, booker.privateKey) }, booker), 400, 'invalid_grant', 'subject token typ must be writ-subject+jwt');
  });

  describe('one single-use jti space per agent, whatever the kind', () => {
    it('refuses a jti first used by a client assertion in a subject token and an actor token', async () => {
      const jti = randomUUID();
      expect((await me(await selfSigned(booker.clientId, booker.privateKey, jti))).statusCode).toBe(200);
      const grantId = await approvedGrant(booker);
      const subjectToken = await selfSigned(booker.clientId, booker.privateKey, jti, SUBJECT_TOKEN_TYP);
      expectError(await rootRequest(grantId, { subjectToken, assertion: await selfSigned(booker.clientId, booker.privateKey) }, booker), 400, 'invalid_grant', 'subject token jti was already used');
      const parent = await rootToken(planner, await approvedGrant(planner));
      expectError(await delegate(planner, parent, booker, { actorToken: await consentOf(booker, jti) }), 400, 'invalid_grant', 'actor token jti was already used');
    });

    it('refuses a jti first used by an actor token in a client assertion and a subject token', async () => {
      const jti = randomUUID();
      const parent = await rootToken(planner, await approvedGrant(planner));
      expect((await delegate(planner, parent, booker, { actorToken: await consentOf(booker, jti) })).statusCode).toBe(200);
      expectHeaderClientError(await me(await selfSigned(booker.clientId, booker.privateKey, jti)), 'client assertion jti was already used');
      const grantId = await approvedGrant(booker);
      const subjectToken = await selfSigned(booker.clientId, booker.privateKey, jti, SUBJECT_TOKEN_TYP);
      expectError(await rootRequest(grantId, { subjectToken, assertion: await selfSigned(booker.clientId, booker.privateKey) }, booker), 400, 'invalid_grant', 'subject token jti was already used');
    });

    it('refuses a jti first used by a subject token in a client assertion and an actor token', async () => {
      const jti = randomUUID();
      const grantId = await approvedGrant(booker);
      const subjectToken = await selfSigned(booker.clientId, booker.privateKey, jti, SUBJECT_TOKEN_TYP);
      expect((await rootRequest(grantId, { subjectToken, assertion: await selfSigned(booker.clientId, booker.privateKey) }, booker)).statusCode).toBe(200);
      expectHeaderClientError(await me(await selfSigned(booker.clientId, booker.privateKey, jti)), 'client assertion jti was already used');
      const parent = await rootToken(planner, await approvedGrant(planner));
      expectError(await delegate(planner, parent, booker, { actorToken: await consentOf(booker, jti) }), 400, 'invalid_grant', 'actor token jti was already used');
    });

    it('refuses a replayed subject token', async () => {
      const grantId = await approvedGrant(booker);
      const subjectToken = await selfSigned(booker.clientId, booker.privateKey, undefined, SUBJECT_TOKEN_TYP);
      expect((await rootRequest(grantId, { subjectToken, assertion: await selfSigned(booker.clientId, booker.privateKey) }, booker)).statusCode).toBe(200);
      expectError(await rootRequest(grantId, { subjectToken, assertion: await selfSigned(booker.clientId, booker.privateKey) }, booker), 400, 'invalid_grant', 'subject token jti was already used');
    });

    it('refuses one jti for the client assertion and the subject token of the same request', async () => {
      const jti = randomUUID();
      const grantId = await approvedGrant(booker);
      const res = await rootRequest(
        grantId,
        { subjectToken: await selfSigned(booker.clientId, booker.privateKey, jti, SUBJECT_TOKEN_TYP), assertion: await selfSigned(booker.clientId, booker.privateKey, jti) },
        booker,
      );
      expectError(res, 400, 'invalid_grant', 'subject token jti was already used');
    });
  });

  it("refuses every step of a delegating agent stealing its delegatee's grant with the delegatee's consent", async () => {
    // The booker has a grant of its own, and hands the planner its consent to receive a hop.
    const bookersGrant = await approvedGrant(booker);
    const consent = await consentOf(booker);

    // 1. Log in as the booker.
    expectHeaderClientError(await me(consent), 'client assertion typ must be client-authentication+jwt');
    // 2. Request grants in the booker's name.
    const requested = await app.inject({ method: 'POST', url: '/grants', headers: { authorization: `private_key_jwt ${consent}` }, payload: grantRequest });
    expectHeaderClientError(requested, 'client assertion typ must be client-authentication+jwt');
    // 3. Exchange the booker's grant for a token bound to the planner's key.
    const stolen = await rootRequest(bookersGrant, { subjectToken: consent, assertion: consent }, planner);
    expectError(stolen, 401, 'invalid_client', 'client assertion typ must be client-authentication+jwt');

    // The consent still does what it was made for, once.
    const parent = await rootToken(planner, await approvedGrant(planner));
    const hop = await delegate(planner, parent, booker, { actorToken: consent });
    expect(hop.statusCode).toBe(200);
    expect((await verify(hop.json<{ access_token: string }>().access_token)).act).toEqual({ sub: booker.clientId, act: { sub: planner.clientId } });
    expectError(await delegate(planner, parent, booker, { actorToken: consent }), 400, 'invalid_grant', 'actor token jti was already used');
  });

  it('keeps the typ constants the SDK signs with', () => {
    expect([CLIENT_ASSERTION_TYP, SUBJECT_TOKEN_TYP, ACTOR_TOKEN_TYP]).toEqual(['client-authentication+jwt', 'writ-subject+jwt', 'writ-actor+jwt']);
  });
});
