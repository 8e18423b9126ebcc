import { ACTOR_TOKEN_TYP, InvalidGrant, SUBJECT_TOKEN_TYP, typMatches } from '@writ/core';
import type { JWK } from 'jose';
import { algsOf, JwsError, verifyJws } from '@writ/server/node-crypto';
import { MAX_JTI_LENGTH } from '../agents/client-auth.service.js';
import { CLOCK_SKEW_S } from './issued-tokens.js';

/** A self-signed subject or actor token is a proof of the moment: it may live at most this long. */
export const MAX_SELF_SIGNED_LIFETIME_S = 300;

/**
 * The two token-endpoint kinds of JWT an agent signs about itself (ADR 0015), each with the
 * `typ` it must carry and the name its errors use. The third kind, the client assertion, is
 * checked by ClientAuthService (its failures are `invalid_client`).
 */
export const SELF_SIGNED_KINDS = {
  /** The subject token of a root token request (`subject_token_type` self_signed). */
  subject: { label: 'subject token', typ: SUBJECT_TOKEN_TYP },
  /** The actor token with which an agent consents to receive a delegation. */
  actor: { label: 'actor token', typ: ACTOR_TOKEN_TYP },
} as const;

export type SelfSignedKind = keyof typeof SELF_SIGNED_KINDS;

/** What a token an agent signs about itself must say. */
export interface SelfSignedExpectations {
  /** Which kind the token must be: decides its `typ` and how errors name it. */
  kind: SelfSignedKind;
  /** The agent's client_id: both `iss` and `sub`. */
  clientId: string;
  /** This registry's issuer identifier: the `aud`. */
  audience: string;
  /** Milliseconds since the epoch. */
  now: number;
}

/** A verified self-signed token: its claims, and its `jti` and `exp`, to be recorded as used. */
export interface SelfSignedJwt {
  payload: Record<string, unknown>;
  jti: string;
  exp: number;
}

function claimInvalid(label: string, claim: string): InvalidGrant {
  return new InvalidGrant(`${label} ${claim} claim is invalid`);
}

/** An RFC 7519 NumericDate claim, or undefined when absent; a non-number is invalid. */
function numericDate(payload: Record<string, unknown>, claim: string, label: string): number | undefined {
  const value = payload[claim];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw claimInvalid(label, claim);
  return value;
}

/**
 * Verifies a JWT an agent signed about itself (the self-signed subject token of a root request,
 * the actor token of a delegation): signed with the agent's registered key and algorithm, `typ`
 * the kind's own (RFC 8725 §3.11; ADR 0015), `iss` = `sub` = its client_id, `aud` = this issuer
 * (one string), `exp` required and not passed (with {@link CLOCK_SKEW_S}), `nbf` not in the
 * future, a life of at most {@link MAX_SELF_SIGNED_LIFETIME_S}, and a `jti`. Claims are checked
 * in RFC 7519 order of presence, then value, then time. Every failure is `invalid_grant` with a
 * description naming the claim. The caller records the `jti` in the agent's one single-use space
 * (ClientAuthService.agentJwtUse).
 */
export function verifySelfSignedJwt(token: string, jwk: JWK, expected: SelfSignedExpectations): SelfSignedJwt {
  const { label, typ } = SELF_SIGNED_KINDS[expected.kind];
  let header: Record<string, unknown>;
  let payload: Record<string, unknown>;
  try {
    ({ header, payload } = verifyJws(token, jwk));
  } catch (error) {
    if (error instanceof JwsError && error.reason === 'signature') throw new InvalidGrant(`${label} signature is invalid`);
    if (error instanceof JwsError && error.reason === 'alg') throw new InvalidGrant(`${label} alg must be ${algsOf(jwk).join(' or ')}, the registered key's algorithm`);
    throw new InvalidGrant(`${label} is not a valid JWT`);
  }
  // RFC 8725 §3.11: the kind is named by the signer, so another kind it signed never passes for this one.
  if (!typMatches(header.typ, typ)) throw new InvalidGrant(`${label} typ must be ${typ}`);
  for (const claim of ['iss', 'sub', 'aud', 'exp', 'jti']) if (!Object.hasOwn(payload, claim)) throw claimInvalid(label, claim);
  if (payload.iss !== expected.clientId) throw claimInvalid(label, 'iss');
  if (payload.sub !== expected.clientId) throw claimInvalid(label, 'sub');
  // As for client assertions (ADR 0015): this issuer, as one string.
  if (payload.aud !== expected.audience) throw claimInvalid(label, 'aud');
  const { jti } = payload;
  if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) {
    throw new InvalidGrant(`${label} jti is required (1 to ${MAX_JTI_LENGTH} characters)`);
  }
  const nowS = Math.floor(expected.now / 1000);
  const iat = numericDate(payload, 'iat', label);
  const nbf = numericDate(payload, 'nbf', label);
  if (nbf !== undefined && nbf > nowS + CLOCK_SKEW_S) throw claimInvalid(label, 'nbf');
  const exp = numericDate(payload, 'exp', label)!;
  if (exp <= nowS - CLOCK_SKEW_S) throw new InvalidGrant(`${label} is expired`);
  if (exp - nowS > MAX_SELF_SIGNED_LIFETIME_S || (iat !== undefined && exp - iat > MAX_SELF_SIGNED_LIFETIME_S)) {
    throw new InvalidGrant(`${label} lifetime is too long`);
  }
  return { payload, jti, exp };
}
