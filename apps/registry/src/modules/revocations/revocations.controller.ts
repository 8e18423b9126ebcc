import { Body, Controller, Header, Headers, HttpCode, Inject, Post } from '@nestjs/common';
import { formParams } from '../../http/form-params.js';
import { type Introspection, RevocationsService } from './revocations.service.js';

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
