/**
 * The kinds of JWT an agent signs with its registered key (ADR 0015). All three carry
 * `iss` = `sub` = the agent's client_id, `aud` = the registry's issuer, a short `exp` and a `jti`;
 * only the JOSE `typ` header tells them apart, so each is checked as exactly its own kind
 * (RFC 8725 §3.11, explicit typing) and a token of one kind is never accepted as another.
 */

/**
 * The `typ` of a `private_key_jwt` client assertion (draft-ietf-oauth-rfc7523bis §4, media type
 * `application/client-authentication+jwt`).
 *
 * @example
 * ```ts
 * new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: CLIENT_ASSERTION_TYP });
 * ```
 */
export const CLIENT_ASSERTION_TYP = 'client-authentication+jwt';

/**
 * The `typ` of the self-signed subject token an agent exchanges for a root Txn-Token
 * (`subject_token_type` `urn:ietf:params:oauth:token-type:self_signed`). Writ's own value (ADR 0015).
 *
 * @example
 * ```ts
 * new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: SUBJECT_TOKEN_TYP });
 * ```
 */
export const SUBJECT_TOKEN_TYP = 'writ-subject+jwt';

/**
 * The `typ` of the actor token with which an agent consents to receive a delegation (RFC 8693
 * `actor_token`). Writ's own value (ADR 0015).
 *
 * @example
 * ```ts
 * new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: ACTOR_TOKEN_TYP });
 * ```
 */
export const ACTOR_TOKEN_TYP = 'writ-actor+jwt';

/**
 * Whether a JOSE `typ` header value names the media type `application/<expected>`: RFC 7515
 * §4.1.9 makes media type names case-insensitive and lets a `typ` without a `/` omit the
 * `application/` prefix, so `client-authentication+jwt`, `Client-Authentication+JWT` and
 * `application/client-authentication+jwt` all match {@link CLIENT_ASSERTION_TYP}. A missing or
 * non-string `typ` never matches.
 *
 * @example
 * ```ts
 * typMatches('application/Client-Authentication+JWT', CLIENT_ASSERTION_TYP); // true
 * typMatches('JWT', CLIENT_ASSERTION_TYP); // false
 * typMatches(undefined, ACTOR_TOKEN_TYP); // false
 * ```
 */
export function typMatches(typ: unknown, expected: string): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  const mediaType = lower.includes('/') ? lower : `application/${lower}`;
  return mediaType === `application/${expected.toLowerCase()}`;
}
