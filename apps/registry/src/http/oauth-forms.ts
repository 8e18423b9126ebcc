import { JWT_TOKEN_TYPE, SELF_SIGNED_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, TXN_TOKEN_TYPE } from '@writ/core';
import { z } from 'zod';
import { JWT_BEARER_ASSERTION_TYPE } from '../modules/agents/client-auth.service.js';
import { DelegationDetailsSchema, RequestDetailsSchema } from '../modules/tokens/token-endpoint.js';
import { jsonSchemaOf } from './openapi.js';

/**
 * The form parameters of the OAuth endpoints, for the OpenAPI document. The endpoints read these
 * parameters one by one (to answer each RFC error code precisely), so these schemas describe the
 * form; the JSON inside `request_details` is described by the zod schemas the service parses it with.
 */

/** RFC 7523 §2.2 / RFC 6749 §2.3: `private_key_jwt` client authentication in the form. */
export const ClientAssertionFormSchema = z.object({
  client_id: z.string().optional().describe('Optional; when present it must equal the assertion iss and sub (RFC 7521 §4.2).'),
  client_assertion_type: z.literal(JWT_BEARER_ASSERTION_TYPE),
  client_assertion: z.string().describe('A JWT signed with the agent registered key: typ client-authentication+jwt, iss = sub = client_id, aud = issuer (one string), exp, jti (RFC 7523 §3, draft-ietf-oauth-rfc7523bis; ADR 0015).'),
});

/** RFC 8693 §2.1: a token exchange for a root Txn-Token, or for a delegated one. */
export const TokenExchangeFormSchema = ClientAssertionFormSchema.extend({
  grant_type: z.literal(TOKEN_EXCHANGE_GRANT),
  requested_token_type: z.literal(TXN_TOKEN_TYPE),
  subject_token: z.string().describe("The agent's self-signed token, typ writ-subject+jwt (root), or the parent Txn-Token (delegation)."),
  subject_token_type: z.enum([SELF_SIGNED_TOKEN_TYPE, TXN_TOKEN_TYPE]),
  actor_token: z.string().optional().describe("Delegation only: the new actor's consent, typ writ-actor+jwt, signed with its registered key."),
  actor_token_type: z.literal(JWT_TOKEN_TYPE).optional(),
  request_details: z
    .string()
    .optional()
    .meta({
      description: 'JSON: which grant and which subset of it (root token), or which subset of the parent token (delegation).',
      // JSON Schema 2020-12 §8.5: the string's content, with the very schemas the service parses it with.
      contentMediaType: 'application/json',
      contentSchema: { anyOf: [jsonSchemaOf(RequestDetailsSchema), jsonSchemaOf(DelegationDetailsSchema)] },
    }),
});

/** RFC 7009 §2.1 and RFC 7662 §2.1: the token to revoke or introspect. */
export const TokenFormSchema = ClientAssertionFormSchema.extend({
  token: z.string(),
  token_type_hint: z.string().optional(),
});

/** RFC 8693 §2.2.1 with RFC 9449 §5: a successful token exchange. */
export const TokenResponseSchema = z.object({
  access_token: z.string(),
  token_type: z.literal('DPoP'),
  issued_token_type: z.literal(TXN_TOKEN_TYPE),
  expires_in: z.number().int(),
});
