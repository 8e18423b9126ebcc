import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { approvalChallenge, type ApprovalReceipt, approvalReceiptHash, SUBJECT_TOKEN_TYP, verifyApprovalReceipt } from '@writ/core';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eStorage } from './support/databases.js';
import { SoftPasskey } from './support/soft-passkey.js';
import { type Agent, createTokenFixture, grantRequest, type Response } from './support/token-fixture.js';

const UI = 'http://localhost:3000';
const RP_ID = 'localhost';

/** A browser signed in to the approval UI: its cookie, CSRF token and passkey. */
interface Browser {
  humanId: string;
  cookie: string;
  csrf: string;
  passkey: SoftPasskey;
}

type Json = Record<string, unknown>;

describe.each([e2eStorage])('human approval over HTTP on $name', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-approvals-', owners: [] });
  const { rootToken, verify, selfSigned, expectError } = fx;
  let app: NestFastifyApplication;
  let alice: Browser;
  let agent: Agent;

  /** A request as the approval UI's page makes it: Origin, cookie, CSRF token; each overridable. */
  function call(who: Browser | null, method: 'GET' | 'POST', url: string, payload?: object, headers: Record<string, string | undefined> = {}): Promise<Response> {
    const all: Record<string, string | undefined> = {
      origin: method === 'GET' ? undefined : UI,
      ...(who ? { cookie: `writ_session=${who.cookie}`, 'x-csrf-token': method === 'GET' ? undefined : who.csrf } : {}),
      ...headers,
    };
    const defined = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as Record<string, string>;
    return app.inject({ method, url, headers: defined, ...(payload ? { payload } : {}) });
  }

  function sessionCookieOf(res: Response): { value: string; attributes: string } {
    const header = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('writ_session='));
    expect(header, 'a session cookie').toBeDefined();
    return { value: header!.split(';')[0]!.slice('writ_session='.length), attributes: header! };
  }

  async function signUp(name: string): Promise<Browser> {
    const begin = await call(null, 'POST', '/auth/register/options', { name });
    expect(begin.statusCode).toBe(200);
    const { ceremony, options } = begin.json<{ ceremony: string; options: Parameters<SoftPasskey['register']>[0] }>();
    const passkey = new SoftPasskey(UI, RP_ID);
    const res = await call(null, 'POST', '/auth/register/verify', { ceremony, response: passkey.register(options) });
    expect(res.statusCode).toBe(200);
    const body = res.json<{ human: { id: string; name: string }; csrf_token: string }>();
    return { humanId: body.human.id, cookie: sessionCookieOf(res).value, csrf: body.csrf_token, passkey };
  }

  /** A fresh passkey confirmation for `purpose`, signed with `who`'s passkey (ADR 0018). */
  async function confirmation(who: Browser, purpose: string): Promise<{ ceremony: string; response: unknown }> {
    const begin = await call(who, 'POST', '/me/confirmation/options', { purpose });
    expect(begin.statusCode, begin.body).toBe(200);
    const { ceremony, options } = begin.json<{ ceremony: string; options: Parameters<SoftPasskey['assert']>[0] }>();
    return { ceremony, response: who.passkey.assert(options) };
  }

  /** An agent of `who`, enrolled with a token the human minted in the UI and registered over RFC 7591. */
  async function enrolAgent(who: Browser, name: string): Promise<Agent> {
    const minted = await call(who, 'POST', '/me/agents/enrollment-tokens', { confirmation: await confirmation(who, 'enrollment_token') });
    expect(minted.statusCode).toBe(201);
    const { token } = minted.json<{ token: string }>();
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const registered = await app.inject({ method: 'POST', url: '/oauth/register', headers: { authorization: `Bearer ${token}` }, payload: { client_name: name, jwks: { keys: [publicJwk] } } });
    expect(registered.statusCode).toBe(201);
    return { clientId: registered.json<{ client_id: string }>().client_id, owner: who.humanId, privateKey, publicJwk };
  }

  /** The agent asks for a grant over HTTP, authenticated with private_key_jwt. */
  async function requestGrant(by: Agent, overrides: object = {}): Promise<string> {
    const res = await app.inject({
      method: 'POST',
      url: '/grants',
      headers: { authorization: `private_key_jwt ${await selfSigned(by.clientId, by.privateKey)}` },
      payload: { ...grantRequest, ...overrides },
    });
    expect(res.statusCode).toBe(201);
    return res.json<{ grant_id: string }>().grant_id;
  }

  async function beginDecision(who: Browser, grantId: string, body: object = { decision: 'approve' }) {
    const res = await call(who, 'POST', `/me/grants/${grantId}/decision/options`, body);
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ ceremony: string; document: string; options: Parameters<SoftPasskey['assert']>[0] }>();
  }

  /** Both steps of a decision, with the browser's passkey. */
  async function decide(who: Browser, grantId: string, body: object = { decision: 'approve' }): Promise<Response> {
    const { ceremony, document, options } = await beginDecision(who, grantId, body);
    return call(who, 'POST', `/me/grants/${grantId}/decision`, { ceremony, document, response: who.passkey.assert(options) });
  }

  async function grantStatus(who: Browser, grantId: string): Promise<string> {
    return (await call(who, 'GET', `/me/grants/${grantId}`)).json<{ status: string }>().status;
  }

  beforeAll(async () => {
    ({ app } = await fx.start());
    alice = await signUp('Alice');
    agent = await enrolAgent(alice, 'trip planner');
  });

  afterAll(() => fx.close());

  describe('accounts', () => {
    it('signs up with a passkey: an account, an HttpOnly SameSite=Strict session cookie and a CSRF token', async () => {
      const begin = await call(null, 'POST', '/auth/register/options', { name: 'Carol' });
      const { ceremony, options } = begin.json<{ ceremony: string; options: Parameters<SoftPasskey['register']>[0] }>();
      expect(options).toMatchObject({ rp: { id: RP_ID, name: 'Writ' }, user: { name: 'Carol' }, authenticatorSelection: { userVerification: 'required', residentKey: 'required' } });
      const passkey = new SoftPasskey(UI, RP_ID);
      const res = await call(null, 'POST', '/auth/register/verify', { ceremony, response: passkey.register(options) });
      const cookie = sessionCookieOf(res);
      expect(cookie.attributes).toMatch(/; HttpOnly/);
      expect(cookie.attributes).toMatch(/; SameSite=Strict/);
      expect(cookie.attributes).toMatch(/; Path=\//);
      const session = await app.inject({ method: 'GET', url: '/auth/session', headers: { cookie: `writ_session=${cookie.value}` } });
      expect(session.json()).toEqual({ human: { id: expect.stringMatching(/^usr_/), name: 'Carol' }, csrf_token: res.json<{ csrf_token: string }>().csrf_token });
    });

    it('signs in with the discoverable passkey, and out again', async () => {
      const begin = await call(null, 'POST', '/auth/login/options', {});
      const { ceremony, options } = begin.json<{ ceremony: string; options: Parameters<SoftPasskey['assert']>[0] }>();
      expect(options).toMatchObject({ rpId: RP_ID, userVerification: 'required' });
      const res = await call(null, 'POST', '/auth/login/verify', { ceremony, response: alice.passkey.assert(options) });
      expect(res.statusCode).toBe(200);
      const signedIn: Browser = { ...alice, cookie: sessionCookieOf(res).value, csrf: res.json<{ csrf_token: string }>().csrf_token };
      expect(signedIn.cookie).not.toBe(alice.cookie);
      expect((await call(signedIn, 'GET', '/auth/session')).json()).toMatchObject({ human: { id: alice.humanId, name: 'Alice' } });
      expect((await call(signedIn, 'POST', '/auth/logout')).statusCode).toBe(204);
      expectError(await call(signedIn, 'GET', '/me/grants'), 401, 'login_required', 'your session has ended: sign in with your passkey again');
    });

    it('keeps several passkeys per person, each with its public key', async () => {
      const begin = await call(alice, 'POST', '/me/passkeys/options', { confirmation: await confirmation(alice, 'add_passkey') });
      const { ceremony, options } = begin.json<{ ceremony: string; options: Parameters<SoftPasskey['register']>[0] }>();
      // The passkeys the person already has are excluded, so an authenticator is not registered twice.
      expect(options.excludeCredentials).toEqual([expect.objectContaining({ id: alice.passkey.id })]);
      const second = new SoftPasskey(UI, RP_ID);
      const added = await call(alice, 'POST', '/me/passkeys/verify', { ceremony, response: second.register(options), label: 'phone' });
      expect(added.statusCode).toBe(200);
      const { passkeys } = (await call(alice, 'GET', '/me/passkeys')).json<{ passkeys: { id: string; label: string; public_key: JWK }[] }>();
      expect(passkeys.map((p) => p.id)).toEqual([alice.passkey.id, second.id]);
      expect(passkeys[1]).toMatchObject({ label: 'phone', public_key: { kty: 'EC', crv: 'P-256', alg: 'ES256' } });
      // Either passkey signs decisions.
      const grantId = await requestGrant(agent);
      expect((await decide({ ...alice, passkey: second }, grantId, { decision: 'deny' })).statusCode).toBe(200);
    });
  });

  describe('decisions', () => {
    it('shows a request in the inbox and on the live event stream as soon as the agent makes it', async () => {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.getHttpServer().address() as { port: number };
      const stream = await fetch(`http://127.0.0.1:${address.port}/me/events`, { headers: { cookie: `writ_session=${alice.cookie}` } });
      expect(stream.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      const reader = stream.body!.getReader();
      const grantId = await requestGrant(agent);
      let received = '';
      while (!received.includes(grantId)) received += new TextDecoder().decode((await reader.read()).value);
      expect(received).toContain(`event: grant\ndata: {"grant_id":"${grantId}","status":"pending","version":1}\n\n`);
      await reader.cancel();
      const inbox = (await call(alice, 'GET', '/me/grants?status=pending')).json<{ grants: Json[] }>();
      expect(inbox.grants[0]).toMatchObject({
        grant_id: grantId,
        status: 'pending',
        agent: { client_id: agent.clientId, name: 'trip planner' },
        service: { uri: 'https://flights.example/', name: 'Flights' },
        purpose: 'Book my trip',
        receipt_hash: null,
      });
    });

    it('approves with the passkey: the token’s tctx.approval is the hash of the stored receipt, which verifies offline', async () => {
      const grantId = await requestGrant(agent);
      const { ceremony, document, options } = await beginDecision(alice, grantId);
      // The challenge is the document's hash: the signature commits to exactly this document.
      expect(options.challenge).toBe(await approvalChallenge(document));
      expect(JSON.parse(document)).toMatchObject({
        decision: 'approve',
        grant_id: grantId,
        version: 1,
        subject: alice.humanId,
        agent: { client_id: agent.clientId, name: 'trip planner' },
        service: { uri: 'https://flights.example/' },
        authorization_details: grantRequest.authorization_details,
        envelope: grantRequest.envelope,
        delegation: grantRequest.delegation,
      });
      const res = await call(alice, 'POST', `/me/grants/${grantId}/decision`, { ceremony, document, response: alice.passkey.assert(options) });
      expect(res.statusCode).toBe(200);
      const { grant, receipt_hash } = res.json<{ grant: Json; receipt_hash: string }>();
      expect(grant).toMatchObject({ status: 'approved', receipt_hash, expires_at: JSON.parse(document).expires_at });

      const stored = (await call(alice, 'GET', `/me/grants/${grantId}/receipt`)).json<{ receipt: ApprovalReceipt; hash: string; public_key: JWK; rp_id: string; origins: string[] }>();
      expect(stored).toMatchObject({ hash: receipt_hash, rp_id: RP_ID, origins: [UI] });
      expect(stored.receipt.document).toBe(document);
      expect(await approvalReceiptHash(stored.receipt)).toBe(receipt_hash);
      const checked = await verifyApprovalReceipt(stored.receipt, { publicKey: stored.public_key, rpId: RP_ID, origins: [UI], grantId });
      expect(checked.document).toEqual(JSON.parse(document));

      const claims = await verify(await rootToken(agent, grantId));
      expect(claims.tctx.approval).toBe(receipt_hash);
      expect(claims.sub).toBe(alice.humanId);
    });

    it('a narrowed approval signs the narrowed document and yields the narrowed token', async () => {
      const grantId = await requestGrant(agent, { envelope: { max_uses: 10, amount: { currency: 'EUR', per_request_max: 200, total_max: 500 } } });
      const narrowing = {
        authorization_details: [{ ...grantRequest.authorization_details[0], actions: ['read'] }],
        envelope: { max_uses: 3, amount: { currency: 'EUR', per_request_max: 50, total_max: 100 } },
        duration_s: 600,
      };
      const { ceremony, document, options } = await beginDecision(alice, grantId, { decision: 'approve', narrowing });
      expect(JSON.parse(document)).toMatchObject({ authorization_details: narrowing.authorization_details, envelope: narrowing.envelope });
      const res = await call(alice, 'POST', `/me/grants/${grantId}/decision`, { ceremony, document, response: alice.passkey.assert(options) });
      expect(res.json()).toMatchObject({ grant: { status: 'approved', ...narrowing } });
      const claims = await verify(await rootToken(agent, grantId));
      expect(claims.tctx).toMatchObject({ authorization_details: narrowing.authorization_details, envelope: narrowing.envelope, approval: res.json<{ receipt_hash: string }>().receipt_hash });
      expect(claims.scope).toBe('flight_booking:read');
      expect(claims.exp * 1000).toBeLessThanOrEqual(Date.parse((JSON.parse(document) as { expires_at: string }).expires_at));
    });

    it('refuses a narrowing that widens the request, before any passkey is asked', async () => {
      const grantId = await requestGrant(agent);
      const res = await call(alice, 'POST', `/me/grants/${grantId}/decision/options`, { decision: 'approve', narrowing: { duration_s: 7200 } });
      expectError(res, 400, 'invalid_request', 'duration_s 7200 is longer than the requested 3600');
    });

    it('denies with the passkey: the agent learns it and gets no token; the receipt records the denial', async () => {
      const grantId = await requestGrant(agent);
      const res = await decide(alice, grantId, { decision: 'deny' });
      expect(res.json()).toMatchObject({ grant: { status: 'denied' } });
      const polled = await app.inject({ method: 'GET', url: `/grants/${grantId}?wait=1`, headers: { authorization: `private_key_jwt ${await selfSigned(agent.clientId, agent.privateKey)}` } });
      expect(polled.json()).toMatchObject({ status: 'denied' });
      const { receipt } = (await call(alice, 'GET', `/me/grants/${grantId}/receipt`)).json<{ receipt: ApprovalReceipt }>();
      expect(JSON.parse(receipt.document)).toMatchObject({ decision: 'deny', grant_id: grantId });
    });

    it('revokes an approved grant: its tokens stop being issued', async () => {
      const grantId = await requestGrant(agent);
      expect((await decide(alice, grantId)).statusCode).toBe(200);
      await rootToken(agent, grantId);
      const res = await call(alice, 'POST', `/me/grants/${grantId}/revoke`, { reason: 'changed my mind' });
      expect(res.json()).toMatchObject({ grant_id: grantId, status: 'revoked' });
      const token = await fx.post(
        {
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          requested_token_type: 'urn:ietf:params:oauth:token-type:txn_token',
          subject_token_type: 'urn:ietf:params:oauth:token-type:self_signed',
          subject_token: await selfSigned(agent.clientId, agent.privateKey, undefined, SUBJECT_TOKEN_TYP),
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await selfSigned(agent.clientId, agent.privateKey),
          request_details: JSON.stringify({ grant_id: grantId }),
        },
        await fx.proof(agent),
      );
      expectError(token, 400, 'invalid_grant', 'grant is revoked');
    });
  });

  describe('refuses, with the exact error, and leaves the grant pending', () => {
    // Its own agent: every test here leaves a request pending, and one agent may have ten.
    let agent: Agent;
    beforeAll(async () => {
      agent = await enrolAgent(alice, 'trip planner');
    });

    it('an assertion made for another grant’s document', async () => {
      const first = await requestGrant(agent);
      const second = await requestGrant(agent);
      const a = await beginDecision(alice, first);
      const b = await beginDecision(alice, second);
      const res = await call(alice, 'POST', `/me/grants/${second}/decision`, { ceremony: b.ceremony, document: b.document, response: alice.passkey.assert(a.options) });
      expectError(res, 403, 'passkey_wrong_challenge', 'passkey response does not sign this approval document');
      // The other grant's ceremony cannot be spent on this grant either.
      const c = await beginDecision(alice, second);
      const crossed = await call(alice, 'POST', `/me/grants/${second}/decision`, { ceremony: a.ceremony, document: a.document, response: alice.passkey.assert(a.options) });
      expectError(crossed, 403, 'ceremony_other_subject', 'ceremony is for another grant');
      expect(c.document).not.toBe(a.document);
      expect(await grantStatus(alice, first)).toBe('pending');
      expect(await grantStatus(alice, second)).toBe('pending');
    });

    it('a document changed after its challenge was issued', async () => {
      const grantId = await requestGrant(agent);
      const { ceremony, document, options } = await beginDecision(alice, grantId);
      const widened = JSON.stringify({ ...JSON.parse(document), envelope: { max_uses: 1000 } });
      // Whether signed as issued or re-signed over the changed text, the changed document is refused.
      const asIssued = await call(alice, 'POST', `/me/grants/${grantId}/decision`, { ceremony, document: widened, response: alice.passkey.assert(options) });
      expectError(asIssued, 403, 'document_changed', 'approval document differs from the one issued with this ceremony');
      const again = await beginDecision(alice, grantId);
      const resigned = await call(alice, 'POST', `/me/grants/${grantId}/decision`, {
        ceremony: again.ceremony,
        document: widened,
        response: alice.passkey.assert(again.options, { challenge: await approvalChallenge(widened) }),
      });
      expectError(resigned, 403, 'document_changed', 'approval document differs from the one issued with this ceremony');
      expect(await grantStatus(alice, grantId)).toBe('pending');
    });

    it('a replayed assertion', async () => {
      const grantId = await requestGrant(agent);
      const { ceremony, document, options } = await beginDecision(alice, grantId, { decision: 'deny' });
      const body = { ceremony, document, response: alice.passkey.assert(options) };
      const other = await requestGrant(agent);
      expect((await call(alice, 'POST', `/me/grants/${grantId}/decision`, body)).statusCode).toBe(200);
      expectError(await call(alice, 'POST', `/me/grants/${grantId}/decision`, body), 403, 'ceremony_used', 'ceremony was already used: start again');
      // Replayed into a fresh ceremony of another grant: it signs the old document, not this one.
      const fresh = await beginDecision(alice, other);
      const replayed = await call(alice, 'POST', `/me/grants/${other}/decision`, { ceremony: fresh.ceremony, document: fresh.document, response: body.response });
      expectError(replayed, 403, 'passkey_wrong_challenge', 'passkey response does not sign this approval document');
      expect(await grantStatus(alice, other)).toBe('pending');
    });

    it('a signature counter that goes backwards', async () => {
      const grantId = await requestGrant(agent);
      const { ceremony, document, options } = await beginDecision(alice, grantId);
      const { passkeys } = (await call(alice, 'GET', '/me/passkeys')).json<{ passkeys: { id: string }[] }>();
      expect(passkeys[0]!.id).toBe(alice.passkey.id);
      const res = await call(alice, 'POST', `/me/grants/${grantId}/decision`, { ceremony, document, response: alice.passkey.assert(options, { counter: 1 }) });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toEqual({ error: 'passkey_counter', error_description: expect.stringMatching(/^passkey signature counter did not increase \(1 after \d+\): the passkey may have been cloned$/) });
      expect(await grantStatus(alice, grantId)).toBe('pending');
    });

    it('a wrong origin: on the request, and inside the signed client data', async () => {
      const grantId = await requestGrant(agent);
      expectError(await call(alice, 'POST', `/me/grants/${grantId}/decision/options`, { decision: 'approve' }, { origin: 'https://evil.example' }), 403, 'origin_not_allowed', 'request origin is not allowed');
      expectError(await call(alice, 'POST', `/me/grants/${grantId}/decision/options`, { decision: 'approve' }, { origin: undefined }), 403, 'origin_missing', 'request has no Origin header');
      const { ceremony, document, options } = await beginDecision(alice, grantId);
      const res = await call(alice, 'POST', `/me/grants/${grantId}/decision`, { ceremony, document, response: alice.passkey.assert(options, { origin: 'https://evil.example' }) });
      expectError(res, 403, 'passkey_wrong_origin', "passkey response comes from origin 'https://evil.example', which is not allowed");
      expect(await grantStatus(alice, grantId)).toBe('pending');
    });

    it('no session', async () => {
      const grantId = await requestGrant(agent);
      expectError(await call(null, 'POST', `/me/grants/${grantId}/decision/options`, { decision: 'approve' }), 401, 'login_required', 'sign in with your passkey first');
      expectError(await call(null, 'GET', '/me/grants'), 401, 'login_required', 'sign in with your passkey first');
      expectError(await call(null, 'GET', '/auth/session'), 401, 'login_required', 'sign in with your passkey first');
      expectError(await call({ ...alice, cookie: 'forged' }, 'GET', '/me/grants'), 401, 'login_required', 'your session has ended: sign in with your passkey again');
    });

    it('a missing or wrong CSRF token', async () => {
      const grantId = await requestGrant(agent);
      expectError(await call(alice, 'POST', `/me/grants/${grantId}/decision/options`, { decision: 'approve' }, { 'x-csrf-token': undefined }), 403, 'csrf_token_missing', 'CSRF token is missing');
      expectError(await call(alice, 'POST', `/me/grants/${grantId}/revoke`, {}, { 'x-csrf-token': 'x'.repeat(43) }), 403, 'csrf_token_mismatch', 'CSRF token does not match this session');
      expect(await grantStatus(alice, grantId)).toBe('pending');
    });

    it('a ceremony answered after it expired (5 minutes)', async () => {
      const grantId = await requestGrant(agent);
      const { ceremony, document, options } = await beginDecision(alice, grantId);
      fx.setClockOffset(5 * 60_000 + 1_000);
      try {
        const res = await call(alice, 'POST', `/me/grants/${grantId}/decision`, { ceremony, document, response: alice.passkey.assert(options) });
        expectError(res, 403, 'ceremony_expired', 'ceremony has expired: start again');
      } finally {
        fx.setClockOffset(0);
      }
      expect(await grantStatus(alice, grantId)).toBe('pending');
    });

    it('a session past its 12 hours', async () => {
      fx.setClockOffset(12 * 3600_000 + 1_000);
      try {
        expectError(await call(alice, 'GET', '/me/grants'), 401, 'login_required', 'your session has ended: sign in with your passkey again');
      } finally {
        fx.setClockOffset(0);
      }
      expect((await call(alice, 'GET', '/me/grants')).statusCode).toBe(200);
    });

    it('an assertion without user verification', async () => {
      const grantId = await requestGrant(agent);
      const { ceremony, document, options } = await beginDecision(alice, grantId);
      const res = await call(alice, 'POST', `/me/grants/${grantId}/decision`, { ceremony, document, response: alice.passkey.assert(options, { userVerified: false }) });
      expect(res.statusCode).toBe(403);
      expect(res.json<{ error_description: string }>().error_description).toMatch(/^passkey assertion refused: User verification required, but user could not be verified/);
      expect(await grantStatus(alice, grantId)).toBe('pending');
    });

    it('another human’s grant, as if it did not exist', async () => {
      const grantId = await requestGrant(await enrolAgent(alice, 'another planner'));
      const mallory = await signUp('Mallory');
      expectError(await call(mallory, 'POST', `/me/grants/${grantId}/decision/options`, { decision: 'approve' }), 400, 'grant_not_found', 'grant not found');
      expect((await call(mallory, 'GET', `/me/grants/${grantId}`)).statusCode).toBe(404);
      expectError(await call(mallory, 'POST', `/me/grants/${grantId}/revoke`, {}), 400, 'grant_not_found', 'grant not found');
    });
  });

  describe('agents', () => {
    it('lists the human’s agents and disables one: its calls are refused from then on', async () => {
      const helper = await enrolAgent(alice, 'helper');
      const { agents } = (await call(alice, 'GET', '/me/agents')).json<{ agents: { client_id: string; name: string; status: string }[] }>();
      expect(agents).toEqual(expect.arrayContaining([expect.objectContaining({ client_id: helper.clientId, name: 'helper', status: 'active' })]));
      expect((await call(alice, 'POST', `/me/agents/${helper.clientId}/disable`)).json()).toEqual({ client_id: helper.clientId, status: 'disabled' });
      const refused = await app.inject({ method: 'POST', url: '/grants', headers: { authorization: `private_key_jwt ${await selfSigned(helper.clientId, helper.privateKey)}` }, payload: grantRequest });
      expect(refused.statusCode).toBe(401);
      const mallory = await signUp('Mallory');
      expect((await call(mallory, 'POST', `/me/agents/${agent.clientId}/disable`)).statusCode).toBe(404);
    });
  });

  describe('transactions', () => {
    let agent: Agent;
    beforeAll(async () => {
      agent = await enrolAgent(alice, 'trip planner');
    });

    it('draws a transaction as a tree of hops and says whether the audit chain verifies', async () => {
      const grantId = await requestGrant(agent);
      expect((await decide(alice, grantId)).statusCode).toBe(200);
      const root = await rootToken(agent, grantId);
      const { txn, jti } = await verify(root);
      const helper = await enrolAgent(alice, 'booking agent');
      const hop = await fx.delegate(agent, root, helper, { requestDetails: { authorization_details: [{ ...grantRequest.authorization_details[0], actions: ['read'] }] } });
      expect(hop.statusCode).toBe(200);
      const { transactions } = (await call(alice, 'GET', `/me/transactions?grant_id=${grantId}`)).json<{ transactions: Json[] }>();
      expect(transactions).toEqual([expect.objectContaining({ txn, grant_id: grantId, hops: 2, decisions: 0 })]);
      const view = (await call(alice, 'GET', `/me/transactions/${txn}`)).json<{ audit: { events: { type: string }[] }; hops: Json[] }>();
      expect(view.audit.events.map((e) => e.type)).toEqual(['token.issued', 'token.delegated']);
      expect(view.hops).toEqual([
        expect.objectContaining({ jti, parent_jti: null, agent: { client_id: agent.clientId, name: 'trip planner' }, scope: 'flight_booking:book flight_booking:read' }),
        expect.objectContaining({ parent_jti: jti, agent: { client_id: helper.clientId, name: 'booking agent' }, scope: 'flight_booking:read' }),
      ]);
      const mallory = await signUp('Mallory');
      expect((await call(mallory, 'GET', `/me/transactions/${txn}`)).statusCode).toBe(404);
      expect((await call(mallory, 'POST', `/me/transactions/${txn}/revoke`, {})).statusCode).toBe(404);

      // The human revokes the whole transaction: no hop of it can be delegated further.
      expect((await call(alice, 'POST', `/me/transactions/${txn}/revoke`, { reason: 'stop this trip' })).json()).toEqual({ txn, revoked: true });
      const after = await fx.delegate(agent, root, helper, { requestDetails: { authorization_details: [{ ...grantRequest.authorization_details[0], actions: ['read'] }] } });
      expectError(after, 400, 'invalid_grant', 'subject token is revoked');
    });
  });
});
