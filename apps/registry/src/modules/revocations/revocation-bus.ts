import { EventEmitter } from 'node:events';
import type { RevocationKind } from './revocation.entity.js';

/** What is announced once a revocation is durably recorded. */
export interface RevocationEvent {
  kind: RevocationKind;
  value: string;
  /**
   * Every grant the revocation can affect (the grant itself; the grant of a txn or token; every
   * grant an agent requested or acts in): store keys live under each grant's hash tag.
   */
  grantIds: string[];
  /** When nothing it could affect is alive any more. */
  expiresAt: Date;
}

export type RevocationListener = (event: RevocationEvent) => void;

/**
 * Announces committed revocations to whoever caches token state. Events are published only after
 * the durable write commits. Provided under {@link REVOCATION_BUS} in app.module: in process, or
 * through Redis (`RedisRevocationBus`) when `REDIS_URL` is set.
 */
export interface RevocationBus {
  /** Never throws: an implementation that can fail keeps the event and retries it. */
  publish(event: RevocationEvent): void;
  /** Returns a function that removes the listener. */
  subscribe(listener: RevocationListener): () => void;
  close(): Promise<void>;
}

export const REVOCATION_BUS = Symbol('RevocationBus');

/** The in-process bus: listeners in this process only. */
export class InProcessRevocationBus implements RevocationBus {
  private readonly emitter = new EventEmitter();

  publish(event: RevocationEvent): void {
    this.emitter.emit('revocation', event);
  }

  subscribe(listener: RevocationListener): () => void {
    this.emitter.on('revocation', listener);
    return () => this.emitter.off('revocation', listener);
  }

  close(): Promise<void> {
    this.emitter.removeAllListeners();
    return Promise.resolve();
  }
}
