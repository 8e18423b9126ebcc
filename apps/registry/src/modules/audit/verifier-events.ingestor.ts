import { hash } from 'node:crypto';
import { isAcceptableText } from '@writ/core';
import { type AuditDraft, unrecordableReason } from './audit.service.js';
import type { QueuedVerifierEvent, VerifierEventSource } from './redis-verifier-events.js';

/** The audit event that stands for a queued decision the chain cannot hold (ADR 0016). */
export const UNRECORDABLE_EVENT_TYPE = 'verification.unrecordable';

/** What the ingestion has done and is going through, for `/readyz` and the logs. */
export interface VerifierEventsStats {
  /** Events appended (or found already appended) and acked since start. */
  ingested: number;
  /** Events that could not be appended, recorded as `verification.unrecordable` and acked. */
  deadLettered: number;
  /** Rounds that failed (read, append, step-ups or ack) since start. */
  failedRounds: number;
  /** Failed rounds in a row now: 0 while events flow. */
  failingRounds: number;
  /** The last failure's message while failing, else null. */
  lastError: string | null;
  /** When a round last succeeded (ISO 8601), null before the first. */
  lastSuccessAt: string | null;
  /** Events waiting in the queue, when the source can tell (null otherwise or when it cannot be read). */
  queueDepth: number | null;
}

export interface VerifierEventIngestorOptions {
  /** Events read (and appended) per batch. */
  batch?: number;
  /** Pause after a batch that was not full (more is probably coming, but not this instant). */
  busyDelayMs?: number;
  /** Pause after an empty read; doubles while idle, up to `maxIdleDelayMs`. */
  idleDelayMs?: number;
  maxIdleDelayMs?: number;
  /** Pause after a failure (read, append or ack); doubles up to `maxErrorDelayMs`. */
  errorDelayMs?: number;
  maxErrorDelayMs?: number;
  logger?: { warn(message: string): void; error(message: string): void };
  /**
   * Runs on every batch once its events are appended and before it is acked (the registry records
   * the step-ups the events ask for), with the drafts that were appended (never a dead-lettered
   * one). Must be idempotent: when it fails, nothing is acked and the batch comes again.
   */
  afterAppend?: (drafts: AuditDraft[]) => Promise<void>;
  /** The clock of `lastSuccessAt`. */
  now?: () => number;
}

/** The audit chain's append path, as far as ingestion needs it (AuditService). */
export interface AuditAppender {
  /** Appends a batch in order (one group commit), an outcome per draft. */
  appendAll(drafts: AuditDraft[]): Promise<PromiseSettledResult<unknown>[]>;
}

/**
 * Moves verifier decisions from the queue into the audit chain (ARCHITECTURE.md "Audit chain",
 * docs/adr/0011, 0016): read a batch, append every event with its queue id as the audit id (the
 * chain skips an id it already has, so a batch delivered twice is appended once), then ack.
 * Appends are issued in batch order, which keeps each grant's events in order.
 *
 * Poison-tolerant, per event: an event the chain cannot hold (AuditService tries it alone and it
 * still fails for what it holds, see `unrecordableReason`) is replaced by a
 * `verification.unrecordable` event with its queue id, the SHA-256 of the queued entry and the
 * reason, and acked with the others, so one bad event never holds back the rest. Any other
 * failure (the database away) acks nothing and the batch is read again after a back-off: events
 * wait, they are never dropped. Every failed round is logged (one line, with its count).
 */
export class VerifierEventIngestor {
  private readonly batch: number;
  private readonly busyDelayMs: number;
  private readonly idleDelayMs: number;
  private readonly maxIdleDelayMs: number;
  private readonly errorDelayMs: number;
  private readonly maxErrorDelayMs: number;
  private readonly logger: { warn(message: string): void; error(message: string): void };
  private readonly afterAppend: ((drafts: AuditDraft[]) => Promise<void>) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private started = false;
  private idleRounds = 0;
  private failures = 0;
  private readonly now: () => number;
  private readonly counts = { ingested: 0, deadLettered: 0, failedRounds: 0 };
  private lastError: string | null = null;
  private lastSuccessAt: number | undefined;

