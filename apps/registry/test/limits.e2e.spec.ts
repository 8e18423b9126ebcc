import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { CLIENT_ASSERTION_TYP, type Clock } from '@writ/core';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { addressKey } from '../src/http/rate-limit.js';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { ServicesService } from '../src/modules/services/services.service.js';
import { createRegistry } from '../src/registry.js';
import { createPgliteDatabase } from './support/databases.js';
import { type HumanBrowser, humanApi, RP_ID, UI_ORIGIN } from './support/human-browser.js';
import { SoftPasskey } from './support/soft-passkey.js';

const ISSUER = 'https://registry.writ.test';

/** A clock the test moves by hand: a window ends only when the test says so. */
class HandClock implements Clock {
  private at = Date.parse('2030-01-01T00:00:00Z');
  now(): number {
    return this.at;
  }
  advance(ms: number): void {
    this.at += ms;
  }
}

// Issue 17, finding 7: 600 ceremony starts in a row all succeeded, sign-up was open, one session
// held 400 event streams and one agent 300 long-polls. Small limits here keep every test bounded.
describe('limits on the human side and on long-polls (ADR 0020)', () => {
  let app: NestFastifyApplication;
  let dataDir: string;
  let base: string;
  let human: HumanBrowser;
  const clock = new HandClock();
  const api = humanApi(() => app);

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'writ-limits-'));
    const config = loadConfig({
      WRIT_DATA_DIR: dataDir,
      WRIT_ISSUER: ISSUER,
      WRIT_LIMIT_CEREMONIES_PER_IP: '3',
      WRIT_LIMIT_SIGNUPS_PER_IP: '2',
      WRIT_LIMIT_CEREMONIES_PER_ACCOUNT: '3',
      WRIT_MAX_EVENT_STREAMS_PER_SESSION: '2',
      WRIT_MAX_LONG_POLLS_PER_AGENT: '2',
    });
    ({ app } = await createRegistry(config, { logger: false, clock, database: (await createPgliteDatabase()).target }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    await app.get(ServicesService).register({ uri: 'https://flights.example', display_name: 'Flights', catalogue: [{ type: 'flight_booking', actions: ['read'] }] });
    human = await api.signUp('Ada');
  });

  afterAll(async () => {
    app.getHttpServer().closeAllConnections();
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  function loginOptions(from: string) {
    return api.call(null, 'POST', '/auth/login/options', undefined, { 'x-forwarded-for': from });
  }

  function expectLimited(res: { statusCode: number; headers: Record<string, unknown>; json: () => unknown }, description: string, retryAfter: string) {
    expect({ status: res.statusCode, retryAfter: res.headers['retry-after'], cacheControl: res.headers['cache-control'], body: res.json() }).toEqual({
      status: 429,
      retryAfter,
      cacheControl: 'no-store',
      body: { error: 'rate_limited', error_description: description },
    });
  }

  it('refuses ceremony starts from one address past the limit with 429 and Retry-After, until the window ends', async () => {
    for (let i = 0; i < 3; i += 1) expect((await loginOptions('203.0.113.1')).statusCode).toBe(200);
    expectLimited(await loginOptions('203.0.113.1'), 'too many passkey ceremonies from this address: try again later', '60');
    const register = await api.call(null, 'POST', '/auth/register/options', { name: 'Mallory' }, { 'x-forwarded-for': '203.0.113.1' });
    expectLimited(register, 'too many passkey ceremonies from this address: try again later', '60');
    // Another address has its own count.
    expect((await loginOptions('203.0.113.2')).statusCode).toBe(200);
    clock.advance(45_000);
    expectLimited(await loginOptions('203.0.113.1'), 'too many passkey ceremonies from this address: try again later', '15');
    clock.advance(15_000);
    expect((await loginOptions('203.0.113.1')).statusCode).toBe(200);
  });

  it('believes only the last X-Forwarded-For hop, so an address the browser writes itself buys nothing', async () => {
    for (let i = 0; i < 3; i += 1) expect((await loginOptions(`198.51.100.${i}, 203.0.113.9`)).statusCode).toBe(200);
    expectLimited(await loginOptions('198.51.100.99, 203.0.113.9'), 'too many passkey ceremonies from this address: try again later', '60');
  });

  it('counts an IPv6 client by its /64', async () => {
    expect(addressKey('2001:db8:1:2:a::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    for (let i = 1; i <= 3; i += 1) expect((await loginOptions(`2001:db8:5:6::${i}`)).statusCode).toBe(200);
    expectLimited(await loginOptions('2001:db8:5:6:ffff::4'), 'too many passkey ceremonies from this address: try again later', '60');
  });

  it('refuses sign-ups (new accounts) from one address past the limit with 429 and Retry-After', async () => {
    const from = { 'x-forwarded-for': '203.0.113.20' };
    async function signUp(name: string) {
      const begin = await api.call(null, 'POST', '/auth/register/options', { name }, from);
      expect(begin.statusCode).toBe(200);
      const { ceremony, options } = begin.json<{ ceremony: string; options: Parameters<SoftPasskey['register']>[0] }>();
      return api.call(null, 'POST', '/auth/register/verify', { ceremony, response: new SoftPasskey(UI_ORIGIN, RP_ID).register(options) }, from);
    }
    expect((await signUp('One')).statusCode).toBe(200);
    expect((await signUp('Two')).statusCode).toBe(200);
    expectLimited(await signUp('Three'), 'too many sign-ups from this address: try again later', '3600');
  });

  it('refuses ceremony starts by one account past the limit, from whatever address', async () => {
    const decisionOptions = (from: string) => api.call(human, 'POST', '/me/grants/grt_missing/decision/options', {}, { 'x-forwarded-for': from });
    expect((await decisionOptions('203.0.113.30')).statusCode).toBe(400);
    expect((await decisionOptions('203.0.113.31')).statusCode).toBe(400);
    expect((await api.call(human, 'POST', '/me/confirmation/options', {}, { 'x-forwarded-for': '203.0.113.32' })).statusCode).not.toBe(429);
    expectLimited(await decisionOptions('203.0.113.33'), 'too many passkey ceremonies for this account: try again later', '60');
    expectLimited(await api.call(human, 'POST', '/me/passkeys/options', {}, { 'x-forwarded-for': '203.0.113.34' }), 'too many passkey ceremonies for this account: try again later', '60');
  });

  /** Opens `GET /me/events` for real (it never ends): the answer's head, and a way to hang up. */
  function openEvents(who: HumanBrowser): Promise<{ response: IncomingMessage; hangUp: () => void }> {
    return new Promise((resolve, reject) => {
      const request = get(`${base}/me/events`, { headers: { cookie: `writ_session=${who.cookie}` } }, (response) => resolve({ response, hangUp: () => request.destroy() }));
      request.on('error', reject);
    });
  }

  function bodyOf(response: IncomingMessage): Promise<unknown> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
    });
  }

  it('caps the live-event streams one session holds open, and frees a place when one closes', async () => {
    const first = await openEvents(human);
    const second = await openEvents(human);
    expect([first.response.statusCode, second.response.statusCode]).toEqual([200, 200]);
    const third = await openEvents(human);
    expect({ status: third.response.statusCode, retryAfter: third.response.headers['retry-after'], body: await bodyOf(third.response) }).toEqual({
      status: 429,
      retryAfter: '5',
      body: { error: 'rate_limited', error_description: 'this session has too many live-event streams open: close one first' },
    });
    const closed = new Promise((resolve) => first.response.once('close', resolve));
    first.hangUp();
    await closed;
    // The server sees the hang-up on its own time: retry until the place is free (bounded).
    let again = await openEvents(human);
    for (let tries = 0; again.response.statusCode === 429 && tries < 50; tries += 1) {
      await bodyOf(again.response);
      await new Promise((resolve) => setTimeout(resolve, 20));
      again = await openEvents(human);
    }
    expect(again.response.statusCode).toBe(200);
    second.hangUp();
    again.hangUp();
  });

  it('caps the long-polls one agent holds open, and frees a place when one ends', { timeout: 120_000 }, async () => {
    const agents = app.get(AgentsService);
    const { token } = await agents.mintInitialAccessToken(human.humanId);
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const { client_id: clientId } = await agents.register(token, { client_name: 'Poller', jwks: { keys: [await exportJWK(publicKey)] } });
    const auth = async () => ({
      authorization: `private_key_jwt ${await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', typ: CLIENT_ASSERTION_TYP })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(ISSUER)
        .setIssuedAt(Math.floor(clock.now() / 1000))
        .setExpirationTime(Math.floor(clock.now() / 1000) + 60)
        .setJti(randomUUID())
        .sign(privateKey)}`,
    });
    const created = await fetch(`${base}/grants`, {
      method: 'POST',
      headers: { ...(await auth()), 'content-type': 'application/json' },
      body: JSON.stringify({ service: 'https://flights.example', authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }], envelope: { max_uses: 10 }, purpose: 'Check my bookings', duration_s: 600 }),
    });
    expect(created.status).toBe(201);
    const { grant_id: grantId } = (await created.json()) as { grant_id: string };
    const poll = async (wait: number, signal?: AbortSignal) => fetch(`${base}/grants/${grantId}?wait=${wait}`, { headers: await auth(), ...(signal ? { signal } : {}) });
    const holders = [new AbortController(), new AbortController()];
    // A holder that met the probe below in its place (the probe holds one for its second) tries
    // again a moment later, until the test lets it go; aborting ends it.
    const hold = async (signal: AbortSignal) => {
      while (!signal.aborted) {
        if ((await poll(60, signal)).status !== 429) return;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const held = holders.map((holder) => hold(holder.signal).catch(() => undefined));
    // The two holders arrive on their own time: a one-second poll answers 200 until both hold (bounded).
    let third = await poll(1);
    for (let tries = 0; third.status !== 429 && tries < 50; tries += 1) third = await poll(1);
    expect({ status: third.status, retryAfter: third.headers.get('retry-after'), body: await third.json() }).toEqual({
      status: 429,
      retryAfter: '5',
      body: { error: 'rate_limited', error_description: 'this agent has too many long-polls open: wait for one to answer first' },
    });
    // Reading at once (no wait) holds nothing and is never refused.
    expect((await poll(0)).status).toBe(200);
    holders[0]!.abort();
    let freed = await poll(1);
    for (let tries = 0; freed.status === 429 && tries < 50; tries += 1) freed = await poll(1);
    expect(freed.status).toBe(200);
    holders[1]!.abort();
    await Promise.all(held);
  });
});
