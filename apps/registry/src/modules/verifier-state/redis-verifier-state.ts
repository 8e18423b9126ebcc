import { queuedEventOfStreamEntry } from '@writ/contracts';
import { type GrantStateSnapshot, grantStateKey, verifierKey } from '@writ/core';
import { defineScript, RESTORE_GRANT_SCRIPT, restoreGrantCommand } from '@writ/server/redis/scripts';
import { Redis } from 'ioredis';
import type { QueuedVerifierEvent } from '../audit/redis-verifier-events.js';
import type { KeeperLogger, StateWatch, VerifierStateKeeper, VerifierStateWriter } from './verifier-state.keeper.js';

/** A rebuilt state lives this long without an allow: longer than any grant (ADR 0011). */
const STATE_TTL_MS = 31 * 24 * 3600_000;

interface RestoreCommand {
  writRegistryRestoreGrant(numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
}

export interface RedisVerifierStateOptions {
  prefix: string;
  /** How often the epoch key is looked at (a Redis that lost everything is found within this). */
  checkEveryMs?: number;
  logger: KeeperLogger;
  clock: { now(): number };
}

/**
 * The verifiers' Redis as the registry sees it for state recovery (ADR 0017), on connections of
 * its own:
 * - writes a grant's rebuilt state with the shared script of `@writ/server` (only where the
 *   grant's marker is absent), and reads what waits in the grant's event stream;
 * - watches the `epoch` key, which it writes once every live grant has its state: when it is
 *   missing (Redis restarted empty, `FLUSHALL`, a fail-over to an empty replica) every live
 *   grant's state is rebuilt, every unexpired revocation with it, then the epoch is written again;
 * - listens on the `restore` channel, where a verifier names a grant it found without state
 *   (on a Redis Cluster, one master's loss leaves the epoch on another).
 */
export class RedisVerifierState implements VerifierStateWriter, StateWatch {
  private readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly prefix: string;
  private readonly checkEveryMs: number;
  private readonly logger: KeeperLogger;
  private readonly clock: { now(): number };
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private keeper: VerifierStateKeeper | undefined;
  private stopped = false;
  private failures = 0;

  constructor(url: string, options: RedisVerifierStateOptions) {
    this.prefix = options.prefix;
    this.checkEveryMs = options.checkEveryMs ?? 1_000;
    this.logger = options.logger;
    this.clock = options.clock;
    this.redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: 1, commandTimeout: 5_000, connectionName: 'writ-registry-verifier-state' });
    this.redis.on('error', () => undefined);
    defineScript(this.redis, 'writRegistryRestoreGrant', RESTORE_GRANT_SCRIPT);
    this.subscriber = this.redis.duplicate({ maxRetriesPerRequest: null, commandTimeout: undefined, connectionName: 'writ-registry-restore-requests' });
    this.subscriber.on('error', () => undefined);
  }

  async restoreGrant(snapshot: GrantStateSnapshot): Promise<boolean> {
    const { keys, args } = restoreGrantCommand(this.prefix, snapshot, this.clock.now(), STATE_TTL_MS);
    const reply = await (this.redis as unknown as RestoreCommand).writRegistryRestoreGrant(keys.length, ...keys, ...args);
    return reply === 1;
  }

  async hasState(grantId: string): Promise<boolean> {
    return (await this.redis.hexists(grantStateKey(this.prefix, grantId, 'counters'), 'state')) === 1;
  }

  async pendingEvents(grantId: string): Promise<QueuedVerifierEvent[]> {
    // Read as the ingestion reads them, so each has the id it will have in the chain.
    const stream = grantStateKey(this.prefix, grantId, 'events');
    const entries = await this.redis.xrange(stream, '-', '+');
    return entries.map(([entryId, fields]) => queuedEventOfStreamEntry(stream, entryId, fields));
  }

  /** Starts watching the epoch (a first check at once) and listening for restore requests. */
  async start(keeper: VerifierStateKeeper): Promise<void> {
    this.keeper = keeper;
    const channel = verifierKey(this.prefix, 'restore');
    this.subscriber.on('message', (from: string, grantId: string) => {
      if (from !== channel || grantId.length === 0 || grantId.length > 256) return;
      keeper.restore(grantId).then(
        (wrote) => {
          if (wrote) this.logger.log(`rebuilt the verifier state of grant ${grantId}, which a verifier found missing`);
        },
        (error: unknown) => this.logger.warn(`could not rebuild the verifier state of grant ${grantId}: ${describe(error)}`),
      );
    });
    await this.subscriber.subscribe(channel).catch((error: unknown) => this.logger.warn(`could not listen on ${channel}: ${describe(error)}`));
    this.schedule(0);
  }

  /** Resolves after the check in progress, if any (tests). */
  async settled(): Promise<void> {
    await this.checking;
  }

  /**
   * One look at the epoch: when Redis has none, rebuild every live grant, then write it. Returns
   * how many grants were rebuilt (0 when the epoch was there).
   */
  async checkEpoch(): Promise<number> {
    const keeper = this.keeper;
    if (keeper === undefined) return 0;
    const epoch = verifierKey(this.prefix, 'epoch');
    if ((await this.redis.exists(epoch)) === 1) return 0;
    const started = this.clock.now();
    const written = await keeper.restoreAll();
    await this.redis.set(epoch, new Date(started).toISOString());
    if (written > 0) this.logger.warn(`the verifiers' Redis had lost its state: rebuilt ${written} live grant(s) from the audit log and revocations`);
    return written;
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.checking;
    this.subscriber.disconnect();
    this.redis.disconnect();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.checking = this.checkEpoch()
        .then(
          () => {
            if (this.failures > 0) this.logger.log(`verifier state checks work again after ${this.failures} failure(s)`);
            this.failures = 0;
          },
          (error: unknown) => {
            this.failures += 1;
            this.logger.warn(`verifier state check failed (${this.failures} in a row), retrying: ${describe(error)}`);
          },
        )
        .finally(() => {
          this.checking = undefined;
          this.schedule(this.checkEveryMs);
        });
    }, delayMs);
    this.timer.unref();
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