  constructor(
    private readonly source: VerifierEventSource,
    private readonly audit: AuditAppender,
    options: VerifierEventIngestorOptions = {},
  ) {
    this.batch = options.batch ?? 256;
    this.busyDelayMs = options.busyDelayMs ?? 100;
    this.idleDelayMs = options.idleDelayMs ?? 100;
    this.maxIdleDelayMs = options.maxIdleDelayMs ?? 1_000;
    this.errorDelayMs = options.errorDelayMs ?? 200;
    this.maxErrorDelayMs = options.maxErrorDelayMs ?? 10_000;
    this.afterAppend = options.afterAppend;
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? { warn: (m) => console.warn(`[verifier events] ${m}`), error: (m) => console.error(`[verifier events] ${m}`) };
  }

  /** Starts the loop (the first read at once). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.schedule(0);
  }

  /** Stops the loop and waits for a batch in progress to be appended and acked (or to fail). */
  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /**
   * One round: read a batch, append it, ack it. Resolves with how many events were acked; rejects
   * (acking nothing) when the read, an append or the ack fails.
   */
  async ingestOnce(): Promise<number> {
    const batch = await this.source.read(this.batch);
    if (batch.events.length === 0) return 0;
    // The batch goes in as one group, in batch order: AuditService commits it in that order.
    const drafts = batch.events.map(toDraft);
    const results = await this.audit.appendAll(drafts);
    const appended: AuditDraft[] = [];
    const unrecordable: { event: QueuedVerifierEvent; reason: string }[] = [];
    for (const [i, result] of results.entries()) {
      if (result.status === 'fulfilled') {
        appended.push(drafts[i]!);
        continue;
      }
      const reason = unrecordableReason(result.reason);
      // Not about the event (an outage): nothing is acked, the whole batch comes again.
      if (reason === undefined) throw result.reason instanceof Error ? result.reason : new Error(String(result.reason));
      unrecordable.push({ event: batch.events[i]!, reason });
    }
    // Dead letters are appended before anything is acked: a failure here also retries the batch.
    for (const { event, reason } of unrecordable) {
      const draft = deadLetterDraft(event, reason);
      const [outcome] = await this.audit.appendAll([draft]);
      if (outcome?.status !== 'fulfilled') throw outcome?.reason instanceof Error ? outcome.reason : new Error(String(outcome?.reason));
      const printableId = isAcceptableText(event.id) ? event.id : '(unprintable id)';
      this.logger.error(`verifier event ${printableId} cannot be recorded, kept as ${UNRECORDABLE_EVENT_TYPE} (entry sha256 ${String(draft.data!.entry_sha256)}): ${printable(reason)}`);
    }
    await this.afterAppend?.(appended);
    await batch.ack();
    this.counts.ingested += appended.length;
    this.counts.deadLettered += unrecordable.length;
    return batch.events.length;
  }

  /** Counters and the queue's depth (asked of the source when it can tell), for `/readyz`. */
  async stats(): Promise<VerifierEventsStats> {
    let queueDepth: number | null = null;
    if (this.source.depth) queueDepth = await this.source.depth().catch(() => null);
    return {
      ...this.counts,
      failingRounds: this.failures,
      lastError: this.failures > 0 ? this.lastError : null,
      lastSuccessAt: this.lastSuccessAt === undefined ? null : new Date(this.lastSuccessAt).toISOString(),
      queueDepth,
    };
  }

  private schedule(delayMs: number): void {
    if (!this.started) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.round().finally(() => {
        this.running = undefined;
      });
    }, delayMs);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    let next: number;
    try {
      const count = await this.ingestOnce();
      if (this.failures > 0) this.logger.warn(`verifier events flow again after ${this.failures} failed round(s)`);
      this.failures = 0;
      this.lastSuccessAt = this.now();
      if (count === 0) {
        next = Math.min(this.idleDelayMs * 2 ** Math.min(this.idleRounds, 20), this.maxIdleDelayMs);
        this.idleRounds += 1;
      } else {
        this.idleRounds = 0;
        // A full batch means more is waiting now.
        next = count >= this.batch ? 0 : this.busyDelayMs;
      }
    } catch (error) {
      this.failures += 1;
      this.counts.failedRounds += 1;
      this.lastError = printable(error instanceof Error ? error.message : String(error));
      next = Math.min(this.errorDelayMs * 2 ** Math.min(this.failures - 1, 20), this.maxErrorDelayMs);
      // Every failed round, one line each: rounds are spaced by the back-off (at most one per
      // maxErrorDelayMs once it has grown), so the log is bounded and a stuck queue never goes quiet.
      this.logger.error(`verifier events not ingested (failed round ${this.failures} in a row, ${this.counts.failedRounds} in all), retrying in ${next} ms: ${this.lastError}`);
    }
    this.schedule(next);
  }
}

