import { ApprovalRequired, OAuthError } from '@writ/core';
import { AgentKey, capability, envelope, type EnvelopeBuilder, type TransactionToken, WritAgent } from '@writ/sdk/agent';
import type { Human } from './human.js';
import type { Providers } from './providers.js';
import type { Trace } from './trace.js';

export interface DemoContext {
  registryUrl: string;
  uiUrl: string;
  operator: { registryUrl: string; token: string };
  providers: Providers;
  human: Human;
  trace: Trace;
}

/** What the run produced, for the summary and the test. */
export interface DemoResult {
  grantId: string;
  txn: string;
  auditEvents: number;
}

/** Each agent's calls to the providers, so the demo can replay one exactly (an attack). */
interface Recorded {
  url: string;
  init: RequestInit;
}

/** A fetch that keeps a copy of every request it sends to `base` (the providers). */
function recordingFetch(base: string, into: Recorded[]): typeof fetch {
  return (input, init) => {
    const url = input instanceof Request ? input.url : input.toString();
    if (url.startsWith(base)) into.push({ url, init: { ...init, headers: new Headers(init?.headers) } });
    return fetch(input, init);
  };
}

async function mintEnrollmentToken(operator: DemoContext['operator'], owner: string): Promise<string> {
  const res = await fetch(`${operator.registryUrl}/operator/enrollment-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${operator.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ owner }),
  });
  const body = (await res.json()) as { token?: string; error_description?: string };
  if (res.status !== 201 || body.token === undefined) throw new Error(`could not mint an enrollment token: ${body.error_description ?? res.status}`);
  return body.token;
}

/** The decision a call got: `allow`, or the error code Writ answered with. */
async function decisionOf(call: Promise<Response>): Promise<{ decision: string; response?: Response; error?: OAuthError }> {
  try {
    const response = await call;
    return { decision: response.ok ? 'allow' : `http ${response.status}`, response };
  } catch (error) {
    if (error instanceof OAuthError) return { decision: error.code, error };
    throw error;
  }
}

const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/**
 * The travel-booking pipeline: the planner gets a grant approved by the person, fans out to a
 * flight agent, a hotel agent and a notification agent, each with only what it needs; the
 * booking agents hand `transact` on payments to the payment agent. A payment above the step-up
 * threshold waits for the person's passkey. Then what Writ stops: a replayed proof, a token
 * used without its key, the shared budget running out across the fan-out, and a revocation in
 * the middle of the transaction.
 */
export async function runPipeline(ctx: DemoContext): Promise<DemoResult> {
  const { trace, providers, human } = ctx;
  const recorded: Recorded[] = [];

  // --- the agents, each with its own key, enrolled with a token minted for the person
  const enrol = async (name: string): Promise<WritAgent> =>
    WritAgent.enroll({
      registryUrl: ctx.registryUrl,
      enrollmentToken: await mintEnrollmentToken(ctx.operator, human.id),
      name,
      key: AgentKey.generate(),
      fetch: recordingFetch(providers.base, recorded),
    });
  const planner = await enrol('planner');
  const flightAgent = await enrol('flight agent');
  const hotelAgent = await enrol('hotel agent');
  const paymentAgent = await enrol('payment agent');
  const notifier = await enrol('notification agent');

  const flight = capability('flight').at(providers.flights).actions('search', 'book');
  const hotel = capability('hotel').at(providers.hotels).actions('search', 'book');
  const payment = capability('payment').at(providers.payments).actions('transact');
  const notification = capability('notification').at(providers.notifications).actions('write');
  const money = { per_request_max: 700, total_max: 1000, approval_above: 500 };

  trace.header();
  trace.section('The planner asks; the person approves with a passkey');
  const requested = await planner.requestGrant({
    service: providers.base,
    authorization_details: [flight, hotel, payment, notification],
    envelope: envelope().rate(30, 60).amount('EUR', money).maxUses(40),
    purpose: 'Plan and book my trip to Lisbon, 12 to 15 December',
    duration_s: 3600,
    delegation: { max_depth: 2 },
  });
  trace.note(`grant ${requested.grant_id}: flights, hotels, payments (≤ 700 EUR each, 1000 EUR in all, passkey above 500), notifications`);
  const [grant] = await Promise.all([planner.waitForGrant(requested.grant_id, { timeoutMs: 15 * 60_000 }), human.grantRequested(requested.grant_id)]);
  trace.record({ hop: '0', agent: 'planner', what: `grant ${grant.grant_id}`, decision: grant.status, expected: 'approved' });
  const root = await planner.token(grant.grant_id);
  const txn = root.claims.txn;
  trace.record({ hop: '0', agent: 'planner', what: `root token, transaction ${txn}`, decision: 'issued', expected: 'issued' });

  trace.section('Fan-out: each agent gets only what it needs');
  // The envelope of a hop is never wider than its parent's: unless narrowed, it is the same.
  const hand = async (from: WritAgent, token: TransactionToken, to: WritAgent, label: string, hop: string, details: Parameters<WritAgent['delegate']>[1]['authorization_details'], narrower?: EnvelopeBuilder) => {
    const child = await from.delegate(token, { to: to.clientId, actorToken: await to.actorToken(), authorization_details: details, ...(narrower ? { envelope: narrower } : {}) });
    trace.record({ hop, agent: label, what: `delegated: ${child.claims.scope}`, decision: 'issued', expected: 'issued' });
    return child;
  };
  const flightToken = await hand(planner, root, flightAgent, 'flight agent', '1', [flight, payment]);
  const hotelToken = await hand(planner, root, hotelAgent, 'hotel agent', '1', [hotel, payment]);
  const notifyToken = await hand(planner, root, notifier, 'notification agent', '1', [notification]);

  trace.section('Booking');
  const call = async (agent: WritAgent, label: string, hop: string, what: string, url: string, init: RequestInit, token: TransactionToken, expected: string) => {
    const outcome = await decisionOf(agent.fetch(url, init, { token }));
    if (!trace.record({ hop, agent: label, what, decision: outcome.decision, expected }) && outcome.error) trace.note(`(${outcome.error.description})`);
    return outcome;
  };
  await call(flightAgent, 'flight agent', '1', 'flight: search Lisbon', `${providers.flights}/search?to=LIS`, {}, flightToken, 'allow');
  await call(flightAgent, 'flight agent', '1', 'flight: book TP1234', `${providers.flights}/bookings`, json({ flight: 'TP1234' }), flightToken, 'allow');
  await call(hotelAgent, 'hotel agent', '1', 'hotel: search Lisbon', `${providers.hotels}/search`, {}, hotelToken, 'allow');
  await call(hotelAgent, 'hotel agent', '1', 'hotel: book Alfama Inn', `${providers.hotels}/reservations`, json({ hotel: 'alfama-inn' }), hotelToken, 'allow');
  // The booking agents hand only `transact` on payments onwards, each payment at most 600 EUR.
  const paymentLimits = () => envelope().rate(30, 60).amount('EUR', { ...money, per_request_max: 600 }).maxUses(40);
  const payForFlight = await hand(flightAgent, flightToken, paymentAgent, 'payment agent', '2', [payment], paymentLimits());
  const payForHotel = await hand(hotelAgent, hotelToken, paymentAgent, 'payment agent', '2', [payment], paymentLimits());
  await call(paymentAgent, 'payment agent', '2', 'payment: 420 EUR to TAP (flight)', `${providers.payments}/charges`, json({ amount: 420, currency: 'EUR', payee: 'TAP' }), payForFlight, 'allow');
  const flightPayment = recorded.at(-1)!;

  trace.section('A payment above 500 EUR waits for the person’s passkey');
  const hotelCharge = json({ amount: 560, currency: 'EUR', payee: 'Alfama Inn' });
  const first = await call(paymentAgent, 'payment agent', '2', 'payment: 560 EUR to Alfama Inn (hotel)', `${providers.payments}/charges`, hotelCharge, payForHotel, 'approval_required');
  const stepUpId = first.error instanceof ApprovalRequired ? first.error.stepUpId : undefined;
  if (stepUpId !== undefined) {
    trace.note(`step-up ${stepUpId}: the payment agent waits for the person`);
    const [stepUp] = await Promise.all([paymentAgent.waitForStepUp(stepUpId, { timeoutMs: 15 * 60_000 }), human.stepUpRequested(stepUpId)]);
    trace.record({ hop: '2', agent: 'payment agent', what: `step-up ${stepUpId}`, decision: stepUp.status, expected: 'approved' });
    await call(paymentAgent, 'payment agent', '2', 'payment: 560 EUR to Alfama Inn, retried', `${providers.payments}/charges`, hotelCharge, payForHotel, 'allow');
  }
  await call(notifier, 'notification agent', '1', 'notification: "Your trip is booked"', `${providers.notifications}/messages`, json({ text: 'Your trip is booked' }), notifyToken, 'allow');

  trace.section('What Writ stops');
  // 1. The exact request again, same DPoP proof: the proof's jti was already used.
  const replay = await fetch(flightPayment.url, flightPayment.init);
  const replayBody = (await replay.json()) as { error?: string };
  trace.record({ hop: '2', agent: 'payment agent (replayed)', what: 'the 420 EUR request sent again, same proof', decision: replayBody.error ?? 'allow', expected: 'invalid_dpop_proof' });
  // 2. The payment token, stolen by a program that does not hold the payment agent's key.
  const intruder = new WritAgent({ key: AgentKey.generate(), clientId: paymentAgent.clientId, registryUrl: ctx.registryUrl });
  const stolen = await decisionOf(intruder.fetch(`${providers.payments}/charges`, json({ amount: 90, currency: 'EUR', payee: 'Mallory' }), { token: payForFlight.value }));
  trace.record({ hop: '2', agent: 'intruder (no key)', what: 'payment: 90 EUR with the stolen token', decision: stolen.decision, expected: 'invalid_dpop_proof' });
  // 3. The budget is shared by every token of the grant: 420 + 560 are spent, 1000 in all.
  await call(paymentAgent, 'payment agent', '2', 'payment: 50 EUR seat upgrade (total 1030)', `${providers.payments}/charges`, json({ amount: 50, currency: 'EUR', payee: 'TAP' }), payForFlight, 'budget_exceeded');
  // 4. The person revokes the transaction: every remaining hop stops.
  trace.note('the person revokes the whole transaction in the approval UI');
  await human.revokeTransaction(txn);
  await call(notifier, 'notification agent', '1', 'notification: "Here is your receipt"', `${providers.notifications}/messages`, json({ text: 'Here is your receipt' }), notifyToken, 'revoked');
  await call(hotelAgent, 'hotel agent', '1', 'hotel: book a second night', `${providers.hotels}/reservations`, json({ hotel: 'alfama-inn' }), hotelToken, 'revoked');

  trace.section('The audit chain');
  // GET /audit/verify is the operator's (issue 19): the demo runs as the operator here.
  const verified = (await (await fetch(`${ctx.registryUrl}/audit/verify`, { headers: { authorization: `Bearer ${ctx.operator.token}` } })).json()) as { chain: { ok: boolean; count: number; brokenSeq?: number; reason?: string } };
  trace.record({
    hop: '-',
    agent: 'anyone',
    what: `re-verify the hash chain (${verified.chain.count} events)`,
    decision: verified.chain.ok ? 'verified' : `broken at ${verified.chain.brokenSeq}: ${verified.chain.reason}`,
    expected: 'verified',
  });
  trace.note(`the transaction in the approval UI: ${ctx.uiUrl}/transactions/${txn}`);
  trace.note(`what the providers did: ${providers.log.map((entry) => `${entry.provider} ${entry.what}`).join('; ')}`);
  return { grantId: grant.grant_id, txn, auditEvents: verified.chain.count };
}
