import { createInterface } from 'node:readline/promises';
import type { Browser, Page } from 'playwright-core';
import { addVirtualPasskeyAuthenticator, launchChromium } from '../../approval-ui/e2e/support/browser.js';

/** The person the agents act for, as the demo meets them. */
export interface Human {
  id: string;
  /** A grant waits for this person: headless, they approve it; otherwise they are shown where. */
  grantRequested(grantId: string): Promise<void>;
  /** A payment step-up waits for this person. */
  stepUpRequested(stepUpId: string): Promise<void>;
  /** The person stops a whole transaction; resolves once it is revoked. */
  revokeTransaction(txn: string): Promise<void>;
  close(): Promise<void>;
}

interface Operator {
  registryUrl: string;
  token: string;
}

/**
 * `--headless`: headless Chromium with a DevTools virtual authenticator plays the person. They
 * sign up with a new passkey, then approve in the approval UI exactly as a person would: the same
 * pages, buttons and WebAuthn ceremonies.
 */
export async function headlessHuman(uiUrl: string, name: string): Promise<Human> {
  const browser: Browser = await launchChromium();
  const page: Page = await (await browser.newContext()).newPage();
  await addVirtualPasskeyAuthenticator(page);
  await page.goto(`${uiUrl}/signup`);
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Create account with a passkey' }).click();
  await page.getByRole('heading', { name: 'Requests waiting for you' }).waitFor({ timeout: 20_000 });
  const session = (await (await page.request.get(`${uiUrl}/api/auth/session`)).json()) as { human: { id: string } };

  async function approve(path: string, button: string, outcome: string): Promise<void> {
    // A step-up reaches the registry with the verifier's decision event, a moment after the agent
    // hears of it: the person opens the page again until it is there, as one would.
    const deadline = Date.now() + 30_000;
    for (;;) {
      await page.goto(`${uiUrl}${path}`);
      const ready = await page
        .getByRole('button', { name: button })
        .waitFor({ timeout: 2_000 })
        .then(() => true, () => false);
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`${uiUrl}${path} never showed "${button}"`);
    }
    await page.getByRole('button', { name: button }).click();
    await page.getByRole('status').filter({ hasText: outcome }).first().waitFor({ timeout: 20_000 });
  }

  return {
    id: session.human.id,
    grantRequested: (grantId) => approve(`/grants/${grantId}`, 'Approve with passkey', 'Approved'),
    stepUpRequested: (stepUpId) => approve(`/step-ups/${stepUpId}`, 'Approve payment with passkey', 'Payment approved'),
    revokeTransaction: async (txn) => {
      await page.goto(`${uiUrl}/transactions/${txn}`);
      await page.getByRole('button', { name: 'Revoke this transaction' }).click();
      await page.getByRole('button', { name: 'Revoke now' }).click();
      await page.getByRole('status').filter({ hasText: 'Transaction revoked' }).first().waitFor({ timeout: 20_000 });
    },
    close: () => browser.close(),
  };
}

/**
 * By default a person approves in their own browser: the demo waits for them to sign up, then
 * shows where each decision waits; the agents wait for the decision without polling.
 */
export async function personInTheBrowser(uiUrl: string, operator: Operator, say: (line: string) => void): Promise<Human> {
  const since = Date.now();
  say(`Open ${uiUrl}/signup in your browser and create an account with a passkey (waiting for you)...`);
  let id: string | undefined;
  while (id === undefined) {
    const res = await fetch(`${operator.registryUrl}/operator/humans`, { headers: { authorization: `Bearer ${operator.token}` } });
    const { humans } = (await res.json()) as { humans: { id: string; name: string; created_at: string }[] };
    const fresh = humans.find((h) => Date.parse(h.created_at) >= since - 1000);
    if (fresh) {
      id = fresh.id;
      say(`Welcome, ${fresh.name}.`);
    } else {
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  return {
    id,
    grantRequested: (grantId) => {
      say(`  → approve the request in your browser: ${uiUrl}/grants/${grantId}`);
      return Promise.resolve();
    },
    stepUpRequested: (stepUpId) => {
      say(`  → approve the payment in your browser: ${uiUrl}/step-ups/${stepUpId}`);
      return Promise.resolve();
    },
    revokeTransaction: async (txn) => {
      say(`  → now revoke the transaction in your browser (Revoke this transaction): ${uiUrl}/transactions/${txn}`);
      const prompt = createInterface({ input: process.stdin, output: process.stdout });
      await prompt.question('    press Enter once it says "Transaction revoked" ');
      prompt.close();
    },
    close: () => Promise.resolve(),
  };
}
