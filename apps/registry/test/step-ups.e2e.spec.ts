import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { type ApprovalReceipt, approvalChallenge, approvalReceiptHash, verifyStepUpReceipt } from '@writ/core';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifierServer } from '../../verifier/src/server.js';
import { e2eStore } from '../../verifier/test/support/stores.js';
import { API, createVerifierFixture } from '../../verifier/test/support/verifier-fixture.js';
import { Database } from '../src/infra/database.service.js';
import { StepUpsService } from '../src/modules/step-ups/step-ups.service.js';
import { storages } from './support/databases.js';
import { type HumanBrowser, humanApi, RP_ID, UI_ORIGIN } from './support/human-browser.js';
import type { SoftPasskey } from './support/soft-passkey.js';
import { type Agent, capability, type Response } from './support/token-fixture.js';

/** The grant's money: every request at most 500 EUR, 1000 EUR in all, and a human's yes above 100 EUR. */
const ENVELOPE = { amount: { currency: 'EUR', per_request_max: 500, total_max: 1000, approval_above: 100 } };

type Json = Record<string, unknown>;
type Options = Parameters<SoftPasskey['assert']>[0];

/**
 * Step-up in the middle of a chain, end to end: a grant with `approval_above`, a root token, a hop
 * to a payment agent, its payment above the threshold at the verifier (`approval_required`), the
 * step-up in the human's inbox, the agent's long-poll, the human's passkey approval, and the
 * retried request passing once. On one store: Redis with REDIS_URL (the registry then writes the
 * approval to Redis itself), in process otherwise; a step-up's life in each store, the Redis
 * Cluster's too, is the store contract's subject. The registry on PostgreSQL when DATABASE_URL is set.
 */
/** The registry's database: PostgreSQL when DATABASE_URL is set, embedded PGlite otherwise. */
const storage = storages.at(-1)!;

