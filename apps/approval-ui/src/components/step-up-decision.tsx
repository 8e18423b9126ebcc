'use client';

import { startAuthentication, type PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import Link from 'next/link';
import { useEffect, useRef, useState } from 'react';
import { describeError } from '../lib/errors';
import { formatAmount, prettyDocument } from '../lib/format';
import type { DecisionOptionsAnswer, HumanStepUp, StepUpDecisionAnswer } from '@writ/contracts';
import { ErrorText, StatusText } from './messages';
import { useApi } from './session';

type Decision = 'approve' | 'deny';

/**
 * The two decisions on a held payment, each signed with a passkey over the step-up document: the
 * registry issues the document and its challenge, the passkey signs it, the registry checks and
 * applies it (and, for an approval, lets the verifiers pass the retried request once).
 */
export function StepUpDecision({ stepUp, onDecided }: { stepUp: HumanStepUp; onDecided: (stepUp: HumanStepUp) => void }) {
  const api = useApi();
  const [busy, setBusy] = useState<Decision>();
  const [document, setDocument] = useState<unknown>();
  const [error, setError] = useState<string>();
  const [progress, setProgress] = useState('');
  const [outcome, setOutcome] = useState<string>();
  const decisionHeading = useRef<HTMLHeadingElement>(null);

  // Once decided, the buttons are gone: the focus goes to the outcome's heading instead of falling
  // back to the top of the page, so that keyboard and screen reader users carry on from there.
  useEffect(() => {
    if (outcome !== undefined) decisionHeading.current?.focus();
  }, [outcome]);

  async function decide(decision: Decision): Promise<void> {
    setBusy(decision);
    setError(undefined);
    setDocument(undefined);
    setProgress('Preparing what you will sign…');
    try {
      const path = `/me/step-ups/${encodeURIComponent(stepUp.step_up_id)}/decision`;
      const prepared = await api.post<DecisionOptionsAnswer<PublicKeyCredentialRequestOptionsJSON>>(`${path}/options`, { decision });
      setDocument(prepared.document);
      setProgress('Confirm with your passkey to sign this decision…');
      const response = await startAuthentication({ optionsJSON: prepared.options });
      setProgress('Sending your signed decision…');
      const answer = await api.post<StepUpDecisionAnswer>(path, { ceremony: prepared.ceremony, document: prepared.document, response });
      setProgress('');
      setOutcome(decision === 'approve' ? 'Payment approved' : 'Payment denied');
      onDecided(answer.step_up);
    } catch (caught) {
      setProgress('');
      setError(describeError(caught));
    } finally {
      setBusy(undefined);
    }
  }

  const amount = formatAmount(stepUp.amount, stepUp.currency);
  return (
    <section aria-labelledby="decision-heading">
      <h2 id="decision-heading" ref={decisionHeading} tabIndex={outcome === undefined ? undefined : -1}>
        Your decision
      </h2>
      {outcome === undefined ? (
        <>
          <p className="hint">
            Approving lets exactly this payment through once: {amount}, by {stepUp.agent.name}, to this address, in
            this transaction. A different amount, address or agent, or the same payment again, needs your approval again.
          </p>
          <div className="actions">
            <button type="button" disabled={busy !== undefined} aria-busy={busy === 'approve'} onClick={() => void decide('approve')}>
              Approve payment with passkey
            </button>
            <button
              type="button"
              className="danger secondary"
              disabled={busy !== undefined}
              aria-busy={busy === 'deny'}
              onClick={() => void decide('deny')}
            >
              Deny with passkey
            </button>
          </div>
          <ErrorText>{error}</ErrorText>
        </>
      ) : null}
      {/* One live region for the progress and then the outcome, present from the start. */}
      <StatusText>{outcome ?? progress}</StatusText>
      <SignedStepUpDocument document={document} />
      {outcome === undefined ? null : (
        <>
          <p>
            <a href={`/api/me/step-ups/${encodeURIComponent(stepUp.step_up_id)}/receipt`}>Receipt (JSON)</a>
          </p>
          <p>
            <Link href="/">Back to the inbox</Link>
          </p>
        </>
      )}
    </section>
  );
}

/** The step-up document exactly as the registry issued it. */
function SignedStepUpDocument({ document }: { document: unknown }) {
  if (document === undefined) return null;
  return (
    <details>
      <summary>Exactly what you sign</summary>
      <p className="hint">
        Your passkey signs a hash of this text: this one request, its amount and where it goes. The registry keeps the
        signature as your receipt.
      </p>
      <pre>{prettyDocument(document)}</pre>
    </details>
  );
}
