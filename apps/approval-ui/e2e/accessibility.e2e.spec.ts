import { describeCapability } from '@writ/core';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, capability, grantRequest } from '../../registry/test/support/token-fixture.js';
import { APPROVAL_UI_RULES, type AxeViolation, describeViolations, runAxe } from './support/axe.js';
import { createUiStack, DESKTOP_VIEWPORT, storage } from './support/stack.js';

/** A phone held upright (an iPhone mini's CSS width). */
const PHONE_VIEWPORT = { width: 375, height: 812 } as const;

/** The width WCAG 2.1's reflow criterion (1.4.10) asks content to fit without sideways scrolling. */
const REFLOW_WIDTH = 320;

/** How each page is checked: laptop and phone widths, and the dark colour scheme the CSS also defines. */
const LOOKS = [
  { name: 'desktop width', viewport: DESKTOP_VIEWPORT, colorScheme: 'light' },
  { name: '375 px', viewport: PHONE_VIEWPORT, colorScheme: 'light' },
  { name: 'desktop width, dark scheme', viewport: DESKTOP_VIEWPORT, colorScheme: 'dark' },
] as const;

/** What has the keyboard focus: its accessible-ish name, and whether a focus indicator is drawn. */
interface Focused {
  tag: string;
  name: string;
  /** A non-none outline of some width, or a box-shadow. */
  indicator: boolean;
  /** Entirely inside the viewport (the browser scrolls a focused element into view). */
  onScreen: boolean;
  inMain: boolean;
}

function focused(page: Page): Promise<Focused> {
  return page.evaluate(() => {
    const element = document.activeElement;
    if (!(element instanceof HTMLElement) || element === document.body) {
      return { tag: 'body', name: '', indicator: false, onScreen: false, inMain: false };
    }
    const labels = 'labels' in element ? (element as HTMLInputElement).labels : null;
    const name = (element.getAttribute('aria-label') ?? labels?.[0]?.textContent ?? element.textContent ?? '').trim().replace(/\s+/g, ' ');
    const style = getComputedStyle(element);
    const indicator = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none';
    const box = element.getBoundingClientRect();
    const onScreen = box.top >= 0 && box.left >= 0 && box.bottom <= window.innerHeight && box.right <= window.innerWidth;
    return { tag: element.tagName.toLowerCase(), name, indicator, onScreen, inMain: document.querySelector('main')?.contains(element) ?? false };
  });
}

