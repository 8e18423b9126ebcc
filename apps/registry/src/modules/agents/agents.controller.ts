import { Body, Controller, Get, Header, Headers, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiSecurity } from '@nestjs/swagger';
import { AgentSelfSchema, RegisteredClientSchema } from '@writ/contracts';
import { AgentAuthGuard, type AuthenticatedAgent, CurrentAgent } from '../../http/agent-auth.guard.js';
import { ClientAssertionFormSchema } from '../../http/oauth-forms.js';
import { ApiFormBody, ApiJsonBody, ApiJsonResponse, ApiOAuthErrors, SECURITY } from '../../http/openapi.js';
import { AgentsService, type RegisteredClient, RegistrationSchema } from './agents.service.js';

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
  @ApiOperation({ summary: 'RFC 7591 dynamic client registration of an agent' })
  @ApiBearerAuth(SECURITY.initialAccessToken)
  @ApiJsonBody(RegistrationSchema)
  @ApiJsonResponse(201, 'The RFC 7591 §3.2.1 client information response', RegisteredClientSchema)
  @ApiOAuthErrors(400, 401)
  @HttpCode(201)
  @Header('cache-control', 'no-store')
  register(@Headers('authorization') authorization: string | undefined, @Body() metadata: unknown): Promise<RegisteredClient> {
    return this.agents.register(bearerToken(authorization), metadata);
  }

  /** Who the calling agent is, checking its client authentication (GET or POST, like OIDC userinfo). */
  @Get('agents/me')
  @ApiOperation({ summary: 'The calling agent, after checking its client authentication' })
  @ApiSecurity(SECURITY.privateKeyJwt)
  @ApiJsonResponse(200, 'The agent client_id, owner and key thumbprint', AgentSelfSchema)
  @ApiOAuthErrors(400, 401)
  @UseGuards(AgentAuthGuard)
  @Header('cache-control', 'no-store')
  me(@CurrentAgent() agent: AuthenticatedAgent): AgentSelf {
    return { client_id: agent.clientId, owner: agent.owner, jkt: agent.jkt };
  }

  /** The same, with the assertion in a form or JSON body. */
  @Post('agents/me')
  @ApiOperation({ summary: 'The calling agent, with the client assertion in the body' })
  @ApiSecurity(SECURITY.privateKeyJwt)
  @ApiFormBody(ClientAssertionFormSchema, 'application/json')
  @ApiJsonResponse(200, 'The agent client_id, owner and key thumbprint', AgentSelfSchema)
  @ApiOAuthErrors(400, 401)
  @HttpCode(200)
  @UseGuards(AgentAuthGuard)
  @Header('cache-control', 'no-store')
  meByPost(@CurrentAgent() agent: AuthenticatedAgent): AgentSelf {
    return this.me(agent);
  }
}
