import { Body, Controller, Header, Headers, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { InvalidRequest } from '@writ/core';
import type { FastifyRequest } from 'fastify';
import { formParams } from '../../http/form-params.js';
import { TokensService, type TokenResponse } from './tokens.service.js';

@Controller('oauth')
export class TokensController {
  constructor(@Inject(TokensService) private readonly tokens: TokensService) {}

  /** RFC 8693 §2.1 token exchange at the RFC 6749 §3.2 token endpoint: a root Txn-Token, or a delegated one. */
  @Post('token')
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  @Header('pragma', 'no-cache')
  token(
    @Req() request: FastifyRequest,
    @Headers('content-type') contentType: string | undefined,
    @Headers('dpop') dpop: string | string[] | undefined,
    @Body() body: unknown,
  ): Promise<TokenResponse> {
    const params = formParams(contentType, body);
    if (Array.isArray(dpop)) throw new InvalidRequest('more than one DPoP header');
    return this.tokens.exchange({ params, dpop, ip: request.ip });
  }
}