describe(`approval UI accessibility in Chromium (registry on ${storage.name})`, () => {
  const stack = createUiStack({ dataDirPrefix: 'writ-ui-a11y-' });
  const { fx, requestGrant, uiGet, verifyAtService, openRequest } = stack;
  let uiUrl: string;
  let page: Page;

  /** How far the page scrolls sideways at `width` (0 when it fits). */
  async function overflowAt(width: number): Promise<number> {
    await page.setViewportSize({ width, height: PHONE_VIEWPORT.height });
    return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  }

  /**
   * axe-core (WCAG 2.1 A and AA, 2.2's target size, best practices) on the page as it is, in
   * each look, and no sideways scrolling at 375 and 320 px; every finding is printed with its
   * rule, impact, elements and help.
   */
  async function audit(where: string): Promise<void> {
    const findings: string[] = [];
    const found: AxeViolation[] = [];
    for (const look of LOOKS) {
      await page.setViewportSize(look.viewport);
      await page.emulateMedia({ colorScheme: look.colorScheme });
      const violations = await runAxe(page, APPROVAL_UI_RULES);
      found.push(...violations);
      findings.push(...describeViolations(`${where}, ${look.name}`, violations));
    }
    for (const width of [PHONE_VIEWPORT.width, REFLOW_WIDTH]) {
      const overflow = await overflowAt(width);
      if (overflow > 0) findings.push(`${where}, ${width} px: the page scrolls sideways by ${overflow} px`);
    }
    await page.setViewportSize(DESKTOP_VIEWPORT);
    await page.emulateMedia({ colorScheme: 'light' });
    if (findings.length > 0) console.error(`accessibility findings on ${where}:\n${findings.join('\n')}`);
    expect(findings, `${found.length} axe-core violation(s) on ${where}: ${[...new Set(found.map((violation) => violation.id))].join(', ')}`).toEqual([]);
  }

  /** Waits until the page shows this (its content has loaded). */
  async function visible(locator: Locator, timeout = 10_000): Promise<void> {
    await locator.first().waitFor({ state: 'visible', timeout });
  }

  beforeAll(async () => {
    await stack.start();
    ({ uiUrl, page } = stack);
  });

  afterAll(() => stack.close());

  it('the audit finds what it should: a low-contrast text and an unlabelled field put on a page', async () => {
    await page.goto(`${uiUrl}/signin`);
    await visible(page.getByRole('button', { name: 'Sign in with a passkey' }));
    await page.evaluate(() => {
      const main = document.querySelector('main');
      main?.insertAdjacentHTML('beforeend', '<p style="color:#bbb;background:#fff">faint</p><input type="text">');
    });
    const violations = await runAxe(page, APPROVAL_UI_RULES);
    expect(violations.map((violation) => violation.id)).toEqual(expect.arrayContaining(['color-contrast', 'label']));
    const [line] = describeViolations('sign-in', violations.filter((violation) => violation.id === 'label'));
    expect(line).toMatch(/^sign-in: label \(critical\): Form elements must have labels\n {2}at input\n {4}<input type="text">\n/);
    expect(line).toContain('help: https://');
  });

  describe('signed out', () => {
    it('sign-up page, and with its error shown', async () => {
      await page.goto(`${uiUrl}/signup`);
      await visible(page.getByRole('button', { name: 'Create account with a passkey' }));
      await audit('sign-up');
      // Submitting without a name: the error is in role=alert, the field marked invalid.
      await page.getByRole('button', { name: 'Create account with a passkey' }).click();
      await visible(page.getByRole('alert'));
      await audit('sign-up with an error');
    });

    it('sign-in page', async () => {
      await page.goto(`${uiUrl}/signin`);
      await visible(page.getByRole('button', { name: 'Sign in with a passkey' }));
      await audit('sign-in');
    });
  });

  describe('signed in, with agents, grants and a transaction', () => {
    let planner: Agent;
    let booker: Agent;
    let approvedGrant: string;
    let pendingGrant: string;
    let txn: string;

    it('signs up, enrols two agents, has a grant approved and used, and another one waiting', async () => {
      await page.goto(`${uiUrl}/signup`);
      await page.getByLabel('Your name').fill('Alice');
      await page.getByRole('button', { name: 'Create account with a passkey' }).click();
      await visible(page.getByRole('heading', { name: 'Requests waiting for you' }), 15_000);
      const { human } = await uiGet<{ human: { id: string } }>('/auth/session');
      planner = await stack.enrolThroughUi('trip planner', human.id);
      booker = await stack.enrolThroughUi('booking agent', human.id);

      // One grant approved with the passkey, then used: a root token and a hop, with the verifier's decisions.
      approvedGrant = await requestGrant(planner);
      await openRequest(approvedGrant, 'trip planner');
      await page.getByRole('button', { name: 'Approve with passkey' }).click();
      await expect.poll(() => page.getByRole('status').filter({ hasText: 'Approved' }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
      const root = await fx.rootToken(planner, approvedGrant);
      ({ txn } = await fx.verify(root));
      const hop = await fx.delegate(planner, root, booker, { requestDetails: { authorization_details: [{ ...grantRequest.authorization_details[0], actions: ['read'] }] } });
      expect(hop.statusCode).toBe(200);
      const hopToken = hop.json<{ access_token: string }>().access_token;
      expect(await verifyAtService(booker, hopToken, 'read')).toMatchObject({ allow: true });
      expect(await verifyAtService(booker, hopToken, 'book')).toMatchObject({ allow: false });

      // One waiting, with every kind of limit, so that the approval page shows every field.
      pendingGrant = await requestGrant(planner, {
        envelope: { rate: { limit: 60, window_s: 60 }, amount: { currency: 'EUR', per_request_max: 200, total_max: 500 }, max_uses: 10 },
      });
    });

    it('inbox, with a pending request', async () => {
      await page.goto(uiUrl);
      await visible(page.getByRole('article', { name: 'Request from trip planner' }));
      await audit('inbox');
    });

    it('approval page of a pending request', async () => {
      await page.goto(`${uiUrl}/grants/${pendingGrant}`);
      await visible(page.getByRole('heading', { name: 'Narrow before approving' }));
      await visible(page.getByLabel('Most per request'));
      await audit('approval page');
    });

    it('approval page of a decided request', async () => {
      await page.goto(`${uiUrl}/grants/${approvedGrant}`);
      await visible(page.getByRole('link', { name: 'Receipt (JSON)' }));
      await audit('decided grant');
    });

    it('grants, with an approved grant', async () => {
      await page.goto(`${uiUrl}/grants`);
      await visible(page.getByRole('article', { name: 'Grant for trip planner' }));
      await audit('grants');
    });

    it('agents, with agents and a fresh enrollment token', async () => {
      await page.goto(`${uiUrl}/agents`);
      await visible(page.getByRole('article', { name: 'Agent trip planner' }));
      await page.getByRole('button', { name: 'Create an enrollment token' }).click();
      await expect.poll(() => page.getByLabel('Enrollment token').inputValue()).not.toBe('');
      await audit('agents');
    });

    it('transactions', async () => {
      await page.goto(`${uiUrl}/transactions`);
      await visible(page.getByRole('link', { name: txn }));
      await audit('transactions');
    });

    it('one transaction, with its hops and the verifier’s decisions', async () => {
      await page.goto(`${uiUrl}/transactions/${txn}`);
      // The decisions reach the audit chain through the verifier's queue.
      await expect
        .poll(
          async () => {
            await page.reload();
            await visible(page.getByRole('tree'));
            return page.getByText('insufficient_scope').count();
          },
          { timeout: 20_000, interval: 500 },
        )
        .toBeGreaterThan(0);
      expect(await page.getByRole('treeitem').count()).toBe(2);
      await audit('transaction');
    });

    describe('a payment held for approval (a step-up)', () => {
      let stepUpId: string;

      it('the booking agent pays above approval_above: the verifier holds the payment', async () => {
        const envelope = { amount: { currency: 'EUR', per_request_max: 500, total_max: 1000, approval_above: 100 } };
        const grantId = await requestGrant(planner, { envelope });
        await openRequest(grantId, 'trip planner');
        await page.getByRole('button', { name: 'Approve with passkey' }).click();
        await expect.poll(() => page.getByRole('status').filter({ hasText: 'Approved' }).count(), { timeout: 15_000 }).toBeGreaterThan(0);
        const root = await fx.rootToken(planner, grantId);
        const hop = await fx.delegate(planner, root, booker, { requestDetails: { authorization_details: [{ ...capability, actions: ['book'] }], envelope } });
        expect(hop.statusCode).toBe(200);
        const held = await stack.payAtService(booker, hop.json<{ access_token: string }>().access_token, 150);
        expect(held).toMatchObject({ error: 'approval_required' });
        stepUpId = held.step_up_id!;
      });

      it('inbox, with a pending payment and a pending request', async () => {
        await page.goto(uiUrl);
        await visible(page.getByRole('article', { name: 'Payment request from booking agent' }), 15_000);
        await visible(page.getByRole('article', { name: 'Request from trip planner' }));
        await audit('inbox with a payment');
      });

      it('payment page of a pending payment', async () => {
        await page.goto(`${uiUrl}/step-ups/${stepUpId}`);
        await visible(page.getByRole('button', { name: 'Approve payment with passkey' }));
        await audit('payment page');
      });

      it('approves the payment with the keyboard alone: the focus ends on the decision, then reaches what was signed and the receipt', async () => {
        await page.goto(`${uiUrl}/step-ups/${stepUpId}`);
        await visible(page.getByRole('button', { name: 'Approve payment with passkey' }));
        for (let i = 0; i < 30 && (await focused(page)).name !== 'Approve payment with passkey'; i++) {
          await page.keyboard.press('Tab');
          expect(await focused(page), `focus indicator at Tab stop ${i + 1}`).toMatchObject({ indicator: true, onScreen: true });
        }
        expect(await focused(page)).toMatchObject({ tag: 'button', name: 'Approve payment with passkey' });
        await page.keyboard.press('Tab');
        expect(await focused(page)).toMatchObject({ name: 'Deny with passkey', indicator: true });
        await page.keyboard.press('Shift+Tab');
        await page.keyboard.press('Enter');
        await expect.poll(() => page.getByRole('status').filter({ hasText: /^Payment approved$/ }).count(), { timeout: 15_000 }).toBe(1);
        expect(await focused(page)).toMatchObject({ inMain: true, name: 'Your decision' });
        await page.keyboard.press('Tab');
        expect(await focused(page)).toMatchObject({ tag: 'summary', name: 'Exactly what you sign', indicator: true });
        await page.keyboard.press('Tab');
        expect(await focused(page)).toMatchObject({ tag: 'a', name: 'Receipt (JSON)', indicator: true });
        await audit('payment page after approving');
      });

      it('payment page of a decided payment', async () => {
        await page.goto(`${uiUrl}/step-ups/${stepUpId}`);
        await visible(page.getByRole('link', { name: 'Receipt (JSON)' }));
        await audit('decided payment');
      });
    });

    it('account', async () => {
      await page.goto(`${uiUrl}/account`);
      await visible(page.getByText('Last used'));
      await audit('account');
    });

    it('the first Tab focuses "Skip to content", visibly, and Enter moves the focus to the main content', async () => {
      for (const viewport of [DESKTOP_VIEWPORT, PHONE_VIEWPORT]) {
        await page.setViewportSize(viewport);
        await page.goto(`${uiUrl}/grants`);
        await visible(page.getByRole('article', { name: 'Grant for trip planner' }));
        await page.keyboard.press('Tab');
        expect(await focused(page), `${viewport.width} px`).toMatchObject({ tag: 'a', name: 'Skip to content', indicator: true, onScreen: true });
        await page.keyboard.press('Enter');
        expect(await page.evaluate(() => document.activeElement?.id)).toBe('main');
        // The next Tab continues in the content, past the header and its navigation.
        await page.keyboard.press('Tab');
        expect(await focused(page), `${viewport.width} px`).toMatchObject({ inMain: true, indicator: true });
      }
      await page.setViewportSize(DESKTOP_VIEWPORT);
    });

    it('approves a request with the keyboard alone, the focus visible at every stop', async () => {
      const grantId = await requestGrant(planner);
      await page.goto(`${uiUrl}/grants/${grantId}`);
      await visible(page.getByRole('button', { name: 'Approve with passkey' }));

      // Tab from the top of a freshly loaded page until the approve button has the focus.
      const stops: string[] = [];
      for (let i = 0; i < 30 && stops.at(-1) !== 'Approve with passkey'; i++) {
        await page.keyboard.press('Tab');
        const now = await focused(page);
        stops.push(now.name);
        expect(now, `focus indicator at Tab stop ${i + 1}`).toMatchObject({ indicator: true, onScreen: true });
      }
      expect(stops).toEqual([
        'Skip to content',
        'Writ',
        'Inbox',
        'Grants',
        'Agents',
        'Transactions',
        'Account',
        describeCapability(capability),
        'Most uses',
        'Duration in minutes',
        'Approve with passkey',
      ]);
      // Past it to "Deny", and back.
      await page.keyboard.press('Tab');
      expect(await focused(page)).toMatchObject({ name: 'Deny with passkey', indicator: true });
      await page.keyboard.press('Shift+Tab');
      expect(await focused(page)).toMatchObject({ name: 'Approve with passkey', indicator: true });

      await page.keyboard.press('Enter');
      await expect.poll(() => page.getByRole('status').filter({ hasText: /^Approved$/ }).count(), { timeout: 15_000 }).toBe(1);
      // The buttons are gone: the focus is not dropped to the top of the page but put on the
      // outcome, and the next Tabs reach what was signed and the receipt.
      expect(await focused(page)).toMatchObject({ inMain: true, name: 'Your decision' });
      await page.keyboard.press('Tab');
      expect(await focused(page)).toMatchObject({ tag: 'summary', name: 'Exactly what you sign', indicator: true });
      await page.keyboard.press('Tab');
      expect(await focused(page)).toMatchObject({ tag: 'a', name: 'Receipt (JSON)', indicator: true });
      expect(await uiGet<{ status: string }>(`/me/grants/${grantId}`)).toMatchObject({ status: 'approved' });
      await audit('approval page after approving');
    });

    it('revokes a grant with the keyboard alone: the focus moves to the confirmation, then to the grant', async () => {
      await page.goto(`${uiUrl}/grants`);
      await visible(page.getByRole('button', { name: 'Revoke' }));
      for (let i = 0; i < 40 && (await focused(page)).name !== 'Revoke'; i++) await page.keyboard.press('Tab');
      expect(await focused(page)).toMatchObject({ tag: 'button', name: 'Revoke', indicator: true, onScreen: true });
      await page.keyboard.press('Enter');
      expect(await focused(page)).toMatchObject({ name: 'Revoke now', indicator: true });
      await page.keyboard.press('Enter');
      await expect.poll(() => page.getByRole('status').filter({ hasText: /^Revoked$/ }).count(), { timeout: 10_000 }).toBe(1);
      // Its buttons are gone: the focus is on the revoked grant's heading, inside its article.
      const heading = await page.evaluate(() => document.activeElement?.closest('article')?.getAttribute('aria-label') ?? null);
      expect(heading).toBe('Grant for trip planner');
      expect(await focused(page)).toMatchObject({ tag: 'h3', inMain: true });
    });

    it('disables an agent with the keyboard alone: the focus ends on the agent', async () => {
      await page.goto(`${uiUrl}/agents`);
      await visible(page.getByRole('button', { name: 'Disable' }));
      for (let i = 0; i < 40 && (await focused(page)).name !== 'Disable'; i++) await page.keyboard.press('Tab');
      expect(await focused(page)).toMatchObject({ tag: 'button', name: 'Disable', indicator: true, onScreen: true });
      await page.keyboard.press('Enter');
      expect(await focused(page)).toMatchObject({ name: 'Disable now', indicator: true });
      await page.keyboard.press('Enter');
      await expect.poll(() => page.getByRole('status').filter({ hasText: /^Disabled$/ }).count(), { timeout: 10_000 }).toBe(1);
      const article = await page.evaluate(() => document.activeElement?.closest('article')?.getAttribute('aria-label') ?? null);
      expect(article).toMatch(/^Agent /);
      expect(await focused(page)).toMatchObject({ tag: 'h3', inMain: true });
    });
  });
});
