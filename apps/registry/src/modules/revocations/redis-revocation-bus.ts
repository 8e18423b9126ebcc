import { Logger, type LoggerService, type OnApplicationShutdown } from '@nestjs/common';
import { parseRevocationMessage, revocationMessage } from '@writ/contracts';
import { type Clock, grantHashTag, revocationChannel, revocationKey, systemClock } from '@writ/core';
import { Redis } from 'ioredis';
import type { RevocationBus, RevocationEvent, RevocationListener } from './revocation-bus.js';

export interface RedisRevocationBusOptions {
  /** `redis://` or `rediss://`. */
  url: string;
  /** Put before every key and the channel (`WRIT_REDIS_PREFIX`). */
  prefix: string;
  clock?: Clock;
  /** First delay before a failed publication is tried again; it doubles up to `maxRetryMs`. */
  minRetryMs?: number;
  maxRetryMs?: number;
  logger?: Pick<LoggerService, 'log' | 'warn' | 'error'>;
}

/** Events per pipeline: bounds one round trip when a long queue (or a resync) is sent. */
const BATCH = 256;

/**
 * Publishes revocations to Redis (ARCHITECTURE.md "Revocation", docs/adr/0008): for each affected
 * grant, `SET <prefix>{g:<grant>}:revoked:<kind>:<value> <json> PX <ms left>`, then
 * `PUBLISH <prefix>revocations <json>`.
 *
 * A revocation is never lost to a Redis failure: `publish` only queues; the queue is written in the
 * background and whatever fails stays queued and is tried again with exponential backoff (and at
 * once when the connection comes back), until Redis has it. A process that stops first leaves it to
 * the next start-up, which re-publishes every unexpired row (RevocationRecorder.resync).
 */
export class RedisRevocationBus implements RevocationBus, OnApplicationShutdown {
  private readonly redis: Redis;
  private subscriber: Redis | undefined;
  private subscribed: Promise<void> | undefined;
  private readonly listeners = new Set<RevocationListener>();
  /** Not yet in Redis, by `kind:value`; a later event for the same revocation merges into the queued one. */
  private readonly queue = new Map<string, RevocationEvent>();
  private flushing: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private readonly prefix: string;
  private readonly channel: string;
  private readonly clock: Clock;
  private readonly minRetryMs: number;
  private readonly maxRetryMs: number;
  private readonly logger: Pick<LoggerService, 'log' | 'warn' | 'error'>;
  /** One warning per outage, not one per reconnection attempt. */
  private connectionWarned = false;

  constructor(options: RedisRevocationBusOptions) {
    this.prefix = options.prefix;
    this.channel = revocationChannel(options.prefix);
    this.clock = options.clock ?? systemClock;
    this.minRetryMs = options.minRetryMs ?? 100;
    this.maxRetryMs = options.maxRetryMs ?? 10_000;
    this.logger = options.logger ?? new Logger('RevocationBus');
    this.redis = new Redis(options.url, {
      // The queue here retries, not ioredis: a command fails at once while Redis is away, and its event stays queued.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => this.backoff(attempt),
      connectionName: 'writ-registry-revocations',
    });
    this.watch(this.redis, 'publisher');
    this.redis.on('ready', () => this.kick());
  }

  publish(event: RevocationEvent): void {
    const id = `${event.kind}:${event.value}`;
    // A grant id that cannot name a key would fail every retry and hold the whole queue back.
    const unusable = event.grantIds.filter((grantId) => !isKeyable(grantId));
    if (unusable.length > 0) {
      this.logger.error(`revocation ${id}: no key for grant id(s) ${unusable.join(', ')}`);
      event = { ...event, grantIds: event.grantIds.filter(isKeyable) };
    }
    const queued = this.queue.get(id);
    this.queue.set(id, queued ? merge(queued, event) : event);
    if (this.closed) {
      this.logger.warn(`revocation ${id} published after close: the next start-up re-publishes it`);
      return;
    }
    this.kick();
  }

  subscribe(listener: RevocationListener): () => void {
    this.listeners.add(listener);
    if (!this.subscriber && !this.closed) {
      // A connection in subscriber mode can do nothing else, so it is a second one. It queues its
      // SUBSCRIBE until connected and re-subscribes after every reconnection (ioredis autoResubscribe).
      const subscriber = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, connectionName: 'writ-registry-revocations-sub' });
      this.subscriber = subscriber;
      this.watch(subscriber, 'subscriber');
      subscriber.on('message', (channel: string, message: string) => {
        if (channel === this.channel) this.deliver(message);
      });
      this.subscribed = subscriber.subscribe(this.channel).then(
        () => undefined,
        (error: unknown) => {
          this.logger.error(`could not subscribe to ${this.channel}: ${describe(error)}`);
        },
      );
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Resolves once the subscriber connection listens on the channel (after the first {@link subscribe}). */
  async listening(): Promise<void> {
    await this.subscribed;
  }

