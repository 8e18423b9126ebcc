import { applyDecorators, Controller, Get, Header, Inject, Injectable, type INestApplication } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiOperation, ApiResponse, DocumentBuilder, type OpenAPIObject, type SchemaObject, SwaggerModule } from '@nestjs/swagger';
import { HUMAN_ERRORS, type HumanErrorCode } from '@writ/contracts';
import { z } from 'zod';
import type { RegistryConfig } from '../config/config.js';
import { CONFIG } from '../tokens.js';

/** The names under `components.securitySchemes`. */
export const SECURITY = {
  /** RFC 7523 client assertion in `Authorization: private_key_jwt <assertion>` (ADR 0005). */
  privateKeyJwt: 'private_key_jwt',
  /** RFC 9449 §4: the `DPoP` proof header. */
  dpop: 'DPoP',
  /** RFC 7591 §3: the initial access token a human minted. */
  initialAccessToken: 'initial_access_token',
  /** RFC 7617 Basic: a service provider's id and the credential `services register` printed. */
  serviceCredential: 'service_credential',
  /** The human's session cookie, with `X-CSRF-Token` on state-changing requests. */
  session: 'session_cookie',
  /** The operator's token (`WRIT_OPERATOR_TOKEN`, or `<WRIT_DATA_DIR>/keys/operator-token`). */
  operator: 'operator_token',
} as const;

/** RFC 6749 §5.2: every error the registry answers. */
export const OAuthErrorSchema = z.object({
  error: z.string().describe('An RFC 6749 §5.2 (or RFC 9449, RFC 7591) error code.'),
  error_description: z.string().optional(),
});

/**
 * The JSON Schema (2020-12, which OpenAPI 3.1 schema objects are) of what a zod schema accepts
 * (`input`, for a request) or produces (`output`, for an answer), so the document says what
 * validation checks and what the contract promises, and cannot drift from either.
 *
 * @example
 * ```ts
 * jsonSchemaOf(z.object({ token: z.string() })); // { type: 'object', properties: { token: { type: 'string' } }, ... }
 * ```
 */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output' = 'input'): SchemaObject {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  // @nestjs/swagger types its SchemaObject after OpenAPI 3.0 (boolean exclusiveMinimum); the document is 3.1.
  return json as SchemaObject;
}

/** A JSON request body described by a zod schema. */
export function ApiJsonBody(schema: z.ZodType, description?: string): MethodDecorator {
  return applyDecorators(ApiConsumes('application/json'), ApiBody({ schema: jsonSchemaOf(schema), required: true, ...(description ? { description } : {}) }));
}

/** An RFC 6749 §3.2 form body (`application/x-www-form-urlencoded`), and any other media type the route also takes. */
export function ApiFormBody(schema: z.ZodType, ...alsoAccepts: string[]): MethodDecorator {
  return applyDecorators(ApiConsumes('application/x-www-form-urlencoded', ...alsoAccepts), ApiBody({ schema: jsonSchemaOf(schema), required: true }));
}

/** A JSON answer described by a zod schema (libs/contracts), in `mediaType` (`application/json` unless said). */
export function ApiJsonResponse(status: number, description: string, schema: z.ZodType, mediaType = 'application/json'): MethodDecorator {
  return applyDecorators(ApiResponse({ status, description, content: { [mediaType]: { schema: jsonSchemaOf(schema, 'output') } } }));
}

/** A `text/event-stream` answer (WHATWG HTML §9.2): its events are described in `description`. */
export function ApiEventStreamResponse(description: string): MethodDecorator {
  return applyDecorators(ApiResponse({ status: 200, description, content: { 'text/event-stream': { schema: { type: 'string' } } } }));
}

const ERROR_DESCRIPTIONS = {
  400: 'invalid_request or another RFC 6749 §5.2 error',
  401: 'invalid_client, invalid_token or invalid_dpop_proof',
  403: 'the caller may not do this',
  404: 'not_found',
  429: 'rate_limited: too many started or open at once; Retry-After says in how many seconds to try again (ADR 0020)',
} as const;

/** The `{error, error_description}` answers a route may give (RFC 6749 §5.2). */
export function ApiOAuthErrors(...statuses: (keyof typeof ERROR_DESCRIPTIONS)[]): MethodDecorator {
  return applyDecorators(
    ...statuses.map((status) => ApiResponse({ status, description: ERROR_DESCRIPTIONS[status], schema: jsonSchemaOf(OAuthErrorSchema) })),
    ApiResponse({ status: 500, description: 'server_error: the detail goes only to the log', schema: jsonSchemaOf(OAuthErrorSchema) }),
  );
}

/** What the human API answers with besides its own codes (docs/approval.md, "Errors"), by status. */
const HUMAN_SHARED_CODES = {
  400: ['invalid_request'],
  401: ['login_required'],
  403: [],
  404: ['not_found'],
  429: ['rate_limited'],
  500: ['server_error'],
  503: ['temporarily_unavailable'],
} as const satisfies Record<number, readonly string[]>;

