import { humanError } from '@writ/contracts';
import { describe, expect, it } from 'vitest';
import { SoftPasskey } from '../../../test/support/soft-passkey.js';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import { CEREMONY_TTL_MS, HumansService, PasskeyNotFound, SESSION_TTL_MS } from './humans.service.js';
import { secretHash } from './webauthn.js';

const ORIGIN = 'https://writ.test';
const T0 = Date.UTC(2026, 3, 1, 9);

async function humansFixture() {
  const registry = await inMemoryRegistry(T0);
  const { repositories, audit, clock } = registry;
  const humans = new HumansService({ repository: repositories.humans, audit, clock, config: { rp: { id: 'writ.test', name: 'Writ' }, uiOrigins: [ORIGIN] } });
  /** Signs up `name` with a fresh soft passkey: the account, its passkey and a session. */
  const signUp = async (name = 'Alice') => {
    const passkey = new SoftPasskey(ORIGIN, 'writ.test');
    const { ceremony, options } = await humans.beginRegistration({ name });
    const started = await humans.finishRegistration({ ceremony, response: passkey.register(options) });
    return { passkey, ...started };
  };
  /** A fresh passkey confirmation for `purpose`, made with `passkey` in `token`'s session. */
  const confirmation = async (humanId: string, token: string, purpose: string, passkey: SoftPasskey) => {
    const { ceremony, options } = await humans.beginConfirmation(humanId, token, { purpose });
    return { ceremony, response: passkey.assert(options) };
  };
  const types = () => repositories.audit.events.map((e) => e.type);
  return { ...registry, humans, signUp, confirmation, types };
}

