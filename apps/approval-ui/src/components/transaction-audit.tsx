import type { AuditCheckpointView, AuditEventInclusion, AuditVerdict, TransactionAudit } from '@writ/contracts';
import { formatDateTime } from '../lib/format';

/**
 * The registry's verdict on the whole audit log, in one sentence (issue 19, goal 2). It is the
 * last verification the registry ran, never one run for this page, and the browser checks nothing.
 */
export function verdictText(verdict: AuditVerdict): string {
  switch (verdict.status) {
    case 'verified':
      return `Audit log verified up to event ${verdict.size} at ${formatDateTime(verdict.at)}`;
    case 'broken':
      return `Audit log BROKEN at event ${verdict.seq}: ${verdict.reason}`;
    case 'unverified':
      return 'Audit log not verified yet';
  }
}

/** What a broken verdict adds: when it was found, and how far the log was last found intact. */
function brokenDetail(verdict: Extract<AuditVerdict, { status: 'broken' }>): string {
  const before = verdict.verified === null ? 'It was never found intact before.' : `It was last found intact up to event ${verdict.verified.size} at ${formatDateTime(verdict.verified.at)}.`;
  return `Found at ${formatDateTime(verdict.at)}. ${before} Do not rely on this transaction's record until the operator has looked into it.`;
}

/**
 * The verdict, where the page starts: a polite status when verified or not yet, an alert when the
 * last verification found the log broken.
 */
export function AuditVerdictLine({ verdict }: { verdict: AuditVerdict }) {
  if (verdict.status === 'broken') {
    return (
      <div className="status broken" role="alert">
        <p>{verdictText(verdict)}</p>
        <p>{brokenDetail(verdict)}</p>
      </div>
    );
  }
  return (
    <p role="status" className={verdict.status === 'verified' ? 'status' : 'status pending'}>
      {verdictText(verdict)}
    </p>
  );
}

/** Events of the transaction recorded after the last verification, said plainly. */
function unverifiedEvents(verdict: AuditVerdict, events: readonly AuditEventInclusion[]): string | undefined {
  const covered = verdict.status === 'verified' ? verdict.size : verdict.status === 'broken' ? (verdict.verified?.size ?? 0) : 0;
  const after = events.filter((e) => e.seq > covered).length;
  if (after === 0) return undefined;
  return after === events.length ? 'None of these events is covered by that verification yet.' : `${after} of these events came after that verification and are not covered by it yet.`;
}

/** A transaction's place in the audit log: each event's inclusion, the checkpoint, how to check them. */
export function TransactionAuditSection({ audit }: { audit: TransactionAudit }) {
  const { verdict, checkpoint, events, omitted } = audit;
  const pending = unverifiedEvents(verdict, events);
  return (
    <section aria-labelledby="audit-heading">
      <h2 id="audit-heading">In the audit log</h2>
      <p>
        {verdictText(verdict)}. This is the registry&rsquo;s own verdict, from its last check of the whole log: this
        page does not check the log itself.{pending === undefined ? '' : ` ${pending}`}
      </p>
      <p className="hint">
        To check it without trusting the registry, save the checkpoint below and run{' '}
        <code>npm run registry -- audit verify --checkpoint checkpoint.txt --registry &lt;registry URL&gt;</code> now
        and later: it proves that the log only grew. Step by step: <code>docs/audit.md</code>, &ldquo;Verifying from
        outside&rdquo;.
      </p>
      <ul>
        {events.map((event) => (
          <li key={event.seq}>
            <EventInclusion event={event} checkpoint={checkpoint} />
          </li>
        ))}
      </ul>
      {omitted > 0 ? <p className="muted">{`${omitted} later events of this transaction are not listed here.`}</p> : null}
      {checkpoint !== null ? (
        <details>
          <summary>{`Latest checkpoint (size ${checkpoint.size}), as the registry signed it`}</summary>
          <pre className="mono">{checkpoint.note}</pre>
        </details>
      ) : (
        <p className="muted">The registry has not signed a checkpoint yet.</p>
      )}
    </section>
  );
}

/** One event: in which checkpoint it is included, with its proof to copy. */
function EventInclusion({ event, checkpoint }: { event: AuditEventInclusion; checkpoint: AuditCheckpointView | null }) {
  const proof = checkpoint === null ? null : event.proof;
  const where = proof === null || checkpoint === null ? 'not yet in a checkpoint' : `included in checkpoint of size ${checkpoint.size}`;
  return (
    <>
      <span>
        Event {event.seq} <span className="muted mono">({event.type})</span>: {where}
      </span>
      <details>
        <summary>{proof === null ? 'Leaf hash' : 'Inclusion proof'}</summary>
        <dl className="facts">
          <dt>Leaf hash</dt>
          <dd>
            <code>{event.leaf_hash}</code>
          </dd>
          {proof !== null && checkpoint !== null ? (
            <>
              <dt>Checkpoint root</dt>
              <dd>
                <code>{checkpoint.root}</code>
              </dd>
              <dt>Proof (RFC 9162, leaf {event.seq - 1})</dt>
              <dd>{proof.length === 0 ? 'empty: the event is the whole tree' : <pre className="mono">{proof.join('\n')}</pre>}</dd>
            </>
          ) : null}
        </dl>
      </details>
    </>
  );
}
