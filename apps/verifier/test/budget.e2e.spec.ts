import { AuditService } from '../../registry/src/modules/audit/audit.service.js';
import { Database } from '../../registry/src/infra/database.service.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { e2eStoreWithTimeout } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

const TOTAL_MAX = 500;
const REQUESTS = 200;

/** 200 amounts from 1 to 9.5, some with halves: about 1,150 EUR asked of a 500 EUR budget. */
function amountOf(i: number): number {
  return ((i * 37) % 9) + 1 + (i % 2 === 1 ? 0.5 : 0);
}

// The subject is what 200 concurrent decisions add up to, not how fast they are: on a busy test
// machine a decision may take longer than the deployed 500 ms bound, and would answer 503.
describe.each([e2eStoreWithTimeout(10_000)])('one grant budget shared by every token and verifier ($name store)', (storeUnderTest) => {
  // bob receives a hop of alice's grant, so he is her agent (issue 16, finding 6).
  const vf = createVerifierFixture(storeUnderTest, undefined, undefined, { bob: 'alice' });
  let alice: Agent;
  let bob: Agent;
  let verifiers: VerifierServer[];

  beforeAll(async () => {
    const started = await vf.start();
    ({ alice, bob } = started.agents as { alice: Agent; bob: Agent });
    verifiers = [started.verifier, await vf.newVerifier()];
  });
  afterAll(() => vf.close());

  it(`approves exactly the largest total that fits in arrival order, never more than the budget, over ${REQUESTS} concurrent requests`, async () => {
    const envelope = { amount: { currency: 'EUR', total_max: TOTAL_MAX }, max_uses: 10_000 };
    const { grantId, token } = await vf.tokenFor(alice, envelope);
    // Several tokens of the one grant: two more root tokens, and a hop to bob.
    const roots = [token, await vf.fx.rootToken(alice, grantId), await vf.fx.rootToken(alice, grantId)];
    const hop = await vf.fx.delegate(alice, token, bob, {
      requestDetails: { authorization_details: [{ type: 'flight_booking', locations: [API], actions: ['book'], limits: { max_passengers: 2 } }], envelope },
    });
    const delegated = hop.json<{ access_token: string }>().access_token;
    const holders: [Agent, string][] = [...roots.map((t): [Agent, string] => [alice, t]), [bob, delegated]];

    const bodies = await Promise.all(
      Array.from({ length: REQUESTS }, async (_, i) => {
        const [agent, t] = holders[i % holders.length]!;
        return { token: t, dpop: await vf.proof(agent, t), method: 'POST', url: `${API}/bookings`, action: 'book', amount: amountOf(i), currency: 'EUR' };
      }),
    );
    const asked = bodies.reduce((sum, b) => sum + b.amount, 0);
    expect(asked).toBeGreaterThan(2 * TOTAL_MAX);

    const answers = await Promise.all(bodies.map((body, i) => vf.verify(verifiers[i % 2]!, body)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const allowed = answers.flatMap((a, i) => (a.body.allow ? [bodies[i]!.amount] : []));
    const approvedMinor = allowed.reduce((sum, amount) => sum + amount * 1000, 0);
    expect(approvedMinor).toBeLessThanOrEqual(TOTAL_MAX * 1000);
    for (const answer of answers.filter((a) => !a.body.allow)) {
      expect(answer.body).toMatchObject({ error: 'budget_exceeded', status: 403 });
    }

    // The order the store decided in is the order of the grant's audit events: replay it.
    const db = vf.registry().get(Database);
    const grantEvents = () =>
      db.query<{ type: string; amount: string; outcome: string }[]>(
        `SELECT type, data->>'amount' AS amount, data->>'outcome' AS outcome FROM audit_events WHERE grant_id = $1 AND type LIKE 'verification.%' ORDER BY seq`,
        [grantId],
      );
    await expect.poll(grantEvents, { timeout: 15_000, interval: 100 }).toHaveLength(REQUESTS);
    const events = await grantEvents();
    let spentMinor = 0;
    const expected = events.map((event) => {
      const minor = Math.round(Number(event.amount) * 1000);
      if (spentMinor + minor > TOTAL_MAX * 1000) return 'budget_exceeded';
      spentMinor += minor;
      return 'allow';
    });
    expect(events.map((e) => e.outcome)).toEqual(expected);
    expect(events.map((e) => e.type)).toEqual(expected.map((o) => (o === 'allow' ? 'verification.allowed' : 'verification.denied')));
    // What the verifiers answered is what the store decided: same count, same total.
    expect(allowed).toHaveLength(expected.filter((o) => o === 'allow').length);
    expect(approvedMinor).toBe(spentMinor);
    expect((await vf.registry().get(AuditService).verify()).chain).toMatchObject({ ok: true });
  });
});
