import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';

/** The Chromium the tests drive: `CHROMIUM_PATH`, else Debian's package. Never downloaded. */
export const CHROMIUM_PATH = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => path !== undefined && path !== '' && existsSync(path));

/** Headless Chromium that talks to nothing but the loopback servers of the test. */
export function launchChromium(): Promise<Browser> {
  if (CHROMIUM_PATH === undefined) throw new Error('no Chromium found: apt-get install -y chromium, or set CHROMIUM_PATH');
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

/** A credential as the DevTools virtual authenticator reports it. */
export interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  signCount: number;
}

/**
 * A platform authenticator with user verification (a passkey on this device), attached to the
 * page through the DevTools protocol's WebAuthn domain: every `navigator.credentials` call of the
 * page is answered by it, with the human's presence and verification simulated.
 */
export async function addVirtualPasskeyAuthenticator(page: Page): Promise<{ credentials(): Promise<VirtualCredential[]> }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
  };
}
