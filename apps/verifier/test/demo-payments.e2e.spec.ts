import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDpopProof } from '@writ/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Providers, startProviders } from '../../demo/src/providers.js';
import type { RegistryConfig } from '../../registry/src/config/config.js';
import { CONFIG } from '../../registry/src/tokens.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import { storesUnderTest } from './support/stores.js';
import { createVerifierFixture } from './support/verifier-fixture.js';

// Issue 16, finding 4, as the attack was made: an agent pays through the demo's payment provider
// with a NUL or a lone surrogate in `payee`. Today the payment is charged and its event blocks the
// audit chain; it must be refused at the edge, never charged.
describe("the demo payment provider's payee", () => {
  const vf = createVerifierFixture(storesUnderTest[0]!);
  let alice: Agent;
  let providers: Providers;
  let token: string;

  beforeAll(async () => {
    const started = await vf.start();
    alice = started.agents.alice as Agent;
    const verifierUrl = await started.verifier.listen();
    const dataDir = vf.registry().get<RegistryConfig>(CONFIG).dataDir;
    const operator = { registryUrl: vf.registryUrl(), token: readFileSync(join(dataDir, 'keys', 'operator-token'), 'utf8').trim() };
    providers = await startProviders({ operator, verifierUrl });
    const grantId = await vf.fx.approvedGrant(alice, {
      service: providers.base,
      authorization_details: [{ type: 'payment', locations: [providers.payments], actions: ['transact'] }],
      envelope: { max_uses: 10, amount: { currency: 'EUR', per_request_max: 100, total_max: 500 } },
    });
    token = await vf.fx.rootToken(alice, grantId);
  });
  afterAll(async () => {
    await providers?.close();
    await vf.close();
  });

  async function pay(payee: string) {
    const url = `${providers.payments}/charges`;
    const dpop = await createDpopProof({ privateKey: alice.privateKey, publicJwk: alice.publicJwk, htm: 'POST', htu: url, accessToken: token, clock: vf.fx.clock });
    const res = await fetch(url, { method: 'POST', headers: { authorization: `DPoP ${token}`, dpop, 'content-type': 'application/json' }, body: JSON.stringify({ amount: 10, currency: 'EUR', payee }) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it.each([
    ['a NUL', 'TAP\u0000Mallory', 'resource: contains a control character (U+0000)'],
    ['a lone surrogate', 'TAP\ud800', 'resource: is not well-formed UTF-16 (lone surrogate)'],
  ])('refuses a payment whose payee holds %s with 400 invalid_request, and charges nothing', async (_name, payee, description) => {
    const res = await pay(payee);
    expect(res).toEqual({ status: 400, body: { error: 'invalid_request', error_description: description } });
    expect(providers.log.filter((l) => l.provider === 'payments')).toEqual([]);
  });

  it('still charges a payee named in any script', async () => {
    const res = await pay('Alfama Inn – 東京');
    expect(res.status).toBe(200);
    expect(providers.log.filter((l) => l.provider === 'payments')).toEqual([{ provider: 'payments', what: 'charged 10 EUR to Alfama Inn – 東京' }]);
  });
});