describe.each([e2eStore])(`step-up approval in the middle of a chain ($name store, registry on ${storage.name})`, (storeUnderTest) => {
  const vf = createVerifierFixture(storeUnderTest, [], storage);
  const { call, signUp } = humanApi(() => vf.registry());
  let app: NestFastifyApplication;
  let verifier: VerifierServer;
  let service: { id: string };
  let alice: HumanBrowser;
  let planner: Agent;
  let payer: Agent;
  let grantId: string;
  /** The payment agent's token: a hop from the planner's root token. */
  let hopToken: string;
  let txn: string;

  beforeAll(async () => {
    ({ app, verifier, service } = await vf.start());
    alice = await signUp('Alice');
    planner = await vf.fx.enrol(alice.humanId);
    payer = await vf.fx.enrol(alice.humanId);
    grantId = await vf.fx.approvedGrant(planner, { envelope: ENVELOPE });
    const root = await vf.fx.rootToken(planner, grantId);
    const hop = await vf.fx.delegate(planner, root, payer, { requestDetails: { authorization_details: [{ ...capability, actions: ['book'] }], envelope: ENVELOPE } });
    expect(hop.statusCode, hop.body).toBe(200);
    hopToken = hop.json<{ access_token: string }>().access_token;
    ({ txn } = await vf.fx.verify(hopToken));
  });
  afterAll(() => vf.close());

  /** The payment agent pays `amount` EUR at the flights service, as its provider asks the verifier. */
  async function pay(amount: number, agent: Agent = payer, token: string = hopToken) {
    const body = { token, dpop: await vf.proof(agent, token), method: 'POST', url: `${API}/bookings`, action: 'book', amount, currency: 'EUR' };
    return (await vf.verify(verifier, body)).body;
  }

  /** A payment above the threshold: its step-up id. */
  async function stepUpFor(amount: number): Promise<string> {
    const answer = await pay(amount);
    expect(answer).toMatchObject({ allow: false, error: 'approval_required', status: 403 });
    return answer.step_up_id as string;
  }

  /** `GET /step-ups/:id?wait=` as `agent`, authenticated with private_key_jwt. */
  async function poll(agent: Agent, id: string, wait = 0): Promise<Response> {
    return app.inject({ method: 'GET', url: `/step-ups/${id}?wait=${wait}`, headers: { authorization: `private_key_jwt ${await vf.fx.selfSigned(agent.clientId, agent.privateKey)}` } });
  }

  /** Waits until the registry has ingested the verifier's event and the human sees the step-up. */
  async function shown(id: string, who: HumanBrowser = alice): Promise<Json> {
    await expect.poll(async () => (await call(who, 'GET', `/me/step-ups/${id}`)).statusCode, { timeout: 15_000, interval: 50 }).toBe(200);
    return (await call(who, 'GET', `/me/step-ups/${id}`)).json<Json>();
  }

  async function begin(who: HumanBrowser, id: string, decision: 'approve' | 'deny' = 'approve'): Promise<{ ceremony: string; document: string; options: Options }> {
    const res = await call(who, 'POST', `/me/step-ups/${id}/decision/options`, { decision });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  }

  /** Both steps of a decision, with the browser's passkey. */
  async function decide(who: HumanBrowser, id: string, decision: 'approve' | 'deny' = 'approve'): Promise<Response> {
    const { ceremony, document, options } = await begin(who, id, decision);
    return call(who, 'POST', `/me/step-ups/${id}/decision`, { ceremony, document, response: who.passkey.assert(options) });
  }

  async function statusOf(id: string): Promise<string> {
    return (await call(alice, 'GET', `/me/step-ups/${id}`)).json<{ status: string }>().status;
  }

  it('asks the human, holds the agent’s long-poll, and after the passkey approval passes the retried request exactly once', async () => {
    // The human's live inbox is open.
    const events = await fetch(`${vf.registryUrl()}/me/events`, { headers: { cookie: `writ_session=${alice.cookie}` } });
    const reader = events.body!.getReader();
    let received = '';

    const id = await stepUpFor(150);
    expect(id).toMatch(/^su_/);
    // The agent asks at once, before the registry has necessarily heard of the step-up: it waits.
    const longPoll = poll(payer, id, 30);

    const stepUp = await shown(id);
    expect(stepUp).toEqual({
      step_up_id: id,
      status: 'pending',
      grant_id: grantId,
      txn,
      agent: { client_id: payer.clientId, name: `agent of ${alice.humanId}` },
      service: { id: service.id, uri: 'https://flights.example/', name: 'Flights' },
      method: 'POST',
      url: `${API}/bookings`,
      action: 'book',
      resource: null,
      amount: 150,
      currency: 'EUR',
      bound: { query: null, fields: {} },
      requested_at: expect.any(String),
      expires_at: expect.any(String),
      decided_at: null,
      receipt_hash: null,
    });
    // The verifier's own deadline: 15 minutes.
    expect(Date.parse(stepUp.expires_at as string) - Date.now()).toBeGreaterThan(14 * 60_000);
    expect((await call(alice, 'GET', '/me/step-ups?status=pending')).json<{ step_ups: Json[] }>().step_ups.map((s) => s.step_up_id)).toContain(id);
    while (!received.includes(`"step_up_id":"${id}"`)) received += new TextDecoder().decode((await reader.read()).value);
    expect(received).toContain(`event: step_up\ndata: {"step_up_id":"${id}","status":"pending"}\n\n`);

    // Retried before the human answers: the same step-up, still pending for the agent.
    expect(await pay(150)).toMatchObject({ error: 'approval_required', step_up_id: id });
    expect((await poll(payer, id)).json()).toEqual({ step_up_id: id, status: 'pending', grant_id: grantId, txn, amount: 150, currency: 'EUR' });
    expect(await Promise.race([longPoll.then(() => 'answered'), new Promise((resolve) => setTimeout(() => resolve('still waiting'), 200))])).toBe('still waiting');

    // The human signs exactly this request.
    const { ceremony, document, options } = await begin(alice, id);
    expect(options.challenge).toBe(await approvalChallenge(document));
    expect(JSON.parse(document)).toEqual({
      decision: 'approve',
      kind: 'step_up',
      step_up_id: id,
      grant_id: grantId,
      txn,
      subject: alice.humanId,
      agent: { client_id: payer.clientId, name: `agent of ${alice.humanId}` },
      service: { id: service.id, uri: 'https://flights.example/' },
      method: 'POST',
      url: `${API}/bookings`,
      action: 'book',
      resource: null,
      amount: 150,
      currency: 'EUR',
      bound: { query: null, fields: {} },
      nonce: expect.any(String),
    });
    const decided = await call(alice, 'POST', `/me/step-ups/${id}/decision`, { ceremony, document, response: alice.passkey.assert(options) });
    expect(decided.statusCode, decided.body).toBe(200);
    const { step_up, receipt_hash } = decided.json<{ step_up: Json; receipt_hash: string }>();
    expect(step_up).toMatchObject({ step_up_id: id, status: 'approved', receipt_hash, decided_at: expect.any(String) });

    // The long-poll answers as soon as the decision commits.
    const answered = await longPoll;
    expect(answered.statusCode).toBe(200);
    expect(answered.json()).toEqual({ step_up_id: id, status: 'approved', grant_id: grantId, txn, amount: 150, currency: 'EUR' });
    while (!received.includes(`"status":"approved"`)) received += new TextDecoder().decode((await reader.read()).value);
    expect(received).toContain(`event: step_up\ndata: {"step_up_id":"${id}","status":"approved"}\n\n`);
    await reader.cancel();

    // The receipt stands on its own.
    const stored = (await call(alice, 'GET', `/me/step-ups/${id}/receipt`)).json<{ receipt: ApprovalReceipt; hash: string; public_key: JWK; rp_id: string; origins: string[] }>();
    expect(stored).toMatchObject({ hash: receipt_hash, rp_id: RP_ID, origins: [UI_ORIGIN] });
    expect(await approvalReceiptHash(stored.receipt)).toBe(receipt_hash);
    expect((await verifyStepUpReceipt(stored.receipt, { publicKey: stored.public_key, rpId: RP_ID, origins: [UI_ORIGIN], stepUpId: id })).document).toEqual(JSON.parse(document));

    // Another amount is another request: the approval does not cover it.
    const other = await pay(149);
    expect(other).toMatchObject({ error: 'approval_required' });
    expect(other.step_up_id).not.toBe(id);
    // The identical request passes once, and says which approval it used.
    expect(await pay(150)).toMatchObject({ allow: true, step_up_id: id, remaining: { amount: 850 } });
    // Once: the next identical request needs a new approval.
    const again = await pay(150);
    expect(again).toMatchObject({ allow: false, error: 'approval_required' });
    expect(again.step_up_id).not.toBe(id);
    expect(again.step_up_id).not.toBe(other.step_up_id);
    // Below the threshold, no human is asked.
    expect(await pay(100)).toMatchObject({ allow: true, remaining: { amount: 750 } });

    // The audit chain links the approval and the payment it allowed.
    const db = app.get(Database);
    const audited = () =>
      db.query<{ type: string; outcome: string | null; step_up_id: string | null; receipt_hash: string | null }[]>(
        `SELECT type, data->>'outcome' AS outcome, data->>'step_up_id' AS step_up_id, data->>'receipt_hash' AS receipt_hash FROM audit_events WHERE data->>'step_up_id' = $1 ORDER BY seq`,
        [id],
      );
    await expect.poll(async () => (await audited()).map((e) => e.type), { timeout: 15_000, interval: 100 }).toEqual([
      'verification.denied',
      'verification.denied',
      'step_up.approved',
      'verification.allowed',
    ]);
    expect((await audited())[2]).toMatchObject({ receipt_hash });
  });

  // Issue 17, finding 6 (ADR 0014 amendment): what the service provider binds is shown, signed and enforced.
  it('shows the person the query and the bound payee, signs them, and the approval holds for them only', async () => {
    const charge = `${API}/pay/charge`;
    const payTo = async (url: string, payee: string) =>
      (await vf.verify(verifier, { token: hopToken, dpop: await vf.proof(payer, hopToken, url), method: 'POST', url, action: 'book', amount: 155, currency: 'EUR', bind: { fields: { payee } } })).body;
    const asked = await payTo(`${charge}?to=acme`, 'Acme GmbH');
    expect(asked).toMatchObject({ allow: false, error: 'approval_required', status: 403 });
    const id = asked.step_up_id as string;
    // The audit URL keeps no query; the person is shown it beside the request line.
    expect(await shown(id)).toMatchObject({ url: charge, bound: { query: 'to=acme', fields: { payee: 'Acme GmbH' } } });
    const { document } = await begin(alice, id);
    expect(JSON.parse(document)).toMatchObject({ url: charge, bound: { query: 'to=acme', fields: { payee: 'Acme GmbH' } } });
    expect((await decide(alice, id)).statusCode).toBe(200);

    for (const [url, payee] of [[`${charge}?to=mallory`, 'Acme GmbH'], [`${charge}?to=acme`, 'Mallory Ltd']] as const) {
      const other = await payTo(url, payee);
      expect(other).toEqual({ allow: false, error: 'approval_required', error_description: 'amount 155 is above approval_above 100: a human must approve this request', status: 403, step_up_id: expect.stringMatching(/^su_/) });
      expect(other.step_up_id).not.toBe(id);
    }
    expect(await payTo(`${charge}?to=acme`, 'Acme GmbH')).toMatchObject({ allow: true, step_up_id: id });
  });

  it('a denial: the agent learns it, the held request stays refused and no second approval is possible', async () => {
    const id = await stepUpFor(160);
    await shown(id);
    const res = await decide(alice, id, 'deny');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ step_up: { step_up_id: id, status: 'denied' } });
    expect((await poll(payer, id, 5)).json()).toMatchObject({ step_up_id: id, status: 'denied' });
    // The verifier keeps answering with the same step-up (so the human is not asked again), and the agent knows it was denied.
    expect(await pay(160)).toMatchObject({ allow: false, error: 'approval_required', step_up_id: id });
    const { receipt } = (await call(alice, 'GET', `/me/step-ups/${id}/receipt`)).json<{ receipt: ApprovalReceipt }>();
    expect(JSON.parse(receipt.document)).toMatchObject({ decision: 'deny', kind: 'step_up', step_up_id: id });
  });

  it('waits for a step-up the registry has not heard of yet, instead of answering 404 at once', async () => {
    const id = `su_not_yet_${Date.now()}`;
    // Without waiting: unknown, 404.
    vf.fx.expectError(await poll(payer, id), 404, 'not_found', 'step-up not found');
    const waiting = poll(payer, id, 30);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The verifier's event arrives (as the ingestion records it), then the human approves.
    await app.get(StepUpsService).recordRequested([
      {
        id: `vd_${id}`,
        type: 'verification.denied',
        actor: payer.clientId,
        subject: service.id,
        grant_id: grantId,
        txn,
        data: { service: service.id, method: 'POST', url: `${API}/bookings`, action: 'book', amount: 170, currency: 'EUR', outcome: 'approval_required', step_up_id: id, step_up_expires_at: new Date(Date.now() + 60_000).toISOString() },
      },
    ]);
    expect(await statusOf(id)).toBe('pending');
    expect(await Promise.race([waiting.then(() => 'answered'), new Promise((resolve) => setTimeout(() => resolve('still waiting'), 200))])).toBe('still waiting');
    // Deny it (no verifier holds this one): the wait ends with the decision.
    expect((await decide(alice, id, 'deny')).statusCode).toBe(200);
    expect((await waiting).json()).toMatchObject({ step_up_id: id, status: 'denied', amount: 170 });
  });

  it('a step-up nobody decides in time expires: for the agent and the human, and it can no longer be decided', async () => {
    const id = await stepUpFor(180);
    await shown(id);
    vf.fx.setClockOffset(15 * 60_000 + 1_000);
    try {
      expect((await poll(payer, id)).json()).toMatchObject({ step_up_id: id, status: 'expired' });
      expect(await statusOf(id)).toBe('expired');
      expect((await call(alice, 'GET', '/me/step-ups?status=expired')).json<{ step_ups: Json[] }>().step_ups.map((s) => s.step_up_id)).toContain(id);
      expect((await call(alice, 'GET', '/me/step-ups?status=pending')).json<{ step_ups: Json[] }>().step_ups.map((s) => s.step_up_id)).not.toContain(id);
      vf.fx.expectError(await call(alice, 'POST', `/me/step-ups/${id}/decision/options`, { decision: 'approve' }), 400, 'step_up_wrong_status', 'step-up is expired, not pending');
    } finally {
      vf.fx.setClockOffset(0);
    }
  });

  describe('refuses, with the exact error, and leaves the step-up pending', () => {
    it('another human’s step-up, as if it did not exist', async () => {
      const id = await stepUpFor(190);
      await shown(id);
      const mallory = await signUp('Mallory');
      vf.fx.expectError(await call(mallory, 'GET', `/me/step-ups/${id}`), 404, 'not_found', 'step-up not found');
      vf.fx.expectError(await call(mallory, 'POST', `/me/step-ups/${id}/decision/options`, { decision: 'approve' }), 400, 'step_up_not_found', 'step-up not found');
      expect((await call(mallory, 'GET', '/me/step-ups')).json()).toEqual({ step_ups: [] });
      vf.fx.expectError(await call(mallory, 'GET', `/me/step-ups/${id}/receipt`), 404, 'not_found', 'no decision has been signed for this step-up');
      // Alice's ceremony is hers alone.
      const { ceremony, document, options } = await begin(alice, id);
      const stolen = await call(mallory, 'POST', `/me/step-ups/${id}/decision`, { ceremony, document, response: mallory.passkey.assert(options) });
      vf.fx.expectError(stolen, 403, 'ceremony_unknown', 'ceremony is unknown: start again');
      expect(await statusOf(id)).toBe('pending');
    });

    it('a replayed assertion', async () => {
      const first = await stepUpFor(200);
      const second = await stepUpFor(201);
      await shown(first);
      await shown(second);
      const { ceremony, document, options } = await begin(alice, first, 'deny');
      const body = { ceremony, document, response: alice.passkey.assert(options) };
      expect((await call(alice, 'POST', `/me/step-ups/${first}/decision`, body)).statusCode).toBe(200);
      vf.fx.expectError(await call(alice, 'POST', `/me/step-ups/${first}/decision`, body), 403, 'ceremony_used', 'ceremony was already used: start again');
      // Replayed into a fresh ceremony of another step-up: it signs the old document, not this one.
      const fresh = await begin(alice, second);
      const replayed = await call(alice, 'POST', `/me/step-ups/${second}/decision`, { ceremony: fresh.ceremony, document: fresh.document, response: body.response });
      vf.fx.expectError(replayed, 403, 'passkey_wrong_challenge', 'passkey response does not sign this step-up document');
      expect(await statusOf(second)).toBe('pending');
    });

    it('an assertion, a ceremony or a document that does not match the step-up', async () => {
      const first = await stepUpFor(210);
      const second = await stepUpFor(211);
      await shown(first);
      await shown(second);
      const a = await begin(alice, first);
      const b = await begin(alice, second);
      // Signed over the other step-up's document.
      const crossed = await call(alice, 'POST', `/me/step-ups/${second}/decision`, { ceremony: b.ceremony, document: b.document, response: alice.passkey.assert(a.options) });
      vf.fx.expectError(crossed, 403, 'passkey_wrong_challenge', 'passkey response does not sign this step-up document');
      // The other step-up's ceremony.
      const c = await begin(alice, second);
      const otherCeremony = await call(alice, 'POST', `/me/step-ups/${second}/decision`, { ceremony: a.ceremony, document: a.document, response: alice.passkey.assert(a.options) });
      vf.fx.expectError(otherCeremony, 403, 'ceremony_other_subject', 'ceremony is for another step-up');
      // A document changed after its challenge was issued, even re-signed.
      const cheaper = JSON.stringify({ ...JSON.parse(c.document), amount: 1 });
      const changed = await call(alice, 'POST', `/me/step-ups/${second}/decision`, { ceremony: c.ceremony, document: cheaper, response: alice.passkey.assert(c.options, { challenge: await approvalChallenge(cheaper) }) });
      vf.fx.expectError(changed, 403, 'document_changed', 'step-up document differs from the one issued with this ceremony');
      expect(await statusOf(first)).toBe('pending');
      expect(await statusOf(second)).toBe('pending');
    });

    it('no session', async () => {
      const id = await stepUpFor(220);
      vf.fx.expectError(await call(null, 'GET', '/me/step-ups?status=pending'), 401, 'login_required', 'sign in with your passkey first');
      vf.fx.expectError(await call(null, 'GET', `/me/step-ups/${id}`), 401, 'login_required', 'sign in with your passkey first');
      vf.fx.expectError(await call(null, 'POST', `/me/step-ups/${id}/decision/options`, { decision: 'approve' }), 401, 'login_required', 'sign in with your passkey first');
      vf.fx.expectError(await call({ ...alice, cookie: 'forged' }, 'POST', `/me/step-ups/${id}/decision`, { ceremony: 'x', document: '{}', response: {} }), 401, 'login_required', 'your session has ended: sign in with your passkey again');
      await shown(id);
      expect(await statusOf(id)).toBe('pending');
    });

    it('a missing or wrong CSRF token, or another origin', async () => {
      const id = await stepUpFor(230);
      await shown(id);
      vf.fx.expectError(await call(alice, 'POST', `/me/step-ups/${id}/decision/options`, { decision: 'approve' }, { 'x-csrf-token': undefined }), 403, 'csrf_token_missing', 'CSRF token is missing');
      const { ceremony, document, options } = await begin(alice, id);
      const forged = await call(alice, 'POST', `/me/step-ups/${id}/decision`, { ceremony, document, response: alice.passkey.assert(options) }, { 'x-csrf-token': 'x'.repeat(43) });
      vf.fx.expectError(forged, 403, 'csrf_token_mismatch', 'CSRF token does not match this session');
      vf.fx.expectError(await call(alice, 'POST', `/me/step-ups/${id}/decision/options`, { decision: 'approve' }, { origin: 'https://evil.example' }), 403, 'origin_not_allowed', 'request origin is not allowed');
      expect(await statusOf(id)).toBe('pending');
    });

    it('a step-up decided again', async () => {
      const id = await stepUpFor(240);
      await shown(id);
      // A second ceremony, begun before the first decision, finished after it.
      const late = await begin(alice, id, 'deny');
      expect((await decide(alice, id)).statusCode).toBe(200);
      vf.fx.expectError(await call(alice, 'POST', `/me/step-ups/${id}/decision/options`, { decision: 'deny' }), 400, 'step_up_wrong_status', 'step-up is approved, not pending');
      const res = await call(alice, 'POST', `/me/step-ups/${id}/decision`, { ceremony: late.ceremony, document: late.document, response: alice.passkey.assert(late.options) });
      vf.fx.expectError(res, 400, 'step_up_wrong_status', 'step-up is approved, not pending');
      expect(await statusOf(id)).toBe('approved');
    });

    it('another agent polling: 404, exactly as for an unknown id, whether of the same grant or not', async () => {
      const id = await stepUpFor(250);
      await shown(id);
      const stranger = await vf.fx.enrol(alice.humanId);
      for (const other of [planner, stranger]) {
        vf.fx.expectError(await poll(other, id), 404, 'not_found', 'step-up not found');
        // A long-poll on someone else's step-up waits like one on an unknown id: not even the time tells them apart.
        const started = Date.now();
        vf.fx.expectError(await poll(other, id, 1), 404, 'not_found', 'step-up not found');
        expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      }
      vf.fx.expectError(await poll(payer, id, 61), 400, 'invalid_request', 'wait must be a whole number of seconds from 0 to 60');
      const unauthenticated = await app.inject({ method: 'GET', url: `/step-ups/${id}` });
      expect(unauthenticated.statusCode).toBe(401);
      expect((await poll(payer, id)).json()).toMatchObject({ status: 'pending' });
    });
  });
});