describe('HumansService (in memory)', () => {
  it('signs up a human with a passkey and a session, recorded once in the chain', async () => {
    const { humans, signUp, types, repositories } = await humansFixture();
    const { human, token, csrfToken, expiresAt, passkey } = await signUp('Alice');
    expect(human).toEqual({ id: expect.stringMatching(/^usr_/) as unknown, name: 'Alice' });
    expect(expiresAt).toEqual(new Date(T0 + SESSION_TTL_MS));
    expect(await humans.session(token)).toEqual({ human, csrfToken });
    expect((await humans.passkeysOf(human.id)).map((p) => p.id)).toEqual([passkey.id]);
    expect(types()).toEqual(['human.registered']);
    // Only the hash of the session token is kept.
    expect([...repositories.humans.sessions.keys()]).toEqual([secretHash(token)]);
  });

  it('signs in with the passkey, storing its counter; a passkey nobody registered is refused', async () => {
    const { humans, signUp, types } = await humansFixture();
    const { human, passkey } = await signUp();
    const { ceremony, options } = await humans.beginLogin();
    const session = await humans.finishLogin({ ceremony, response: passkey.assert(options) });
    expect(session.human).toEqual(human);
    expect((await humans.findPasskey(passkey.id))?.counter).toBe(1);
    expect(types()).toEqual(['human.registered', 'human.signed_in']);
    const stranger = new SoftPasskey(ORIGIN, 'writ.test');
    const again = await humans.beginLogin();
    await expect(humans.finishLogin({ ceremony: again.ceremony, response: stranger.assert(again.options) })).rejects.toThrow(humanError('passkey_unknown'));
  });

  it('spends a ceremony once, refuses an expired one, and never hands one to another human or kind', async () => {
    const { humans, clock } = await humansFixture();
    const first = await humans.saveCeremony('login', 'challenge-1', {});
    await humans.consume(first, 'login', null);
    await expect(humans.consume(first, 'login', null)).rejects.toThrow(humanError('ceremony_used'));
    const second = await humans.saveCeremony('add_passkey', 'challenge-2', { humanId: 'usr_a' });
    await expect(humans.consume(second, 'add_passkey', 'usr_b')).rejects.toThrow(humanError('ceremony_unknown'));
    await expect(humans.consume(second, 'login', null)).rejects.toThrow(humanError('ceremony_unknown'));
    clock.advance(CEREMONY_TTL_MS);
    await expect(humans.consume(second, 'add_passkey', 'usr_a')).rejects.toThrow(humanError('ceremony_expired'));
  });

  it('sweeps ceremonies that expired long ago when a new one is saved', async () => {
    const { humans, clock, repositories } = await humansFixture();
    const old = await humans.saveCeremony('login', 'old', {});
    clock.advance(2 * CEREMONY_TTL_MS + 1);
    const fresh = await humans.saveCeremony('login', 'fresh', {});
    expect([...repositories.humans.ceremonies.keys()]).toEqual([fresh]);
    expect(old).not.toBe(fresh);
  });

  it('ends a session on sign-out, and every session on sign-out everywhere', async () => {
    const { humans, signUp, types } = await humansFixture();
    const { human, token, passkey } = await signUp();
    const { ceremony, options } = await humans.beginLogin();
    const other = await humans.finishLogin({ ceremony, response: passkey.assert(options) });
    await humans.endSession(token);
    expect(await humans.session(token)).toBeNull();
    expect(await humans.session(other.token)).not.toBeNull();
    expect(await humans.endAllSessions(human.id)).toBe(1);
    expect(await humans.session(other.token)).toBeNull();
    expect(types().at(-1)).toBe('human.signed_out_everywhere');
  });

  it('answers no human for a session past its lifetime', async () => {
    const { humans, signUp, clock } = await humansFixture();
    const { token } = await signUp();
    clock.advance(SESSION_TTL_MS);
    expect(await humans.session(token)).toBeNull();
  });

  it('refuses an action without a fresh confirmation, or with one made for another purpose or session', async () => {
    const { humans, signUp, confirmation } = await humansFixture();
    const { human, token, passkey } = await signUp();
    await expect(humans.confirm(human.id, token, 'add_passkey', undefined)).rejects.toThrow(humanError('confirmation_required', { purpose: 'add a passkey' }));
    const forRename = await confirmation(human.id, token, 'rename_passkey', passkey);
    await expect(humans.confirm(human.id, token, 'add_passkey', forRename)).rejects.toThrow(humanError('confirmation_other_purpose', { made: 'rename a passkey', purpose: 'add a passkey' }));
    // A confirmation is compared once, whatever the outcome.
    await expect(humans.confirm(human.id, token, 'rename_passkey', forRename)).rejects.toThrow(humanError('confirmation_unknown'));
    const elsewhere = await confirmation(human.id, 'another-session', 'add_passkey', passkey);
    await expect(humans.confirm(human.id, token, 'add_passkey', elsewhere)).rejects.toThrow(humanError('confirmation_other_session'));
    const good = await confirmation(human.id, token, 'add_passkey', passkey);
    expect((await humans.confirm(human.id, token, 'add_passkey', good)).id).toBe(passkey.id);
  });

  it('adds a second passkey after a confirmation, announced on other sessions only, and renames it', async () => {
    const { humans, signUp, confirmation, types, clock } = await humansFixture();
    const { human, token, passkey } = await signUp();
    clock.advance(60_000);
    const { ceremony, options } = await humans.beginAddPasskey(human.id, token, { confirmation: await confirmation(human.id, token, 'add_passkey', passkey) });
    const second = new SoftPasskey(ORIGIN, 'writ.test');
    const added = await humans.finishAddPasskey(human.id, token, { ceremony, response: second.register(options), label: 'Phone' });
    expect(added).toMatchObject({ id: second.id, label: 'Phone', human_id: human.id });
    expect(await humans.passkeyNotice(human.id, token)).toEqual([]);
    expect((await humans.passkeyNotice(human.id, 'another-session')).map((p) => p.id)).toEqual([second.id]);
    await humans.dismissPasskeyNotice(human.id);
    expect(await humans.passkeyNotice(human.id, 'another-session')).toEqual([]);
    const renamed = await humans.renamePasskey(human.id, token, second.id, { label: 'Old phone', confirmation: await confirmation(human.id, token, 'rename_passkey', passkey) });
    expect(renamed.label).toBe('Old phone');
    expect(types()).toEqual(['human.registered', 'human.passkey_added', 'human.passkey_renamed']);
  });

  it('removes a passkey but never the last one; a removed passkey can no longer sign in', async () => {
    const { humans, signUp, confirmation } = await humansFixture();
    const { human, token, passkey } = await signUp();
    await expect(humans.removePasskey(human.id, token, passkey.id, { confirmation: await confirmation(human.id, token, 'remove_passkey', passkey) })).rejects.toThrow(
      humanError('last_passkey'),
    );
    const { ceremony, options } = await humans.beginAddPasskey(human.id, token, { confirmation: await confirmation(human.id, token, 'add_passkey', passkey) });
    const second = new SoftPasskey(ORIGIN, 'writ.test');
    await humans.finishAddPasskey(human.id, token, { ceremony, response: second.register(options) });
    await humans.removePasskey(human.id, token, passkey.id, { confirmation: await confirmation(human.id, token, 'remove_passkey', second) });
    expect((await humans.passkeysOf(human.id)).map((p) => p.id)).toEqual([second.id]);
    expect((await humans.findPasskey(passkey.id))?.removed_at).toEqual(new Date(T0));
    const login = await humans.beginLogin();
    await expect(humans.finishLogin({ ceremony: login.ceremony, response: passkey.assert(login.options) })).rejects.toThrow(humanError('passkey_removed'));
    await expect(humans.renamePasskey(human.id, token, passkey.id, { label: 'x' })).rejects.toThrow(PasskeyNotFound);
  });

  it("refuses to register a credential that is already someone's passkey", async () => {
    const { humans, signUp } = await humansFixture();
    const { passkey } = await signUp('Alice');
    const { ceremony, options } = await humans.beginRegistration({ name: 'Mallory' });
    await expect(humans.finishRegistration({ ceremony, response: passkey.register(options) })).rejects.toThrow(humanError('passkey_already_registered'));
    expect((await humans.list()).map((h) => h.name)).toEqual(['Alice']);
  });
});
