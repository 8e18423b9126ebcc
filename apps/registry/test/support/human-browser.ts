import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { expect } from 'vitest';
import { SoftPasskey } from './soft-passkey.js';
import type { Response } from './token-fixture.js';

/** The approval UI's origin and RP ID in the registry's default configuration. */
export const UI_ORIGIN = 'http://localhost:3000';
export const RP_ID = 'localhost';

/** A browser signed in to the approval UI: its cookie, CSRF token and passkey. */
export interface HumanBrowser {
  humanId: string;
  cookie: string;
  csrf: string;
  passkey: SoftPasskey;
}

/**
 * The human API as the approval UI's pages call it, on `app()`: every request with the UI's
 * `Origin` (POST), the session cookie and the CSRF token (POST), each overridable to build the
 * requests the registry must refuse.
 */
export function humanApi(app: () => NestFastifyApplication) {
  let signUps = 0;
  function call(who: HumanBrowser | null, method: 'GET' | 'POST', url: string, payload?: object, headers: Record<string, string | undefined> = {}): Promise<Response> {
    const all: Record<string, string | undefined> = {
      origin: method === 'GET' ? undefined : UI_ORIGIN,
      ...(who ? { cookie: `writ_session=${who.cookie}`, 'x-csrf-token': method === 'GET' ? undefined : who.csrf } : {}),
      ...headers,
    };
    const defined = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as Record<string, string>;
    return app().inject({ method, url, headers: defined, ...(payload ? { payload } : {}) });
  }

  /**
   * Signs up `name` with a new software passkey, through both steps of the ceremony, from a
   * browser address of its own (the UI's proxy forwards it): sign-ups are limited per address
   * (ADR 0020), and each test person is another browser.
   */
  async function signUp(name: string): Promise<HumanBrowser> {
    signUps += 1;
    const from = { 'x-forwarded-for': `198.18.${Math.floor(signUps / 250) % 250}.${(signUps % 250) + 1}` };
    const begin = await call(null, 'POST', '/auth/register/options', { name }, from);
    expect(begin.statusCode).toBe(200);
    const { ceremony, options } = begin.json<{ ceremony: string; options: Parameters<SoftPasskey['register']>[0] }>();
    const passkey = new SoftPasskey(UI_ORIGIN, RP_ID);
    const res = await call(null, 'POST', '/auth/register/verify', { ceremony, response: passkey.register(options) }, from);
    expect(res.statusCode).toBe(200);
    const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('writ_session='));
    expect(cookie, 'a session cookie').toBeDefined();
    const body = res.json<{ human: { id: string }; csrf_token: string }>();
    return { humanId: body.human.id, cookie: cookie!.split(';')[0]!.slice('writ_session='.length), csrf: body.csrf_token, passkey };
  }

  return { call, signUp };
}
