import { queuedEventOfStreamEntry, queuedEventStreamFields } from '@writ/contracts';
import { grantStateKey, verifierKey } from '@writ/core';
import type { QueuedEvent } from '../store.js';
import { type RedisConnection, sleep } from './connection.js';

/** Events per pipeline when the backlog is written back. */
const BACKLOG_BATCH = 256;

export interface RedisEventQueueOptions {
  /** Events kept in memory while Redis is unreachable; beyond this they are counted as dropped. */
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
  private dropped = 0;
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

  /** Events lost because the backlog was full. */
  get droppedEvents(): number {
    return this.dropped;
  }

  /** How many times a write of the backlog to Redis was started (issue 19: bounded per outage). */
  get backlogFlushAttempts(): number {
    return this.flushAttempts;
  }

  /** Resolves true once the backlog is empty, or false after `timeoutMs`. */
  async backlogDrained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.backlog.length > 0 || this.backlogFlushing) {
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
    if (this.backlog.length > 0) this.connection.logger.warn(`${this.backlog.length} verifier event(s) never reached Redis`);
  }

  private enqueue(event: QueuedEvent): void {
    if (this.backlog.length >= this.backlogMax) {
      this.dropped += 1;
      if (this.dropped === 1 || this.dropped % 10_000 === 0) this.connection.logger.warn(`verifier event backlog full (${this.backlogMax}): ${this.dropped} event(s) dropped`);
      return;
    }
    this.backlog.push(event);
  }

  /**
   * The one backlog flusher: starts a write unless one is running; after a failure it tries again
   * after the connection's backoff (doubling), and only while the connection is ready, since its
   * `ready` event starts the next write anyway.
   */
  private flushBacklogNow(): void {
    if (this.backlogFlushing || this.connection.closed || this.backlog.length === 0) return;
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

  /** Writes the backlog batch by batch, oldest first; what fails stays, in order, for the next try. */
  private async flushBacklog(): Promise<void> {
    this.flushAttempts += 1;
    const stream = verifierKey(this.prefix, 'events');
    while (this.backlog.length > 0) {
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
