import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { type ApprovalReceipt, verifyApprovalReceipt } from '@writ/core';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../src/infra/database.service.js';
import { e2eStorage } from './support/databases.js';
import { SoftPasskey } from './support/soft-passkey.js';
import { type Agent, createTokenFixture, grantRequest, type Response } from './support/token-fixture.js';

const UI = 'http://localhost:3000';
const RP_ID = 'localhost';
const FIVE_MINUTES_MS = 5 * 60_000;

/** A browser signed in to the approval UI: its cookie, CSRF token and the passkey it holds. */
interface Browser {
  humanId: string;
  cookie: string;
  csrf: string;
  passkey: SoftPasskey;
}

type Options<K extends 'assert' | 'register'> = Parameters<SoftPasskey[K]>[0];

interface PasskeyJson {
  id: string;
  label: string;
  created_at: string;
  last_used_at: string | null;
  backed_up: boolean;
  public_key: JWK;
}

const CONFIRMATION_NEEDED = (what: string) =>
  `a fresh passkey confirmation is needed to ${what}: confirm with one of your passkeys (POST /me/confirmation/options) and send it as confirmation`;

/**
 * Issue 17, finding 1 (ADR 0018): a stolen session cookie must not become a permanent takeover.
 * Adding a passkey, minting an enrollment token, renaming and removing a passkey need a fresh,
 * user-verified assertion from one of the person's current passkeys; sign-out ends every session;
 * receipts name their passkey; the next visit announces a new passkey.
 */
