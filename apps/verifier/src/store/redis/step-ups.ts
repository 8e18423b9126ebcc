import { grantStateKey } from '@writ/core';
import { APPROVE_STEP_UP_SCRIPT, approveStepUpKey, defineScript } from '@writ/server/redis/scripts';
import type { RedisConnection } from './connection.js';

interface ApproveCommand {
  writVerifierApprove(key: string): Promise<unknown>;
}

/**
 * Step-ups in the verifiers' Redis (one job of the Redis store, ADR 0014): the decision script
 * creates and consumes them; this approves one with the script the registry runs too, and reads
 * one back (`status`, `request`).
 */
export class RedisStepUps {
  constructor(
    private readonly connection: RedisConnection,
    private readonly prefix: string,
  ) {
    defineScript(connection.redis, 'writVerifierApprove', APPROVE_STEP_UP_SCRIPT);
  }

  /** Marks a pending step-up approved; false when it is unknown, used or expired. */
  async approveStepUp(grantId: string, stepUpId: string): Promise<boolean> {
    const command = this.connection.redis as unknown as ApproveCommand;
    const reply = await this.connection.run('approve step-up', () => command.writVerifierApprove(approveStepUpKey(this.prefix, grantId, stepUpId)));
    return reply === 1;
  }

  /** The stored step-up: status (`pending`, `approved`, `used`) and the request JSON. */
  async stepUp(grantId: string, stepUpId: string): Promise<{ status: string; request: string } | null> {
    const [status, request] = await this.connection.run('read step-up', () => this.connection.redis.hmget(grantStateKey(this.prefix, grantId, 'stepup', stepUpId), 'status', 'request'));
    return status ? { status, request: request ?? '' } : null;
  }
}
