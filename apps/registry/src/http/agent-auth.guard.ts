import { type CanActivate, createParamDecorator, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { type Clock, InvalidClient, InvalidRequest } from '@writ/core';
import type { FastifyRequest } from 'fastify';
import { HeaderClientAuthRejected } from '../modules/agents/agents.errors.js';
import { type ClientAssertionParams, ClientAuthService, JWT_BEARER_ASSERTION_TYPE } from '../modules/agents/client-auth.service.js';
import { CLOCK } from '../tokens.js';

/** The agent a call was authenticated as. */
export interface AuthenticatedAgent {
  clientId: string;
  /** The human principal the agent acts for. */
  owner: string;
  /** RFC 7638 thumbprint of the agent's registered key. */
  jkt: string;
}

/** The `Authorization` scheme that carries a client assertion when the call has no form body (ADR 0005). */
export const PRIVATE_KEY_JWT_SCHEME = 'private_key_jwt';

type AgentRequest = FastifyRequest & { writAgent?: AuthenticatedAgent };

/** A body parameter as RFC 6749 §2.3 expects it: one string value, or absent. */
function stringParam(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new InvalidRequest(`${name} must be a single string`);
  return value;
}

/**
 * Authenticates an agent call with RFC 7523 `private_key_jwt` and puts the agent on the request
 * (read it with {@link CurrentAgent}). The assertion comes from the form or JSON body
 * (`client_assertion_type`, `client_assertion`, optional `client_id`), as at a token endpoint,
 * or else from the header `Authorization: private_key_jwt <assertion>` (ADR 0005).
 */
@Injectable()
export class AgentAuthGuard implements CanActivate {
  constructor(
    @Inject(ClientAuthService) private readonly clientAuth: ClientAuthService,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<AgentRequest>();
    const body = request.body !== null && typeof request.body === 'object' ? (request.body as Record<string, unknown>) : {};
    const header = headerAssertion(request.headers.authorization);
    const inBody = body.client_assertion !== undefined || body.client_assertion_type !== undefined;
    let params: ClientAssertionParams;
    if (inBody) {
      // RFC 6749 §2.3: a client uses one authentication method per request.
      if (header !== undefined) throw new InvalidRequest('client assertion must be sent in the body or in the Authorization header, not both');
      params = {
        client_id: stringParam(body, 'client_id'),
        client_assertion_type: stringParam(body, 'client_assertion_type'),
        client_assertion: stringParam(body, 'client_assertion'),
      };
    } else {
      params = { client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: header };
    }
    try {
      const agent = await this.clientAuth.authenticate(params, this.clock.now());
      request.writAgent = { clientId: agent.client_id, owner: agent.owner, jkt: agent.jkt };
      return true;
    } catch (error) {
      // RFC 6749 §5.2: a client that authenticated in the header gets a challenge in its scheme.
      if (error instanceof InvalidClient && header !== undefined) throw new HeaderClientAuthRejected(error.description, { cause: error });
      throw error;
    }
  }
}

/** The assertion in `Authorization: private_key_jwt <assertion>` (scheme case-insensitive, RFC 9110 §11.1). */
function headerAssertion(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +(\S*) *$/.exec(authorization);
  if (!match || match[1]!.toLowerCase() !== PRIVATE_KEY_JWT_SCHEME) return undefined;
  return match[2];
}

/**
 * The agent {@link AgentAuthGuard} authenticated.
 *
 * @example
 * ```ts
 * @UseGuards(AgentAuthGuard)
 * @Get('agents/me')
 * me(@CurrentAgent() agent: AuthenticatedAgent) { return agent; }
 * ```
 */
export const CurrentAgent = createParamDecorator((_data: unknown, context: ExecutionContext): AuthenticatedAgent => {
  const agent = context.switchToHttp().getRequest<AgentRequest>().writAgent;
  // Only reachable when a route reads the agent without the guard: a programming error.
  if (!agent) throw new Error('CurrentAgent used on a route without AgentAuthGuard');
  return agent;
});
