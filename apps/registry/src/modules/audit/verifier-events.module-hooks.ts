import type { OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { RegistryConfig } from '../../config/config.js';
import type { AuditDraft, AuditService } from './audit.service.js';
import { RedisVerifierEventSource, type VerifierEventSource } from './redis-verifier-events.js';
import { VerifierEventIngestor, type VerifierEventsStats } from './verifier-events.ingestor.js';

export interface VerifierEventsRunnerOptions {
  config: Pick<RegistryConfig, 'redisUrl' | 'redisPrefix'>;
  audit: AuditService;
  /** The in-process verifier store's queue, when verifier and registry share a process. */
  inProcess?: VerifierEventSource;
  /** Runs on each appended batch before it is acked (the step-ups it asks for). */
  afterAppend?: (drafts: AuditDraft[]) => Promise<void>;
}

/**
 * Runs the ingestion of verifier decisions into the audit chain for the app's lifetime: from
 * Redis when `REDIS_URL` is set, from the in-process store the caller hands over when verifier
 * and registry share a process (`npm start` on embedded storage), not at all otherwise. Stops
 * before the database closes, leaving what it has not acked in the queue.
 */
export class VerifierEventsRunner implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly ingestor: VerifierEventIngestor | undefined;
  private readonly redis: Redis | undefined;
  /** Whether the verifiers' Redis answers: unknown until it first connected or failed. */
  private redisUp: boolean | undefined;

  constructor({ config, audit, inProcess, afterAppend }: VerifierEventsRunnerOptions) {
    let source = inProcess;
    if (source === undefined && config.redisUrl !== undefined) {
      // Its own connection: a blocked or slow read never delays revocation publishing.
      this.redis = new Redis(config.redisUrl, { lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: 1 });
      // Connection errors surface as failed reads, which the ingestor logs and retries; /readyz
      // names the connection while it is down (issue 19).
      this.redis.on('error', () => {
        this.redisUp = false;
      });
      this.redis.on('close', () => {
        this.redisUp = false;
      });
      this.redis.on('ready', () => {
        this.redisUp = true;
      });
      source = new RedisVerifierEventSource(this.redis, { prefix: config.redisPrefix });
    }
    this.ingestor = source === undefined ? undefined : new VerifierEventIngestor(source, audit, afterAppend ? { afterAppend } : {});
  }

  /** The ingestion's counters and queue depth, or null when this process ingests nothing. */
  stats(): Promise<VerifierEventsStats | null> {
    return this.ingestor ? this.ingestor.stats() : Promise.resolve(null);
  }

  /** False while the verifiers' Redis this process reads from cannot be reached; true otherwise (or when it reads none). */
  redisReachable(): boolean {
    return this.redisUp !== false;
  }

  onApplicationBootstrap(): void {
    this.ingestor?.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.ingestor?.stop();
    this.redis?.disconnect();
  }
}
