import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { InProcessVerifierStore } from '../src/store/in-process-store.js';
import { storesUnderTest } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

// Issue 16, finding 4: the in-process queue never drops a decision's event silently. When it is
// full, the decision is not made (503, nothing counted) and /readyz says why.
describe('the in-process event queue when full', () => {
  const vf = createVerifierFixture(storesUnderTest[0]!);
  let alice: Agent;
  let verifier: VerifierServer;
  // A store of its own that no registry drains, with room for two events.
  const small = new InProcessVerifierStore({ queueMax: 2 });

  beforeAll(async () => {
    const started = await vf.start();
    alice = started.agents.alice as Agent;
    verifier = await vf.newVerifier({ store: small });
  });
  afterAll(() => vf.close());

  it('refuses the decision with 503 rather than drop its event, counts nothing, and /readyz says so', async () => {
    const { token } = await vf.tokenFor(alice, { max_uses: 10 });
    const call = async () => vf.verify(verifier, { token, dpop: await vf.proof(alice, token), method: 'POST', url: `${API}/bookings`, action: 'book' });
    expect((await call()).body).toMatchObject({ allow: true, remaining: { uses: 9 } });
    expect((await call()).body).toMatchObject({ allow: true, remaining: { uses: 8 } });

    const refused = await call();
    expect(refused.status).toBe(503);
    expect(refused.body).toEqual({ allow: false, error: 'temporarily_unavailable', error_description: 'the verifier cannot reach its store: deny', status: 503 });
    const ready = await verifier.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({
      ready: false,
      reasons: ['the audit event queue is full: decisions are refused until the registry has recorded its events'],
      queue: { waiting: 2, max: 2, refused: 2 },
    });

    // Once the registry has taken the two events, the next decision is made, and the refused one was not counted.
    const batch = await small.read(10);
    expect(batch.events.map((e) => e.outcome)).toEqual(['allow', 'allow']);
    await batch.ack();
    expect((await call()).body).toMatchObject({ allow: true, remaining: { uses: 7 } });
    expect((await verifier.app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({ ready: true, queue: { waiting: 1, max: 2, refused: 2 } });
  });
});
