import { randomUUID } from 'node:crypto';
import type { OnApplicationShutdown } from '@nestjs/common';
import pg from 'pg';

/** Carries changes between the registry processes that share one database. */
export interface ChangeRelay {
  /** Sends `payload` to every process listening on `channel` (this one included). */
  publish(channel: string, payload: string): void;
  /** Calls `onMessage` with each payload sent on `channel`; returns the unsubscribe. */
  subscribe(channel: string, onMessage: (payload: string) => void): () => void;
}

/**
 * The committed changes of one kind of record (grants, step-ups), for those who wait on one of
 * them (a long-poll, woken by its id) and those who follow them all (a human's live inbox).
 *
 * Changes are delivered in this process at once. With a {@link ChangeRelay} (PostgreSQL
 * LISTEN/NOTIFY), they also reach the other registry processes on the same database, so a
 * long-poll or an inbox served by one process wakes when another one commits the decision.
 */
export class ChangeFeed<C> {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly listeners = new Set<(change: C) => void>();
  /** Tells this process's own relayed changes apart from the others'. */
  private readonly origin = randomUUID();

  constructor(
    private readonly keyOf: (change: C) => string,
    private readonly relay?: { via: ChangeRelay; channel: string },
  ) {
    relay?.via.subscribe(relay.channel, (payload) => {
      let message: { origin?: unknown; change?: unknown };
      try {
        message = JSON.parse(payload) as typeof message;
      } catch {
        return;
      }
      if (message.origin !== this.origin && message.change !== undefined) this.deliver(message.change as C);
    });
  }

  /** Calls `waiter` (once or more) when a change of `key` is committed; returns the unsubscribe. */
  wait(key: string, waiter: () => void): () => void {
    let set = this.waiters.get(key);
    if (!set) this.waiters.set(key, (set = new Set()));
    set.add(waiter);
    return () => {
      set.delete(waiter);
      if (set.size === 0 && this.waiters.get(key) === set) this.waiters.delete(key);
    };
  }

  /** Calls `listener` after every committed change; returns the unsubscribe. */
  onChange(listener: (change: C) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Wakes this process's waiters on `key` only (something changed that carries no change to tell). */
  wake(key: string): void {
    for (const wake of this.waiters.get(key) ?? []) wake();
  }

  /** A change was committed: wake this process's waiters and listeners, then the other processes'. */
  publish(change: C): void {
    this.deliver(change);
    this.relay?.via.publish(this.relay.channel, JSON.stringify({ origin: this.origin, change }));
  }

  private deliver(change: C): void {
    this.wake(this.keyOf(change));
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch {
        // A listener's failure (a closed stream) is its own business.
      }
    }
  }
}

/** How long to wait before listening again after the connection was lost. */
const RELISTEN_DELAY_MS = 1_000;

/**
 * A {@link ChangeRelay} on PostgreSQL: `pg_notify` through the pool to publish (after the change
 * committed), and one dedicated connection that LISTENs. A lost connection is replaced; changes
 * sent meanwhile are not replayed, and waiters still see them at their own timeout's re-read.
 */
export class PgChangeRelay implements ChangeRelay, OnApplicationShutdown {
  private readonly handlers = new Map<string, Set<(payload: string) => void>>();
  private client: pg.Client | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly pool: pg.Pool,
    private readonly logger: { warn(message: string): void } = { warn: (message) => console.warn(`[changes] ${message}`) },
  ) {}

  /** Opens the listening connection; resolves once every subscribed channel is listened to. */
  async start(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.url });
    client.on('notification', (message) => {
      for (const handler of this.handlers.get(message.channel) ?? []) handler(message.payload ?? '');
    });
    client.on('error', (error) => {
      this.logger.warn(`listening connection lost (${error.message}); listening again`);
      void client.end().catch(() => undefined);
      if (this.client === client) this.client = undefined;
      this.schedule();
    });
    try {
      await client.connect();
      for (const channel of this.handlers.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      this.client = client;
    } catch (error) {
      void client.end().catch(() => undefined);
      this.logger.warn(`cannot listen for changes (${error instanceof Error ? error.message : String(error)}); trying again`);
      this.schedule();
    }
  }

  publish(channel: string, payload: string): void {
    // After the commit; a failure only delays other processes until their waiters' own timeouts.
    this.pool.query('SELECT pg_notify($1, $2)', [channel, payload]).catch((error: unknown) => {
      this.logger.warn(`change not relayed to other processes: ${error instanceof Error ? error.message : String(error)}`);
    });
  }

  subscribe(channel: string, onMessage: (payload: string) => void): () => void {
    let set = this.handlers.get(channel);
    if (!set) {
      this.handlers.set(channel, (set = new Set()));
      void this.client?.query(`LISTEN ${pg.escapeIdentifier(channel)}`).catch(() => undefined);
    }
    set.add(onMessage);
    return () => set.delete(onMessage);
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }

  private schedule(): void {
    if (this.closed || this.retry !== undefined) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.start();
    }, RELISTEN_DELAY_MS);
    this.retry.unref();
  }
}
