import { Controller, Get, Header, Headers, Inject, Res } from '@nestjs/common';
import { ApiOperation, ApiSecurity } from '@nestjs/swagger';
import { ServiceSelfSchema } from '@writ/contracts';
import { InvalidClient } from '@writ/core';
import type { FastifyReply } from 'fastify';
import { ApiJsonResponse, ApiOAuthErrors, SECURITY } from '../../http/openapi.js';
import { ServicesService } from './services.service.js';

/** What a service provider (or the verifier on its behalf) learns about itself. */
export interface ServiceSelf {
  id: string;
  uri: string;
  display_name: string;
}

/**
 * RFC 7617 Basic credentials: `Basic base64(id:secret)`. Ids and credentials are base64url and
 * `svc_` ids, so the RFC 6749 §2.3.1 form-encoding changes nothing; it is undone anyway.
 */
export function basicCredentials(authorization: string | undefined): { id: string; secret: string } | undefined {
  const match = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(authorization ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    return { id: decodeURIComponent(decoded.slice(0, colon)), secret: decodeURIComponent(decoded.slice(colon + 1)) };
  } catch {
    return undefined;
  }
}

@Controller()
export class ServicesController {
  constructor(@Inject(ServicesService) private readonly services: ServicesService) {}

  /**
   * Who the calling service provider is, after checking the credential `services register`
   * printed. The verifier calls it with the credential a service provider presented, once, and
   * caches the answer: it is how verifiers learn a provider's URI without a database.
   */
  @Get('services/me')
  @ApiOperation({ summary: 'The calling service provider, after checking its credential (HTTP Basic: service id and credential)' })
  @ApiSecurity(SECURITY.serviceCredential)
  @ApiJsonResponse(200, 'The service id, URI and display name', ServiceSelfSchema)
  @ApiOAuthErrors(400, 401)
  @Header('cache-control', 'no-store')
  async me(@Headers('authorization') authorization: string | undefined, @Res({ passthrough: true }) reply: FastifyReply): Promise<ServiceSelf> {
    // RFC 6749 §5.2: a 401 to a client that used the Authorization header names the scheme.
    void reply.header('www-authenticate', 'Basic realm="writ"');
    if (authorization === undefined) throw new InvalidClient('service credentials are missing: use HTTP Basic with the service id and credential');
    const credentials = basicCredentials(authorization);
    if (credentials === undefined) throw new InvalidClient('Authorization must be Basic base64(service_id:credential)');
    if (!(await this.services.verifyCredential(credentials.id, credentials.secret))) throw new InvalidClient('unknown service or wrong credential');
    const service = (await this.services.find(credentials.id))!;
    void reply.removeHeader('www-authenticate');
    return { id: service.id, uri: service.uri, display_name: service.display_name };
  }
}
