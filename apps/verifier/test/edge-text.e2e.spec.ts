import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { storesUnderTest } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

// Issue 16, finding 4 (text no audit chain can hold is refused at the edge) and finding 10
// (the caller's credential is checked before its body). The in-process store is enough: both are
// decided before any state is read.
describe('POST /v1/verify at the edge', () => {
  const vf = createVerifierFixture(storesUnderTest[0]!);
  let verifier: VerifierServer;
  let alice: Agent;
  let token: string;

  beforeAll(async () => {
    const started = await vf.start();
    verifier = started.verifier;
    alice = started.agents.alice as Agent;
    ({ token } = await vf.tokenFor(alice, { max_uses: 100, amount: { currency: 'EUR', per_request_max: 500, total_max: 1000 } }));
  });
  afterAll(() => vf.close());

  async function request(overrides: Record<string, unknown> = {}) {
    return { token, dpop: await vf.proof(alice, token), method: 'POST', url: `${API}/bookings`, action: 'book', ...overrides };
  }

  it.each([
    ['a NUL in resource', { resource: 'payee:acme\u0000evil' }, 'resource: contains a control character (U+0000)'],
    ['a lone surrogate in resource', { resource: 'payee:\ud800' }, 'resource: is not well-formed UTF-16 (lone surrogate)'],
    ['a NUL in action', { action: 'bo\u0000ok' }, 'action: contains a control character (U+0000)'],
    ['a lone surrogate in action', { action: 'book\udc00' }, 'action: is not well-formed UTF-16 (lone surrogate)'],
    ['a NUL in currency', { amount: 1, currency: 'EU\u0000' }, 'currency: contains a control character (U+0000)'],
    ['a lone surrogate in currency', { amount: 1, currency: '\ud800' }, 'currency: is not well-formed UTF-16 (lone surrogate)'],
    ['a line feed in url', { url: `${API}/bookings\n` }, 'url: contains a control character (U+000A)'],
    ['a DEL in resource', { resource: 'x\u007f' }, 'resource: contains a control character (U+007F)'],
  ])('refuses a request whose text no audit chain can hold: %s (400 naming the field)', async (_name, change, description) => {
    const before = vf.store() as unknown as { queued: number };
    const queued = before.queued;
    const res = await vf.verify(verifier, await request(change));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: description });
    // Refused before any decision: nothing is charged, nothing is queued for the audit chain.
    expect(before.queued).toBe(queued);
  });

  it('still allows well-formed text in every script, surrogate pairs included', async () => {
    const res = await vf.verify(verifier, await request({ resource: 'payee:Zürich 東京 💶', amount: 1, currency: 'EUR' }));
    expect(res.body).toMatchObject({ allow: true, remaining: { uses: 99, amount: 999 } });
  });

  it('checks the caller\'s credential before the body: a wrong credential with a malformed body is 401 invalid_client', async () => {
    for (const payload of ['{', '{"action":"\\u0000"}', 'not json at all']) {
      const res = await verifier.app.inject({ method: 'POST', url: '/v1/verify', headers: { 'content-type': 'application/json', authorization: vf.basic(undefined, 'wrong') }, payload });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ error: 'invalid_client', error_description: 'unknown service or wrong credential' });
      expect(res.headers['www-authenticate']).toBe('Basic realm="writ-verifier"');
    }
    const missing = await verifier.app.inject({ method: 'POST', url: '/v1/verify', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    expect(missing.statusCode).toBe(401);
    expect(missing.json()).toEqual({ error: 'invalid_client', error_description: 'service credentials are missing: use HTTP Basic with the service id and credential' });
  });

  it('answers 400 invalid_request to an authenticated caller\'s body that is not JSON or not application/json', async () => {
    for (const [type, payload] of [['application/json', '{'], ['text/plain', JSON.stringify(await request())]] as const) {
      const res = await verifier.app.inject({ method: 'POST', url: '/v1/verify', headers: { 'content-type': type, authorization: vf.basic() }, payload });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'invalid_request', error_description: 'request body must be a JSON verify request' });
    }
  });
});
