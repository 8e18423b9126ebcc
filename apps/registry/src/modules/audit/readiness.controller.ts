import { Controller, Get, Header, Inject, Res } from '@nestjs/common';
import { ApiOperation } from '@nestjs/swagger';
import { RegistryReadinessSchema } from '@writ/contracts';
import type { FastifyReply } from 'fastify';
import { ApiJsonResponse } from '../../http/openapi.js';
import { Database } from '../../infra/database.service.js';
import type { VerifierEventsStats } from './verifier-events.ingestor.js';
import { VerifierEventsRunner } from './verifier-events.module-hooks.js';

/** Failed ingestion rounds in a row after which `/readyz` names the ingestion as a reason. */
const FAILING_ROUNDS_REPORTED = 3;

export interface RegistryReadiness {
  ready: boolean;
  reasons?: string[];
  /** The ingestion of verifier decisions into the audit chain; null when this process runs none. */
  verifier_events: VerifierEventsStats | null;
}

/**
 * `GET /readyz`: whether the registry can serve (its database answers, and the verifiers' Redis when
 * it reads their decisions from one), and what the ingestion of
 * verifier decisions is going through (issue 16, 4: queue depth, failed rounds and dead-lettered
 * events are visible, not only in the log). A stuck ingestion is named as a reason and answers
 * 503: step-ups stop reaching people and the audit chain stops growing while it lasts.
 */
@Controller()
export class ReadinessController {
  constructor(
    @Inject(Database) private readonly db: Database,
    @Inject(VerifierEventsRunner) private readonly events: VerifierEventsRunner,
  ) {}

  @Get('readyz')
  @ApiOperation({ summary: 'Readiness: the database answers, and the state of the verifier-event ingestion' })
  @ApiJsonResponse(200, 'Ready', RegistryReadinessSchema)
  @ApiJsonResponse(503, 'Not ready, with the reasons', RegistryReadinessSchema)
  @Header('cache-control', 'no-store')
  async readyz(@Res({ passthrough: true }) reply: FastifyReply): Promise<RegistryReadiness> {
    const reasons: string[] = [];
    const [database, stats] = await Promise.all([
      this.db.query('SELECT 1').then(
        () => true,
        () => false,
      ),
      this.events.stats(),
    ]);
    if (!database) reasons.push('the database cannot be reached');
    if (!this.events.redisReachable()) reasons.push("the verifiers' Redis cannot be reached: their decisions wait there or in the verifiers' memory");
    if (stats && stats.failingRounds >= FAILING_ROUNDS_REPORTED) reasons.push(`verifier events are not being ingested (${stats.failingRounds} failed rounds in a row): ${stats.lastError ?? 'unknown error'}`);
    if (reasons.length === 0) return { ready: true, verifier_events: stats };
    void reply.status(503);
    return { ready: false, reasons, verifier_events: stats };
  }
}
