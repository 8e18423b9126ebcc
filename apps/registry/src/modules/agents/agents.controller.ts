import { Body, Controller, Get, Header, Headers, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import { AgentAuthGuard, type AuthenticatedAgent, CurrentAgent } from '../../http/agent-auth.guard.js';
import { AgentsService, type RegisteredClient } from './agents.service.js';

/** The token in `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive). */
function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization ?? '');
  return match?.[1];
}

/** What an authenticated agent learns about itself. */
interface AgentSelf {
  client_id: string;
  owner: string;
  jkt: string;
}

@Controller()
export class AgentsController {
  constructor(@Inject(AgentsService) private readonly agents: AgentsService) {}

  /** RFC 7591 §3.1: dynamic registration, with the initial access token a human minted. */
  @Post('oauth/register')
  @HttpCode(201)
  @Header('cache-control', 'no-store')
  register(@Headers('authorization') authorization: string | undefined, @Body() metadata: unknown): Promise<RegisteredClient> {
    return this.agents.register(bearerToken(authorization), metadata);
  }

  /** Who the calling agent is, checking its client authentication (GET or POST, like OIDC userinfo). */
  @Get('agents/me')
  @UseGuards(AgentAuthGuard)
  @Header('cache-control', 'no-store')
  me(@CurrentAgent() agent: AuthenticatedAgent): AgentSelf {
    return { client_id: agent.clientId, owner: agent.owner, jkt: agent.jkt };
  }

  /** The same, with the assertion in a form or JSON body. */
  @Post('agents/me')
  @HttpCode(200)
  @UseGuards(AgentAuthGuard)
  @Header('cache-control', 'no-store')
  meByPost(@CurrentAgent() agent: AuthenticatedAgent): AgentSelf {
    return this.me(agent);
  }
}
