'use client';

import { startRegistration, type PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { useState, type FormEvent } from 'react';
import { ErrorText, StatusText } from '../../components/messages';
import { useApi, useSession } from '../../components/session';
import { describeError } from '../../lib/errors';
import type { CeremonyAnswer, SessionAnswer } from '@writ/contracts';

export default function SignUpPage() {
  const api = useApi();
  const { signedIn } = useSession();
  const router = useRouter();
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState('');

  async function createAccount(event: FormEvent<HTMLFormElement>): Promise<void> {
    event.preventDefault();
    setError(undefined);
    if (name.trim() === '') {
      setError('Enter your name: your passkey and the agents you approve will show it.');
      return;
    }
    setBusy(true);
    setStatus('Follow your browser’s prompt to create a passkey…');
    try {
      const { ceremony, options } = await api.post<CeremonyAnswer<PublicKeyCredentialCreationOptionsJSON>>(
        '/auth/register/options',
        { name: name.trim() },
      );
      const response = await startRegistration({ optionsJSON: options });
      const answer = await api.post<SessionAnswer>('/auth/register/verify', { ceremony, response });
      signedIn(answer);
      setStatus('Account created. Opening your inbox…');
      router.push('/');
    } catch (caught) {
      setStatus('');
      setError(describeError(caught));
      setBusy(false);
    }
  }

  return (
    <>
      <title>Create an account · Writ</title>
      <h1>Create your account</h1>
      <p>
        Writ uses a passkey instead of a password: your device keeps the key, and you confirm with your fingerprint,
        face or screen lock. You will also use it to approve every request from your agents.
      </p>
      <form onSubmit={(event) => void createAccount(event)} noValidate>
        <label htmlFor="name">Your name</label>
        <input
          id="name"
          name="name"
          type="text"
          autoComplete="name"
          required
          maxLength={64}
          value={name}
          aria-invalid={error !== undefined && name.trim() === '' ? true : undefined}
          aria-describedby={error === undefined ? undefined : 'signup-error'}
          onChange={(event) => setName(event.target.value)}
        />
        <div className="actions">
          <button type="submit" disabled={busy} aria-busy={busy}>
            Create account with a passkey
          </button>
        </div>
        <ErrorText id="signup-error">{error}</ErrorText>
        <StatusText>{status}</StatusText>
      </form>
      <p>
        Already have an account? <Link href="/signin">Sign in</Link>
      </p>
    </>
  );
}
