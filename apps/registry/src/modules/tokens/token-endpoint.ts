import {
  type AuthorizationDetails,
  AuthorizationDetailsSchema,
  type Clock,
  type Envelope,
  EnvelopeSchema,
  InvalidAuthorizationDetails,
  InvalidDpopProof,
  InvalidRequest,
  TOKEN_EXCHANGE_GRANT,
  TXN_TOKEN_TYPE,
  type TxnTokenClaims,
  UnsupportedGrantType,
  type VerifiedDpopProof,
  verifyDpopProof,
} from '@writ/core';
import { nodeSignatureVerifier } from '@writ/server/node-crypto';
import { z } from 'zod';
import type { RegistryConfig } from '../../config/config.js';
import { formParams } from '../../http/form-params.js';
import type { ClientAuthService } from '../agents/client-auth.service.js';
import type { AuditDraft } from '../audit/audit.service.js';
import type { GrantsService } from '../grants/grants.service.js';
import type { KeyStore } from '../keys/key-store.js';
import { CLOCK_SKEW_S } from './issued-tokens.js';
import type { DpopProofUse, TokensRepository } from './tokens.repository.js';
import { describeIssue } from '../validation.js';

/** RFC 8693 §2.2.1 / RFC 9449 §5: what a successful token exchange answers. */
export interface TokenResponse {
  access_token: string;
  token_type: 'DPoP';
  issued_token_type: typeof TXN_TOKEN_TYPE;
  expires_in: number;
}

/** A token request as the controller received it: form parameters, the DPoP header, the peer. */
export interface TokenRequest {
  params: Record<string, string>;
  dpop: string | undefined;
  ip: string | undefined;
}

/** What the token endpoint's steps use: the services they call, its storage, keys, clock and settings. */
export interface TokenEndpointDeps {
  repository: TokensRepository;
  audit: { append(draft: AuditDraft): Promise<unknown> };
  clientAuth: ClientAuthService;
  grants: Pick<GrantsService, 'get' | 'settle'>;
  keys: Pick<KeyStore, 'active' | 'jwks'>;
  clock: Clock;
  config: Pick<RegistryConfig, 'issuer' | 'trustDomain' | 'tokenTtlSeconds'>;
  /** ARCHITECTURE.md "Revocation": a revoked parent is not delegated from. */
  revocations?: { isRevoked(claims: Pick<TxnTokenClaims, 'jti' | 'txn' | 'act' | 'tctx'>): Promise<boolean> };
  /** RFC 9449 §8: accepts a proof's server nonce; absent when `WRIT_DPOP_NONCE` is off. */
  dpopNonce?: (nonce: string) => boolean;
}

/** One subject token type's exchange (RFC 8693 §2.1 `subject_token_type`), after the shared request checks. */
export type SubjectTokenHandler = (endpoint: TokenEndpointDeps, request: TokenRequest) => Promise<TokenResponse>;

/** DPoP proofs older than this are refused by verifyDpopProof, so a jti is kept this long (plus skew). */
export const DPOP_MAX_AGE_S = 300;

/** What a delegation asks for: a subset of the parent token's context (the grant is the parent's). */
export const DelegationDetailsSchema = z.strictObject({
  authorization_details: AuthorizationDetailsSchema.optional(),
  envelope: EnvelopeSchema.optional(),
});

/** What a root token asks for: a grant, and optionally a subset of it. */
export const RequestDetailsSchema = z.strictObject({
  grant_id: z.string().min(1).max(256),
  authorization_details: AuthorizationDetailsSchema.optional(),
  envelope: EnvelopeSchema.optional(),
});

export type DelegationDetails = z.infer<typeof DelegationDetailsSchema>;
export type RequestDetails = z.infer<typeof RequestDetailsSchema>;

/** The capabilities and envelope a new token carries: what was asked, no wider than what it comes from. */
export interface NarrowedContext {
  authorizationDetails: AuthorizationDetails;
  envelope: Envelope;
}

/** What the controller hands over: the body as Fastify parsed it, and the request's headers and peer. */
export interface RawTokenRequest {
  contentType: string | undefined;
  body: unknown;
  dpop: string | string[] | undefined;
  ip: string | undefined;
}

