'use client';

import { describeCapabilities, describeEnvelope } from '@writ/core';
import Link from 'next/link';
import { useCallback, useEffect, useRef, useState } from 'react';
import { ConfirmAction } from '../../components/confirm-action';
import { ErrorText, LoadState, StatusText } from '../../components/messages';
import { useApi } from '../../components/session';
import { useLoad } from '../../components/use-load';
import { describeError } from '../../lib/errors';
import { describeStatus, formatDateTime, serviceLabel } from '../../lib/format';
import type { HumanGrant } from '@writ/contracts';

/** Every grant: the approved ones first, each with its transactions and a way to revoke it. */
export default function GrantsPage() {
  const api = useApi();
  const load = useCallback(async (signal: AbortSignal) => {
    const { grants } = await api.get<{ grants: HumanGrant[] }>('/me/grants', signal);
    // Split once: a grant revoked here stays where it was, showing "Revoked", until the next visit.
    return {
      approved: grants.filter((grant) => grant.status === 'approved'),
      others: grants.filter((grant) => grant.status !== 'approved' && grant.status !== 'pending'),
    };
  }, [api]);
  const { state } = useLoad(load);

  return (
    <>
      <title>Your grants · Writ</title>
      <h1>Your grants</h1>
      <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
      {state.status === 'ready' ? (
        <>
          <section aria-labelledby="approved-heading">
            <h2 id="approved-heading">Approved</h2>
            {state.data.approved.length === 0 ? <p>No approved grant right now.</p> : null}
            {state.data.approved.map((grant) => (
              <GrantCard key={grant.grant_id} grant={grant} />
            ))}
          </section>
          <section aria-labelledby="others-heading">
            <h2 id="others-heading">Denied, revoked and expired</h2>
            {state.data.others.length === 0 ? <p>None.</p> : null}
            {state.data.others.map((grant) => (
              <GrantCard key={grant.grant_id} grant={grant} />
            ))}
          </section>
          <p className="muted">
            Requests still waiting for you are in the <Link href="/">inbox</Link>.
          </p>
        </>
      ) : null}
    </>
  );
}

function GrantCard({ grant: initial }: { grant: HumanGrant }) {
  const api = useApi();
  const [grant, setGrant] = useState(initial);
  const [error, setError] = useState<string>();
  const [outcome, setOutcome] = useState('');
  const heading = useRef<HTMLHeadingElement>(null);

  // Once revoked, its buttons are gone: the focus goes to its heading rather than to the top of the page.
  useEffect(() => {
    if (outcome !== '') heading.current?.focus();
  }, [outcome]);
  const id = encodeURIComponent(grant.grant_id);

  async function revoke(): Promise<boolean> {
    setError(undefined);
    try {
      setGrant(await api.post<HumanGrant>(`/me/grants/${id}/revoke`, {}));
      setOutcome('Revoked');
      return true;
    } catch (caught) {
      setError(describeError(caught));
      return false;
    }
  }

  return (
    <article className="card" aria-label={`Grant for ${grant.agent.name}`}>
      <h3 ref={heading} tabIndex={-1}>
        {grant.agent.name} at {serviceLabel(grant.service)}
      </h3>
      <dl className="facts">
        <dt>Status</dt>
        <dd>{describeStatus(grant.status)}</dd>
        <dt>What it may do</dt>
        <dd>
          <ul>
            {describeCapabilities(grant.authorization_details).map((line, i) => (
              <li key={i}>{line}</li>
            ))}
          </ul>
        </dd>
        <dt>Limits</dt>
        <dd>
          {describeEnvelope(grant.envelope).length === 0 ? (
            'None.'
          ) : (
            <ul>
              {describeEnvelope(grant.envelope).map((line, i) => (
                <li key={i}>{line}</li>
              ))}
            </ul>
          )}
        </dd>
        {grant.purpose?.trim() ? (
          <>
            <dt>Why</dt>
            <dd>{grant.purpose}</dd>
          </>
        ) : null}
        <dt>{grant.status === 'approved' ? 'Ends' : 'Ended'}</dt>
        <dd>
          {grant.status === 'revoked' && grant.revoked_at ? formatDateTime(grant.revoked_at) : formatDateTime(grant.expires_at)}
        </dd>
      </dl>
      <p>
        <Link href={`/transactions?grant_id=${id}`}>Transactions of this grant</Link>
        {' · '}
        <Link href={`/grants/${id}`}>Details</Link>
      </p>
      {grant.status === 'approved' ? (
        <ConfirmAction
          label="Revoke"
          confirmLabel="Revoke now"
          question="Revoke this grant? Its agents lose access at once."
          onConfirm={revoke}
        />
      ) : null}
      <ErrorText>{error}</ErrorText>
      <StatusText>{outcome}</StatusText>
    </article>
  );
}
