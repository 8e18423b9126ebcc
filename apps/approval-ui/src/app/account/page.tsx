'use client';

import { startRegistration, type PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import { useRouter } from 'next/navigation';
import { useCallback, useState } from 'react';
import { ErrorText, LoadState, StatusText } from '../../components/messages';
import { useApi, useSession } from '../../components/session';
import { useLoad } from '../../components/use-load';
import { describeError } from '../../lib/errors';
import { formatDateTime } from '../../lib/format';
import type { CeremonyAnswer, Passkey } from '../../lib/types';

/** The account: its passkeys, adding one, signing out. */
export default function AccountPage() {
  const api = useApi();
  const { session, signedOut } = useSession();
  const router = useRouter();
  const load = useCallback((signal: AbortSignal) => api.get<{ passkeys: Passkey[] }>('/me/passkeys', signal), [api]);
  const { state, reload } = useLoad(load);
  const [label, setLabel] = useState('');
  const [adding, setAdding] = useState(false);
  const [addError, setAddError] = useState<string>();
  const [addStatus, setAddStatus] = useState('');
  const [signOutError, setSignOutError] = useState<string>();

  async function addPasskey(): Promise<void> {
    setAdding(true);
    setAddError(undefined);
    setAddStatus('Follow your browser’s prompt to create the new passkey…');
    try {
      const { ceremony, options } = await api.post<CeremonyAnswer<PublicKeyCredentialCreationOptionsJSON>>(
        '/me/passkeys/options',
        {},
      );
      const response = await startRegistration({ optionsJSON: options });
      const trimmed = label.trim();
      await api.post<Passkey>('/me/passkeys/verify', trimmed === '' ? { ceremony, response } : { ceremony, response, label: trimmed });
      setLabel('');
      setAddStatus('Passkey added.');
      reload();
    } catch (caught) {
      setAddStatus('');
      setAddError(describeError(caught));
    } finally {
      setAdding(false);
    }
  }

  async function signOut(): Promise<void> {
    setSignOutError(undefined);
    try {
      await api.post<undefined>('/auth/logout', {});
      signedOut();
      router.push('/signin');
    } catch (caught) {
      setSignOutError(describeError(caught));
    }
  }

  return (
    <>
      <title>Account · Writ</title>
      <h1>Your account</h1>
      {session.status === 'signed-in' ? <p>Signed in as {session.human.name}.</p> : null}

      <section aria-labelledby="passkeys-heading">
        <h2 id="passkeys-heading">Passkeys</h2>
        <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
        {state.status === 'ready' ? (
          <ul className="list">
            {state.data.passkeys.map((passkey) => (
              <li key={passkey.id} className="card">
                <h3>{passkey.label?.trim() ? passkey.label : 'Passkey'}</h3>
                <dl className="facts">
                  <dt>Created</dt>
                  <dd>{formatDateTime(passkey.created_at)}</dd>
                  <dt>Last used</dt>
                  <dd>{formatDateTime(passkey.last_used_at)}</dd>
                  <dt>Synced</dt>
                  <dd>{passkey.backed_up ? 'Yes: backed up by your passkey provider' : 'No: it lives on one device only'}</dd>
                </dl>
              </li>
            ))}
          </ul>
        ) : null}
        <p>Add a second passkey (another device, a security key) so that losing one does not lock you out.</p>
        <label htmlFor="passkey-label">Name for the new passkey (optional)</label>
        <input
          id="passkey-label"
          type="text"
          maxLength={64}
          value={label}
          onChange={(event) => setLabel(event.target.value)}
        />
        <div className="actions">
          <button type="button" onClick={() => void addPasskey()} disabled={adding} aria-busy={adding}>
            Add a passkey
          </button>
        </div>
        <ErrorText>{addError}</ErrorText>
        <StatusText>{addStatus}</StatusText>
      </section>

      <section aria-labelledby="signout-heading">
        <h2 id="signout-heading">Sign out</h2>
        <p>Signing out ends this session; your grants and agents are not affected.</p>
        <div className="actions">
          <button type="button" className="secondary" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
        <ErrorText>{signOutError}</ErrorText>
      </section>
    </>
  );
}
