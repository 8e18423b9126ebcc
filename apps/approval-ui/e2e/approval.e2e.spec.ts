import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { type ApprovalReceipt, approvalReceiptHash, decodeBase64, verifyApprovalReceipt, verifyInclusion, verifyStepUpReceipt } from '@writ/core';
import type { JWK } from 'jose';
import type { Page } from 'playwright-core';
import { AuditService } from '../../registry/src/modules/audit/audit.service.js';
import { AuditVerdicts } from '../../registry/src/modules/humans/audit-verdicts.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, grantRequest } from '../../registry/test/support/token-fixture.js';
import type { VirtualCredential } from './support/browser.js';
import { createUiStack, storage } from './support/stack.js';

/**
 * Where the screenshots go: a temporary folder, or docs/screenshots with UPDATE_SCREENSHOTS=1
 * (how the README's were made).
 */
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? resolve(import.meta.dirname, '../../../docs/screenshots') : join(tmpdir(), 'writ-ui-screenshots');

interface StoredReceipt {
  receipt: ApprovalReceipt;
  hash: string;
  public_key: JWK;
  rp_id: string;
  origins: string[];
}

describe(`approval UI in Chromium (registry on ${storage.name})`, () => {
  // The registry, a verifier in process, the UI and Chromium with a virtual passkey (support/stack.ts).
  const stack = createUiStack();
  const { fx, requestGrant, uiGet, exchange, verifyAtService, openRequest } = stack;
  const { selfSigned, verify, rootToken } = fx;
  let uiUrl: string;
  let app: NestFastifyApplication;
  let page: Page;
  let passkeys: { credentials(): Promise<VirtualCredential[]> };
  let planner: Agent;
  let booker: Agent;
  let humanId: string;

  /** An agent of the signed-up person, registered with an enrollment token minted in the UI. */
  const enrolThroughUi = (name: string): Promise<Agent> => stack.enrolThroughUi(name, humanId);

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    await stack.start();
    ({ uiUrl, app, page, passkeys } = stack);
  });

  afterAll(() => stack.close());

  it('signs up with a passkey created in the browser', async () => {
    await page.goto(`${uiUrl}/signup`);
    await page.getByLabel('Your name').fill('Alice');
    await page.getByRole('button', { name: 'Create account with a passkey' }).click();
    await expect.poll(() => page.getByRole('heading', { name: 'Requests waiting for you' }).isVisible(), { timeout: 15_000 }).toBe(true);
    const created = await passkeys.credentials();
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ isResidentCredential: true, rpId: 'localhost' });
    const session = await uiGet<{ human: { id: string; name: string } }>('/auth/session');
    expect(session.human.name).toBe('Alice');
    humanId = session.human.id;
    planner = await enrolThroughUi('trip planner');
    booker = await enrolThroughUi('booking agent');
  });

  let approvedGrant: string;

  it('shows an agent’s request in the inbox as it arrives, and approves it with the passkey: the token carries the receipt’s hash', async () => {
    await page.goto(uiUrl);
    await expect.poll(() => page.getByText('Nothing is waiting for you.').isVisible(), { timeout: 10_000 }).toBe(true);
    approvedGrant = await requestGrant(planner);
    // The inbox updates live (server-sent events): no reload.
    const request = page.getByRole('article', { name: 'Request from trip planner' });
    await expect.poll(() => request.count(), { timeout: 10_000 }).toBe(1);
    await page.screenshot({ path: join(SCREENSHOTS, 'inbox.png'), fullPage: true });

    await request.getByRole('link', { name: 'Review' }).click();
    await page.waitForURL(`${uiUrl}/grants/${approvedGrant}`);
    await expect.poll(() => page.getByRole('heading', { name: 'trip planner asks for access to Flights' }).isVisible()).toBe(true);
    await page.screenshot({ path: join(SCREENSHOTS, 'approval.png'), fullPage: true });
    const countBefore = (await passkeys.credentials())[0]!.signCount;
    await page.getByRole('button', { name: 'Approve with passkey' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Approved' }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
    expect((await passkeys.credentials())[0]!.signCount).toBeGreaterThan(countBefore);

    const stored = await uiGet<StoredReceipt>(`/me/grants/${approvedGrant}/receipt`);
    expect(await approvalReceiptHash(stored.receipt)).toBe(stored.hash);
    const checked = await verifyApprovalReceipt(stored.receipt, { publicKey: stored.public_key, rpId: 'localhost', origins: [uiUrl], grantId: approvedGrant });
    expect(checked.document).toMatchObject({ decision: 'approve', subject: humanId, agent: { name: 'trip planner' } });
    const claims = await verify(await rootToken(planner, approvedGrant));
    expect(claims.tctx.approval).toBe(stored.hash);
  });

  it('a narrowed approval yields the narrowed token', async () => {
    const grantId = await requestGrant(planner, { envelope: { max_uses: 10 } });
    await openRequest(grantId, 'trip planner');
    await page.getByLabel('Most uses').fill('3');
    await page.getByLabel('Duration in minutes').fill('30');
    await page.getByRole('button', { name: 'Approve with passkey' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Approved with narrower limits' }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
    const stored = await uiGet<StoredReceipt>(`/me/grants/${grantId}/receipt`);
    expect(JSON.parse(stored.receipt.document)).toMatchObject({ envelope: { max_uses: 3 } });
    const claims = await verify(await rootToken(planner, grantId));
    expect(claims.tctx.envelope).toEqual({ max_uses: 3 });
    expect(claims.tctx.approval).toBe(stored.hash);
    const grant = await uiGet<{ duration_s: number }>(`/me/grants/${grantId}`);
    expect(grant.duration_s).toBe(1800);
  });

  it('denies with the passkey: the agent learns it and gets no token', async () => {
    const grantId = await requestGrant(planner);
    await openRequest(grantId, 'trip planner');
    await page.getByRole('button', { name: 'Deny with passkey' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Denied' }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
    const polled = await app.inject({ method: 'GET', url: `/grants/${grantId}`, headers: { authorization: `private_key_jwt ${await selfSigned(planner.clientId, planner.privateKey)}` } });
    expect(polled.json()).toMatchObject({ status: 'denied' });
    expect((await exchange(planner, grantId)).json()).toEqual({ error: 'invalid_grant', error_description: 'grant is denied' });
  });

  it('draws the transaction’s tree of hops, the registry’s last audit verdict and each event’s inclusion proof', async () => {
    const root = await rootToken(planner, approvedGrant);
    const { txn } = await verify(root);
    const hop = await fx.delegate(planner, root, booker, { requestDetails: { authorization_details: [{ ...grantRequest.authorization_details[0], actions: ['read'] }] } });
    expect(hop.statusCode).toBe(200);
    const hopToken = hop.json<{ access_token: string }>().access_token;
    // The booking agent reads at the flights service, then tries to book, which its hop does not allow.
    expect(await verifyAtService(booker, hopToken, 'read')).toMatchObject({ allow: true });
    expect(await verifyAtService(booker, hopToken, 'book')).toMatchObject({ allow: false, error: 'insufficient_scope' });
    await page.goto(`${uiUrl}/transactions/${txn}`);
    // The decisions reach the chain through the verifier's queue; the page shows them once appended.
    await expect
      .poll(
        async () => {
          await page.reload();
          return page.getByText('insufficient_scope').count();
        },
        { timeout: 20_000, interval: 500 },
      )
      .toBeGreaterThan(0);
    // The page shows the registry's last verdict, never one of its own: sign a checkpoint and verify now.
    await app.get(AuditService).checkpoint();
    const verdict = await app.get(AuditVerdicts).refresh();
    if (verdict.status !== 'verified') throw new Error(`the audit log should verify: ${JSON.stringify(verdict)}`);
    await page.reload();
    await expect
      .poll(() => page.getByRole('status').filter({ hasText: new RegExp(`^Audit log verified up to event ${verdict.size} at .+`) }).count(), { timeout: 10_000 })
      .toBe(1);
    const auditPart = page.getByRole('region', { name: 'In the audit log' });
    const lines = await auditPart.locator('li > span').allTextContents();
    expect(lines.length).toBeGreaterThanOrEqual(4);
    const size = Number(/ of size (\d+)$/.exec(lines[0]!)?.[1]);
    for (const line of lines) expect(line).toMatch(new RegExp(`^Event \\d+ \\([a-z.]+\\): included in checkpoint of size ${size}$`));
    // The proof shown is the one anyone can check against the checkpoint's root.
    const first = auditPart.locator('li').first();
    await first.locator('summary').click();
    const [leafHash, checkpointRoot] = await first.locator('code').allTextContents();
    const proof = (await first.locator('pre').count()) === 0 ? [] : (await first.locator('pre').textContent())!.split('\n');
    const seq = Number(/^Event (\d+)/.exec(lines[0]!)![1]);
    expect(
      verifyInclusion({ leafHash: decodeBase64(leafHash!)!, index: seq - 1, size, proof: proof.map((h) => decodeBase64(h)!), root: decodeBase64(checkpointRoot!)! }),
    ).toBe(true);
    expect(checkpointRoot).toBe(Buffer.from(await app.get(AuditService).rootAt(size)).toString('base64'));
    const tree = page.getByRole('tree');
    await expect.poll(() => tree.getByRole('treeitem').count()).toBe(2);
    expect(await tree.getByRole('treeitem').first().textContent()).toContain('trip planner');
    expect(await tree.getByRole('treeitem').first().getByRole('treeitem').textContent()).toContain('booking agent');
    await page.screenshot({ path: join(SCREENSHOTS, 'transaction.png'), fullPage: true });

    // The person stops the whole transaction: the hop below is denied at the service from then on.
    await page.getByRole('button', { name: 'Revoke this transaction' }).click();
    await page.getByRole('button', { name: 'Revoke now' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Transaction revoked' }).count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => verifyAtService(booker, hopToken, 'read'), { timeout: 5_000 }).toMatchObject({ allow: false, error: 'revoked' });
  });

  it('revokes a grant from the grants page: no more tokens', async () => {
    await page.goto(`${uiUrl}/grants`);
    const grant = page.getByRole('article', { name: 'Grant for trip planner' }).filter({ has: page.locator(`a[href*="${approvedGrant}"]`) });
    await grant.getByRole('button', { name: 'Revoke' }).click();
    await grant.getByRole('button', { name: 'Revoke now' }).click();
    await expect.poll(() => grant.getByText('Revoked').count(), { timeout: 10_000 }).toBeGreaterThan(0);
    expect((await exchange(planner, approvedGrant)).json()).toEqual({ error: 'invalid_grant', error_description: 'grant is revoked' });
  });

  it('shows a payment above approval_above in the inbox as the verifier holds it, and approves exactly that payment with the passkey', async () => {
    const envelope = { amount: { currency: 'EUR', per_request_max: 500, total_max: 1000, approval_above: 100 } };
    const grantId = await requestGrant(planner, { envelope });
    await openRequest(grantId, 'trip planner');
    await page.getByRole('button', { name: 'Approve with passkey' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Approved' }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
    // The planner hands the payment to the booking agent, which pays 150 EUR at the flights service.
    const root = await rootToken(planner, grantId);
    const hop = await fx.delegate(planner, root, booker, { requestDetails: { authorization_details: [{ ...grantRequest.authorization_details[0], actions: ['book'] }], envelope } });
    expect(hop.statusCode).toBe(200);
    const hopToken = hop.json<{ access_token: string }>().access_token;
    const { txn } = await verify(hopToken);

    await page.goto(uiUrl);
    await expect.poll(() => page.getByText('Nothing is waiting for you.').isVisible(), { timeout: 10_000 }).toBe(true);
    // The service binds the payee, and the URL carries a query: both are shown and signed (issue 17, finding 6).
    const exact = { query: 'ref=trip-7', bind: { payee: 'Acme Travel' } };
    const held = await stack.payAtService(booker, hopToken, 150, exact);
    expect(held).toMatchObject({ allow: false, error: 'approval_required' });
    const stepUpId = held.step_up_id!;
    // The inbox updates live: no reload.
    const payment = page.getByRole('article', { name: 'Payment request from booking agent' });
    await expect.poll(() => payment.count(), { timeout: 15_000 }).toBe(1);
    expect(await page.getByRole('heading', { name: 'Payments waiting for you' }).isVisible()).toBe(true);
    const words = await payment.textContent();
    for (const shown of ['booking agent asks to pay 150 EUR', 'Flights, at https://flights.example/api/bookings', 'POST https://flights.example/api/bookings', txn]) expect(words).toContain(shown);
    expect((await stack.stepUpAsAgent(booker, stepUpId)).status).toBe('pending');

    await payment.getByRole('link', { name: 'Review' }).click();
    await page.waitForURL(`${uiUrl}/step-ups/${stepUpId}`);
    await expect.poll(() => page.getByRole('heading', { name: 'booking agent asks to pay 150 EUR', level: 1 }).isVisible()).toBe(true);
    expect(await page.getByTestId('bound-query').textContent()).toBe('ref=trip-7');
    expect(await page.getByTestId('bound-field-payee').textContent()).toBe('Acme Travel');
    await page.screenshot({ path: join(SCREENSHOTS, 'step-up.png'), fullPage: true });
    const countBefore = (await passkeys.credentials())[0]!.signCount;
    await page.getByRole('button', { name: 'Approve payment with passkey' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Payment approved' }).count(), { timeout: 15_000 }).toBe(1);
    expect((await passkeys.credentials())[0]!.signCount).toBeGreaterThan(countBefore);
    // What was signed is on the page, and its receipt verifies offline.
    await page.getByText('Exactly what you sign').click();
    expect(await page.locator('pre').textContent()).toContain(`"step_up_id": "${stepUpId}"`);
    const stored = await uiGet<StoredReceipt>(`/me/step-ups/${stepUpId}/receipt`);
    const checked = await verifyStepUpReceipt(stored.receipt, { publicKey: stored.public_key, rpId: 'localhost', origins: [uiUrl], stepUpId });
    expect(checked.document).toMatchObject({ decision: 'approve', amount: 150, currency: 'EUR', txn, agent: { client_id: booker.clientId, name: 'booking agent' }, bound: { query: 'ref=trip-7', fields: { payee: 'Acme Travel' } } });

    // The agent learns it, and its retried payment passes once.
    expect((await stack.stepUpAsAgent(booker, stepUpId, 5)).status).toBe('approved');
    // Another payee or another query is another request: the approval does not cover it.
    expect(await stack.payAtService(booker, hopToken, 150, { ...exact, bind: { payee: 'Mallory' } })).toMatchObject({ allow: false, error: 'approval_required' });
    expect(await stack.payAtService(booker, hopToken, 150, { ...exact, query: 'ref=trip-7&to=mallory' })).toMatchObject({ allow: false, error: 'approval_required' });
    expect(await stack.payAtService(booker, hopToken, 150, exact)).toMatchObject({ allow: true, step_up_id: stepUpId });
    expect(await stack.payAtService(booker, hopToken, 150, exact)).toMatchObject({ allow: false, error: 'approval_required' });
  });

  it('fits a phone-width screen', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(uiUrl);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.setViewportSize({ width: 1100, height: 900 });
  });
});
