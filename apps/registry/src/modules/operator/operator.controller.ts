import { Body, Controller, Get, Header, HttpCode, Inject, Injectable, Post, UseGuards } from '@nestjs/common';
import type { CanActivate, ExecutionContext } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation } from '@nestjs/swagger';
import { EnrollmentTokenSchema, OperatorHumanListSchema, RegisteredServiceAnswerSchema } from '@writ/contracts';
import { InvalidRequest, InvalidToken, renderWwwAuthenticate } from '@writ/core';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiJsonBody, ApiJsonResponse, ApiOAuthErrors, SECURITY } from '../../http/openapi.js';
import { AgentsService, MAX_INITIAL_ACCESS_TOKEN_TTL_S } from '../agents/agents.service.js';
import { HumansService, parseBody, sameSecret } from '../humans/humans.service.js';
import { ServiceRegistrationSchema, ServicesService } from '../services/services.service.js';

/** Injection token of the operator's bearer token. */
export const OPERATOR_TOKEN = Symbol('OperatorToken');

/** RFC 6750 §3.1: a missing or wrong operator token, answered with a `Bearer` challenge. */
class OperatorTokenRejected extends InvalidToken {
  override wwwAuthenticate(): string | undefined {
    return renderWwwAuthenticate(this, { scheme: 'Bearer' });
  }
}

/** `Authorization: Bearer <operator token>`, compared in constant time. */
@Injectable()
export class OperatorGuard implements CanActivate {
  constructor(@Inject(OPERATOR_TOKEN) private readonly token: string) {}

  canActivate(context: ExecutionContext): boolean {
    const header = context.switchToHttp().getRequest<FastifyRequest>().headers.authorization ?? '';
    const match = /^Bearer +(\S+) *$/i.exec(header);
    if (!match) throw new OperatorTokenRejected('operator token is missing');
    if (!sameSecret(match[1]!, this.token)) throw new OperatorTokenRejected('operator token is not valid');
    return true;
  }
}

const EnrollmentSchema = z.strictObject({
  owner: z.string().min(1).max(256),
  ttl_s: z.number().int().min(60).max(MAX_INITIAL_ACCESS_TOKEN_TTL_S).optional(),
});

/**
 * What the registry's CLI does, over HTTP, for tools that run beside a live registry (the demo,
 * provisioning scripts): an embedded database can be opened by one process only.
 */
@Controller('operator')
@UseGuards(OperatorGuard)
@ApiBearerAuth(SECURITY.operator)
export class OperatorController {
  constructor(
    @Inject(ServicesService) private readonly services: ServicesService,
    @Inject(HumansService) private readonly humans: HumansService,
    @Inject(AgentsService) private readonly agents: AgentsService,
  ) {}

  @Post('services')
  @ApiOperation({ summary: 'Register a service provider; its verifier credential is shown once' })
  @ApiJsonBody(ServiceRegistrationSchema)
  @ApiJsonResponse(201, '{service_id, uri, credential}', RegisteredServiceAnswerSchema)
  @ApiOAuthErrors(400, 401)
  @HttpCode(201)
  @Header('cache-control', 'no-store')
  async registerService(@Body() body: unknown): Promise<{ service_id: string; uri: string; credential: string }> {
    const { service, credential } = await this.services.register(body, 'operator');
    return { service_id: service.id, uri: service.uri, credential };
  }

  @Get('humans')
  @ApiOperation({ summary: 'The humans who signed up, newest first' })
  @ApiJsonResponse(200, '{humans}', OperatorHumanListSchema)
  @ApiOAuthErrors(401)
  @Header('cache-control', 'no-store')
  async listHumans(): Promise<{ humans: { id: string; name: string; created_at: string }[] }> {
    return { humans: (await this.humans.list()).map((h) => ({ id: h.id, name: h.name, created_at: h.created_at.toISOString() })) };
  }

  @Post('enrollment-tokens')
  @ApiOperation({ summary: 'Mint a one-time enrollment token for an agent of this human' })
  @ApiJsonBody(EnrollmentSchema)
  @ApiJsonResponse(201, '{token, expires_at}', EnrollmentTokenSchema)
  @ApiOAuthErrors(400, 401)
  @HttpCode(201)
  @Header('cache-control', 'no-store')
  async mintEnrollmentToken(@Body() body: unknown): Promise<{ token: string; expires_at: string }> {
    const { owner, ttl_s } = parseBody(EnrollmentSchema, body);
    if (!(await this.humans.find(owner))) throw new InvalidRequest(`owner '${owner}' is not a human who signed up`);
    const { token, expiresAt } = await this.agents.mintInitialAccessToken(owner, ttl_s ?? 600, 'operator');
    return { token, expires_at: expiresAt.toISOString() };
  }
}
