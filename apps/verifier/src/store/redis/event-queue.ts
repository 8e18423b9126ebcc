import { randomUUID } from 'node:crypto';
import { queuedEventOfStreamEntry, queuedEventStreamFields } from '@writ/contracts';
import { grantStateKey, verifierKey } from '@writ/core';
import type { QueuedEvent } from '../store.js';
import { type RedisConnection, sleep } from './connection.js';

/** Events per pipeline when the backlog is written back. */
const BACKLOG_BATCH = 256;
/**
 * Summaries kept apart by outcome and by who they name (service, grant) once the backlog is full;
 * beyond this many, by outcome alone, so memory stays bounded however long Redis is away.
 */
const SUMMARIES_MAX = 10_000;
const SUMMARY_REASON = "the verifier's event backlog was full while Redis was unreachable: these denials are counted, not recorded one by one";

/** Denials of one outcome naming one subject and grant, counted instead of queued one by one. */
interface DenialSummary {
  outcome: string;
  subject: string | null;
  grantId: string | null;
  count: number;
  firstAtMs: number;
  lastAtMs: number;
}

export interface RedisEventQueueOptions {
  /** Events kept in memory while Redis is unreachable; beyond this denials are counted into summary events. */
  backlogMax: number;
  /** How often the grants that got events are added to the `event-grants` hint set. */
  hintFlushMs: number;
}

/**
 * The decisions' audit events on their way to the registry (one job of the Redis store): the
 * events of decisions taken before any grant was known go to the global stream, or to a backlog in
 * memory while Redis is away (written back, oldest first, when it returns); the grants whose own
 * stream got an event from the decision script are named in the `event-grants` hint set, so the
 * registry need not scan for them.
 */
export class RedisEventQueue {
  private readonly backlogMax: number;
  private readonly hintFlushMs: number;

  /** Grants whose events stream got an entry since the last hint flush. */
  private hints = new Set<string>();
  private hintTimer: NodeJS.Timeout | undefined;
  private hintFailures = 0;
  private hintFlushing: Promise<void> | undefined;

  /** Events that could not be written (Redis unreachable), oldest first. */
  private backlog: QueuedEvent[] = [];
  private backlogTimer: NodeJS.Timeout | undefined;
  private backlogFailures = 0;
  private backlogFlushing: Promise<void> | undefined;
  /** Denials beyond `backlogMax`, counted by outcome and subject (issue 19: every denial is recorded). */
  private summaries = new Map<string, DenialSummary>();
  private aggregated = 0;
  private flushAttempts = 0;

  constructor(
    private readonly connection: RedisConnection,
    private readonly prefix: string,
    options: RedisEventQueueOptions,
  ) {
    this.backlogMax = options.backlogMax;
    this.hintFlushMs = options.hintFlushMs;
    connection.onReady(() => {
      // Redis is back: write the backlog now, whatever the backoff said.
      this.flushBacklogNow();
      this.scheduleHints(0);
    });
  }

  /**
   * Never throws: when Redis cannot take the event now, it waits in memory (oldest first, up to
   * `backlogMax`) and is written as soon as Redis is back.
   */
  async queueEvent(event: QueuedEvent): Promise<void> {
    if (this.backlog.length === 0 && !this.connection.closed) {
      try {
        await this.connection.run('queue event', () => this.connection.redis.xadd(verifierKey(this.prefix, 'events'), '*', ...queuedEventStreamFields(event)));
        return;
      } catch {
        // Falls through to the backlog.
      }
    }
    this.enqueue(event);
    // Starts a write only when none is running or waiting out its backoff: a request never
    // starts one of its own (issue 19: one flush per 503 burned the CPU during an outage).
    if (this.backlogTimer === undefined) this.flushBacklogNow();
  }

  /** Notes that the grant's own stream got an event (from the decision script). */
  noteGrantEvent(grantId: string): void {
    this.hints.add(grantId);
    this.scheduleHints(this.hintFlushMs);
  }

