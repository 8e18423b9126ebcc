'use client';

import { startRegistration, type PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import { useRouter } from 'next/navigation';
import { useCallback, useState } from 'react';
import { ErrorText, LoadState, StatusText } from '../../components/messages';
import { confirmWithPasskey } from '../../components/passkey-confirmation';
import { useApi, useSession } from '../../components/session';
import { useLoad } from '../../components/use-load';
import { describeError } from '../../lib/errors';
import { formatDateTime } from '../../lib/format';
import type { CeremonyAnswer, Passkey } from '@writ/contracts';

function nameOf(passkey: Passkey): string {
  return passkey.label?.trim() ? passkey.label : 'Passkey';
}

/**
 * The account: its passkeys (added, renamed and removed with a fresh confirmation from a passkey
 * the person already has, ADR 0018), signing out here or everywhere.
 */
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
    setAddStatus('First confirm with a passkey you already have…');
    try {
      const confirmation = await confirmWithPasskey(api, 'add_passkey');
      setAddStatus('Now follow your browser’s prompt to create the new passkey…');
      const { ceremony, options } = await api.post<CeremonyAnswer<PublicKeyCredentialCreationOptionsJSON>>('/me/passkeys/options', { confirmation });
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

  async function signOut(everywhere: boolean): Promise<void> {
    setSignOutError(undefined);
    try {
      await api.post<unknown>(everywhere ? '/auth/logout-everywhere' : '/auth/logout', {});
      signedOut();
      router.push('/signin');
    } catch (caught) {
      setSignOutError(describeError(caught));
    }
  }

  const passkeys = state.status === 'ready' ? state.data.passkeys : [];
  return (
    <>
      <title>Account · Writ</title>
      <h1>Your account</h1>
      {session.status === 'signed-in' ? <p>Signed in as {session.human.name}.</p> : null}

      <section aria-labelledby="passkeys-heading">
        <h2 id="passkeys-heading">Passkeys</h2>
        <p>Adding, renaming or removing a passkey, like creating an enrollment token, asks you to confirm with a passkey you already have.</p>
        <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
        {state.status === 'ready' ? (
          <ul className="list">
            {passkeys.map((passkey) => (
              <PasskeyCard key={passkey.id} passkey={passkey} removable={passkeys.length > 1} onChanged={reload} />
            ))}
          </ul>
        ) : null}
        <p>Add a second passkey (another device, a security key) so that losing one does not lock you out.</p>
        <label htmlFor="passkey-label">Name for the new passkey (optional)</label>
        <input id="passkey-label" type="text" maxLength={64} value={label} onChange={(event) => setLabel(event.target.value)} />
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
        <p>Signing out everywhere ends every session of your account, on every device, this one included.</p>
        <div className="actions">
          <button type="button" className="secondary" onClick={() => void signOut(false)}>
            Sign out
          </button>
          <button type="button" className="secondary" onClick={() => void signOut(true)}>
            Sign out everywhere
          </button>
        </div>
        <ErrorText>{signOutError}</ErrorText>
      </section>
    </>
  );
}

/** One passkey: when it was added and last used, and renaming or removing it. */
function PasskeyCard({ passkey, removable, onChanged }: { passkey: Passkey; removable: boolean; onChanged: () => void }) {
  const api = useApi();
  const [name, setName] = useState(passkey.label ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState('');
  const fieldId = `passkey-name-${passkey.id}`;

  async function run(action: 'rename' | 'remove'): Promise<void> {
    setBusy(true);
    setError(undefined);
    setStatus('Confirm with one of your passkeys…');
    try {
      const path = `/me/passkeys/${encodeURIComponent(passkey.id)}`;
      if (action === 'rename') {
        const confirmation = await confirmWithPasskey(api, 'rename_passkey');
        await api.post<Passkey>(`${path}/rename`, { label: name.trim(), confirmation });
        setStatus('Renamed.');
      } else {
        const confirmation = await confirmWithPasskey(api, 'remove_passkey');
        await api.post<undefined>(`${path}/remove`, { confirmation });
        setStatus('Removed.');
      }
      onChanged();
    } catch (caught) {
      setStatus('');
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <li className="card" aria-label={`Passkey ${nameOf(passkey)}`}>
      <h3>{nameOf(passkey)}</h3>
      <dl className="facts">
        <dt>Added</dt>
        <dd>{formatDateTime(passkey.created_at)}</dd>
        <dt>Last used</dt>
        <dd>{formatDateTime(passkey.last_used_at)}</dd>
        <dt>Synced</dt>
        <dd>{passkey.backed_up ? 'Yes: backed up by your passkey provider' : 'No: it lives on one device only'}</dd>
      </dl>
      <label htmlFor={fieldId}>Name</label>
      <input id={fieldId} type="text" maxLength={64} value={name} onChange={(event) => setName(event.target.value)} />
      <div className="actions">
        <button type="button" className="secondary" onClick={() => void run('rename')} disabled={busy || name.trim() === ''}>
          Rename
        </button>
        {removable ? (
          <button type="button" className="secondary" onClick={() => void run('remove')} disabled={busy}>
            Remove
          </button>
        ) : (
          <span className="muted">Your only passkey cannot be removed.</span>
        )}
      </div>
      <ErrorText>{error}</ErrorText>
      <StatusText>{status}</StatusText>
    </li>
  );
}
