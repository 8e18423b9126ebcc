import { Controller, Get, Header, Inject } from '@nestjs/common';
import { ApiOperation } from '@nestjs/swagger';
import { AuthorizationServerMetadataSchema, JwksSchema } from '@writ/contracts';
import { DPOP_ALGS, TOKEN_EXCHANGE_GRANT } from '@writ/core';
import { ApiJsonResponse } from '../../http/openapi.js';
import type { RegistryConfig } from '../../config/config.js';
import { Database } from '../../infra/database.service.js';
import { CONFIG } from '../../tokens.js';
import { KeyStore } from '../keys/key-store.js';

@Controller('.well-known')
export class MetadataController {
  constructor(
    @Inject(CONFIG) private readonly config: RegistryConfig,
    @Inject(KeyStore) private readonly keys: KeyStore,
    @Inject(Database) private readonly db: Database,
  ) {}

  /** RFC 8414 §3: the authorization server metadata; endpoints are listed as they are built. */
  @Get('oauth-authorization-server')
  @ApiOperation({ summary: 'RFC 8414 authorization server metadata' })
  @ApiJsonResponse(200, 'RFC 8414 §2 metadata', AuthorizationServerMetadataSchema)
  @Header('cache-control', 'public, max-age=300')
  async metadata(): Promise<Record<string, unknown>> {
    const issuer = this.config.issuer;
    return {
      issuer,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      registration_endpoint: `${issuer}/oauth/register`,
      token_endpoint: `${issuer}/oauth/token`,
      revocation_endpoint: `${issuer}/oauth/revoke`,
      revocation_endpoint_auth_methods_supported: ['private_key_jwt'],
      introspection_endpoint: `${issuer}/oauth/introspect`,
      introspection_endpoint_auth_methods_supported: ['private_key_jwt'],
      grant_types_supported: [TOKEN_EXCHANGE_GRANT],
      // RFC 8414 §2 makes response_types_supported REQUIRED; this server has no authorization
      // endpoint (tokens come only from RFC 8693 token exchange), so the honest list is empty,
      // which a generic client reads as "no front-channel flow" (ADR 0015).
      response_types_supported: [],
      // RFC 9396 §10: the authorization_details types a grant may ask for: those registered
      // services declare in their catalogues.
      authorization_details_types_supported: await this.catalogueTypes(),
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: [...DPOP_ALGS],
      dpop_signing_alg_values_supported: [...DPOP_ALGS],
      trust_domain: this.config.trustDomain,
    };
  }

  /** Every capability type some registered service offers, sorted, once each. */
  private async catalogueTypes(): Promise<string[]> {
    const rows = await this.db.query<{ type: string }[]>(
      `SELECT DISTINCT entry->>'type' AS type FROM services, jsonb_array_elements(catalogue) AS entry ORDER BY 1`,
    );
    return rows.map((row) => row.type);
  }

  /** RFC 7517 §5: the public signing keys, retired ones included until their tokens expire. */
  @Get('jwks.json')
  @ApiOperation({ summary: 'RFC 7517 public signing keys of the registry' })
  @ApiJsonResponse(200, 'RFC 7517 §5 JWK Set, retired keys included until their tokens expire', JwksSchema, 'application/jwk-set+json')
  @Header('cache-control', 'public, max-age=60')
  @Header('content-type', 'application/jwk-set+json')
  jwks(): Promise<{ keys: unknown[] }> {
    return this.keys.jwks();
  }
}
