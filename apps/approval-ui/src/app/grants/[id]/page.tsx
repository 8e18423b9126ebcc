'use client';

import Link from 'next/link';
import { useParams } from 'next/navigation';
import { useCallback, useState } from 'react';
import { DecisionForm } from '../../../components/decision-form';
import { GrantFacts } from '../../../components/grant-words';
import { SignedWith } from '../../../components/signed-with';
import { LoadState } from '../../../components/messages';
import { useApi } from '../../../components/session';
import { useLoad } from '../../../components/use-load';
import { describeStatus, formatDateTime, routeParam, serviceLabel } from '../../../lib/format';
import type { HumanGrant } from '@writ/contracts';

/** The decision screen for one request: what it asks, in plain words; narrow; approve or deny. */
export default function GrantPage() {
  const params = useParams<{ id: string }>();
  const id = routeParam(params.id);
  const api = useApi();
  const load = useCallback(
    (signal: AbortSignal) => api.get<HumanGrant>(`/me/grants/${encodeURIComponent(id)}`, signal),
    [api, id],
  );
  const { state } = useLoad(load);
  const [decided, setDecided] = useState<HumanGrant>();
  const grant = decided ?? (state.status === 'ready' ? state.data : undefined);

  return (
    <>
      <title>Review a request · Writ</title>
      {grant === undefined ? (
        <>
          <h1>Request</h1>
          <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
        </>
      ) : (
        <>
          <h1>
            {grant.agent.name} asks for access to {serviceLabel(grant.service)}
          </h1>
          <GrantFacts grant={grant} />
          {state.status === 'ready' && state.data.status === 'pending' ? (
            <DecisionForm key={state.data.grant_id} grant={state.data} onDecided={setDecided} />
          ) : (
            <GrantOutcome grant={grant} />
          )}
        </>
      )}
    </>
  );
}

/** A grant that is no longer waiting: its status and, once decided, its receipt. */
function GrantOutcome({ grant }: { grant: HumanGrant }) {
  return (
    <section aria-labelledby="outcome-heading">
      <h2 id="outcome-heading">Status</h2>
      <p>
        {describeStatus(grant.status)}
        {grant.decided_at ? ` on ${formatDateTime(grant.decided_at)}` : ''}
        {grant.status === 'approved' && grant.expires_at ? `; it ends ${formatDateTime(grant.expires_at)}` : ''}
        {grant.status === 'revoked' && grant.revoked_at ? `; revoked ${formatDateTime(grant.revoked_at)}` : ''}.
      </p>
      {grant.decided_at !== null || grant.receipt_hash !== null ? (
        <p>
          <a href={`/api/me/grants/${encodeURIComponent(grant.grant_id)}/receipt`}>Receipt (JSON)</a>
          <span className="muted"> — the signed decision, which anyone with your passkey’s public key can check.</span>
        </p>
      ) : null}
      <SignedWith grant={grant} />
      <p>
        <Link href="/">Back to the inbox</Link>
      </p>
    </section>
  );
}

