import { Body, Controller, Get, Header, HttpCode, Inject, NotFoundException, Param, Post, Query, Res, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiSecurity } from '@nestjs/swagger';
import { AgentGrantSchema, RequestedGrantAnswerSchema } from '@writ/contracts';
import { InvalidRequest } from '@writ/core';
import type { FastifyReply } from 'fastify';
import { AgentAuthGuard, type AuthenticatedAgent, CurrentAgent } from '../../http/agent-auth.guard.js';
import { longPoll } from '../../http/long-poll.js';
import { RequestLimits } from '../../http/rate-limit.js';
import { ApiJsonBody, ApiJsonResponse, ApiOAuthErrors, SECURITY } from '../../http/openapi.js';
import type { GrantEntity } from './grant.entity.js';
import { GrantRequestSchema, GrantsService } from './grants.service.js';

/** The longest long-poll an agent may ask for, in seconds. */
export const MAX_WAIT_S = 60;

/** A grant as its agent sees it. */
export function grantView(grant: GrantEntity) {
  return {
    grant_id: grant.id,
    status: grant.status,
    version: grant.version,
    service_id: grant.service_id,
    authorization_details: grant.authorization_details,
    envelope: grant.envelope,
    purpose: grant.purpose,
    duration_s: grant.duration_s,
    delegation: grant.delegation,
    requested_at: grant.requested_at.toISOString(),
    decided_at: grant.decided_at?.toISOString() ?? null,
    expires_at: grant.expires_at.toISOString(),
    revoked_at: grant.revoked_at?.toISOString() ?? null,
  };
}

/** `?wait=` of a long-poll: whole seconds from 0 to {@link MAX_WAIT_S}. */
export function parseWait(wait: string | undefined): number {
  if (wait === undefined || wait === '') return 0;
  if (!/^\d{1,2}$/.test(wait) || Number(wait) > MAX_WAIT_S) throw new InvalidRequest(`wait must be a whole number of seconds from 0 to ${MAX_WAIT_S}`);
  return Number(wait);
}

/**
 * The body without the client-authentication parameters the guard has already consumed
 * (RFC 6749 §2.3 lets them travel in the body), so the strict request schema sees only the request.
 */
function withoutClientAuth(body: unknown): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  const { client_assertion: _a, client_assertion_type: _t, client_id: _c, ...rest } = body as Record<string, unknown>;
  return rest;
}

/** Agents request grants and read (or long-poll) their own; deciding is the approval flow's. */
@Controller('grants')
@UseGuards(AgentAuthGuard)
@ApiSecurity(SECURITY.privateKeyJwt)
export class GrantsController {
  constructor(
    @Inject(GrantsService) private readonly grants: GrantsService,
    @Inject(RequestLimits) private readonly limits: RequestLimits,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Request a grant; it waits for the human approval' })
  @ApiJsonBody(GrantRequestSchema, 'The client assertion may also travel in this body (RFC 6749 §2.3) instead of the Authorization header.')
  @ApiJsonResponse(201, 'The pending grant: grant_id, status, expires_at', RequestedGrantAnswerSchema)
  @ApiOAuthErrors(400, 401)
  @HttpCode(201)
  @Header('cache-control', 'no-store')
  async request(@CurrentAgent() agent: AuthenticatedAgent, @Body() body: unknown): Promise<{ grant_id: string; status: string; expires_at: string }> {
    const grant = await this.grants.request(agent.clientId, agent.owner, withoutClientAuth(body));
    return { grant_id: grant.id, status: grant.status, expires_at: grant.expires_at.toISOString() };
  }

  /**
   * `?wait=N` (≤ 60 s) holds the answer until the grant leaves pending or N seconds pass. Another
   * agent's grant answers 404, exactly like an unknown id, so ids cannot be probed.
   */
  @Get(':id')
  @ApiOperation({ summary: "Read one of the agent's grants, optionally long-polling for its decision" })
  @ApiQuery({ name: 'wait', required: false, description: 'Seconds to wait for a decision', schema: { type: 'integer', minimum: 0, maximum: MAX_WAIT_S } })
  @ApiJsonResponse(200, 'The grant as its agent sees it', AgentGrantSchema)
  @ApiOAuthErrors(400, 401, 404, 429)
  @Header('cache-control', 'no-store')
  async get(
    @CurrentAgent() agent: AuthenticatedAgent,
    @Param('id') id: string,
    @Query('wait') wait: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ReturnType<typeof grantView>> {
    const grant = await longPoll(
      reply,
      parseWait(wait),
      () => this.grants.getForAgent(id, agent.clientId),
      (ms, signal) => this.grants.waitForDecision(id, agent.clientId, ms, signal),
      () => this.limits.holdLongPoll(agent.clientId),
    );
    if (!grant) throw new NotFoundException('grant not found');
    return grantView(grant);
  }
}
