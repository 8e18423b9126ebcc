import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import { addVirtualPasskeyAuthenticator, type VirtualCredential } from './support/browser.js';
import { createUiStack, DESKTOP_VIEWPORT, storage } from './support/stack.js';

/** One step of the thief's script: what the registry answered, through the UI's `/api` proxy. */
interface Answer {
  status: number;
  body: Record<string, unknown> | null;
}

/** What the thief's page did with only the stolen cookie. */
interface TheftOutcome {
  addOptions: Answer;
  addVerify: Answer | null;
  enrollment: Answer;
  decisionOptions: Answer;
  decision: Answer;
}

/**
 * Issue 17, finding 1 (ADR 0018), end to end in Chromium: a thief who copies the person's session
 * cookie into their own browser (with their own passkey authenticator) tries to add their passkey
 * to the account, to mint an enrollment token, and to approve a waiting grant with their passkey.
 * Every step is refused, and the person's "sign out everywhere" ends the stolen session.
 */
describe(`the session-theft chain in Chromium (registry on ${storage.name})`, () => {
  const stack = createUiStack({ dataDirPrefix: 'writ-ui-theft-' });
  let uiUrl: string;
  let page: Page;
  let thiefContext: BrowserContext;
  let thiefPage: Page;
  let thiefPasskeys: { credentials(): Promise<VirtualCredential[]> };
  let humanId: string;
  let agent: Agent;

  beforeAll(async () => {
    await stack.start();
    ({ uiUrl, page } = stack);
  });

  afterAll(async () => {
    await thiefContext?.close();
    await stack.close();
  });

  it('signs Alice up with her passkey; the thief copies her session cookie into a browser with their own passkey authenticator', async () => {
    await page.goto(`${uiUrl}/signup`);
    await page.getByLabel('Your name').fill('Alice');
    await page.getByRole('button', { name: 'Create account with a passkey' }).click();
    await expect.poll(() => page.getByRole('heading', { name: 'Requests waiting for you' }).isVisible(), { timeout: 15_000 }).toBe(true);
    humanId = (await stack.uiGet<{ human: { id: string } }>('/auth/session')).human.id;
    // Alice confirms with her passkey to mint the token (the UI asks her authenticator).
    agent = await stack.enrolThroughUi('trip planner', humanId);

    // The thief: another browser, their own passkey authenticator, and only Alice's cookie.
    thiefContext = await stack.browser.newContext({ viewport: { ...DESKTOP_VIEWPORT } });
    thiefPage = await thiefContext.newPage();
    thiefPasskeys = await addVirtualPasskeyAuthenticator(thiefPage);
    const stolen = (await page.context().cookies(uiUrl)).filter((cookie) => cookie.name === 'writ_session');
    expect(stolen).toHaveLength(1);
    await thiefContext.addCookies(stolen);
  });

  it('refuses to add the thief’s passkey, to mint an enrollment token, and to approve with the thief’s passkey', async () => {
    const grantId = await stack.requestGrant(agent);
    await thiefPage.goto(`${uiUrl}/account`);
    // The stolen cookie is a live session: the thief sees Alice's account.
    await expect.poll(() => thiefPage.getByText('Signed in as Alice.').isVisible(), { timeout: 10_000 }).toBe(true);

    // The thief's script, run in their page on the UI's origin, as any script of theirs could.
    const outcome = await thiefPage.evaluate(async (grant: string): Promise<TheftOutcome> => {
      const fromB64u = (text: string): ArrayBuffer => {
        const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
        return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
      };
      const toB64u = (buffer: ArrayBuffer): string =>
        btoa(String.fromCharCode(...new Uint8Array(buffer)))
          .replace(/\+/g, '-')
          .replace(/\//g, '_')
          .replace(/=+$/, '');
      const session = (await (await fetch('/api/auth/session')).json()) as { csrf_token: string };
      const post = async (path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> | null }> => {
        const res = await fetch(`/api${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token }, body: JSON.stringify(body) });
        const text = await res.text();
        return { status: res.status, body: text === '' ? null : (JSON.parse(text) as Record<string, unknown>) };
      };
      /** A passkey made by the thief's authenticator for this site, registered or not. */
      const createPasskey = async (options: { challenge: string; user: { id: string; name: string } }): Promise<PublicKeyCredential> =>
        (await navigator.credentials.create({
          publicKey: {
            challenge: fromB64u(options.challenge),
            rp: { id: location.hostname, name: 'Writ' },
            user: { id: fromB64u(options.user.id), name: options.user.name, displayName: options.user.name },
            pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
            authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
          },
        })) as PublicKeyCredential;

      // 1. Add a passkey with only the cookie.
      const addOptions = await post('/me/passkeys/options', {});
      let addVerify: { status: number; body: Record<string, unknown> | null } | null = null;
      if (addOptions.status === 200) {
        const { ceremony, options } = addOptions.body as { ceremony: string; options: { challenge: string; user: { id: string; name: string } } };
        const credential = await createPasskey(options);
        const attestation = credential.response as AuthenticatorAttestationResponse;
        addVerify = await post('/me/passkeys/verify', {
          ceremony,
          label: 'thief',
          response: {
            id: credential.id,
            rawId: toB64u(credential.rawId),
            type: 'public-key',
            response: { clientDataJSON: toB64u(attestation.clientDataJSON), attestationObject: toB64u(attestation.attestationObject), transports: ['internal'] },
            clientExtensionResults: {},
          },
        });
      } else {
        // Refused: the thief's authenticator still makes a passkey for this site, to sign with below.
        await createPasskey({ challenge: toB64u(crypto.getRandomValues(new Uint8Array(32)).buffer), user: { id: toB64u(crypto.getRandomValues(new Uint8Array(32)).buffer), name: 'Alice' } });
      }

      // 2. Mint an enrollment token for an agent of the thief's.
      const enrollment = await post('/me/agents/enrollment-tokens', {});

      // 3. Approve the waiting grant with the thief's passkey (whatever credentials the server listed).
      const decisionOptions = await post(`/me/grants/${grant}/decision/options`, { decision: 'approve' });
      const { ceremony, document, options } = decisionOptions.body as { ceremony: string; document: string; options: { challenge: string } };
      const assertion = (await navigator.credentials.get({
        publicKey: { challenge: fromB64u(options.challenge), rpId: location.hostname, userVerification: 'required' },
      })) as PublicKeyCredential;
      const signed = assertion.response as AuthenticatorAssertionResponse;
      const decision = await post(`/me/grants/${grant}/decision`, {
        ceremony,
        document,
        response: {
          id: assertion.id,
          rawId: toB64u(assertion.rawId),
          type: 'public-key',
          response: {
            clientDataJSON: toB64u(signed.clientDataJSON),
            authenticatorData: toB64u(signed.authenticatorData),
            signature: toB64u(signed.signature),
            userHandle: signed.userHandle === null ? null : toB64u(signed.userHandle),
          },
          clientExtensionResults: {},
        },
      });
      return { addOptions, addVerify, enrollment, decisionOptions, decision };
    }, grantId);

    const needed = (what: string) => ({
      error: 'confirmation_required',
      error_description: `a fresh passkey confirmation is needed to ${what}: confirm with one of your passkeys (POST /me/confirmation/options) and send it as confirmation`,
    });
    expect(outcome.addOptions).toEqual({ status: 403, body: needed('add a passkey') });
    expect(outcome.addVerify).toBeNull();
    expect(outcome.enrollment).toEqual({ status: 403, body: needed('create an enrollment token') });
    expect(outcome.decisionOptions.status).toBe(200);
    expect(outcome.decision).toEqual({ status: 403, body: { error: 'passkey_unknown', error_description: 'passkey is not registered to this account' } });
    // The thief's authenticator did sign: the refusal is the registry's, not a missing credential.
    expect(await thiefPasskeys.credentials()).toHaveLength(1);

    // Alice's account is as she left it: one passkey, the grant still waiting.
    const { passkeys } = await stack.uiGet<{ passkeys: { id: string }[] }>('/me/passkeys');
    expect(passkeys).toHaveLength(1);
    expect(await stack.passkeys.credentials()).toHaveLength(1);
    expect((await stack.uiGet<{ status: string }>(`/me/grants/${grantId}`)).status).toBe('pending');
  });

  it('ends the stolen session when the person signs out everywhere', async () => {
    await page.goto(`${uiUrl}/account`);
    await page.getByRole('button', { name: 'Sign out everywhere' }).click();
    await page.waitForURL(`${uiUrl}/signin`);
    const thiefSession = await thiefPage.request.get(`${uiUrl}/api/auth/session`);
    expect(thiefSession.status()).toBe(401);
    expect(await thiefSession.json()).toEqual({ error: 'login_required', error_description: 'sign in with your passkey first' });
  });
});
