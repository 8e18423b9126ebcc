import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../registry/src/infra/database.service.js';
import { AuditService } from '../../registry/src/modules/audit/audit.service.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import { e2eStore } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

/** Longer than the verifier remembers a service provider's credential (60 s, services.ts). */
const PAST_THE_CACHE_MS = 61_000;
const DOWN_REQUESTS = 5;

/**
 * Issue 19, goal 4, "registry down longer than 60 s": the verifier remembers who a service
 * provider's credential belongs to for 60 s; past that, with the registry unreachable, it cannot
 * confirm the caller and answers every request 503 deny. Those denials were never recorded. Now
 * a caller the registry confirmed before is still named (never allowed: the answer stays 503), and
 * each denial is queued like any other and reaches the audit chain once the registry reads it.
 *
 * The registry's unreachability is the verifier's view of it: its `fetch` to the registry fails
 * (the registry process itself keeps ingesting, as it would once back); the test clock moves past
 * the cache instead of waiting a minute.
 */
describe(`registry unreachable for longer than the verifier's credential cache (${e2eStore.name} store)`, () => {
  const vf = createVerifierFixture(e2eStore);
  let alice: Agent;
  let registryDown = false;
  const registryFetch: typeof fetch = (input, init) => (registryDown ? Promise.reject(new TypeError('fetch failed: ECONNREFUSED')) : fetch(input, init));

  beforeAll(async () => {
    ({ agents: { alice } } = (await vf.start()) as unknown as { agents: { alice: Agent } });
  });
  afterEach(() => {
    registryDown = false;
    vf.fx.setClockOffset(0);
  });
  afterAll(() => vf.close());

  it('records every 503 it answers for a caller the registry confirmed before, and allows again once the registry answers', { timeout: 60_000 }, async () => {
    const { token } = await vf.tokenFor(alice, { max_uses: 100 });
    const verifier = await vf.newVerifier({ fetch: registryFetch });
    const call = async () => vf.verify(verifier, { token, dpop: await vf.proof(alice, token), method: 'POST', url: `${API}/bookings`, action: 'book' });
    expect((await call()).body.allow).toBe(true);

    registryDown = true;
    vf.fx.setClockOffset(PAST_THE_CACHE_MS);
    const down = [];
    for (let i = 0; i < DOWN_REQUESTS; i++) down.push(await call());
    for (const res of down) {
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        allow: false,
        error: 'temporarily_unavailable',
        error_description: 'the registry cannot be reached to check the service credential',
        status: 503,
      });
    }
    // A credential the registry never confirmed is not named in the chain (anyone could send one).
    const stranger = await vf.verify(verifier, { token, dpop: await vf.proof(alice, token), method: 'POST', url: `${API}/bookings`, action: 'book' }, vf.basic('svc_unknown', 'x'));
    expect(stranger.status).toBe(503);

    registryDown = false;
    expect((await call()).body.allow).toBe(true);

    const db = vf.registry().get(Database);
    const recorded = () =>
      db.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM audit_events WHERE type = 'verification.denied' AND data->>'outcome' = 'temporarily_unavailable' AND data->>'error_description' = $1`,
        ['the registry cannot be reached to check the service credential'],
      );
    await expect.poll(async () => (await recorded())[0]!.n, { timeout: 20_000, interval: 100 }).toBe(DOWN_REQUESTS);
    expect((await vf.registry().get(AuditService).verify()).chain).toMatchObject({ ok: true });
  });
});
