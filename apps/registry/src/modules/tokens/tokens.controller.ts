import { Body, Controller, Header, Headers, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiSecurity } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { TokenExchangeFormSchema, TokenResponseSchema } from '../../http/oauth-forms.js';
import { ApiFormBody, ApiJsonResponse, ApiOAuthErrors, SECURITY } from '../../http/openapi.js';
import { DPOP_NONCES } from '../../tokens.js';
import { atTokenEndpoint, type DpopNonces } from './dpop-nonce.js';
import { readTokenRequest, type TokenResponse } from './token-endpoint.js';
import { TokensService } from './tokens.service.js';

@Controller('oauth')
export class TokensController {
  constructor(
    @Inject(TokensService) private readonly tokens: TokensService,
    @Inject(DPOP_NONCES) private readonly nonces: DpopNonces | null,
  ) {}

  /** RFC 8693 §2.1 token exchange at the RFC 6749 §3.2 token endpoint: a root Txn-Token, or a delegated one. */
  @Post('token')
  @ApiOperation({ summary: 'RFC 8693 token exchange: a root or delegated DPoP-bound Txn-Token', description: 'The client authenticates with private_key_jwt in the form (RFC 7523 §2.2).' })
  @ApiSecurity(SECURITY.dpop)
  @ApiFormBody(TokenExchangeFormSchema)
  @ApiJsonResponse(200, 'The issued Txn-Token', TokenResponseSchema)
  @ApiOAuthErrors(400, 401)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  @Header('pragma', 'no-cache')
  async token(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Headers('content-type') contentType: string | undefined,
    @Headers('dpop') dpop: string | string[] | undefined,
    @Body() body: unknown,
  ): Promise<TokenResponse> {
    // RFC 9449 §8.2: a fresh nonce on every answer, success or error, so the client keeps a current one.
    const nonce = this.nonces?.issue();
    if (nonce !== undefined) void reply.header('dpop-nonce', nonce);
    const tokenRequest = readTokenRequest({ contentType, body, dpop, ip: request.ip });
    try {
      return await this.tokens.exchange(tokenRequest);
    } catch (error) {
      // RFC 6749 §5.2, RFC 9449 §5 and §8: DPoP errors here are token errors (400), not a resource's 401.
      throw atTokenEndpoint(error, nonce);
    }
  }
}
