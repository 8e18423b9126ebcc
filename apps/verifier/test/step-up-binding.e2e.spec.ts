import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { e2eStore } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

// Issue 17, finding 6: a person's step-up approval holds for the exact request, its query and the
// fields the service provider binds; anything else is another request that needs its own approval
// (ADR 0014 amendment).
describe.each([e2eStore])('a step-up binds the query and the bound fields, on the $name store', (storeUnderTest) => {
  const vf = createVerifierFixture(storeUnderTest);
  let verifier: VerifierServer;
  let alice: Agent;

  beforeAll(async () => {
    const started = await vf.start();
    verifier = started.verifier;
    alice = started.agents.alice as Agent;
  });
  afterAll(() => vf.close());

  const CHARGE = `${API}/pay/charge`;
  const REFUSED = { allow: false, status: 403, error: 'approval_required', error_description: 'amount 160 is above approval_above 150: a human must approve this request' };

  async function grant() {
    return vf.tokenFor(alice, { max_uses: 100, amount: { currency: 'EUR', per_request_max: 500, total_max: 1000, approval_above: 150 } });
  }

  async function charge(token: string, url: string, bind?: Record<string, string>) {
    // RFC 9449 §4.3: htu carries no query, so one proof form fits every query of the same path.
    const body = { token, dpop: await vf.proof(alice, token, url), method: 'POST', url, action: 'book', amount: 160, currency: 'EUR', ...(bind && { bind: { fields: bind } }) };
    const res = await vf.verify(verifier, body);
    expect(res.status).toBe(200);
    return res.body;
  }

  it('refuses an approval for POST /pay/charge to POST /pay/charge?to=mallory, with a new step-up', async () => {
    const { grantId, token } = await grant();
    const asked = await charge(token, CHARGE);
    expect(asked).toMatchObject(REFUSED);
    const approved = asked.step_up_id as string;
    expect(await vf.store().approveStepUp(grantId, approved)).toBe(true);

    const other = await charge(token, `${CHARGE}?to=mallory`);
    expect(other).toEqual({ ...REFUSED, step_up_id: expect.stringMatching(/^su_/) });
    expect(other.step_up_id).not.toBe(approved);
    // What the person would be shown for it names the query.
    const shown = JSON.parse((await vf.store().stepUp(grantId, other.step_up_id as string))!.request);
    expect(shown).toMatchObject({ url: CHARGE, bound: { query: 'to=mallory', fields: {} } });

    // The approved request itself still passes, once.
    expect(await charge(token, CHARGE)).toMatchObject({ allow: true, step_up_id: approved });
  });

  it('refuses an approval for ?to=acme to ?to=mallory, and to the same path without the query', async () => {
    const { grantId, token } = await grant();
    const asked = await charge(token, `${CHARGE}?to=acme`);
    expect(await vf.store().approveStepUp(grantId, asked.step_up_id as string)).toBe(true);
    for (const url of [`${CHARGE}?to=mallory`, CHARGE, `${CHARGE}?to=acme&to=mallory`]) {
      const other = await charge(token, url);
      expect(other, url).toMatchObject(REFUSED);
      expect(other.step_up_id, url).not.toBe(asked.step_up_id);
    }
    expect(await charge(token, `${CHARGE}?to=acme`)).toMatchObject({ allow: true, step_up_id: asked.step_up_id });
  });

  it('refuses an approval for payee acme to the same request whose bound payee changed, with a new step-up', async () => {
    const { grantId, token } = await grant();
    const asked = await charge(token, CHARGE, { payee: 'acme' });
    expect(asked).toMatchObject(REFUSED);
    const shown = JSON.parse((await vf.store().stepUp(grantId, asked.step_up_id as string))!.request);
    expect(shown).toMatchObject({ bound: { query: null, fields: { payee: 'acme' } } });
    expect(await vf.store().approveStepUp(grantId, asked.step_up_id as string)).toBe(true);

    for (const bind of [{ payee: 'mallory' }, { payee: 'acme', memo: 'also this' }] as Record<string, string>[]) {
      const other = await charge(token, CHARGE, bind);
      expect(other).toEqual({ ...REFUSED, step_up_id: expect.stringMatching(/^su_/) });
      expect(other.step_up_id).not.toBe(asked.step_up_id);
    }
    expect(await charge(token, CHARGE, { payee: 'acme' })).toMatchObject({ allow: true, step_up_id: asked.step_up_id });
  });

  it('refuses bound fields a person could be misled by, naming the field (400 invalid_request)', async () => {
    const { token } = await grant();
    for (const [fields, description] of [
      [{ payee: 'acme\u202eyellam' }, 'bind.fields.payee: contains a format character (U+202E)'],
      [{ 'no spaces': 'x' }, 'bind.fields.no spaces: bound field name is a token of letters, digits and _ . -'],
    ] as const) {
      const res = await vf.verify(verifier, { token, dpop: await vf.proof(alice, token, CHARGE), method: 'POST', url: CHARGE, action: 'book', amount: 160, currency: 'EUR', bind: { fields } });
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: 'invalid_request', error_description: description });
    }
  });
});
