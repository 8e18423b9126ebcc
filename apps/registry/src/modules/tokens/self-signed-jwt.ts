import { InvalidGrant } from '@writ/core';
import type { JWK } from 'jose';
import { JwsError, verifyJws } from '@writ/sdk/node-crypto';
import { CLOCK_SKEW_S } from './issued-tokens.js';

/** A self-signed subject or actor token is a proof of the moment: it may live at most this long. */
export const MAX_SELF_SIGNED_LIFETIME_S = 300;

/** What a token an agent signs about itself must say. */
export interface SelfSignedExpectations {
  /** The agent's client_id: both `iss` and `sub`. */
  clientId: string;
  /** This registry's issuer identifier: the `aud`. */
  audience: string;
  /** Milliseconds since the epoch. */
  now: number;
  /** How errors name the token: `subject token`, `actor token`. */
  label: string;
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
 * the actor token of a delegation): signed with the agent's registered key and algorithm,
 * `iss` = `sub` = its client_id, `aud` = this issuer, `exp` required and not passed (with
 * {@link CLOCK_SKEW_S}), `nbf` not in the future, and a life of at most
 * {@link MAX_SELF_SIGNED_LIFETIME_S}. Claims are checked in RFC 7519 order of presence, then
 * value, then time. Every failure is `invalid_grant` with a description naming the claim.
 */
export function verifySelfSignedJwt(token: string, jwk: JWK, expected: SelfSignedExpectations): Record<string, unknown> {
  const { label } = expected;
  let payload: Record<string, unknown>;
  try {
    ({ payload } = verifyJws(token, jwk));
  } catch (error) {
    if (error instanceof JwsError && error.reason === 'signature') throw new InvalidGrant(`${label} signature is invalid`);
    throw new InvalidGrant(`${label} is not a valid JWT`);
  }
  for (const claim of ['iss', 'sub', 'aud', 'exp']) if (!Object.hasOwn(payload, claim)) throw claimInvalid(label, claim);
  if (payload.iss !== expected.clientId) throw claimInvalid(label, 'iss');
  if (payload.sub !== expected.clientId) throw claimInvalid(label, 'sub');
  const { aud } = payload;
  if (!(aud === expected.audience || (Array.isArray(aud) && aud.includes(expected.audience)))) throw claimInvalid(label, 'aud');
  const nowS = Math.floor(expected.now / 1000);
  const iat = numericDate(payload, 'iat', label);
  const nbf = numericDate(payload, 'nbf', label);
  if (nbf !== undefined && nbf > nowS + CLOCK_SKEW_S) throw claimInvalid(label, 'nbf');
  const exp = numericDate(payload, 'exp', label)!;
  if (exp <= nowS - CLOCK_SKEW_S) throw new InvalidGrant(`${label} is expired`);
  if (exp - nowS > MAX_SELF_SIGNED_LIFETIME_S || (iat !== undefined && exp - iat > MAX_SELF_SIGNED_LIFETIME_S)) {
    throw new InvalidGrant(`${label} lifetime is too long`);
  }
  return payload;
}
