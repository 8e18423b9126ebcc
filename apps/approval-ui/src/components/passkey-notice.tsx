'use client';

import Link from 'next/link';
import { useCallback, useState } from 'react';
import { describeError } from '../lib/errors';
import { formatDateTime } from '../lib/format';
import type { Passkey } from '@writ/contracts';
import { ErrorText } from './messages';
import { useApi } from './session';
import { useLoad } from './use-load';

/**
 * "A passkey was added": on the first visit after a passkey was added in another session, so a
 * person whose account gained a passkey they did not add finds out and can act (ADR 0018). Shown
 * until they acknowledge it.
 */
export function PasskeyNotice() {
  const api = useApi();
  const load = useCallback((signal: AbortSignal) => api.get<{ added: Passkey[] }>('/me/passkeys/notice', signal), [api]);
  const { state } = useLoad(load);
  const [dismissed, setDismissed] = useState(false);
  const [error, setError] = useState<string>();

  if (dismissed || state.status !== 'ready' || state.data.added.length === 0) return null;

  async function dismiss(): Promise<void> {
    setError(undefined);
    try {
      await api.post<undefined>('/me/passkeys/notice/dismiss', {});
      setDismissed(true);
    } catch (caught) {
      setError(describeError(caught));
    }
  }

  return (
    <section className="card notice" role="alert" aria-labelledby="passkey-notice-heading">
      <h2 id="passkey-notice-heading">{state.data.added.length === 1 ? 'A passkey was added to your account' : 'Passkeys were added to your account'}</h2>
      <ul>
        {state.data.added.map((passkey) => (
          <li key={passkey.id}>
            A passkey was added on {formatDateTime(passkey.created_at)}: {passkey.label?.trim() ? passkey.label : 'unnamed passkey'}.
          </li>
        ))}
      </ul>
      <p>
        Not you? <Link href="/account">Remove it and sign out everywhere</Link>.
      </p>
      <div className="actions">
        <button type="button" className="secondary" onClick={() => void dismiss()}>
          It was me
        </button>
      </div>
      <ErrorText>{error}</ErrorText>
    </section>
  );
}
