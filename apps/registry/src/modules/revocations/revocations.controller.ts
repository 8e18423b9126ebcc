import { Body, Controller, Header, Headers, HttpCode, Inject, Post } from '@nestjs/common';
import { InvalidRequest } from '@writ/core';
import { type Introspection, RevocationsService } from './revocations.service.js';

const FORM = 'application/x-www-form-urlencoded';

@Controller('oauth')
export class RevocationsController {
  constructor(@Inject(RevocationsService) private readonly revocations: RevocationsService) {}

  /** RFC 7009 §2.1: token revocation; 200 whether or not the token was valid (§2.2). */
  @Post('revoke')
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async revoke(@Headers('content-type') contentType: string | undefined, @Body() body: unknown): Promise<Record<string, never>> {
    await this.revocations.revokeToken(formParams(contentType, body));
    return {};
  }

  /** RFC 7662 §2.1: token introspection. */
  @Post('introspect')
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  @Header('pragma', 'no-cache')
  introspect(@Headers('content-type') contentType: string | undefined, @Body() body: unknown): Promise<Introspection> {
    return this.revocations.introspect(formParams(contentType, body));
  }
}

/** The form parameters; a parameter sent more than once is an error. */
function formParams(contentType: string | undefined, body: unknown): Record<string, string> {
  if (contentType?.split(';')[0]?.trim().toLowerCase() !== FORM) throw new InvalidRequest(`the request body must be ${FORM}`);
  const params: Record<string, string> = {};
  if (body === null || typeof body !== 'object') return params;
  for (const [name, value] of Object.entries(body)) {
    if (typeof value !== 'string') throw new InvalidRequest(`parameter ${name} is repeated`);
    params[name] = value;
  }
  return params;
}
