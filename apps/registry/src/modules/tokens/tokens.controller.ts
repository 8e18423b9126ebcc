import { Body, Controller, Header, Headers, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { InvalidRequest } from '@writ/core';
import type { FastifyRequest } from 'fastify';
import { TokensService, type TokenResponse } from './tokens.service.js';

const FORM = 'application/x-www-form-urlencoded';

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
    // RFC 6749 §3.2: the parameters are sent form-encoded.
    if (contentType?.split(';')[0]?.trim().toLowerCase() !== FORM) throw new InvalidRequest(`the request body must be ${FORM}`);
    if (Array.isArray(dpop)) throw new InvalidRequest('more than one DPoP header');
    return this.tokens.exchange({ params: formParams(body), dpop, ip: request.ip });
  }
}

/** The form parameters; RFC 6749 §3.2: a parameter sent more than once is an error. */
function formParams(body: unknown): Record<string, string> {
  const params: Record<string, string> = {};
  if (body === null || typeof body !== 'object') return params;
  for (const [name, value] of Object.entries(body)) {
    if (typeof value !== 'string') throw new InvalidRequest(`parameter ${name} is repeated`);
    params[name] = value;
  }
  return params;
}
