import type { OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import type { GrantStateSnapshot } from '@writ/core';
import type { QueuedVerifierEvent } from '../audit/redis-verifier-events.js';
import type { GrantChange } from '../grants/grants.service.js';
import type { GrantStateReader } from './grant-state.reader.js';

/**
 * Where the verifiers' state is written back (the verifier store's admin side, matched
 * structurally: the registry never imports verifier code): the in-process store, a Redis Cluster
 * store handed over by tests, or {@link RedisVerifierState} on the registry's own connection.
 */
export interface VerifierStateWriter {
  /** Writes the state with its marker where the marker is absent; true when it wrote. */
  restoreGrant(snapshot: GrantStateSnapshot): Promise<boolean>;
  /** The grant's decisions still waiting in the store's queue. */
  pendingEvents(grantId: string): Promise<QueuedVerifierEvent[]>;
  /** Whether the grant's marker is there (spares rebuilding a state that is whole). */
  hasState?(grantId: string): Promise<boolean>;
}

/** Whether the verifier admin handed to the registry can also take rebuilt states. */
export function isStateWriter(value: unknown): value is VerifierStateWriter {
  const candidate = value as Partial<VerifierStateWriter> | null | undefined;
  return typeof candidate?.restoreGrant === 'function' && typeof candidate.pendingEvents === 'function';
}

/** Something that watches a store for lost state and asks the keeper to rebuild it (Redis). */
export interface StateWatch {
  start(keeper: VerifierStateKeeper): Promise<void>;
  close(): Promise<void>;
}

/** What the keeper needs of GrantsService: committed changes, to give each approved grant its state. */
export interface GrantChanges {
  onChange(listener: (change: GrantChange) => void): () => void;
}

export interface KeeperLogger {
  log(message: string): void;
  warn(message: string): void;
}

export interface VerifierStateKeeperOptions {
  reader: GrantStateReader;
  /** Where rebuilt states are written; null when no verifier store is reachable from here. */
  writer: VerifierStateWriter | null;
  grants: GrantChanges;
  logger: KeeperLogger;
  /** Watches the store for lost state (Redis). */
  watch?: StateWatch;
}

/**
 * Gives every grant the verifiers can meet a whole state (ADR 0017). A grant's state is written
 * (empty, with its marker) when it is approved; a store that lost it (restart, flushed or
 * replaced Redis) refuses its decisions with 503 until this keeper rebuilds it from the durable
 * record: on the store's request (in process, or on Redis' `restore` channel) or, when a whole
 * Redis was lost, for every live grant at once ({@link restoreAll}).
 */
export class VerifierStateKeeper implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private unsubscribe: (() => void) | undefined;

  private readonly reader: GrantStateReader;
  private readonly writer: VerifierStateWriter | null;
  private readonly grants: GrantChanges;
  private readonly logger: KeeperLogger;
  private readonly watch: StateWatch | undefined;

  constructor(options: VerifierStateKeeperOptions) {
    this.reader = options.reader;
    this.writer = options.writer;
    this.grants = options.grants;
    this.logger = options.logger;
    this.watch = options.watch;
  }

  /**
   * The verifier store's `GrantStateSource`: the grant's state from the durable record and the
   * decisions `pending` in the store's queue (read by the store before this runs); null when
   * there is no such grant.
   */
  readonly snapshot = async (grantId: string, pending: readonly QueuedVerifierEvent[]): Promise<GrantStateSnapshot | null> => {
    if (!(await this.reader.exists(grantId))) return null;
    return this.reader.snapshot(grantId, pending);
  };

  /**
   * Rebuilds one grant's state in the store where it is missing: the store's queue is read first,
   * then the chain (so a decision moving from one to the other meanwhile is seen once), then both
   * are written with the marker in one step. True when it wrote, false when the state was there
   * or the grant does not exist. Concurrent calls for one grant share one rebuild.
   */
  restore(grantId: string): Promise<boolean> {
    const writer = this.writer;
    if (writer === null) return Promise.resolve(false);
    let running = this.inFlight.get(grantId);
    if (running === undefined) {
      running = (async () => {
        if (writer.hasState && (await writer.hasState(grantId))) return false;
        const pending = await writer.pendingEvents(grantId);
        const snapshot = await this.snapshot(grantId, pending);
        return snapshot === null ? false : writer.restoreGrant(snapshot);
      })().finally(() => this.inFlight.delete(grantId));
      this.inFlight.set(grantId, running);
    }
    return running;
  }

  /** Rebuilds every live grant's state (a Redis that lost everything); returns how many were written. */
  async restoreAll(grantIds?: readonly string[]): Promise<number> {
    let written = 0;
    for (const grantId of grantIds ?? (await this.reader.liveGrants())) if (await this.restore(grantId)) written += 1;
    return written;
  }

  /** An approved grant gets its state (empty, with the marker) at once, so its first decision need not wait. */
  async onApplicationBootstrap(): Promise<void> {
    await this.watch?.start(this);
    if (this.writer === null) return;
    this.unsubscribe = this.grants.onChange((change) => {
      if (change.status !== 'approved') return;
      this.restore(change.grant_id).catch((error: unknown) => {
        // The store asks again on the grant's first decision (503 until then): nothing is lost.
        this.logger.warn(`could not write the verifier state of grant ${change.grant_id}: ${error instanceof Error ? error.message : String(error)}`);
      });
    });
  }

  async onModuleDestroy(): Promise<void> {
    this.unsubscribe?.();
    await this.watch?.close();
  }
}
