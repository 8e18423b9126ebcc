'use client';

import { startAuthentication, type PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { useState } from 'react';
import { ErrorText, StatusText } from '../../components/messages';
import { useApi, useSession } from '../../components/session';
import { describeError } from '../../lib/errors';
import type { CeremonyAnswer, SessionAnswer } from '@writ/contracts';

export default function SignInPage() {
  const api = useApi();
  const { signedIn } = useSession();
  const router = useRouter();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState('');

  async function signIn(): Promise<void> {
    setError(undefined);
    setBusy(true);
    setStatus('Follow your browser’s prompt to use your passkey…');
    try {
      const { ceremony, options } = await api.post<CeremonyAnswer<PublicKeyCredentialRequestOptionsJSON>>(
        '/auth/login/options',
        {},
      );
      const response = await startAuthentication({ optionsJSON: options });
      const answer = await api.post<SessionAnswer>('/auth/login/verify', { ceremony, response });
      signedIn(answer);
      setStatus('Signed in. Opening your inbox…');
      router.push('/');
    } catch (caught) {
      setStatus('');
      setError(describeError(caught));
      setBusy(false);
    }
  }

  return (
    <>
      <title>Sign in · Writ</title>
      <h1>Sign in</h1>
      <p>Use the passkey you created for Writ on this device, or on a phone or security key that holds it.</p>
      <div className="actions">
        <button type="button" onClick={() => void signIn()} disabled={busy} aria-busy={busy}>
          Sign in with a passkey
        </button>
      </div>
      <ErrorText>{error}</ErrorText>
      <StatusText>{status}</StatusText>
      <p>
        New here? <Link href="/signup">Create an account</Link>
      </p>
    </>
  );
}