/** The human API's codes answered with `status`: the shared ones, then those of HUMAN_ERRORS. */
function humanCodes(status: keyof typeof HUMAN_SHARED_CODES): string[] {
  const own = (Object.keys(HUMAN_ERRORS) as HumanErrorCode[]).filter((code) => HUMAN_ERRORS[code].status === status);
  return [...HUMAN_SHARED_CODES[status], ...own];
}

/** `{error, error_description}` whose `error` is one of `codes`. */
function errorSchema(codes: readonly string[]): SchemaObject {
  return jsonSchemaOf(z.strictObject({ error: z.enum(codes as [string, ...string[]]), error_description: z.string() }), 'output');
}

/**
 * The errors a human API route may give, each status with the codes it carries (HUMAN_ERRORS in
 * libs/contracts, and the few codes shared with every route), plus `500 server_error`.
 */
export function ApiHumanErrors(...statuses: Exclude<keyof typeof HUMAN_SHARED_CODES, 500>[]): MethodDecorator {
  return applyDecorators(
    ...[...statuses, 500 as const].map((status) => {
      const codes = humanCodes(status);
      return ApiResponse({ status, description: codes.join(', '), schema: errorSchema(codes) });
    }),
  );
}

/** The OpenAPI 3.1 document of the routes the app registered, with their decorators and zod schemas. */
export function buildOpenApiDocument(app: INestApplication, config: RegistryConfig): OpenAPIObject {
  const base = new DocumentBuilder()
    .setOpenAPIVersion('3.1.0')
    .setTitle('Writ registry')
    .setDescription('Registers agents, records grants and issues DPoP-bound transaction tokens (RFC 8693, RFC 9449).')
    .setVersion('0.1.0')
    .addServer(config.issuer)
    .addSecurity(SECURITY.privateKeyJwt, {
      type: 'http',
      scheme: 'private_key_jwt',
      description:
        'RFC 7523 client assertion: a JWT signed with the agent registered key (typ client-authentication+jwt, iss = sub = client_id, aud = issuer, exp, jti; ADR 0015). ' +
        'Sent as `Authorization: private_key_jwt <assertion>`, or as the RFC 6749 §2.3 body parameters ' +
        '`client_assertion_type` and `client_assertion`, as the OAuth endpoints require.',
    })
    .addSecurity(SECURITY.dpop, {
      type: 'apiKey',
      in: 'header',
      name: 'DPoP',
      description: 'RFC 9449 §4: a DPoP proof JWT for this request (htm, htu), single use.',
    })
    .addSecurity(SECURITY.initialAccessToken, {
      type: 'http',
      scheme: 'bearer',
      description: 'RFC 7591 §3: an initial access token minted by a human with the registry CLI.',
    })
    .addSecurity(SECURITY.serviceCredential, {
      type: 'http',
      scheme: 'basic',
      description: 'RFC 7617 Basic: the service id and the credential `services register` printed once.',
    })
    .addSecurity(SECURITY.operator, {
      type: 'http',
      scheme: 'bearer',
      description: 'The operator token: WRIT_OPERATOR_TOKEN, or the one made on first run in <WRIT_DATA_DIR>/keys/operator-token.',
    })
    .addSecurity(SECURITY.session, {
      type: 'apiKey',
      in: 'cookie',
      name: 'writ_session',
      description:
        'The human session a passkey sign-in starts (named __Host-writ_session when every approval UI origin is https). State-changing requests also need Origin (an approval UI origin) and X-CSRF-Token.',
    })
    .build();
  return SwaggerModule.createDocument(app, base, { autoTagControllers: true });
}

/** The document, built on first request once the app's routes exist. */
@Injectable()
export class OpenApiDocument {
  private app: INestApplication | undefined;
  private document: OpenAPIObject | undefined;

  constructor(@Inject(CONFIG) private readonly config: RegistryConfig) {}

  /** Called by createRegistry: the document describes this application. */
  describe(app: INestApplication): void {
    this.app = app;
    this.document = undefined;
  }

  get(): OpenAPIObject {
    if (!this.app) throw new Error('OpenApiDocument.describe was not called');
    this.document ??= buildOpenApiDocument(this.app, this.config);
    return this.document;
  }
}

@Controller()
export class OpenApiController {
  constructor(@Inject(OpenApiDocument) private readonly document: OpenApiDocument) {}

  /** The OpenAPI 3.1 description of this registry, generated from its routes and zod schemas. */
  @Get('openapi.json')
  @Header('cache-control', 'public, max-age=300')
  @ApiOperation({ summary: 'This document: the OpenAPI 3.1 description of the registry' })
  @ApiResponse({ status: 200, description: 'An OpenAPI 3.1 document', schema: { type: 'object', required: ['openapi', 'info', 'paths'] } })
  openapi(): OpenAPIObject {
    return this.document.get();
  }
}