/**
 * The audit draft of one queued decision: `verification.allowed` or `verification.denied`, with
 * the outcome in `data`, and the step-up the store named (`step_up_id`; on `approval_required`
 * also `step_up_expires_at`, ISO 8601).
 */
export function toDraft(event: QueuedVerifierEvent): AuditDraft {
  const body = parseBody(event.body);
  const text = (key: string): string | null => {
    const value = body?.[key];
    return typeof value === 'string' ? value : null;
  };
  const data = body && typeof body.data === 'object' && body.data !== null && !Array.isArray(body.data) ? (body.data as Record<string, unknown>) : {};
  return {
    id: event.id,
    type: event.outcome === 'allow' ? 'verification.allowed' : 'verification.denied',
    actor: text('actor'),
    subject: text('subject'),
    grant_id: text('grant_id'),
    txn: text('txn'),
    // A body that is not a JSON object is kept verbatim rather than dropped or left blocking the queue.
    data: { ...(body ? data : { unparsed_body: event.body }), outcome: event.outcome, ...stepUpData(event) },
  };
}

/**
 * The audit draft that stands for a queued event the chain cannot hold: its queue id (when the
 * id itself is printable), the SHA-256 of the entry as queued, the reason, and the grant when its
 * id is readable. Its own id derives from the queue id, so a batch read twice records it once.
 */
export function deadLetterDraft(event: QueuedVerifierEvent, reason: string): AuditDraft {
  // JSON.stringify escapes lone surrogates (ES2019), so the hashed text is always well-formed.
  const entry = JSON.stringify([event.id, event.body, event.outcome, event.stepUpId ?? null, event.stepUpExpiresAtMs ?? null]);
  const body = parseBody(event.body);
  const grantId = typeof body?.grant_id === 'string' && isAcceptableText(body.grant_id) ? body.grant_id : null;
  return {
    id: `vdl_${hash('sha256', JSON.stringify(event.id), 'base64url')}`,
    type: UNRECORDABLE_EVENT_TYPE,
    grant_id: grantId,
    data: {
      queue_id: isAcceptableText(event.id) ? event.id : null,
      entry_sha256: hash('sha256', entry, 'hex'),
      outcome: isAcceptableText(event.outcome) ? event.outcome : null,
      reason: printable(reason),
      // What a rebuild of the grant's verifier state counts (ADR 0017): an allow that could not
      // be recorded was still charged.
      ...countedFacts(body),
    },
  };
}

/** The decision's time, charge and proof, from its body's `data`, when they are plain values. */
function countedFacts(body: Record<string, unknown> | undefined): Record<string, string | number> {
  const data = body?.data;
  if (typeof data !== 'object' || data === null) return {};
  const facts: Record<string, string | number> = {};
  for (const key of ['at_ms', 'charged_minor'] as const) {
    const value = (data as Record<string, unknown>)[key];
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) facts[key] = value;
  }
  for (const key of ['proof_jkt', 'proof_jti'] as const) {
    const value = (data as Record<string, unknown>)[key];
    if (typeof value === 'string' && value.length <= 256 && isAcceptableText(value)) facts[key] = value;
  }
  return facts;
}

/** `text` with every character a log line or the chain could not carry replaced by U+FFFD, cut to 500. */
function printable(text: string): string {
  let out = '';
  for (const char of text.slice(0, 500)) out += isAcceptableText(char) ? char : '\ufffd';
  return out;
}

function stepUpData(event: QueuedVerifierEvent): Record<string, string> {
  if (event.stepUpId === undefined) return {};
  const expires = event.stepUpExpiresAtMs === undefined ? undefined : new Date(event.stepUpExpiresAtMs);
  return {
    step_up_id: event.stepUpId,
    ...(expires === undefined || Number.isNaN(expires.getTime()) ? {} : { step_up_expires_at: expires.toISOString() }),
  };
}

function parseBody(body: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
