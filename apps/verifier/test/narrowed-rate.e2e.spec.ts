import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { e2eStore } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

/**
 * Issue 16, finding 7: every token of a grant draws on one rate log, and a delegated token may
 * carry a narrower rate than its parent (fewer requests over a longer window). A decision made
 * with the parent's short window must not shorten what the child's long window counts.
 */
describe.each([e2eStore])("a delegated token's narrower rate on the $name store", (storeUnderTest) => {
  const vf = createVerifierFixture(storeUnderTest, ['alice']);
  let verifier: VerifierServer;
  let alice: Agent;
  let helper: Agent;

  beforeAll(async () => {
    const started = await vf.start();
    verifier = started.verifier;
    ({ alice } = started.agents as { alice: Agent });
    // A second agent of the same person receives the delegation.
    helper = await vf.fx.enrol('alice');
  });
  afterEach(() => vf.fx.setClockOffset(0));
  afterAll(() => vf.close());

  async function request(agent: Agent, token: string) {
    return { token, dpop: await vf.proof(agent, token), method: 'POST', url: `${API}/bookings`, action: 'book' };
  }

  it("refuses a child's third request within its hour after the parent, with a 60 s window, was used", async () => {
    const { token: parent } = await vf.tokenFor(alice, { rate: { limit: 10, window_s: 60 } });
    const delegated = await vf.fx.delegate(alice, parent, helper, {
      requestDetails: {
        authorization_details: [{ type: 'flight_booking', locations: [API], actions: ['book'], limits: { max_passengers: 2 } }],
        envelope: { rate: { limit: 2, window_s: 3600 } },
      },
    });
    expect(delegated.statusCode).toBe(200);
    const child = delegated.json<{ access_token: string }>().access_token;

    const firstAt = vf.fx.clock.now();
    expect((await vf.verify(verifier, await request(helper, child))).body).toMatchObject({ allow: true, remaining: { rate: 1 } });
    expect((await vf.verify(verifier, await request(helper, child))).body).toMatchObject({ allow: true, remaining: { rate: 0 } });
    // A minute later the parent's window holds none of the child's requests: it is allowed.
    vf.fx.setClockOffset(61_000);
    expect((await vf.verify(verifier, await request(alice, parent))).body).toMatchObject({ allow: true, remaining: { rate: 9 } });
    // The child's hour still holds three requests of the grant: refused until its first leaves it.
    const third = await vf.verify(verifier, await request(helper, child));
    const untilFirstLeaves = Math.ceil((firstAt + 3_600_000 - vf.fx.clock.now()) / 1000);
    expect(third.status).toBe(200);
    expect(third.body).toEqual({
      allow: false,
      error: 'rate_limited',
      error_description: 'rate limit of 2 per 3600s reached',
      status: 429,
      // Exact to the second: the first request was made between firstAt and the second one.
      retry_after: expect.toSatisfy((s: number) => s >= untilFirstLeaves && s <= untilFirstLeaves + 1) as number,
    });
    // The parent is not held back by the child's narrower rate.
    expect((await vf.verify(verifier, await request(alice, parent))).body).toMatchObject({ allow: true, remaining: { rate: 8 } });
  });
});
