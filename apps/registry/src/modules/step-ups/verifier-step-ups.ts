import type { OnApplicationShutdown } from '@nestjs/common';
import { APPROVE_STEP_UP_SCRIPT, approveStepUpKey, defineScript } from '@writ/server/redis/scripts';
import { Redis } from 'ioredis';

/**
 * Where an approved step-up is written so that the verifiers honour the retried request once: the
 * verifiers' store. In one process it is the in-process store itself (its `approveStepUp`, handed
 * to `createRegistry` as `verifierAdmin`); with `REDIS_URL`, {@link RedisVerifierStepUps}. The
 * registry never imports verifier code: the shape is matched structurally.
 */
export interface VerifierStepUps {
  /** Marks a pending step-up approved, atomically; false when it is unknown, used or expired there. */
  approveStepUp(grantId: string, stepUpId: string): Promise<boolean>;
}

export const VERIFIER_STEP_UPS = Symbol('VerifierStepUps');

interface ApproveCommand {
  writRegistryApproveStepUp(key: string): Promise<unknown>;
}

/**
 * Approves step-ups in the verifiers' Redis, under the key layout of `@writ/core` store-keys
 * (`<prefix>{g:<grant>}:stepup:<id>`, hash `status`), with the verifiers' own script
 * (approve-step-up.lua of `@writ/server`), so a step-up that the verifier
 * has meanwhile expired or that was already approved is never flipped. Its own connection; a
 * command fails rather than waits while Redis is away, and the human is told to try again.
 */
export class RedisVerifierStepUps implements VerifierStepUps, OnApplicationShutdown {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly prefix: string,
  ) {
    this.redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: 1, commandTimeout: 2_000, connectionName: 'writ-registry-step-ups' });
    // Failures surface as rejected approvals, which the caller turns into a 503 for the human.
    this.redis.on('error', () => undefined);
    defineScript(this.redis, 'writRegistryApproveStepUp', APPROVE_STEP_UP_SCRIPT);
  }

  async approveStepUp(grantId: string, stepUpId: string): Promise<boolean> {
    const reply = await (this.redis as unknown as ApproveCommand).writRegistryApproveStepUp(approveStepUpKey(this.prefix, grantId, stepUpId));
    return reply === 1;
  }

  onApplicationShutdown(): void {
    this.redis.disconnect();
  }
}
