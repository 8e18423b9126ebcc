'use client';

import { describeCapabilities, describeEnvelope } from '@writ/core';
import Link from 'next/link';
import { useCallback, useEffect } from 'react';
import { LoadState } from '../components/messages';
import { useApi } from '../components/session';
import { useLoad } from '../components/use-load';
import { formatDateTime, formatRelative, serviceLabel, summarise } from '../lib/format';
import type { HumanGrant } from '../lib/types';

/** The inbox: requests waiting for a decision, refreshed live when one arrives or changes. */
export default function InboxPage() {
  const api = useApi();
  const load = useCallback(
    (signal: AbortSignal) => api.get<{ grants: HumanGrant[] }>('/me/grants?status=pending', signal),
    [api],
  );
  const { state, reload } = useLoad(load);

  useEffect(() => {
    // `event: grant` whenever one of this person's grants is requested or changes; the browser
    // reconnects by itself after a network blip.
    const events = new EventSource('/api/me/events');
    events.addEventListener('grant', reload);
    return () => events.close();
  }, [reload]);

  const grants = state.status === 'ready' ? state.data.grants : [];
  const now = Date.now();
  return (
    <>
      <title>Inbox · Writ</title>
      <h1>Requests waiting for you</h1>
      <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
      {state.status === 'ready' && grants.length === 0 ? <p>Nothing is waiting for you.</p> : null}
      <p className="visually-hidden" aria-live="polite">
        {state.status === 'ready' ? `${grants.length} ${grants.length === 1 ? 'request' : 'requests'} waiting.` : ''}
      </p>
      <div>
        {grants.map((grant) => {
          const words = summarise([...describeCapabilities(grant.authorization_details), ...describeEnvelope(grant.envelope)], 3);
          return (
            <article key={grant.grant_id} className="card" aria-label={`Request from ${grant.agent.name}`}>
              <h2>
                {grant.agent.name} asks for access to {serviceLabel(grant.service)}
              </h2>
              <dl className="facts">
                <dt>Agent</dt>
                <dd>{grant.agent.name}</dd>
                <dt>Service</dt>
                <dd>{serviceLabel(grant.service)}</dd>
                <dt>Why</dt>
                <dd>{grant.purpose?.trim() ? grant.purpose : <span className="muted">No reason given.</span>}</dd>
                <dt>In short</dt>
                <dd>{words}</dd>
                <dt>Lapses</dt>
                <dd>
                  {grant.expires_at === null ? (
                    'when the registry drops unanswered requests'
                  ) : (
                    <>
                      {formatRelative(grant.expires_at, now)} <span className="muted">({formatDateTime(grant.expires_at)})</span>
                    </>
                  )}
                </dd>
              </dl>
              <p>
                <Link className="button" href={`/grants/${encodeURIComponent(grant.grant_id)}`}>
                  Review
                </Link>
              </p>
            </article>
          );
        })}
      </div>
    </>
  );
}
