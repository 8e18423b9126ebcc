import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capability } from '../../registry/test/support/token-fixture.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { storesUnderTest } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

// Issue 17, finding 5: a resource or URL that a server could read as another place must not pass
// for one under the capability's identifier or location (ADR 0002). Decided before any state is
// read, so the in-process store is enough.
describe('POST /v1/verify refuses path steps however they are spelled', () => {
  const vf = createVerifierFixture(storesUnderTest[0]!);
  let verifier: VerifierServer;
  let alice: Agent;
  let token: string;

  beforeAll(async () => {
    const started = await vf.start();
    verifier = started.verifier;
    alice = started.agents.alice as Agent;
    // The person approved bookings only: `bookings/*` at the flights API.
    const grantId = await vf.fx.approvedGrant(alice, { authorization_details: [{ ...capability, identifier: 'bookings/*' }], envelope: { max_uses: 100 } });
    token = await vf.fx.rootToken(alice, grantId);
  });
  afterAll(() => vf.close());

  async function request(resource: string, url = `${API}/bookings`) {
    return { token, dpop: await vf.proof(alice, token, url), method: 'POST', url, action: 'book', resource };
  }

  it.each([
    ['an encoded .. segment', 'bookings/%2e%2e/admin', 'resource: has a percent-encoded dot, slash or backslash'],
    ['encoded slashes around ..', 'bookings/x%2F..%2F..%2Fadmin', 'resource: has a percent-encoded dot, slash or backslash'],
    ['an encoded ../ in one segment', 'bookings/%2E%2E%2Fadmin', 'resource: has a percent-encoded dot, slash or backslash'],
    ['a doubly encoded .. segment', 'bookings/%252e%252e/admin', 'resource: has a percent-encoded dot, slash or backslash'],
    ['an encoded backslash', 'bookings/x%5c..%5cadmin', 'resource: has a percent-encoded dot, slash or backslash'],
    ['backslashes', 'bookings/x\\..\\admin', 'resource: has a backslash'],
    ['a plain .. segment', 'bookings/../admin', 'resource: has a . or .. segment'],
  ])('does not let bookings/* cover a resource with %s: 400 invalid_request naming the field', async (_name, resource, description) => {
    const queued = (vf.store() as unknown as { queued: number }).queued;
    const res = await vf.verify(verifier, await request(resource));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: description });
    // Refused before any decision: nothing counted, nothing queued.
    expect((vf.store() as unknown as { queued: number }).queued).toBe(queued);
  });

  it('does not let the location cover a URL whose path hides a .. segment behind encoded slashes: 403 insufficient_scope', async () => {
    const url = `${API}/bookings/x%2F..%2F..%2Fadmin`;
    const res = await vf.verify(verifier, await request('bookings/42', url));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      allow: false,
      status: 403,
      error: 'insufficient_scope',
      error_description: `no capability allows 'book' at ${url} on resource 'bookings/42'`,
    });
  });

  it('still allows names under bookings/*, escapes that are no path step included', async () => {
    for (const resource of ['bookings/42', 'bookings/42/seats', 'bookings/a%20b', 'bookings/a.b']) {
      const res = await vf.verify(verifier, await request(resource));
      expect(res.body, resource).toMatchObject({ allow: true });
    }
    // An escaped slash that hides no dot segment, as some APIs name things (`group%2Fproject`).
    const res = await vf.verify(verifier, await request('bookings/42', `${API}/bookings/group%2Fproject`));
    expect(res.body).toMatchObject({ allow: true });
  });
});
