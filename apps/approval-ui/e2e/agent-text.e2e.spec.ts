import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { exportJWK, generateKeyPair } from 'jose';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentsService } from '../../registry/src/modules/agents/agents.service.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import { createUiStack, storage } from './support/stack.js';

/** Where the screenshot goes: a temporary folder, or docs/screenshots with UPDATE_SCREENSHOTS=1. */
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? resolve(import.meta.dirname, '../../../docs/screenshots') : join(tmpdir(), 'writ-ui-screenshots');

// Issue 17, finding 2: two agents of one name can be told apart in the inbox (client id,
// enrollment date, a warning), the purpose reads as the agent's own words, and a time window
// shows its zone's UTC offsets.
describe(`agent text in the approval UI in Chromium (registry on ${storage.name})`, () => {
  const stack = createUiStack();
  let uiUrl: string;
  let app: NestFastifyApplication;
  let page: Page;
  let humanId: string;

  /** An agent of the signed-up person, registered over RFC 7591 as `name`. */
  async function register(name: string): Promise<Agent> {
    const { token } = await app.get(AgentsService).mintInitialAccessToken(humanId);
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const res = await app.inject({ method: 'POST', url: '/oauth/register', headers: { authorization: `Bearer ${token}` }, payload: { client_name: name, jwks: { keys: [publicJwk] } } });
    expect(res.statusCode).toBe(201);
    return { clientId: res.json<{ client_id: string }>().client_id, owner: humanId, privateKey, publicJwk };
  }

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    await stack.start();
    ({ uiUrl, app, page } = stack);
  });

  afterAll(() => stack.close());

  it('signs up with a passkey created in the browser', async () => {
    await page.goto(`${uiUrl}/signup`);
    await page.getByLabel('Your name').fill('Bea');
    await page.getByRole('button', { name: 'Create account with a passkey' }).click();
    await expect.poll(() => page.getByRole('heading', { name: 'Requests waiting for you' }).isVisible(), { timeout: 15_000 }).toBe(true);
    humanId = (await stack.uiGet<{ human: { id: string } }>('/auth/session')).human.id;
  });

  it('tells two agents of one name apart in the inbox: client id, enrollment date and a warning on each', async () => {
    const first = await register('Budget assistant');
    const second = await register('Budget assistant');
    const other = await register('Trip planner');
    const window = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '18:00', tz: 'america/NEW_YORK' };
    await stack.requestGrant(first, { purpose: 'Pay the office invoices', envelope: { max_uses: 10, time_windows: [window] } });
    await stack.requestGrant(second, { purpose: 'Pay the office invoices' });
    await stack.requestGrant(other, { purpose: 'Book my trip' });

    await page.goto(uiUrl);
    const cards = page.getByRole('article', { name: 'Request from Budget assistant' });
    await expect.poll(() => cards.count(), { timeout: 10_000 }).toBe(2);
    const texts = await cards.allTextContents();
    for (const agent of [first, second]) {
      const card = texts.find((text) => text.includes(`(${agent.clientId})`));
      expect(card, `the card of ${agent.clientId}`).toBeDefined();
      expect(card).toContain('Another of your agents has this name: check the client id');
      expect(card).toMatch(/, enrolled \S/);
      expect(card).toContain('The agent says: Pay the office invoices');
    }
    const planner = await page.getByRole('article', { name: 'Request from Trip planner' }).textContent();
    expect(planner).toContain(`(${other.clientId})`);
    expect(planner).not.toContain('Another of your agents');
    await page.screenshot({ path: join(SCREENSHOTS, 'inbox-two-agents.png'), fullPage: true });
  });

  it('shows the time window of a request in its canonical zone with the UTC offsets', async () => {
    const card = page.getByRole('article', { name: 'Request from Budget assistant' }).filter({ hasText: 'America/New_York' });
    await card.getByRole('link', { name: 'Review' }).click();
    await page.waitForURL(/\/grants\/grt_/);
    await expect.poll(() => page.getByRole('heading', { name: 'Budget assistant asks for access to Flights' }).isVisible(), { timeout: 10_000 }).toBe(true);
    await expect
      .poll(() => page.getByText('Monday to Friday, 09:00–18:00 (America/New_York, UTC−05:00 or UTC−04:00 in summer time)').isVisible(), { timeout: 10_000 })
      .toBe(true);
    expect(await page.getByText('Another of your agents has this name: check the client id').isVisible()).toBe(true);
  });

  it('flags both agents of one name on the agents page', async () => {
    await page.goto(`${uiUrl}/agents`);
    const same = page.getByRole('article', { name: 'Agent Budget assistant' });
    await expect.poll(() => same.count(), { timeout: 10_000 }).toBe(2);
    expect(await same.getByRole('note').allTextContents()).toEqual([
      'Another of your agents has this name: check the client id',
      'Another of your agents has this name: check the client id',
    ]);
    expect(await page.getByRole('article', { name: 'Agent Trip planner' }).getByRole('note').count()).toBe(0);
  });
});
