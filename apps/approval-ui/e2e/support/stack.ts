import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createDpopProof } from '@writ/core';
import { exportJWK, generateKeyPair } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { expect } from 'vitest';
import { storages } from '../../../registry/test/support/databases.js';
import { freePort } from '../../../registry/test/support/redis.js';
import { type Agent, createTokenFixture, grantRequest, type TokenFixtureOptions } from '../../../registry/test/support/token-fixture.js';
import { REVOCATION_BUS, type RevocationBus } from '../../../registry/src/modules/revocations/revocation-bus.js';
import { loadVerifierConfig } from '../../../verifier/src/config.js';
import { createVerifierServer, type VerifierServer } from '../../../verifier/src/server.js';
import { InProcessVerifierStore } from '../../../verifier/src/store/in-process-store.js';
import { ensureApprovalUiBuilt, type RunningApprovalUi, startApprovalUi } from '../../server.mjs';
import { addVirtualPasskeyAuthenticator, launchChromium, type VirtualCredential } from './browser.js';

/** Where the registry keeps its data: PostgreSQL when DATABASE_URL is set (as in CI), else embedded PGlite. */
export const storage = (() => {
  const last = storages.at(-1);
  if (last === undefined) throw new Error('no test storage configured');
  return last;
})();

/** The viewport every stack's page starts with (a laptop window). */
export const DESKTOP_VIEWPORT = { width: 1100, height: 900 } as const;

/** What `start` brings up, available once it has resolved. */
interface Running {
  app: NestFastifyApplication;
  service: { id: string; credential: string };
  verifier: VerifierServer;
  ui: RunningApprovalUi;
  uiUrl: string;
  browser: Browser;
  page: Page;
  passkeys: { credentials(): Promise<VirtualCredential[]> };
}

/**
 * The whole approval stack for a browser test: a registry (createTokenFixture, listening on a
 * loopback port) that accepts the UI's origin with WebAuthn for RP ID localhost, a verifier in
 * process whose decisions reach the registry's audit chain and whose step-ups the registry approves
 * in its store (as `npm start` runs it), the approval
 * UI's production build (built first when its sources changed), and headless Chromium with a
 * virtual passkey authenticator on one page. Helpers drive it the way agents, services and
 * people do; they work once `start` has resolved.
 *
 * ```ts
 * const stack = createUiStack();
 * beforeAll(() => stack.start());
 * afterAll(() => stack.close());
 * ```
 */
