import { ActSchema, type AuthorizationDetail, humanText, identifierText, type OAuthErrorCode, pathStepProblem } from '@writ/core';
import { z } from 'zod';

/**
 * `POST /v1/verify` (docs/verifier.md): what a service provider sends the verifier about one agent
 * request, and what the verifier answers. The verifier validates requests with these schemas and
 * answers these types; the SDK sends these requests and reads answers with these schemas.
 */

/** Most request fields a service provider may bind into a step-up. */
export const MAX_BOUND_FIELDS = 16;

/** A field name a step-up binds (`payee`, `to.iban`): shown to the person as its label. */
export const BOUND_FIELD_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/**
 * The verify request. Unknown fields are refused. Every text that reaches the decision's audit
 * event is `identifierText` (libs/core): a NUL or a lone surrogate would be allowed here yet could
 * never be appended to the chain (issue 16, 4). `token` and `dpop` are not: they are parsed as
 * compact JWS, which refuses any such character.
 */
export const VerifyRequestSchema = z.strictObject({
  token: z.string(),
  dpop: z.string(),
  // RFC 9110 §5.6.2 token: methods are case-sensitive, compared as sent.
  method: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/, 'method is an HTTP method token'),
  url: identifierText(z.string().min(1).max(8192)),
  action: identifierText(z.string().min(1).max(128)),
  // ADR 0002: a resource a server could read as another place (`bookings/%2e%2e/admin`) is refused
  // here, naming the field, before any capability is matched (which would refuse it too).
  resource: identifierText(z.string().min(1).max(1024))
    .superRefine((resource, ctx) => {
      const problem = pathStepProblem(resource);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  amount: z.number().optional(),
  currency: identifierText(z.string().max(16)).optional(),
  // ADR 0014 amendment: request fields the service provider binds into a step-up (a payee, an
  // account), fingerprinted and shown to the person with the URL's query. Shown text: humanText.
  bind: z
    .strictObject({
      fields: z
        .record(z.string(), humanText(z.string().max(512)))
        .superRefine((fields, ctx) => {
          const names = Object.keys(fields);
          if (names.length > MAX_BOUND_FIELDS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_BOUND_FIELDS} bound fields` });
          // Checked here rather than as the record's key schema, so the answer names the field.
          const bad = names.find((name) => !BOUND_FIELD_NAME.test(name));
          if (bad !== undefined) ctx.addIssue({ code: 'custom', path: [bad], message: 'bound field name is a token of letters, digits and _ . -' });
        }),
    })
    .optional(),
});

export type VerifyRequest = z.infer<typeof VerifyRequestSchema>;

/** A header value Node will send: visible ASCII, spaces and tabs only. */
const HEADER_VALUE = /^[\x20-\x7E\t]*$/;
/** RFC 9449 §8.1: nonce = 1*NQCHAR. */
const NQCHARS = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/**
 * Every error code a denial carries: the verifier's codes, and `temporarily_unavailable` when it
 * could not decide. A reader refuses an answer with any other code.
 */
export const VerifyDenialCodeSchema = z.enum([
  'invalid_token',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'insufficient_scope',
  'invalid_request',
  'revoked',
  'rate_limited',
  'outside_time_window',
  'budget_exceeded',
  'approval_required',
  'temporarily_unavailable',
] as const satisfies readonly OAuthErrorCode[]);

export type VerifyDenialCode = z.infer<typeof VerifyDenialCodeSchema>;

/** What is left of the grant's envelope after an allowed request. */
export const VerifyRemainingSchema = z.object({ uses: z.number().optional(), amount: z.number().optional(), rate: z.number().optional() });

export type VerifyRemaining = z.infer<typeof VerifyRemainingSchema>;

/** Who an allowed request acts for and through, and what is left: what the SDK hands the service provider. */
export const VerifyClaimsSchema = z.object({
  /** The human the agent acts for. */
  sub: z.string().min(1),
  /** The agent holding the token, the previous holders nested (RFC 8693 §4.1). */
  act: ActSchema,
  /** The transaction id, constant along the whole delegation tree. */
  txn: z.string().min(1),
  grant_id: z.string().min(1),
  /** The token's id. */
  jti: z.string().min(1),
  scope: z.string(),
  remaining: VerifyRemainingSchema,
  /** The approved step-up this request consumed, if any. */
  step_up_id: z.string().min(1).optional(),
});

export type VerifyClaims = z.infer<typeof VerifyClaimsSchema>;

/** An allow answer as it is read. Unknown members (the verifier's `capability`) are ignored. */
export const VerifyAllowSchema = VerifyClaimsSchema.extend({ allow: z.literal(true) });

/** A denial: the status and challenge the service provider answers the agent with. */
export const VerifyDenySchema = z.object({
  allow: z.literal(false),
  error: VerifyDenialCodeSchema,
  error_description: z.string().regex(HEADER_VALUE),
  /** The status the service provider should answer the agent with. */
  status: z.number().int().min(400).max(599),
  www_authenticate: z.string().min(1).regex(HEADER_VALUE).optional(),
  retry_after: z.number().nonnegative().finite().optional(),
  step_up_id: z.string().min(1).optional(),
  dpop_nonce: z.string().regex(NQCHARS).optional(),
});

/** The verifier's 200 answer. Unknown members are ignored. */
export const VerifyAnswerSchema = z.discriminatedUnion('allow', [VerifyAllowSchema, VerifyDenySchema]);

/**
 * An allow answer as the verifier writes it: the claims, plus the capability that allowed the
 * request (its `limits` are the service provider's to apply).
 */
export type VerifyAllow = z.infer<typeof VerifyAllowSchema> & { capability: AuthorizationDetail };

export type VerifyDeny = z.infer<typeof VerifyDenySchema>;

export type VerifyAnswer = VerifyAllow | VerifyDeny;