  /** How many revocations are not yet in Redis. */
  get pending(): number {
    return this.queue.size;
  }

  /** Resolves true once nothing is queued, or false after `timeoutMs`. */
  async drained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.size > 0 || this.flushing) {
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return true;
  }

  /**
   * Stops retrying and closes both connections. Whatever is still queued is in the `revocations`
   * table, and the next start-up re-publishes it.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.flushing;
    if (this.queue.size > 0) this.logger.warn(`${this.queue.size} revocation(s) not yet in Redis at shutdown: the next start-up re-publishes them`);
    await Promise.all([quit(this.redis), this.subscriber ? quit(this.subscriber) : undefined]);
  }

  onApplicationShutdown(): Promise<void> {
    return this.close();
  }

  private kick(): void {
    if (this.flushing || this.closed || this.queue.size === 0) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
    });
  }

  /** Writes the queue batch by batch; on a failure, keeps it all and schedules the next try. */
  private async flush(): Promise<void> {
    while (this.queue.size > 0 && !this.closed) {
      const batch = [...this.queue.entries()].slice(0, BATCH);
      try {
        await this.write(batch.map(([, event]) => event));
      } catch (error) {
        this.failures += 1;
        const delay = this.backoff(this.failures);
        if (this.failures === 1) this.logger.warn(`revocations not yet in Redis (${this.queue.size} queued), retrying: ${describe(error)}`);
        this.retryTimer = setTimeout(() => this.kick(), delay);
        this.retryTimer.unref();
        return;
      }
      // An event that a newer publish merged into while it was being written stays for the next round.
      for (const [id, event] of batch) if (this.queue.get(id) === event) this.queue.delete(id);
      if (this.failures > 0) this.logger.log(`revocations reached Redis after ${this.failures} failed attempt(s)`);
      this.failures = 0;
    }
  }

  private async write(events: RevocationEvent[]): Promise<void> {
    const now = this.clock.now();
    const pipeline = this.redis.pipeline();
    for (const event of events) {
      const ttlMs = event.expiresAt.getTime() - now;
      // Nothing it could affect is alive any more: no key, and nothing to announce.
      if (ttlMs <= 0) continue;
      // What is written under each key and sent on the channel: the one message of @writ/contracts.
      const message = revocationMessage({ kind: event.kind, value: event.value, grantIds: event.grantIds, expiresAtMs: event.expiresAt.getTime() });
      for (const grantId of event.grantIds) pipeline.set(revocationKey(this.prefix, grantId, event.kind, event.value), message, 'PX', ttlMs);
      pipeline.publish(this.channel, message);
    }
    if (pipeline.length === 0) return;
    const results = await pipeline.exec();
    if (!results) throw new Error('pipeline was discarded');
    for (const [error] of results) if (error) throw error;
  }

  private deliver(message: string): void {
    const parsed = parseRevocationMessage(message);
    if (parsed === undefined) {
      this.logger.warn(`ignored a malformed message on ${this.channel}`);
      return;
    }
    const event: RevocationEvent = { kind: parsed.kind, value: parsed.value, grantIds: parsed.grantIds, expiresAt: new Date(parsed.expiresAtMs) };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error(`a revocation listener failed: ${describe(error)}`);
      }
    }
  }

  private watch(connection: Redis, role: string): void {
    connection.on('error', (error: unknown) => {
      if (this.connectionWarned || this.closed) return;
      this.connectionWarned = true;
      this.logger.warn(`Redis ${role} connection: ${describe(error)}; reconnecting`);
    });
    connection.on('ready', () => {
      if (this.connectionWarned) this.logger.log(`Redis ${role} connection ready`);
      this.connectionWarned = false;
    });
  }

  private backoff(attempt: number): number {
    return Math.min(this.minRetryMs * 2 ** Math.min(attempt - 1, 20), this.maxRetryMs);
  }
}

/** The same revocation published twice: every grant either named, until the later expiry. */
function merge(a: RevocationEvent, b: RevocationEvent): RevocationEvent {
  return {
    kind: b.kind,
    value: b.value,
    grantIds: [...new Set([...a.grantIds, ...b.grantIds])],
    expiresAt: a.expiresAt > b.expiresAt ? a.expiresAt : b.expiresAt,
  };
}

/** Whether keys can be made under this grant's hash tag (an id with a brace cannot). */
export function isKeyable(grantId: string): boolean {
  try {
    grantHashTag(grantId);
    return true;
  } catch {
    return false;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** QUIT when connected (pending replies first), otherwise just drop the connection. */
async function quit(connection: Redis): Promise<void> {
  if (connection.status === 'end') return;
  if (connection.status !== 'ready') {
    connection.disconnect();
    return;
  }
  await connection.quit().catch(() => connection.disconnect());
}