export function createUiStack(options: { dataDirPrefix?: string } = {}) {
  const store = new InProcessVerifierStore();
  const fixtureOptions: TokenFixtureOptions<never> = { dataDirPrefix: options.dataDirPrefix ?? 'writ-ui-e2e-', owners: [], verifierEvents: store, verifierAdmin: store };
  const fx = createTokenFixture(storage, fixtureOptions);
  const { selfSigned } = fx;
  let running: Running | undefined;
  let unsubscribe = (): void => undefined;
  /** What is already up, so that `close` can take down a half-started stack too. */
  const partial: Partial<Running> = {};

  function started(): Running {
    if (running === undefined) throw new Error('the UI stack is not started: await stack.start() first');
    return running;
  }

  async function start(): Promise<void> {
    const build = ensureApprovalUiBuilt({ log: (line) => console.log(`[approval-ui build] ${line}`) });
    const uiPort = await freePort();
    const uiUrl = `http://localhost:${uiPort}`;
    // The registry accepts the UI's origin, and WebAuthn runs for RP ID localhost.
    fixtureOptions.env = { WRIT_UI_ORIGINS: uiUrl, WRIT_RP_ID: 'localhost' };
    const { app, service } = await fx.start();
    Object.assign(partial, { app, service, uiUrl });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const registryUrl = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    // As `npm start` wires them in one process: the registry's revocations reach the verifier's store.
    unsubscribe = app.get<RevocationBus>(REVOCATION_BUS).subscribe((event) => {
      void store.revoke({ kind: event.kind, value: event.value, grantIds: event.grantIds, expiresAtMs: event.expiresAt.getTime() });
    });
    partial.verifier = await createVerifierServer({
      config: loadVerifierConfig({ WRIT_ISSUER: 'https://registry.writ.test', WRIT_REGISTRY_URL: registryUrl, WRIT_TRUST_DOMAIN: 'writ.test', VERIFIER_PORT: '0' }),
      store,
    });
    await build;
    partial.ui = await startApprovalUi({ port: uiPort, host: 'localhost', registryUrl });
    partial.browser = await launchChromium();
    partial.page = await (await partial.browser.newContext({ viewport: { ...DESKTOP_VIEWPORT } })).newPage();
    partial.passkeys = await addVirtualPasskeyAuthenticator(partial.page);
    running = partial as Running;
  }

  async function close(): Promise<void> {
    unsubscribe();
    await partial.browser?.close();
    await partial.ui?.close();
    await partial.verifier?.close();
    if (partial.app !== undefined) await fx.close();
  }

  /** An agent of `owner` registered over RFC 7591 with an enrollment token minted in the UI. */
  async function enrolThroughUi(name: string, owner: string): Promise<Agent> {
    const { page, uiUrl, app } = started();
    await page.goto(`${uiUrl}/agents`);
    await page.getByRole('button', { name: 'Create an enrollment token' }).click();
    const field = page.getByLabel('Enrollment token');
    await expect.poll(() => field.inputValue()).not.toBe('');
    const token = await field.inputValue();
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const res = await app.inject({ method: 'POST', url: '/oauth/register', headers: { authorization: `Bearer ${token}` }, payload: { client_name: name, jwks: { keys: [publicJwk] } } });
    expect(res.statusCode).toBe(201);
    return { clientId: res.json<{ client_id: string }>().client_id, owner, privateKey, publicJwk };
  }

  /** The agent asks for a grant over HTTP, as the SDK does. */
  async function requestGrant(by: Agent, overrides: object = {}): Promise<string> {
    const res = await started().app.inject({
      method: 'POST',
      url: '/grants',
      headers: { authorization: `private_key_jwt ${await selfSigned(by.clientId, by.privateKey)}` },
      payload: { ...grantRequest, ...overrides },
    });
    expect(res.statusCode).toBe(201);
    return res.json<{ grant_id: string }>().grant_id;
  }

  /**
   * A JSON GET through the UI's own origin, with the browser's session cookie. Sent once more when
   * the connection is reset, as a browser resends an idempotent request: Playwright reuses a
   * kept-alive connection that Node's server may close (after 5 s idle) just as the request goes.
   */
  async function uiGet<T>(path: string): Promise<T> {
    const { page, uiUrl } = started();
    const get = () => page.request.get(`${uiUrl}/api${path}`);
    const res = await get().catch((error: unknown) => {
      if (!String(error).includes('ECONNRESET')) throw error;
      return get();
    });
    expect(res.status(), path).toBe(200);
    return (await res.json()) as T;
  }

  /** Posts a root-token request for the agent; answers the raw response. */
  async function exchange(agent: Agent, grantId: string) {
    return fx.post(await fx.rootTokenForm(agent, grantId), await fx.proof(agent));
  }

  /** The flights service asks the verifier whether `agent` may `action` with `token`. */
  async function verifyAtService(agent: Agent, token: string, action: string): Promise<{ allow: boolean; error?: string }> {
    const { verifier, service } = started();
    const url = 'https://flights.example/api/bookings';
    const dpop = await createDpopProof({ privateKey: agent.privateKey, publicJwk: agent.publicJwk, htm: 'GET', htu: url, accessToken: token, clock: fx.clock });
    const res = await verifier.app.inject({
      method: 'POST',
      url: '/v1/verify',
      headers: { authorization: `Basic ${Buffer.from(`${service.id}:${service.credential}`).toString('base64')}` },
      payload: { token, dpop, method: 'GET', url, action },
    });
    return res.json<{ allow: boolean; error?: string }>();
  }

  /**
   * The flights service asks the verifier whether `agent` may book for `amount` EUR with `token`
   * (a payment: above the grant's `approval_above`, the answer is `approval_required` with a step-up id).
   */
  /** `extra`: a query for the URL and request fields the service binds into a step-up (ADR 0014 amendment). */
  async function payAtService(agent: Agent, token: string, amount: number, extra: { query?: string; bind?: Record<string, string> } = {}): Promise<{ allow: boolean; error?: string; step_up_id?: string }> {
    const { verifier, service } = started();
    const url = `https://flights.example/api/bookings${extra.query === undefined ? '' : `?${extra.query}`}`;
    const dpop = await createDpopProof({ privateKey: agent.privateKey, publicJwk: agent.publicJwk, htm: 'POST', htu: url, accessToken: token, clock: fx.clock });
    const res = await verifier.app.inject({
      method: 'POST',
      url: '/v1/verify',
      headers: { authorization: `Basic ${Buffer.from(`${service.id}:${service.credential}`).toString('base64')}` },
      payload: { token, dpop, method: 'POST', url, action: 'book', amount, currency: 'EUR', ...(extra.bind && { bind: { fields: extra.bind } }) },
    });
    return res.json<{ allow: boolean; error?: string; step_up_id?: string }>();
  }

  /** The agent that made a payment reads its step-up, as the SDK's `waitForStepUp` does. */
  async function stepUpAsAgent(agent: Agent, stepUpId: string, wait = 0): Promise<{ step_up_id: string; status: string }> {
    const res = await started().app.inject({
      method: 'GET',
      url: `/step-ups/${stepUpId}?wait=${wait}`,
      headers: { authorization: `private_key_jwt ${await selfSigned(agent.clientId, agent.privateKey)}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ step_up_id: string; status: string }>();
  }

  /** From the inbox, follows "Review" on this request to its approval page. */
  async function openRequest(grantId: string, agentName: string): Promise<void> {
    const { page, uiUrl } = started();
    await page.goto(uiUrl);
    const request = page.getByRole('article', { name: `Request from ${agentName}` }).filter({ has: page.locator(`a[href="/grants/${grantId}"]`) });
    await request.getByRole('link', { name: 'Review' }).click();
    await page.waitForURL(`${uiUrl}/grants/${grantId}`);
  }

  return {
    /** The registry fixture: `verify`, `rootToken`, `delegate`, `selfSigned`, `post`, `proof`, `clock`... */
    fx,
    start,
    close,
    enrolThroughUi,
    requestGrant,
    uiGet,
    exchange,
    verifyAtService,
    payAtService,
    stepUpAsAgent,
    openRequest,
    get app(): NestFastifyApplication {
      return started().app;
    },
    get service(): { id: string; credential: string } {
      return started().service;
    },
    get verifier(): VerifierServer {
      return started().verifier;
    },
    /** `http://localhost:<port>`, the UI's origin. */
    get uiUrl(): string {
      return started().uiUrl;
    },
    get browser(): Browser {
      return started().browser;
    },
    /** The one page, with the virtual authenticator attached. */
    get page(): Page {
      return started().page;
    },
    /** The virtual authenticator's credentials. */
    get passkeys(): { credentials(): Promise<VirtualCredential[]> } {
      return started().passkeys;
    },
  };
}

export type UiStack = ReturnType<typeof createUiStack>;
