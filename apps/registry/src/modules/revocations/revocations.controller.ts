import { Body, Controller, Header, Headers, HttpCode, Inject, Post } from '@nestjs/common';
import { ApiOperation } from '@nestjs/swagger';
import { IntrospectionSchema, RevokedAnswerSchema } from '@writ/contracts';
import { formParams } from '../../http/form-params.js';
import { TokenFormSchema } from '../../http/oauth-forms.js';
import { ApiFormBody, ApiJsonResponse, ApiOAuthErrors } from '../../http/openapi.js';
import { type Introspection, RevocationsService } from './revocations.service.js';

@Controller('oauth')
export class RevocationsController {
  constructor(@Inject(RevocationsService) private readonly revocations: RevocationsService) {}

  /** RFC 7009 §2.1: token revocation; 200 whether or not the token was valid (§2.2). */
  @Post('revoke')
  @ApiOperation({ summary: 'RFC 7009 token revocation', description: 'The client authenticates with private_key_jwt in the form (RFC 7523 §2.2).' })
  @ApiFormBody(TokenFormSchema)
  @ApiJsonResponse(200, 'Revoked, or nothing to revoke (RFC 7009 §2.2)', RevokedAnswerSchema)
  @ApiOAuthErrors(400, 401)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async revoke(@Headers('content-type') contentType: string | undefined, @Body() body: unknown): Promise<Record<string, never>> {
    await this.revocations.revokeToken(formParams(contentType, body));
    return {};
  }

  /** RFC 7662 §2.1: token introspection. */
  @Post('introspect')
  @ApiOperation({ summary: 'RFC 7662 token introspection', description: 'The client authenticates with private_key_jwt in the form (RFC 7523 §2.2).' })
  @ApiFormBody(TokenFormSchema)
  @ApiJsonResponse(200, '{active: false}, or active with the token claims (RFC 7662 §2.2)', IntrospectionSchema)
  @ApiOAuthErrors(400, 401)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  @Header('pragma', 'no-cache')
  introspect(@Headers('content-type') contentType: string | undefined, @Body() body: unknown): Promise<Introspection> {
    return this.revocations.introspect(formParams(contentType, body));
  }
}
