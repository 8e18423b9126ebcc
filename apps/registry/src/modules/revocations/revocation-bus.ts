import { EventEmitter } from 'node:events';
import type { RevocationKind } from './revocation.entity.js';

/** What is announced once a revocation is durably recorded. */
export interface RevocationEvent {
  kind: RevocationKind;
  value: string;
  expiresAt: Date;
}

export type RevocationListener = (event: RevocationEvent) => void;

/**
 * Announces committed revocations to whoever caches token state. Events are published only after
 * the durable write commits. A Redis implementation (cross-process publication) plugs in here,
 * behind this same interface, provided under {@link REVOCATION_BUS} in app.module.
 */
export interface RevocationBus {
  publish(event: RevocationEvent): void;
  /** Returns a function that removes the listener. */
  subscribe(listener: RevocationListener): () => void;
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
}