describe.each([e2eStorage])('passkey management over HTTP on $name', (storage) => {
  // Every person here signs up from the same address: more than the default sign-ups per address (ADR 0020).
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-passkeys-', owners: [], env: { WRIT_LIMIT_SIGNUPS_PER_IP: '1000' } });
  const { selfSigned, expectError } = fx;
  let app: NestFastifyApplication;

  function call(who: Browser | null, method: 'GET' | 'POST', url: string, payload?: object): Promise<Response> {
    const headers: Record<string, string> = {};
    if (method !== 'GET') headers.origin = UI;
    if (who) {
      headers.cookie = `writ_session=${who.cookie}`;
      if (method !== 'GET') headers['x-csrf-token'] = who.csrf;
    }
    return app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
  }

  function sessionOf(res: Response, passkey: SoftPasskey): Browser {
    expect(res.statusCode, res.body).toBe(200);
    const header = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('writ_session='));
    expect(header, 'a session cookie').toBeDefined();
    const body = res.json<{ human: { id: string }; csrf_token: string }>();
    return { humanId: body.human.id, cookie: header!.split(';')[0]!.slice('writ_session='.length), csrf: body.csrf_token, passkey };
  }

  async function signUp(name: string): Promise<Browser> {
    const begin = await call(null, 'POST', '/auth/register/options', { name });
    const { ceremony, options } = begin.json<{ ceremony: string; options: Options<'register'> }>();
    const passkey = new SoftPasskey(UI, RP_ID);
    return sessionOf(await call(null, 'POST', '/auth/register/verify', { ceremony, response: passkey.register(options), label: 'laptop' }), passkey);
  }

  /** A new session of the passkey's owner (another browser, or the same one later). */
  async function signIn(passkey: SoftPasskey): Promise<Browser> {
    const begin = await call(null, 'POST', '/auth/login/options', {});
    const { ceremony, options } = begin.json<{ ceremony: string; options: Options<'assert'> }>();
    return sessionOf(await call(null, 'POST', '/auth/login/verify', { ceremony, response: passkey.assert(options) }), passkey);
  }

  /** Confirmation options for `purpose` in `who`'s session. */
  async function confirmationOptions(who: Browser, purpose: string): Promise<{ ceremony: string; options: Options<'assert'> }> {
    const res = await call(who, 'POST', '/me/confirmation/options', { purpose });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  }

  /** A fresh confirmation for `purpose`, signed with `passkey` (by default the browser's own). */
  async function confirmation(who: Browser, purpose: string, passkey: SoftPasskey = who.passkey): Promise<{ ceremony: string; response: unknown }> {
    const { ceremony, options } = await confirmationOptions(who, purpose);
    // A passkey the server did not list signs anyway, as a thief's authenticator would.
    return { ceremony, response: passkey.assert({ ...options, allowCredentials: [] }) };
  }

  /** Both steps of adding `passkey` to `who`'s account, with a confirmation by `who`'s passkey. */
  async function addPasskey(who: Browser, passkey: SoftPasskey, label: string): Promise<PasskeyJson> {
    const begin = await call(who, 'POST', '/me/passkeys/options', { confirmation: await confirmation(who, 'add_passkey') });
    expect(begin.statusCode, begin.body).toBe(200);
    const { ceremony, options } = begin.json<{ ceremony: string; options: Options<'register'> }>();
    const added = await call(who, 'POST', '/me/passkeys/verify', { ceremony, response: passkey.register(options), label });
    expect(added.statusCode, added.body).toBe(200);
    return added.json();
  }

  async function passkeysOf(who: Browser): Promise<PasskeyJson[]> {
    return (await call(who, 'GET', '/me/passkeys')).json<{ passkeys: PasskeyJson[] }>().passkeys;
  }

  async function enrolAgent(who: Browser, name: string): Promise<Agent> {
    const minted = await call(who, 'POST', '/me/agents/enrollment-tokens', { confirmation: await confirmation(who, 'enrollment_token') });
    expect(minted.statusCode, minted.body).toBe(201);
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const registered = await app.inject({
      method: 'POST',
      url: '/oauth/register',
      headers: { authorization: `Bearer ${minted.json<{ token: string }>().token}` },
      payload: { client_name: name, jwks: { keys: [publicJwk] } },
    });
    expect(registered.statusCode).toBe(201);
    return { clientId: registered.json<{ client_id: string }>().client_id, owner: who.humanId, privateKey, publicJwk };
  }

  async function requestGrant(by: Agent): Promise<string> {
    const res = await app.inject({ method: 'POST', url: '/grants', headers: { authorization: `private_key_jwt ${await selfSigned(by.clientId, by.privateKey)}` }, payload: grantRequest });
    expect(res.statusCode).toBe(201);
    return res.json<{ grant_id: string }>().grant_id;
  }

  /** Both steps of a decision signed with `passkey`, whichever credentials the server listed. */
  async function decide(who: Browser, grantId: string, passkey: SoftPasskey, decision: 'approve' | 'deny' = 'approve'): Promise<Response> {
    const begin = await call(who, 'POST', `/me/grants/${grantId}/decision/options`, { decision });
    expect(begin.statusCode, begin.body).toBe(200);
    const { ceremony, document, options } = begin.json<{ ceremony: string; document: string; options: Options<'assert'> }>();
    return call(who, 'POST', `/me/grants/${grantId}/decision`, { ceremony, document, response: passkey.assert({ ...options, allowCredentials: [] }) });
  }

  async function auditOf(humanId: string, type: string): Promise<Record<string, unknown>[]> {
    const rows = await app.get(Database).query<{ data: Record<string, unknown> }[]>('SELECT data FROM audit_events WHERE subject = $1 AND type = $2 ORDER BY seq', [humanId, type]);
    return rows.map((r) => r.data);
  }

  beforeAll(async () => {
    ({ app } = await fx.start());
  });

  afterAll(() => fx.close());

  describe('a stolen session cookie', () => {
    it('cannot add a passkey, and the thief’s passkey then approves nothing: the whole theft chain is refused', async () => {
      const alice = await signUp('Alice');
      const agent = await enrolAgent(alice, 'trip planner');
      const grantId = await requestGrant(agent);
      // The thief has Alice's cookie and CSRF token (same session), and a passkey of their own.
      const thief: Browser = { ...alice, passkey: new SoftPasskey(UI, RP_ID) };
      // 1. The cookie alone does not start the add-passkey ceremony.
      expectError(await call(thief, 'POST', '/me/passkeys/options', {}), 403, 'confirmation_required', CONFIRMATION_NEEDED('add a passkey'));
      // 2. Nor does a "confirmation" signed by the thief's own passkey.
      expectError(
        await call(thief, 'POST', '/me/passkeys/options', { confirmation: await confirmation(thief, 'add_passkey') }),
        403,
        'passkey_unknown',
        'passkey is not registered to this account',
      );
      // 3. So the thief's passkey signs no decision, and the grant stays pending.
      expectError(await decide(thief, grantId, thief.passkey), 403, 'passkey_unknown', 'passkey is not registered to this account');
      expect((await call(alice, 'GET', `/me/grants/${grantId}`)).json<{ status: string }>().status).toBe('pending');
      expect((await passkeysOf(alice)).map((p) => p.id)).toEqual([alice.passkey.id]);
    });

    it('cannot mint an enrollment token for an agent of the thief’s', async () => {
      const alice = await signUp('Alice');
      expectError(await call(alice, 'POST', '/me/agents/enrollment-tokens', {}), 403, 'confirmation_required', CONFIRMATION_NEEDED('create an enrollment token'));
      expectError(await call(alice, 'POST', '/me/agents/enrollment-tokens', { ttl_s: 600 }), 403, 'confirmation_required', CONFIRMATION_NEEDED('create an enrollment token'));
      const stranger = new SoftPasskey(UI, RP_ID);
      expectError(
        await call(alice, 'POST', '/me/agents/enrollment-tokens', { confirmation: await confirmation(alice, 'enrollment_token', stranger) }),
        403,
        'passkey_unknown',
        'passkey is not registered to this account',
      );
    });
  });

  describe('the fresh passkey confirmation', () => {
    let alice: Browser;
    beforeAll(async () => {
      alice = await signUp('Alice');
    });

    it('lists only the person’s current passkeys and requires user verification', async () => {
      const { options } = await confirmationOptions(alice, 'add_passkey');
      expect(options).toMatchObject({ rpId: RP_ID, userVerification: 'required', allowCredentials: [expect.objectContaining({ id: alice.passkey.id })] });
      expect(options.allowCredentials).toHaveLength(1);
    });

    it('without user verification is refused', async () => {
      const { ceremony, options } = await confirmationOptions(alice, 'add_passkey');
      const res = await call(alice, 'POST', '/me/passkeys/options', { confirmation: { ceremony, response: alice.passkey.assert(options, { userVerified: false }) } });
      expectError(res, 403, 'passkey_refused', 'passkey assertion refused: User verification required, but user could not be verified');
    });

    it('is used once', async () => {
      const used = await confirmation(alice, 'enrollment_token');
      expect((await call(alice, 'POST', '/me/agents/enrollment-tokens', { confirmation: used })).statusCode).toBe(201);
      expectError(
        await call(alice, 'POST', '/me/agents/enrollment-tokens', { confirmation: used }),
        403,
        'confirmation_unknown',
        'passkey confirmation is unknown or already used: confirm with your passkey again',
      );
    });

    it('is spent even when its assertion fails, so a challenge is never answered twice', async () => {
      const { ceremony, options } = await confirmationOptions(alice, 'enrollment_token');
      const bad = await call(alice, 'POST', '/me/agents/enrollment-tokens', { confirmation: { ceremony, response: alice.passkey.assert(options, { userVerified: false }) } });
      expect(bad.statusCode).toBe(403);
      expectError(
        await call(alice, 'POST', '/me/agents/enrollment-tokens', { confirmation: { ceremony, response: alice.passkey.assert(options) } }),
        403,
        'confirmation_unknown',
        'passkey confirmation is unknown or already used: confirm with your passkey again',
      );
    });

    it('expires five minutes after it was asked for', async () => {
      const late = await confirmation(alice, 'enrollment_token');
      fx.setClockOffset(FIVE_MINUTES_MS + 1000);
      try {
        expectError(await call(alice, 'POST', '/me/agents/enrollment-tokens', { confirmation: late }), 403, 'confirmation_expired', 'passkey confirmation has expired: confirm with your passkey again');
      } finally {
        fx.setClockOffset(0);
      }
    });

    it('allows only the action it was made for', async () => {
      expectError(
        await call(alice, 'POST', '/me/passkeys/options', { confirmation: await confirmation(alice, 'enrollment_token') }),
        403,
        'confirmation_other_purpose',
        'passkey confirmation was made to create an enrollment token, not to add a passkey',
      );
    });

    it('counts only in the session that asked for it', async () => {
      const other = await signIn(alice.passkey);
      expectError(
        await call(other, 'POST', '/me/agents/enrollment-tokens', { confirmation: await confirmation(alice, 'enrollment_token') }),
        403,
        'confirmation_other_session',
        'passkey confirmation was made in another session: confirm with your passkey again',
      );
    });

    it('is another person’s ceremony as if unknown', async () => {
      const bob = await signUp('Bob');
      expectError(
        await call(alice, 'POST', '/me/agents/enrollment-tokens', { confirmation: await confirmation(bob, 'enrollment_token') }),
        403,
        'confirmation_unknown',
        'passkey confirmation is unknown or already used: confirm with your passkey again',
      );
    });

    it('names a known purpose', async () => {
      expectError(
        await call(alice, 'POST', '/me/confirmation/options', { purpose: 'sign_in' }),
        400,
        'invalid_request',
        'purpose: Invalid option: expected one of "add_passkey"|"enrollment_token"|"rename_passkey"|"remove_passkey"',
      );
    });
  });

  describe('passkeys', () => {
    it('are added with a confirmation, listed with when they were added and last used, and the add is audited', async () => {
      const alice = await signUp('Alice');
      const phone = new SoftPasskey(UI, RP_ID);
      const added = await addPasskey(alice, phone, 'phone');
      expect(added).toMatchObject({ id: phone.id, label: 'phone', last_used_at: null });
      const listed = await passkeysOf(alice);
      expect(listed.map((p) => [p.id, p.label])).toEqual([
        [alice.passkey.id, 'laptop'],
        [phone.id, 'phone'],
      ]);
      // The laptop signed the confirmation just now.
      expect(listed[0]!.last_used_at).not.toBeNull();
      expect(Date.parse(listed[1]!.created_at)).toBeGreaterThanOrEqual(Date.parse(listed[0]!.created_at));
      expect(await auditOf(alice.humanId, 'human.passkey_added')).toEqual([{ passkey: phone.id.slice(0, 16), label: 'phone', confirmed_with: alice.passkey.id.slice(0, 16) }]);
    });

    it('finish adding only in the session that started', async () => {
      const alice = await signUp('Alice');
      const begin = await call(alice, 'POST', '/me/passkeys/options', { confirmation: await confirmation(alice, 'add_passkey') });
      const { ceremony, options } = begin.json<{ ceremony: string; options: Options<'register'> }>();
      const other = await signIn(alice.passkey);
      const res = await call(other, 'POST', '/me/passkeys/verify', { ceremony, response: new SoftPasskey(UI, RP_ID).register(options) });
      expectError(res, 403, 'ceremony_other_session', 'ceremony was started in another session: start again');
    });

    it('are renamed with a confirmation, never with the cookie alone', async () => {
      const alice = await signUp('Alice');
      const url = `/me/passkeys/${alice.passkey.id}/rename`;
      expectError(await call(alice, 'POST', url, { label: 'stolen' }), 403, 'confirmation_required', CONFIRMATION_NEEDED('rename a passkey'));
      const renamed = await call(alice, 'POST', url, { label: 'work laptop', confirmation: await confirmation(alice, 'rename_passkey') });
      expect(renamed.statusCode, renamed.body).toBe(200);
      expect(renamed.json()).toMatchObject({ id: alice.passkey.id, label: 'work laptop' });
      expect((await passkeysOf(alice))[0]!.label).toBe('work laptop');
      expect(await auditOf(alice.humanId, 'human.passkey_renamed')).toEqual([
        { passkey: alice.passkey.id.slice(0, 16), from: 'laptop', to: 'work laptop', confirmed_with: alice.passkey.id.slice(0, 16) },
      ]);
      expectError(await call(alice, 'POST', url, { label: 'a\u202eb', confirmation: await confirmation(alice, 'rename_passkey') }), 400, 'invalid_request', 'label: contains a format character (U+202E)');
    });

    it('are removed with a confirmation, never the last one; a removed passkey signs nothing more but its receipts still verify and name it', async () => {
      const alice = await signUp('Alice');
      const agent = await enrolAgent(alice, 'trip planner');
      const phone = new SoftPasskey(UI, RP_ID);
      await addPasskey(alice, phone, 'phone');
      const signedByPhone = await requestGrant(agent);
      expect((await decide(alice, signedByPhone, phone)).statusCode).toBe(200);

      const url = `/me/passkeys/${phone.id}/remove`;
      expectError(await call(alice, 'POST', url, {}), 403, 'confirmation_required', CONFIRMATION_NEEDED('remove a passkey'));
      const removed = await call(alice, 'POST', url, { confirmation: await confirmation(alice, 'remove_passkey') });
      expect(removed.statusCode, removed.body).toBe(204);
      expect((await passkeysOf(alice)).map((p) => p.id)).toEqual([alice.passkey.id]);
      expect(await auditOf(alice.humanId, 'human.passkey_removed')).toEqual([{ passkey: phone.id.slice(0, 16), confirmed_with: alice.passkey.id.slice(0, 16) }]);

      // It can neither sign in nor decide...
      const begin = await call(null, 'POST', '/auth/login/options', {});
      const login = begin.json<{ ceremony: string; options: Options<'assert'> }>();
      expectError(await call(null, 'POST', '/auth/login/verify', { ceremony: login.ceremony, response: phone.assert(login.options) }), 403, 'passkey_removed', 'passkey was removed from this account');
      expectError(await decide(alice, await requestGrant(agent), phone), 403, 'passkey_removed', 'passkey was removed from this account');
      // ...but what it signed still verifies offline, and says which passkey signed it.
      const exported = (await call(alice, 'GET', `/me/grants/${signedByPhone}/receipt`)).json<{ receipt: ApprovalReceipt; public_key: JWK; passkey: { id: string; label: string; removed_at: string | null } }>();
      expect(exported.passkey).toEqual({ id: phone.id, label: 'phone', removed_at: expect.any(String) });
      expect(exported.receipt.credential_id).toBe(phone.id);
      await verifyApprovalReceipt(exported.receipt, { publicKey: exported.public_key, rpId: RP_ID, origins: [UI], grantId: signedByPhone });
      expect((await call(alice, 'GET', `/me/grants/${signedByPhone}`)).json()).toMatchObject({ signed_with: { credential_id: phone.id, label: 'phone', removed: true } });

      // The last passkey stays, and the confirmation was checked before saying so.
      expectError(
        await call(alice, 'POST', `/me/passkeys/${alice.passkey.id}/remove`, { confirmation: await confirmation(alice, 'remove_passkey') }),
        400,
        'last_passkey',
        'this is your only passkey: add another one before removing it',
      );
      // A removed, unknown or another person's passkey answers the same.
      expectError(await call(alice, 'POST', url, { confirmation: await confirmation(alice, 'remove_passkey') }), 404, 'not_found', 'passkey not found');
      const bob = await signUp('Bob');
      expectError(await call(alice, 'POST', `/me/passkeys/${bob.passkey.id}/remove`, {}), 404, 'not_found', 'passkey not found');
      expectError(await call(alice, 'POST', `/me/passkeys/${bob.passkey.id}/rename`, { label: 'x' }), 404, 'not_found', 'passkey not found');
    });
  });

  describe('receipts', () => {
    it('say which passkey signed each decision, by credential id and name', async () => {
      const alice = await signUp('Alice');
      const agent = await enrolAgent(alice, 'trip planner');
      const grantId = await requestGrant(agent);
      expect((await decide(alice, grantId, alice.passkey)).statusCode).toBe(200);
      const exported = (await call(alice, 'GET', `/me/grants/${grantId}/receipt`)).json<{ receipt: ApprovalReceipt; passkey: unknown }>();
      expect(exported.passkey).toEqual({ id: alice.passkey.id, label: 'laptop', removed_at: null });
      expect(exported.receipt.credential_id).toBe(alice.passkey.id);
      expect((await call(alice, 'GET', `/me/grants/${grantId}`)).json()).toMatchObject({ signed_with: { credential_id: alice.passkey.id, label: 'laptop', removed: false } });
    });
  });

  describe('sign out everywhere', () => {
    it('ends every session of the person, this one included, and no other person’s', async () => {
      const alice = await signUp('Alice');
      const elsewhere = await signIn(alice.passkey);
      const bob = await signUp('Bob');
      const res = await call(elsewhere, 'POST', '/auth/logout-everywhere', {});
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({ sessions_ended: 2 });
      expect(([] as string[]).concat(res.headers['set-cookie'] ?? []).some((c) => c.startsWith('writ_session=;'))).toBe(true);
      for (const session of [alice, elsewhere]) {
        expectError(await call(session, 'GET', '/me/grants'), 401, 'login_required', 'your session has ended: sign in with your passkey again');
      }
      expect((await call(bob, 'GET', '/me/grants')).statusCode).toBe(200);
      expect(await auditOf(alice.humanId, 'human.signed_out_everywhere')).toEqual([{ sessions: 2 }]);
    });

    it('needs the session’s CSRF token', async () => {
      const alice = await signUp('Alice');
      expectError(await call({ ...alice, csrf: 'forged' }, 'POST', '/auth/logout-everywhere', {}), 403, 'csrf_token_mismatch', 'CSRF token does not match this session');
    });
  });

  describe('the next visit after a passkey was added', () => {
    it('says so in every other session until the person acknowledges it', async () => {
      const alice = await signUp('Alice');
      // Nothing to announce after sign-up.
      expect((await call(alice, 'GET', '/me/passkeys/notice')).json()).toEqual({ added: [] });
      const elsewhere = await signIn(alice.passkey);
      const phone = new SoftPasskey(UI, RP_ID);
      await addPasskey(elsewhere, phone, 'phone');
      // The session that added it knows; the other one is told.
      expect((await call(elsewhere, 'GET', '/me/passkeys/notice')).json()).toEqual({ added: [] });
      const next = await signIn(alice.passkey);
      for (const session of [alice, next]) {
        expect((await call(session, 'GET', '/me/passkeys/notice')).json()).toEqual({ added: [expect.objectContaining({ id: phone.id, label: 'phone', created_at: expect.any(String) })] });
      }
      expect((await call(next, 'POST', '/me/passkeys/notice/dismiss', {})).statusCode).toBe(204);
      expect((await call(alice, 'GET', '/me/passkeys/notice')).json()).toEqual({ added: [] });
    });
  });
});

