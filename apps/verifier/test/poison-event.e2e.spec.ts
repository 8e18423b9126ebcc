import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../registry/src/infra/database.service.js';
import { AuditService } from '../../registry/src/modules/audit/audit.service.js';
import { StepUpsService } from '../../registry/src/modules/step-ups/step-ups.service.js';
import { storages } from '../../registry/test/support/databases.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import type { QueuedEvent } from '../src/store/store.js';
import { storesUnderTest } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

/** The in-process store on embedded PGlite, and Redis on PostgreSQL when both are there. */
const cases = [
  { name: 'the in-process store and PGlite', store: storesUnderTest[0]!, storage: storages[0]! },
  ...(process.env.REDIS_URL ? [{ name: 'Redis and PostgreSQL', store: storesUnderTest.find((s) => s.name === 'Redis')!, storage: storages.at(-1)! }] : []),
];

/** What the verifier's store would hold for a decision whose text no chain can hold, queued raw. */
function poison(id: string, resource: string): QueuedEvent {
  const body = `{"type":"verification","actor":"agt_mallory","subject":"mallory","grant_id":"grt_mallory","txn":"txn_m","data":{"service":"svc_m","method":"POST","url":"${API}/pay","action":"pay","resource":${JSON.stringify(resource)}}}`;
  return { id, body, outcome: 'allow' };
}

// Issue 16, finding 4: one event the registry cannot store must not silence step-ups and auditing
// for everyone. Such text is refused at the edge now; these events are forced into the queue.
describe.each(cases)('an event the audit chain cannot hold, on $name', ({ store, storage }) => {
  const vf = createVerifierFixture(store, ['alice', 'bob'], storage);
  let verifier: VerifierServer;
  let bob: Agent;

  beforeAll(async () => {
    const started = await vf.start();
    verifier = started.verifier;
    bob = started.agents.bob as Agent;
  });
  afterAll(() => vf.close());

  it('becomes a dead-letter event while the next person\'s step-up on another grant reaches them within a second', async () => {
    const nul = poison(`evt_nul_${Date.now()}`, 'payee:acme\u0000evil');
    const lone = poison(`evt_lone_${Date.now()}`, 'payee:\ud800');
    await vf.store().queueEvent(nul);
    await vf.store().queueEvent(lone);

    const { token } = await vf.tokenFor(bob, { amount: { currency: 'EUR', per_request_max: 500, total_max: 1000, approval_above: 100 } });
    const asked = await vf.verify(verifier, { token, dpop: await vf.proof(bob, token), method: 'POST', url: `${API}/bookings`, action: 'book', amount: 150, currency: 'EUR' });
    expect(asked.body).toMatchObject({ allow: false, error: 'approval_required', status: 403 });
    const stepUpId = asked.body.step_up_id as string;
    const askedAt = Date.now();
    const steps = vf.registry().get(StepUpsService);
    await expect.poll(async () => (await steps.getForHuman(bob.owner, stepUpId))?.status, { timeout: 1_000, interval: 10 }).toBe('pending');
    expect(Date.now() - askedAt).toBeLessThan(1_000);

    const db = vf.registry().get(Database);
    const letters = await db.query<{ type: string; grant_id: string | null; data: Record<string, unknown> }[]>(
      "SELECT type, grant_id, data FROM audit_events WHERE type = 'verification.unrecordable' ORDER BY seq",
    );
    const sha = (e: QueuedEvent) => createHash('sha256').update(JSON.stringify([e.id, e.body, e.outcome, null, null])).digest('hex');
    expect(letters.map((l) => ({ ...l, data: { ...l.data, reason: typeof l.data.reason } }))).toEqual([nul, lone].map((e) => ({
      type: 'verification.unrecordable',
      grant_id: 'grt_mallory',
      data: { queue_id: e.id, entry_sha256: sha(e), outcome: 'allow', reason: 'string' },
    })));
    expect(letters[0]!.data.reason).toMatch(/^refused by the database \(SQLSTATE 22\w{3}\)/);
    // Acknowledged: nothing waits any more, and the chain still verifies.
    await expect.poll(async () => (await vf.registry().inject({ method: 'GET', url: '/readyz' })).json<Record<string, unknown>>(), { timeout: 2_000, interval: 20 }).toMatchObject({
      ready: true,
      verifier_events: { deadLettered: 2, failingRounds: 0, queueDepth: 0 },
    });
    expect((await vf.registry().get(AuditService).verify()).chain.ok).toBe(true);
  });
});
