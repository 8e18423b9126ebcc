import type { AuditDraft } from './audit.service.js';
import type { QueuedVerifierEvent, VerifierEventSource } from './redis-verifier-events.js';

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
   * Runs on every batch once all its events are appended and before it is acked (the registry
   * records the step-ups the events ask for). Must be idempotent: when it fails, nothing is acked
   * and the batch comes again.
   */
  afterAppend?: (drafts: AuditDraft[]) => Promise<void>;
}

/** The audit chain's append path, as far as ingestion needs it (AuditService). */
export interface AuditAppender {
  append(draft: AuditDraft): Promise<unknown>;
}

/**
 * Moves verifier decisions from the queue into the audit chain (ARCHITECTURE.md "Audit chain",
 * docs/adr/0011): read a batch, append every event with its queue id as the audit id (the chain
 * skips an id it already has, so a batch delivered twice is appended once), then ack. When an
 * append fails nothing is acked and the batch is read again after a back-off: events wait, they
 * are never dropped. Appends are issued in batch order, which keeps each grant's events in order.
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
    // All appends are queued at once, in batch order: AuditService group-commits them in that order.
    const drafts = batch.events.map(toDraft);
    const results = await Promise.allSettled(drafts.map((draft) => this.audit.append(draft)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    await this.afterAppend?.(drafts);
    await batch.ack();
    return batch.events.length;
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
      if (this.failures === 1) this.logger.error(`verifier events not ingested, retrying: ${error instanceof Error ? error.message : String(error)}`);
      next = Math.min(this.errorDelayMs * 2 ** Math.min(this.failures - 1, 20), this.maxErrorDelayMs);
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