  /** The grant's decisions still waiting in its stream, read as the registry reads them. */
  async pendingEvents(grantId: string): Promise<QueuedEvent[]> {
    const stream = grantStateKey(this.prefix, grantId, 'events');
    const entries = await this.connection.run('read pending events', () => this.connection.redis.xrange(stream, '-', '+'));
    return entries.map(([entryId, fields]) => queuedEventOfStreamEntry(stream, entryId, fields));
  }

  /** Events waiting in memory for Redis. */
  get backlogSize(): number {
    return this.backlog.length;
  }

  /** Events counted into a summary event because the backlog was full (recorded as counts, not one by one). */
  get aggregatedEvents(): number {
    return this.aggregated;
  }

  /** How many times a write of the backlog to Redis was started (issue 19: bounded per outage). */
  get backlogFlushAttempts(): number {
    return this.flushAttempts;
  }

  /** Resolves true once the backlog is empty, or false after `timeoutMs`. */
  async backlogDrained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.backlog.length > 0 || this.summaries.size > 0 || this.backlogFlushing) {
      if (Date.now() >= deadline) return false;
      await sleep(10);
    }
    return true;
  }

  /**
   * Stops the timers and writes the hints and the backlog one last time if Redis is there. Events
   * still in the backlog are lost (a warning says how many). Call once the connection is closing.
   */
  async close(): Promise<void> {
    clearTimeout(this.hintTimer);
    clearTimeout(this.backlogTimer);
    await this.hintFlushing;
    await this.backlogFlushing;
    if (this.connection.isReady()) {
      await this.flushHints().catch(() => undefined);
      await this.flushBacklog().catch(() => undefined);
    }
    const summarised = [...this.summaries.values()].reduce((sum, summary) => sum + summary.count, 0);
    if (this.backlog.length + summarised > 0) this.connection.logger.warn(`${this.backlog.length + summarised} verifier event(s) never reached Redis`);
  }

  private enqueue(event: QueuedEvent): void {
    if (this.backlog.length >= this.backlogMax) {
      this.summarise(event);
      return;
    }
    this.backlog.push(event);
  }

  /**
   * Counts a denial the full backlog cannot hold into the summary of its outcome, subject and
   * grant (issue 19: every denial the verifier answers is recorded, in bounded memory). Only
   * denials ever wait here: an allow's event is queued by the decision script, in Redis.
   */
  private summarise(event: QueuedEvent): void {
    const { subject, grantId } = namesOf(event.body);
    let key = JSON.stringify([event.outcome, subject, grantId]);
    let summary = this.summaries.get(key);
    if (summary === undefined && this.summaries.size >= SUMMARIES_MAX) {
      key = JSON.stringify([event.outcome, null, null]);
      summary = this.summaries.get(key);
    }
    const now = Date.now();
    if (summary === undefined) {
      const named = this.summaries.size < SUMMARIES_MAX;
      summary = { outcome: event.outcome, subject: named ? subject : null, grantId: named ? grantId : null, count: 0, firstAtMs: now, lastAtMs: now };
      this.summaries.set(key, summary);
    }
    summary.count += 1;
    summary.lastAtMs = now;
    this.aggregated += 1;
    if (this.aggregated === 1 || this.aggregated % 10_000 === 0) {
      this.connection.logger.warn(`verifier event backlog full (${this.backlogMax}): ${this.aggregated} denial(s) counted into summary events`);
    }
  }

  /** Moves the summaries into the (empty) backlog as one event each, to be written like any other. */
  private queueSummaries(): void {
    for (const summary of this.summaries.values()) {
      const body = JSON.stringify({
        type: 'verification',
        actor: null,
        subject: summary.subject,
        grant_id: summary.grantId,
        txn: null,
        data: { aggregated: summary.count, first_at_ms: summary.firstAtMs, last_at_ms: summary.lastAtMs, reason: SUMMARY_REASON },
      });
      this.backlog.push({ id: `vda_${randomUUID()}`, body, outcome: summary.outcome });
    }
    this.summaries = new Map();
  }

  /**
   * The one backlog flusher: starts a write unless one is running or the connection is down (its
   * `ready` event starts the next write); after a failure on a ready connection (a frozen or
   * overloaded Redis) it tries again after the connection's backoff, doubling.
   */
  private flushBacklogNow(): void {
    if (this.backlogFlushing || this.connection.closed || (this.backlog.length === 0 && this.summaries.size === 0)) return;
    if (!this.connection.isReady()) return;
    clearTimeout(this.backlogTimer);
    this.backlogTimer = undefined;
    this.backlogFlushing = this.flushBacklog()
      .then(
        () => {
          this.backlogFailures = 0;
        },
        () => {
          this.backlogFailures += 1;
          if (this.connection.closed) return;
          this.backlogTimer = setTimeout(() => {
            this.backlogTimer = undefined;
            if (this.connection.isReady()) this.flushBacklogNow();
          }, this.connection.backoff(this.backlogFailures));
          this.backlogTimer.unref();
        },
      )
      .finally(() => {
        this.backlogFlushing = undefined;
      });
  }

  /**
   * Writes the backlog batch by batch, oldest first, then the summaries of what it could not hold;
   * what fails stays, in order, for the next try.
   */
  private async flushBacklog(): Promise<void> {
    this.flushAttempts += 1;
    const stream = verifierKey(this.prefix, 'events');
    for (;;) {
      if (this.backlog.length === 0) {
        if (this.summaries.size === 0) return;
        this.queueSummaries();
      }
      const batch = this.backlog.slice(0, BACKLOG_BATCH);
      const results = await this.connection.run('write event backlog', async () => {
        const pipeline = this.connection.redis.pipeline();
        for (const e of batch) pipeline.xadd(stream, '*', ...queuedEventStreamFields(e));
        return pipeline.exec();
      });
      if (!results) throw new Error('pipeline discarded');
      const failed = batch.filter((_, i) => results[i]?.[0]);
      // New events were appended behind the batch meanwhile; the failed ones go back in front.
      this.backlog = [...failed, ...this.backlog.slice(batch.length)];
      if (failed.length > 0) throw failed.length === batch.length ? (results[0]?.[0] ?? new Error('write failed')) : new Error('part of the backlog failed');
    }
  }

  private scheduleHints(delayMs: number): void {
    if (this.hintTimer || this.hintFlushing || this.connection.closed || this.hints.size === 0) return;
    this.hintTimer = setTimeout(() => {
      this.hintTimer = undefined;
      this.hintFlushing = this.flushHints()
        .then(
          () => {
            this.hintFailures = 0;
          },
          () => {
            this.hintFailures += 1;
          },
        )
        .finally(() => {
          this.hintFlushing = undefined;
          // New hints meanwhile, or a failed flush: next round (backing off after failures).
          this.scheduleHints(this.hintFailures > 0 ? this.connection.backoff(this.hintFailures) : this.hintFlushMs);
        });
    }, delayMs);
    this.hintTimer.unref();
  }

  /** SADDs the grants noted since the last flush; on failure they are noted again. */
  private async flushHints(): Promise<void> {
    if (this.hints.size === 0) return;
    const grants = [...this.hints];
    this.hints = new Set();
    try {
      await this.connection.run('write event hints', () => this.connection.redis.sadd(verifierKey(this.prefix, 'event-grants'), ...grants));
    } catch (error) {
      // A hint is an optimisation (the registry also scans), so the set stays bounded.
      for (const grantId of grants) if (this.hints.size < this.backlogMax) this.hints.add(grantId);
      throw error;
    }
  }
}

/** The subject and grant an event's body names (strings only), read when it is summarised. */
function namesOf(body: string): { subject: string | null; grantId: string | null } {
  try {
    const parsed = JSON.parse(body) as { subject?: unknown; grant_id?: unknown } | null;
    return {
      subject: typeof parsed?.subject === 'string' ? parsed.subject : null,
      grantId: typeof parsed?.grant_id === 'string' ? parsed.grant_id : null,
    };
  } catch {
    return { subject: null, grantId: null };
  }
}