/**
 * The steps in front of every token request: the form (RFC 6749 §3.2), no parameter sent twice
 * (RFC 6749 §3.1), at most one DPoP header (RFC 9449 §4.3).
 */
export function readTokenRequest(raw: RawTokenRequest): TokenRequest {
  const params = formParams(raw.contentType, raw.body);
  if (Array.isArray(raw.dpop)) throw new InvalidRequest('more than one DPoP header');
  return { params, dpop: raw.dpop, ip: raw.ip };
}

/**
 * The request itself: an RFC 8693 §2.1 token exchange for a Txn-Token, with a subject token.
 * Which kind of subject token it is decides the handler.
 */
export function requireTokenExchange(params: Readonly<Record<string, string>>): void {
  if (params.grant_type === undefined) throw new InvalidRequest('grant_type is required');
  if (params.grant_type !== TOKEN_EXCHANGE_GRANT) throw new UnsupportedGrantType(`grant_type must be ${TOKEN_EXCHANGE_GRANT}`);
  if (params.requested_token_type !== TXN_TOKEN_TYPE) throw new InvalidRequest(`requested_token_type must be ${TXN_TOKEN_TYPE}`);
  if (params.subject_token === undefined || params.subject_token === '') throw new InvalidRequest('subject_token is required');
}

/** What a proof at this endpoint must also match when it proves possession of an existing token's key. */
export interface TokenProofBinding {
  /** The token whose key the proof is made with: an `ath` that is sent must be its hash. */
  accessToken: string;
  /** That token's `cnf.jkt`. */
  expectedJkt: string;
}

/**
 * RFC 9449 §4.3 at this token endpoint: the request's DPoP proof, for a POST to it, within
 * {@link DPOP_MAX_AGE_S}, with the server nonce when nonces are on. With a binding, the proof is
 * made with that token's key; RFC 9449 §4.2 asks for `ath` only at protected resources, so a
 * generic client sends none here: the key binds the proof to the token, and an `ath` that is sent
 * must match. The proof's `jti` is not recorded here: see {@link dpopProofUse}.
 */
export function verifyTokenEndpointProof(endpoint: TokenEndpointDeps, dpop: string | undefined, binding?: TokenProofBinding): Promise<VerifiedDpopProof> {
  if (dpop === undefined || dpop === '') throw new InvalidDpopProof('DPoP proof is missing');
  return verifyDpopProof(dpop, {
    htm: 'POST',
    htu: `${endpoint.config.issuer}/oauth/token`,
    ...(binding ? { accessToken: binding.accessToken, athOptional: true, expectedJkt: binding.expectedJkt } : {}),
    nonce: endpoint.dpopNonce,
    verifySignature: nodeSignatureVerifier,
    clock: endpoint.clock,
    maxAgeSeconds: DPOP_MAX_AGE_S,
  });
}

/** RFC 9449 §11.1: a proof's `jti` is kept for as long as the proof could be accepted. */
export function dpopProofUse(proof: Pick<VerifiedDpopProof, 'jkt' | 'jti' | 'iat'>): DpopProofUse {
  return { jkt: proof.jkt, jti: proof.jti, expiresAt: new Date((proof.iat + DPOP_MAX_AGE_S + CLOCK_SKEW_S) * 1000) };
}

/** A root request's `request_details`: required, naming the grant. */
export function parseRequestDetails(raw: string | undefined): RequestDetails {
  if (raw === undefined || raw === '') throw new InvalidRequest('request_details is required');
  return parseDetails(raw, RequestDetailsSchema);
}

/** A delegation's `request_details`: optional, the parent's context when absent. */
export function parseDelegationDetails(raw: string | undefined): DelegationDetails {
  return raw === undefined || raw === '' ? {} : parseDetails(raw, DelegationDetailsSchema);
}

/** The `request_details` JSON against `schema`; a capability error is invalid_authorization_details (RFC 9396 §5). */
function parseDetails<S extends z.ZodType>(raw: string, schema: S): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new InvalidRequest('request_details is not JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const { path, text } = describeIssue(parsed.error, value);
    if (path[0] === 'authorization_details') throw new InvalidAuthorizationDetails(`request_details.${text}`);
    throw new InvalidRequest(`request_details: ${text}`);
  }
  return parsed.data;
}
