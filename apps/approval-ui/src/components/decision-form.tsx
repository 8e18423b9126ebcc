'use client';

import { startAuthentication, type PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import { describeCapabilities } from '@writ/core';
import Link from 'next/link';
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { describeError } from '../lib/errors';
import { formatDuration, prettyDocument } from '../lib/format';
import {
  buildNarrowing,
  initialInput,
  limitFields,
  type LimitField,
  type NarrowingErrors,
  type NarrowingInput,
} from '../lib/narrowing';
import type { DecisionAnswer, DecisionOptionsAnswer, GrantNarrowing, HumanGrant } from '@writ/contracts';
import { ErrorText, StatusText } from './messages';
import { useApi } from './session';

type Decision = 'approve' | 'deny';

/** What a lowered field started at, in words, under its label. */
function requestedHint(field: LimitField, grant: HumanGrant): string {
  switch (field.name) {
    case 'rateLimit':
      return `Requested: ${field.requested} per window of ${formatDuration(grant.envelope.rate?.window_s ?? 0)}. You can lower it.`;
    case 'perRequestMax':
    case 'totalMax':
      return `Requested: ${field.requested} ${grant.envelope.amount?.currency ?? ''}. You can lower it.`;
    case 'maxUses':
      return `Requested: ${field.requested}. You can lower it.`;
    case 'durationMinutes':
      return `Requested: ${formatDuration(grant.duration_s)}. You can shorten it.`;
    default:
      return '';
  }
}

/** The "Narrow before approving" form and the two decisions, each signed with a passkey. */
export function DecisionForm({ grant, onDecided }: { grant: HumanGrant; onDecided: (grant: HumanGrant) => void }) {
  const api = useApi();
  const [input, setInput] = useState<NarrowingInput>(() => initialInput(grant));
  const [fieldErrors, setFieldErrors] = useState<NarrowingErrors>({});
  const [busy, setBusy] = useState<Decision>();
  const [document, setDocument] = useState<unknown>();
  const [error, setError] = useState<string>();
  const [progress, setProgress] = useState('');
  const [outcome, setOutcome] = useState<string>();
  const decisionHeading = useRef<HTMLHeadingElement>(null);
  const fields = limitFields(grant);
  const capabilityWords = describeCapabilities(grant.authorization_details);

  // Once decided, the buttons are gone: the focus goes to the outcome's heading instead of falling
  // back to the top of the page, so that keyboard and screen reader users carry on from there.
  useEffect(() => {
    if (outcome !== undefined) decisionHeading.current?.focus();
  }, [outcome]);

  async function decide(decision: Decision, narrowing: GrantNarrowing | undefined): Promise<void> {
    setBusy(decision);
    setError(undefined);
    setDocument(undefined);
    setProgress('Preparing what you will sign…');
    try {
      const path = `/me/grants/${encodeURIComponent(grant.grant_id)}/decision`;
      const prepared = await api.post<DecisionOptionsAnswer<PublicKeyCredentialRequestOptionsJSON>>(
        `${path}/options`,
        narrowing === undefined ? { decision } : { decision, narrowing },
      );
      setDocument(prepared.document);
      setProgress('Confirm with your passkey to sign this decision…');
      const response = await startAuthentication({ optionsJSON: prepared.options });
      setProgress('Sending your signed decision…');
      const answer = await api.post<DecisionAnswer>(path, {
        ceremony: prepared.ceremony,
        document: prepared.document,
        response,
      });
      setProgress('');
      setOutcome(decision === 'deny' ? 'Denied' : narrowing === undefined ? 'Approved' : 'Approved with narrower limits');
      onDecided(answer.grant);
    } catch (caught) {
      setProgress('');
      setError(describeError(caught));
    } finally {
      setBusy(undefined);
    }
  }

  function approve(event: FormEvent<HTMLFormElement>): void {
    event.preventDefault();
    const result = buildNarrowing(grant, input);
    if (!result.ok) {
      setFieldErrors(result.errors);
      setError('Some limits need changing before you approve: see the messages above.');
      return;
    }
    setFieldErrors({});
    void decide('approve', result.narrowing);
  }

  function setValue(field: LimitField, value: string): void {
    setInput((current) => ({ ...current, values: { ...current.values, [field.name]: value } }));
  }

  function setKeep(index: number, keep: boolean): void {
    setInput((current) => ({ ...current, keep: current.keep.map((k, i) => (i === index ? keep : k)) }));
  }

  // Time windows and the step-up threshold are shown above and kept as requested.
  const fixedLimits = grant.envelope.time_windows !== undefined || grant.envelope.amount?.approval_above !== undefined;
  return (
    <section aria-labelledby="decision-heading">
      {outcome === undefined ? (
        <form onSubmit={approve} noValidate>
          <h2 id="decision-heading">Narrow before approving</h2>
          <p className="hint">
            You can approve less than was asked: drop capabilities, lower limits, shorten the time. You cannot give
            more.{fixedLimits ? ' Time windows and when you are asked again about a payment stay as requested.' : ''}
          </p>
          <fieldset aria-describedby={fieldErrors.capabilities ? 'capabilities-error' : undefined}>
            <legend>Capabilities to grant</legend>
            {capabilityWords.map((words, i) => (
              <div key={i} className="check">
                <input
                  id={`capability-${i}`}
                  type="checkbox"
                  checked={input.keep[i] !== false}
                  onChange={(event) => setKeep(i, event.target.checked)}
                />
                <label htmlFor={`capability-${i}`}>{words}</label>
              </div>
            ))}
            {fieldErrors.capabilities ? (
              <p id="capabilities-error" className="field-error">
                {fieldErrors.capabilities}
              </p>
            ) : null}
          </fieldset>
          <fieldset>
            <legend>Limits</legend>
            {fields.map((field) => {
              const fieldError = fieldErrors[field.name];
              const hintId = `${field.name}-hint`;
              const errorId = `${field.name}-error`;
              return (
                <div key={field.name}>
                  <label htmlFor={field.name}>{field.label}</label>
                  <input
                    id={field.name}
                    name={field.name}
                    type="number"
                    inputMode={field.integer ? 'numeric' : 'decimal'}
                    min={field.name === 'durationMinutes' ? 0 : field.min}
                    max={field.requested}
                    step={field.integer ? 1 : 'any'}
                    value={input.values[field.name] ?? ''}
                    aria-invalid={fieldError ? true : undefined}
                    aria-describedby={fieldError ? `${errorId} ${hintId}` : hintId}
                    onChange={(event) => setValue(field, event.target.value)}
                  />
                  <p id={hintId} className="hint">
                    {requestedHint(field, grant)}
                  </p>
                  {fieldError ? (
                    <p id={errorId} className="field-error">
                      {fieldError}
                    </p>
                  ) : null}
                </div>
              );
            })}
          </fieldset>
          <div className="actions">
            <button type="submit" disabled={busy !== undefined} aria-busy={busy === 'approve'}>
              Approve with passkey
            </button>
            <button
              type="button"
              className="danger secondary"
              disabled={busy !== undefined}
              aria-busy={busy === 'deny'}
              onClick={() => void decide('deny', undefined)}
            >
              Deny with passkey
            </button>
          </div>
          <ErrorText>{error}</ErrorText>
        </form>
      ) : (
        <h2 id="decision-heading" ref={decisionHeading} tabIndex={-1}>
          Your decision
        </h2>
      )}
      {/* One live region for the progress and then the outcome, present from the start. */}
      <StatusText>{outcome ?? progress}</StatusText>
      <SignedDocument document={document} />
      {outcome === undefined ? null : (
        <>
          <p>
            <a href={`/api/me/grants/${encodeURIComponent(grant.grant_id)}/receipt`}>Receipt (JSON)</a>
          </p>
          <p>
            <Link href="/">Back to the inbox</Link>
          </p>
        </>
      )}
    </section>
  );
}

/** The approval document exactly as the registry issued it, for the curious and the careful. */
function SignedDocument({ document }: { document: unknown }) {
  if (document === undefined) return null;
  return (
    <details>
      <summary>Exactly what you sign</summary>
      <p className="hint">
        Your passkey signs a hash of this text. The registry stores the signature as your receipt, and every token of
        this grant carries the receipt’s hash.
      </p>
      <pre>{prettyDocument(document)}</pre>
    </details>
  );
}
