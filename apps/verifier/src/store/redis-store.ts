import { type Clock, type GrantStateSnapshot, systemClock } from '@writ/core';
import { RedisConnection, type RedisTarget, type StoreLogger } from './redis/connection.js';
import { RedisDecisions } from './redis/decisions.js';
import { RedisEventQueue } from './redis/event-queue.js';
import { RedisRevocations } from './redis/revocations.js';
import { RedisStepUps } from './redis/step-ups.js';
import type { DecisionInput, DecisionOutcome, GrantStateSource, QueuedEvent, RevocationNotice, VerifierStore, VerifierStoreAdmin } from './store.js';

export type { RedisTarget } from './redis/connection.js';

export interface RedisVerifierStoreOptions {
  /** Put before every key and the revocation channel (`WRIT_REDIS_PREFIX`); no `{` or `}`. */
  prefix?: string;
  /** A command that has not answered after this long fails the decision (fail closed). */
  commandTimeoutMs?: number;
  /** Events kept in memory while Redis is unreachable; beyond this they are counted into summary events ({@link RedisVerifierStore.aggregatedEvents}). */
  backlogMax?: number;
  /** How often the grants that got events are added to the `event-grants` hint set. */
  hintFlushMs?: number;
  /** First reconnection / retry delay; doubles up to `maxRetryMs`. */
  minRetryMs?: number;
  maxRetryMs?: number;
  /** The clock revocation TTLs are computed from (`expiresAtMs - now`). */
  clock?: Clock;
  logger?: StoreLogger;
  /**
   * Where a grant's lost state comes from (ADR 0017) when the registry runs with this store (the
   * embedded `npm start` on Redis, tests): a decision that finds no state rebuilds it and goes
   * on. Without it, the store asks the registry on the `restore` channel and answers 503 until the
   * registry has written the state.
   */
  grantState?: GrantStateSource;
  /**
   * Without {@link grantState}: how long a decision that found no state waits for the registry to
   * write it (asked on the `restore` channel) before it answers 503. A grant's first decision can
   * race the registry's write of its empty state at approval; this absorbs that race.
   */
  stateWaitMs?: number;
}

export const DEFAULT_PREFIX = 'writ:';

/**
 * The verifier's state on Redis or Redis Cluster (docs/adr/0011): one Lua script per decision, all
 * its keys under the grant's hash tag, the decision's event queued in the same script. Fails
 * closed: any connection error, timeout or unexpected answer rejects with `StoreUnavailable`,
 * and ioredis reconnects in the background so the same store works again when Redis is back.
 *
 * Its jobs are parts of their own, sharing one connection: the connection and its readiness
 * ({@link RedisConnection}), the decision script and the grant state it needs
 * ({@link RedisDecisions}), the event queue ({@link RedisEventQueue}), revocations
 * ({@link RedisRevocations}) and step-ups ({@link RedisStepUps}).
 */
export class RedisVerifierStore implements VerifierStore, VerifierStoreAdmin {
  readonly prefix: string;
  private readonly connection: RedisConnection;
  private readonly decisions: RedisDecisions;
  private readonly events: RedisEventQueue;
  private readonly revocations: RedisRevocations;
  private readonly stepUps: RedisStepUps;

  constructor(target: RedisTarget, options: RedisVerifierStoreOptions = {}) {
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    if (/[{}]/.test(this.prefix)) throw new TypeError('the key prefix may not contain { or }');
    const clock = options.clock ?? systemClock;
    this.connection = new RedisConnection(target, {
      timeoutMs: options.commandTimeoutMs ?? 500,
      minRetryMs: options.minRetryMs ?? 50,
      maxRetryMs: options.maxRetryMs ?? 2_000,
      logger: options.logger ?? { warn: (message) => console.warn(`[verifier store] ${message}`) },
    });
    this.events = new RedisEventQueue(this.connection, this.prefix, { backlogMax: options.backlogMax ?? 100_000, hintFlushMs: options.hintFlushMs ?? 50 });
    this.decisions = new RedisDecisions(this.connection, this.prefix, this.events, { clock, grantState: options.grantState, stateWaitMs: options.stateWaitMs ?? 500 });
    this.revocations = new RedisRevocations(this.connection, this.prefix, clock);
    this.stepUps = new RedisStepUps(this.connection, this.prefix);
  }

  decide(input: DecisionInput): Promise<DecisionOutcome> {
    return this.decisions.decide(input);
  }

  /**
   * Never throws: when Redis cannot take the event now, it waits in memory (oldest first, up to
   * `backlogMax`) and is written as soon as Redis is back.
   */
  queueEvent(event: QueuedEvent): Promise<void> {
    return this.events.queueEvent(event);
  }

  /**
   * Resolves true once the connection is ready (a decision made before that fails closed), or
   * false after `timeoutMs`. For start-up: serve only once Redis answers.
   */
  whenReady(timeoutMs = 10_000): Promise<boolean> {
    return this.connection.whenReady(timeoutMs);
  }

  ready(): boolean {
    return !this.connection.closed && this.connection.isReady();
  }

  /** Events waiting in memory for Redis. */
  get backlogSize(): number {
    return this.events.backlogSize;
  }

  /** Denials counted into summary events because the backlog was full (recorded as counts, never dropped). */
  get aggregatedEvents(): number {
    return this.events.aggregatedEvents;
  }

  /** How many times a write of the backlog to Redis was started: one flusher, with backoff, never one per request. */
  get backlogFlushAttempts(): number {
    return this.events.backlogFlushAttempts;
  }

  /** Resolves true once the backlog is empty, or false after `timeoutMs`. */
  backlogDrained(timeoutMs: number): Promise<boolean> {
    return this.events.backlogDrained(timeoutMs);
  }

  onRevocation(listener: (notice: RevocationNotice) => void): () => void {
    return this.revocations.onRevocation(listener);
  }

  /** Resolves once the revocation subscription is active (after the first {@link onRevocation}). */
  listening(): Promise<void> {
    return this.revocations.listening();
  }

  /** Writes what the registry writes (ADR 0008): one key per grant with the TTL left, then the announcement. */
  revoke(notice: RevocationNotice): Promise<void> {
    return this.revocations.revoke(notice);
  }

  approveStepUp(grantId: string, stepUpId: string): Promise<boolean> {
    return this.stepUps.approveStepUp(grantId, stepUpId);
  }

  stepUp(grantId: string, stepUpId: string): Promise<{ status: string; request: string } | null> {
    return this.stepUps.stepUp(grantId, stepUpId);
  }

  restoreGrant(snapshot: GrantStateSnapshot): Promise<boolean> {
    return this.decisions.restoreGrant(snapshot);
  }

  pendingEvents(grantId: string): Promise<QueuedEvent[]> {
    return this.events.pendingEvents(grantId);
  }

  /**
   * Writes the hints and the backlog one last time if Redis is there, then closes the connections
   * the store opened. Events still in the backlog are lost (a warning says how many).
   */
  async close(): Promise<void> {
    if (this.connection.closed) return;
    this.connection.beginClosing();
    this.decisions.close();
    await this.events.close();
    await Promise.all([this.revocations.close(), this.connection.close()]);
  }
}
