'use client';

import Link from 'next/link';
import { useParams } from 'next/navigation';
import { useCallback, useState } from 'react';
import { LoadState } from '../../../components/messages';
import { useApi } from '../../../components/session';
import { StepUpDecision } from '../../../components/step-up-decision';
import { useLoad } from '../../../components/use-load';
import {
  describePaymentRequest,
  describeStepUpStatus,
  formatAmount,
  formatDateTime,
  formatRelative,
  routeParam,
  serviceLabel,
} from '../../../lib/format';
import type { HumanStepUp } from '@writ/contracts';

/** The decision screen for one held payment: the exact request in plain words; approve or deny. */
export default function StepUpPage() {
  const params = useParams<{ id: string }>();
  const id = routeParam(params.id);
  const api = useApi();
  const load = useCallback((signal: AbortSignal) => api.get<HumanStepUp>(`/me/step-ups/${encodeURIComponent(id)}`, signal), [api, id]);
  const { state } = useLoad(load);
  const [decided, setDecided] = useState<HumanStepUp>();
  const stepUp = decided ?? (state.status === 'ready' ? state.data : undefined);

  return (
    <>
      <title>Review a payment · Writ</title>
      {stepUp === undefined ? (
        <>
          <h1>Payment</h1>
          <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
        </>
      ) : (
        <>
          <h1>
            {stepUp.agent.name} asks to pay {formatAmount(stepUp.amount, stepUp.currency)}
          </h1>
          <p>{describePaymentRequest(stepUp)}</p>
          <PaymentFacts stepUp={stepUp} />
          {state.status === 'ready' && state.data.status === 'pending' ? (
            <StepUpDecision key={state.data.step_up_id} stepUp={state.data} onDecided={setDecided} />
          ) : (
            <StepUpOutcome stepUp={stepUp} />
          )}
        </>
      )}
    </>
  );
}

/**
 * The request the verifier holds, field by field, as the step-up document names it, with what the
 * step-up binds besides the request line (ADR 0014 amendment): the query as sent and the fields the
 * service provider bound (null on step-ups recorded before they were bound).
 */
function PaymentFacts({ stepUp }: { stepUp: HumanStepUp }) {
  const fields = Object.entries(stepUp.bound?.fields ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return (
    <dl className="facts">
      <dt>Amount</dt>
      <dd>{formatAmount(stepUp.amount, stepUp.currency)}</dd>
      <dt>Agent</dt>
      <dd>
        {stepUp.agent.name} <span className="muted mono">({stepUp.agent.client_id})</span>
      </dd>
      <dt>Payee</dt>
      <dd>
        {serviceLabel(stepUp.service)}
        {stepUp.service.name ? <span className="muted"> ({stepUp.service.uri})</span> : null}
      </dd>
      <dt>Request</dt>
      <dd className="mono">
        {stepUp.method} {stepUp.url}
      </dd>
      {stepUp.bound ? (
        <>
          <dt>Query</dt>
          <dd className="mono" data-testid="bound-query">
            {stepUp.bound.query ?? <span className="muted">none</span>}
          </dd>
        </>
      ) : null}
      {fields.map(([name, value]) => (
        <BoundField key={name} name={name} value={value} />
      ))}
      <dt>Action</dt>
      <dd>{stepUp.action}</dd>
      <dt>Resource</dt>
      <dd>{stepUp.resource ?? <span className="muted">none named</span>}</dd>
      <dt>Transaction</dt>
      <dd className="mono">{stepUp.txn}</dd>
      <dt>Grant</dt>
      <dd>
        <Link href={`/grants/${encodeURIComponent(stepUp.grant_id)}`}>
          <span className="mono">{stepUp.grant_id}</span>
        </Link>
      </dd>
      <dt>Asked</dt>
      <dd>{formatDateTime(stepUp.requested_at)}</dd>
      <dt>Lapses</dt>
      <dd>
        {formatRelative(stepUp.expires_at, Date.now())} <span className="muted">({formatDateTime(stepUp.expires_at)})</span>
      </dd>
    </dl>
  );
}

/** One request field the service provider bound: approving holds the payment to this value. */
function BoundField({ name, value }: { name: string; value: string }) {
  return (
    <>
      <dt>
        {name} <span className="muted">(request field)</span>
      </dt>
      <dd className="mono" data-testid={`bound-field-${name}`}>
        {value}
      </dd>
    </>
  );
}

/** A payment that is no longer waiting: its status and, once decided, its receipt. */
function StepUpOutcome({ stepUp }: { stepUp: HumanStepUp }) {
  return (
    <section aria-labelledby="outcome-heading">
      <h2 id="outcome-heading">Status</h2>
      <p>
        {describeStepUpStatus(stepUp.status)}
        {stepUp.decided_at ? ` on ${formatDateTime(stepUp.decided_at)}` : ''}.
      </p>
      {stepUp.receipt_hash !== null ? (
        <p>
          <a href={`/api/me/step-ups/${encodeURIComponent(stepUp.step_up_id)}/receipt`}>Receipt (JSON)</a>
          <span className="muted"> — the signed decision, which anyone with your passkey’s public key can check.</span>
        </p>
      ) : null}
      <p>
        <Link href="/">Back to the inbox</Link>
      </p>
    </section>
  );
}
