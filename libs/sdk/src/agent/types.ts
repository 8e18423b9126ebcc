import { AuthorizationDetailsSchema, EnvelopeSchema, type TxnTokenClaims } from '@writ/core';
import { z } from 'zod';

/**
 * The registry's answers the agent reads, as zod schemas (unknown members ignored, RFC 6749 §5.1)
 * and their types. Wire objects keep their wire member names; what the SDK makes itself (the
 * transaction token with its claims and expiry) uses camelCase.
 */

/** `GET /grants/:id`: a grant as its agent sees it. */
export const GrantSchema = z.object({
  grant_id: z.string().min(1),
  status: z.enum(['pending', 'approved', 'denied', 'revoked', 'expired']),
  version: z.number().int(),
  service_id: z.string(),
  authorization_details: AuthorizationDetailsSchema,
  envelope: EnvelopeSchema,
  purpose: z.string(),
  duration_s: z.number(),
  delegation: z.object({ max_depth: z.number().int(), allowed_agents: z.array(z.string()).optional() }),
  requested_at: z.string(),
  decided_at: z.string().nullable(),
  expires_at: z.string(),
  revoked_at: z.string().nullable(),
});

/**
 * A grant as its agent sees it (`GET /grants/:id`). Once approved, `authorization_details` and
 * `envelope` are what the human approved, possibly narrowed from the request.
 *
 * @example
 * ```ts
 * const grant: Grant = await agent.waitForGrant(grantId);
 * console.log(grant.status, grant.expires_at, grant.authorization_details[0]?.actions);
 * ```
 */
export type Grant = z.infer<typeof GrantSchema>;

/**
 * The life of a grant: `pending` until the human decides, then `approved` or `denied`;
 * `expired` when nobody decided in time or its duration is over; `revoked` by the human.
 *
 * @example
 * ```ts
 * const status: GrantStatus = 'approved';
 * ```
 */
export type GrantStatus = Grant['status'];

/** `POST /grants`, 201. */
export const RequestedGrantSchema = z.object({ grant_id: z.string().min(1), status: z.string(), expires_at: z.string() });

/**
 * The registry's answer to a grant request: the grant's id, `pending`, and when the request
 * lapses if nobody decides.
 *
 * @example
 * ```ts
 * const { grant_id, expires_at }: RequestedGrant = await agent.requestGrant(request);
 * ```
 */
export type RequestedGrant = z.infer<typeof RequestedGrantSchema>;

/** `GET /step-ups/:id`: unknown members are kept, since the endpoint may say more than this SDK reads. */
export const StepUpSchema = z.looseObject({
  step_up_id: z.string().min(1),
  status: z.enum(['pending', 'approved', 'denied', 'expired']),
});

/**
 * A step-up: the human's approval of one request above the envelope's `approval_above`, as the
 * registry reports it (`GET /step-ups/:id`). Members beyond `step_up_id` and `status` are
 * whatever the registry adds (amount, target, ...).
 *
 * @example
 * ```ts
 * const stepUp: StepUp = await agent.waitForStepUp(e.stepUpId!);
 * console.log(stepUp.status); // 'approved'
 * ```
 */
export type StepUp = z.infer<typeof StepUpSchema>;

/** RFC 8693 §2.2.1 / RFC 9449 §5: a token exchange answer. */
export const TokenResponseSchema = z.object({
  access_token: z.string().min(1),
  token_type: z.string(),
  issued_token_type: z.string().optional(),
  expires_in: z.number().positive().optional(),
});

/** RFC 7591 §3.2.1: the client information response (the members the SDK reads). */
export const RegisteredClientSchema = z.object({
  client_id: z.string().min(1),
  client_name: z.string().optional(),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).optional(),
});

/** RFC 8414 §2: the metadata members the agent uses. */
export const MetadataSchema = z.object({
  issuer: z.string().min(1),
  token_endpoint: z.url(),
  registration_endpoint: z.url().optional(),
  dpop_signing_alg_values_supported: z.array(z.string()).optional(),
});

/**
 * The registry's RFC 8414 metadata, as far as the agent uses it.
 *
 * @example
 * ```ts
 * const { issuer, token_endpoint }: RegistryMetadata = await agent.metadata();
 * ```
 */
export type RegistryMetadata = z.infer<typeof MetadataSchema>;

/**
 * A transaction token (TraT) the agent holds: the compact JWT and its claims. Send it with
 * {@link WritAgent.fetch}, which adds the DPoP proof; hand it to another agent with
 * {@link WritAgent.delegate}.
 *
 * @example
 * ```ts
 * const token: TransactionToken = await agent.token(grantId);
 * console.log(token.claims.txn, token.claims.scope, token.expiresAt.toISOString());
 * ```
 */
export interface TransactionToken {
  /** The compact JWT, sent as `Authorization: DPoP <value>`. Never log it whole. */
  readonly value: string;
  /** Its claims, read without checking the signature (the holder trusts the registry it asked). */
  readonly claims: TxnTokenClaims;
  /**
   * When it expires on this agent's clock: the earlier of `exp` and the answer's time plus
   * `expires_in`, so a clock that runs behind the registry's does not keep a dead token.
   */
  readonly expiresAt: Date;
}
