import { parseRevocationMessage, revocationMessage } from '@writ/contracts';
import { type Clock, revocationChannel, revocationKey } from '@writ/core';
import { Cluster, type Redis } from 'ioredis';
import type { RevocationNotice } from '../store.js';
import { describe, quit, type RedisConnection } from './connection.js';

/**
 * Revocations in the verifiers' Redis (one job of the Redis store, ADR 0008): listens on the
 * revocation channel, on a connection of its own, so local caches drop what was revoked; and
 * records a revocation as the registry does (tests and the embedded mode), with the one message
 * format of @writ/contracts.
 */
export class RedisRevocations {
  private subscriber: Redis | Cluster | undefined;
  private subscribed: Promise<void> | undefined;
  private readonly listeners = new Set<(notice: RevocationNotice) => void>();

  constructor(
    private readonly connection: RedisConnection,
    private readonly prefix: string,
    private readonly clock: Clock,
  ) {}

  onRevocation(listener: (notice: RevocationNotice) => void): () => void {
    this.listeners.add(listener);
    if (!this.subscriber && !this.connection.closed) {
      const redis = this.connection.redis;
      // Subscriber mode takes a connection of its own. It may queue SUBSCRIBE until connected, and
      // ioredis subscribes again after every reconnection.
      const subscriber =
        redis instanceof Cluster
          ? redis.duplicate(undefined, { enableOfflineQueue: true })
          : redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined, connectionName: 'writ-verifier-revocations' });
      this.subscriber = subscriber;
      subscriber.on('error', () => undefined);
      const channel = revocationChannel(this.prefix);
      subscriber.on('message', (from: string, message: string) => {
        if (from === channel) this.deliver(message);
      });
      this.subscribed = subscriber.subscribe(channel).then(
        () => undefined,
        (error: unknown) => this.connection.logger.warn(`could not subscribe to ${channel}: ${describe(error)}`),
      );
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Resolves once the revocation subscription is active (after the first {@link onRevocation}). */
  async listening(): Promise<void> {
    await this.subscribed;
  }

  /** Writes what the registry writes (ADR 0008): one key per grant with the TTL left, then the announcement. */
  async revoke(notice: RevocationNotice): Promise<void> {
    const ttlMs = Math.ceil(notice.expiresAtMs - this.clock.now());
    if (ttlMs <= 0) return;
    const message = revocationMessage(notice);
    const redis = this.connection.redis;
    await this.connection.run('revoke', async () => {
      // One command per grant: on a cluster the grants' keys live in different slots.
      await Promise.all(notice.grantIds.map((grantId) => redis.set(revocationKey(this.prefix, grantId, notice.kind, notice.value), message, 'PX', ttlMs)));
      await redis.publish(revocationChannel(this.prefix), message);
    });
  }

  /** Closes the subscriber connection. */
  async close(): Promise<void> {
    if (this.subscriber) await quit(this.subscriber);
  }

  private deliver(message: string): void {
    const notice = parseRevocationMessage(message);
    if (notice === undefined) {
      this.connection.logger.warn('ignored a malformed revocation announcement');
      return;
    }
    for (const listener of this.listeners) {
      try {
        listener(notice);
      } catch (error) {
        this.connection.logger.warn(`a revocation listener failed: ${describe(error)}`);
      }
    }
  }
}
