'use client';

import { describeCapabilities, describeEnvelope } from '@writ/core';
import Link from 'next/link';
import { useCallback, useEffect } from 'react';
import { AgentIdentity, AgentWords } from '../components/agent-identity';
import { LoadState } from '../components/messages';
import { PasskeyNotice } from '../components/passkey-notice';
import { useApi } from '../components/session';
import { useLoad } from '../components/use-load';
import { describePayee, formatAmount, formatDateTime, formatRelative, serviceLabel, summarise } from '../lib/format';
import type { HumanGrant, HumanStepUp } from '@writ/contracts';

/**
 * The inbox: payments held for the person's approval (step-ups) and grant requests, each refreshed
 * live when one arrives or changes.
 */
export default function InboxPage() {
  const api = useApi();
  const load = useCallback(
    (signal: AbortSignal) => api.get<{ grants: HumanGrant[] }>('/me/grants?status=pending', signal),
    [api],
  );
  const loadPayments = useCallback(
    (signal: AbortSignal) => api.get<{ step_ups: HumanStepUp[] }>('/me/step-ups?status=pending', signal),
    [api],
  );
  const { state, reload } = useLoad(load);
  const { state: paymentsState, reload: reloadPayments } = useLoad(loadPayments);

  useEffect(() => {
    // `event: grant` whenever one of this person's grants is requested or changes, `event: step_up`
    // whenever a payment is held for them or decided; the browser reconnects by itself after a
    // network blip.
    const events = new EventSource('/api/me/events');
    events.addEventListener('grant', reload);
    events.addEventListener('step_up', reloadPayments);
    // On every (re)connection: what changed before the stream was listening (between the first
    // load and the subscription, or during a blip) is read again, so nothing is missed.
    events.addEventListener('open', () => {
      reload();
      reloadPayments();
    });
    return () => events.close();
  }, [reload, reloadPayments]);

  const grants = state.status === 'ready' ? state.data.grants : [];
  const payments = paymentsState.status === 'ready' ? paymentsState.data.step_ups : [];
  const now = Date.now();
  const ready = state.status === 'ready' && paymentsState.status === 'ready';
  return (
    <>
      <title>Inbox · Writ</title>
      <h1>Requests waiting for you</h1>
      <PasskeyNotice />
      <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
      {paymentsState.status === 'error' ? <LoadState loading={false} error={paymentsState.message} /> : null}
      {ready && grants.length === 0 && payments.length === 0 ? <p>Nothing is waiting for you.</p> : null}
      <p className="visually-hidden" aria-live="polite">
        {ready
          ? `${grants.length} ${grants.length === 1 ? 'request' : 'requests'} and ${payments.length} ${payments.length === 1 ? 'payment' : 'payments'} waiting.`
          : ''}
      </p>
      {payments.length > 0 ? (
        <section aria-labelledby="payments-heading">
          <h2 id="payments-heading">Payments waiting for you</h2>
          <p className="hint">
            An agent is holding each of these payments until you approve or deny exactly that payment with your
            passkey.
          </p>
          {payments.map((payment) => (
            <article key={payment.step_up_id} className="card" aria-label={`Payment request from ${payment.agent.name}`}>
              <h3>
                {payment.agent.name} asks to pay {formatAmount(payment.amount, payment.currency)}
              </h3>
              <dl className="facts">
                <dt>Amount</dt>
                <dd>{formatAmount(payment.amount, payment.currency)}</dd>
                <dt>Payee</dt>
                <dd>{describePayee(payment)}</dd>
                <dt>Agent</dt>
                <dd>
                  {payment.agent.name} <span className="muted mono">({payment.agent.client_id})</span>
                </dd>
                <dt>Request</dt>
                <dd>
                  <span className="mono">
                    {payment.method} {payment.url}
                  </span>{' '}
                  ({payment.action})
                </dd>
                <dt>Transaction</dt>
                <dd className="mono">{payment.txn}</dd>
                <dt>Lapses</dt>
                <dd>
                  {formatRelative(payment.expires_at, now)} <span className="muted">({formatDateTime(payment.expires_at)})</span>
                </dd>
              </dl>
              <p>
                <Link className="button" href={`/step-ups/${encodeURIComponent(payment.step_up_id)}`}>
                  Review
                </Link>
              </p>
            </article>
          ))}
        </section>
      ) : null}
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
                <dd>
                  <AgentIdentity agent={grant.agent} />
                </dd>
                <dt>Service</dt>
                <dd>{serviceLabel(grant.service)}</dd>
                <dt>Why</dt>
                <dd>
                  <AgentWords purpose={grant.purpose} empty="No reason given." />
                </dd>
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
