import { Controller, Get, Header, Inject, NotFoundException, Param, Query, Res, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiSecurity } from '@nestjs/swagger';
import { AgentStepUpSchema } from '@writ/contracts';
import type { FastifyReply } from 'fastify';
import { AgentAuthGuard, type AuthenticatedAgent, CurrentAgent } from '../../http/agent-auth.guard.js';
import { longPoll } from '../../http/long-poll.js';
import { RequestLimits } from '../../http/rate-limit.js';
import { ApiJsonResponse, ApiOAuthErrors, SECURITY } from '../../http/openapi.js';
import { MAX_WAIT_S, parseWait } from '../grants/grants.controller.js';
import { type AgentStepUp, StepUpsService } from './step-ups.service.js';

/**
 * The agent's side of a step-up: after `approval_required` with a `step_up_id`, the agent that
 * made the request waits for its human's decision here, then retries the request once approved.
 */
@Controller('step-ups')
@UseGuards(AgentAuthGuard)
@ApiSecurity(SECURITY.privateKeyJwt)
export class StepUpsController {
  constructor(
    @Inject(StepUpsService) private readonly stepUps: StepUpsService,
    @Inject(RequestLimits) private readonly limits: RequestLimits,
  ) {}

  /**
   * `?wait=N` (≤ 60 s) holds the answer until the step-up is decided or expires, or N seconds
   * pass; a step-up the registry has not heard of yet is waited for within the same N seconds. Only
   * the agent that made the request may read it: any other answers 404, exactly like an unknown id.
   */
  @Get(':id')
  @ApiOperation({ summary: 'Read a step-up this agent asked for, optionally long-polling for the human’s decision' })
  @ApiQuery({ name: 'wait', required: false, description: 'Seconds to wait for a decision', schema: { type: 'integer', minimum: 0, maximum: MAX_WAIT_S } })
  @ApiJsonResponse(200, '{step_up_id, status, grant_id, txn, amount, currency}; status is pending, approved, denied or expired', AgentStepUpSchema)
  @ApiOAuthErrors(400, 401, 404, 429)
  @Header('cache-control', 'no-store')
  async get(
    @CurrentAgent() agent: AuthenticatedAgent,
    @Param('id') id: string,
    @Query('wait') wait: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<AgentStepUp> {
    const stepUp = await longPoll(
      reply,
      parseWait(wait),
      () => this.stepUps.getForAgent(id, agent.clientId),
      (ms, signal) => this.stepUps.waitForDecision(id, agent.clientId, ms, signal),
      () => this.limits.holdLongPoll(agent.clientId),
    );
    if (!stepUp) throw new NotFoundException('step-up not found');
    return this.stepUps.agentView(stepUp);
  }
}