describe.each([e2eStorage])('the session cookie behind https on $name', (storage) => {
  const HTTPS_UI = 'https://approve.writ.test';
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-host-cookie-', owners: [], env: { WRIT_UI_ORIGINS: HTTPS_UI, WRIT_RP_ID: 'approve.writ.test' } });
  let app: NestFastifyApplication;

  beforeAll(async () => {
    ({ app } = await fx.start());
  });

  afterAll(() => fx.close());

  it('is a __Host- cookie (Secure, Path=/, no Domain), and the plain name is not read', async () => {
    const begin = await app.inject({ method: 'POST', url: '/auth/register/options', headers: { origin: HTTPS_UI }, payload: { name: 'Alice' } });
    const { ceremony, options } = begin.json<{ ceremony: string; options: Options<'register'> }>();
    const passkey = new SoftPasskey(HTTPS_UI, 'approve.writ.test');
    const res = await app.inject({ method: 'POST', url: '/auth/register/verify', headers: { origin: HTTPS_UI }, payload: { ceremony, response: passkey.register(options) } });
    expect(res.statusCode, res.body).toBe(200);
    const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
    expect(cookies).toHaveLength(1);
    const header = cookies[0]!;
    expect(header).toMatch(/^__Host-writ_session=[A-Za-z0-9_-]+; /);
    expect(header).toMatch(/; Secure/);
    expect(header).toMatch(/; Path=\/(;|$)/);
    expect(header).toMatch(/; HttpOnly/);
    expect(header).toMatch(/; SameSite=Strict/);
    expect(header).not.toMatch(/Domain=/i);
    const value = header.split(';')[0]!.slice('__Host-writ_session='.length);
    expect((await app.inject({ method: 'GET', url: '/auth/session', headers: { cookie: `__Host-writ_session=${value}` } })).statusCode).toBe(200);
    // A plain-named cookie (which a sibling subdomain or an http page could plant) is ignored.
    fx.expectError(await app.inject({ method: 'GET', url: '/me/grants', headers: { cookie: `writ_session=${value}` } }), 401, 'login_required', 'sign in with your passkey first');
  });
});
