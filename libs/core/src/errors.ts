/**
 * OAuth error classes: one per protocol error code, each with its HTTP status.
 *
 * Codes come from RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009, RFC 7591 §3.2.2, RFC 8693,
 * RFC 9449 §7 and §8, plus the envelope codes of Writ's verifier. Every error has a stable string
 * `code` that callers switch on, like `jose`'s errors; the message is for humans and may change.
 *
 * @example
 * ```ts
 * import { InvalidDpopProof, OAuthError } from '@writ/core';
 * try {
 *   throw new InvalidDpopProof('DPoP proof htm does not match the request method');
 * } catch (e) {
 *   if (e instanceof OAuthError) {
 *     console.log(e.code, e.status, e.toJSON()); // invalid_dpop_proof 401 {...}
 *   }
 * }
 * ```
 */
export abstract class OAuthError extends Error {
  /** The protocol error code, for example `invalid_dpop_proof`. */
  abstract readonly code: OAuthErrorCode;
  /** The HTTP status an endpoint answers with. */
  abstract readonly status: number;

  constructor(
    /** `error_description`: a short human-readable text, never a secret or a whole token. */
    readonly description: string,
    options?: { cause?: unknown },
  ) {
    super(description, options);
    this.name = new.target.name;
  }

  /** The JSON body of the error response (RFC 6749 §5.2). */
  toJSON(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.code, error_description: this.description };
  }

  /**
   * The `WWW-Authenticate` header value a protected resource answers with (RFC 6750 §3,
   * RFC 9449 §7.1), or `undefined` for errors that have none.
   *
   * @example
   * ```ts
   * new InvalidToken('token expired').wwwAuthenticate(); // 'DPoP error="invalid_token", error_description="token expired", algs="ES256 EdDSA Ed25519"'
   * ```
   */
  wwwAuthenticate(options: WwwAuthenticateOptions = {}): string | undefined {
    return renderWwwAuthenticate(this, options);
  }
}

/**
 * Every error code Writ emits.
 *
 * @example
 * ```ts
 * const code: OAuthErrorCode = 'invalid_dpop_proof';
 * ```
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_client_metadata'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'invalid_authorization_details'
  | 'access_denied'
  | 'login_required'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'unsupported_token_type'
  | 'rate_limited'
  | 'outside_time_window'
  | 'budget_exceeded'
  | 'approval_required'
  | 'revoked'
  | 'temporarily_unavailable'
  | 'server_error';

function defineError<C extends OAuthErrorCode>(code: C, status: number) {
  return class extends OAuthError {
    readonly code: C = code;
    readonly status: number = status;
  };
}

/**
 * RFC 6749 §5.2: the request is missing a parameter, or is otherwise malformed. HTTP 400.
 *
 * @example
 * ```ts
 * throw new InvalidRequest('grant_type is missing');
 * ```
 */
export class InvalidRequest extends defineError('invalid_request', 400) {}
/**
 * RFC 6749 §5.2: client authentication failed. HTTP 401.
 *
 * @example
 * ```ts
 * throw new InvalidClient('client assertion jti was already used');
 * ```
 */
export class InvalidClient extends defineError('invalid_client', 401) {}
/**
 * RFC 7591 §3.2.2: a client metadata value in a registration request is invalid (a private or
 * symmetric key in `jwks`, an unsupported `token_endpoint_auth_method`, ...). HTTP 400.
 *
 * @example
 * ```ts
 * throw new InvalidClientMetadata('jwks key contains private key material');
 * ```
 */
export class InvalidClientMetadata extends defineError('invalid_client_metadata', 400) {}
/**
 * RFC 6749 §5.2: the grant or subject token is invalid, expired, revoked or not this client's. HTTP 400.
 *
 * @example
 * ```ts
 * throw new InvalidGrant('grant is revoked');
 * ```
 */
export class InvalidGrant extends defineError('invalid_grant', 400) {}
/**
 * RFC 6749 §5.2: the client may not use this grant type or act as this actor. HTTP 400.
 *
 * @example
 * ```ts
 * throw new UnauthorizedClient('agent is not allowed to act in this grant');
 * ```
 */
export class UnauthorizedClient extends defineError('unauthorized_client', 400) {}
/**
 * RFC 6749 §5.2: the grant type is not supported. HTTP 400.
 *
 * @example
 * ```ts
 * throw new UnsupportedGrantType('only token exchange is supported');
 * ```
 */
export class UnsupportedGrantType extends defineError('unsupported_grant_type', 400) {}
/**
 * RFC 6749 §5.2: the requested scope is invalid or wider than granted. HTTP 400.
 *
 * @example
 * ```ts
 * throw new InvalidScope('scope is wider than the grant');
 * ```
 */
export class InvalidScope extends defineError('invalid_scope', 400) {}
/**
 * RFC 8693 §2.2.2: the requested audience or resource is not acceptable. HTTP 400.
 *
 * @example
 * ```ts
 * throw new InvalidTarget('audience is not this trust domain');
 * ```
 */
export class InvalidTarget extends defineError('invalid_target', 400) {}
/**
 * RFC 9396 §5: the `authorization_details` are invalid or wider than allowed. HTTP 400.
 *
 * @example
 * ```ts
 * throw new InvalidAuthorizationDetails("capability 0 (flight_booking): action 'delete' is not in the parent");
 * ```
 */
export class InvalidAuthorizationDetails extends defineError('invalid_authorization_details', 400) {}
/**
 * RFC 6749 §4.1.2.1: the human (or policy) denied the request. HTTP 403.
 *
 * @example
 * ```ts
 * throw new AccessDenied('the human denied the request');
 * ```
 */
export class AccessDenied extends defineError('access_denied', 403) {}
/**
 * OpenID Connect Core §3.1.2.6: the human must sign in (with their passkey) first. HTTP 401.
 * Used by the human API, whose session is a cookie: it carries no `WWW-Authenticate` challenge.
 *
 * @example
 * ```ts
 * throw new LoginRequired('sign in with your passkey first');
 * ```
 */
export class LoginRequired extends defineError('login_required', 401) {}
/**
 * RFC 9449 §7.1: the DPoP proof is missing or invalid. HTTP 401.
 *
 * @example
 * ```ts
 * throw new InvalidDpopProof('DPoP proof htm does not match the request method');
 * ```
 */
export class InvalidDpopProof extends defineError('invalid_dpop_proof', 401) {}
/**
 * RFC 9449 §8: the server requires a nonce in the DPoP proof. HTTP 401 at resources (400 at token endpoints).
 *
 * @example
 * ```ts
 * throw new UseDpopNonce('DPoP proof nonce is required', currentNonce);
 * ```
 */
export class UseDpopNonce extends defineError('use_dpop_nonce', 401) {
  constructor(
    description: string,
    /** The nonce the client must put in its next proof (`DPoP-Nonce` header). */
    readonly nonce: string,
  ) {
    super(description);
  }
}
/**
 * RFC 6750 §3.1: the access token is expired, revoked, malformed or invalid. HTTP 401.
 *
 * @example
 * ```ts
 * throw new InvalidToken('token expired');
 * ```
 */
export class InvalidToken extends defineError('invalid_token', 401) {}
/**
 * RFC 6750 §3.1: the token does not cover this action or resource. HTTP 403.
 *
 * @example
 * ```ts
 * throw new InsufficientScope("no capability allows 'write' at https://hotels.example/rooms");
 * ```
 */
export class InsufficientScope extends defineError('insufficient_scope', 403) {}
/**
 * RFC 8693 §2.2.2: the subject or actor token type is not supported. HTTP 400.
 *
 * @example
 * ```ts
 * throw new UnsupportedTokenType('subject_token_type must be txn_token or self_signed');
 * ```
 */
export class UnsupportedTokenType extends defineError('unsupported_token_type', 400) {}
/**
 * Envelope: the grant's rate limit is reached. HTTP 429.
 *
 * @example
 * ```ts
 * throw new RateLimited('60 requests per minute reached', 12);
 * ```
 */
export class RateLimited extends defineError('rate_limited', 429) {
  constructor(
    description: string,
    /** Seconds until a request may succeed again (`Retry-After`). */
    readonly retryAfter: number,
  ) {
    super(description);
  }
}
/**
 * Envelope: the request falls outside every allowed time window. HTTP 403.
 *
 * @example
 * ```ts
 * throw new OutsideTimeWindow('outside Monday to Friday, 09:00-18:00 (Europe/Paris)');
 * ```
 */
export class OutsideTimeWindow extends defineError('outside_time_window', 403) {}
/**
 * Envelope: the amount is above the per-request maximum or the remaining budget. HTTP 403.
 *
 * @example
 * ```ts
 * throw new BudgetExceeded('amount exceeds the remaining budget');
 * ```
 */
export class BudgetExceeded extends defineError('budget_exceeded', 403) {}
/**
 * Envelope: the amount is above the step-up threshold; a human must approve this exact request. HTTP 403.
 *
 * @example
 * ```ts
 * throw new ApprovalRequired('payment above 150 EUR needs your approval', 'su_42');
 * ```
 */
export class ApprovalRequired extends defineError('approval_required', 403) {
  constructor(
    description: string,
    /** The id of the step-up request the human is asked to approve. */
    readonly stepUpId?: string,
  ) {
    super(description);
  }
}
/**
 * The grant, transaction, token or agent was revoked. HTTP 401.
 *
 * @example
 * ```ts
 * throw new Revoked('grant was revoked');
 * ```
 */
export class Revoked extends defineError('revoked', 401) {}
/**
 * A dependency (for example Redis) is unreachable; the request is denied, never allowed. HTTP 503.
 *
 * @example
 * ```ts
 * throw new TemporarilyUnavailable('verifier store is unreachable');
 * ```
 */
export class TemporarilyUnavailable extends defineError('temporarily_unavailable', 503) {}
/**
 * Anything unexpected. The description is fixed; details go to the log only. HTTP 500.
 *
 * @example
 * ```ts
 * throw new ServerError({ cause: unexpected });
 * ```
 */
export class ServerError extends defineError('server_error', 500) {
  constructor(options?: { cause?: unknown }) {
    super('The server could not handle the request.', options);
  }
}

/**
 * Options for {@link renderWwwAuthenticate}.
 *
 * @example
 * ```ts
 * const options: WwwAuthenticateOptions = { scheme: 'DPoP', algs: ['ES256'] };
 * ```
 */
export interface WwwAuthenticateOptions {
  /** Authentication scheme: `DPoP` (default) or `Bearer`. */
  scheme?: 'DPoP' | 'Bearer';
  /** RFC 9449 §7.1 `algs` parameter: the proof algorithms accepted. */
  algs?: readonly string[];
  /** RFC 6750 §3 `scope` parameter, for `insufficient_scope`. */
  scope?: string;
}

const RESOURCE_ERRORS: ReadonlySet<OAuthErrorCode> = new Set([
  'invalid_request',
  'invalid_token',
  'insufficient_scope',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'revoked',
]);

/**
 * RFC 7230 quoted-string: escape backslash and double quote, drop control characters, and write
 * any other character outside printable ASCII as `?` (RFC 6750 §3: an error_description is
 * %x20-7E; a header holding more makes Node refuse the whole response, a 500).
 */
function quote(value: string): string {
  // eslint-disable-next-line no-control-regex
  return `"${value.replace(/[\u0000-\u001f\u007f]/g, '').replace(/[^\u0020-\u007e]/gu, '?').replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * Renders the `WWW-Authenticate` challenge a protected resource sends with this error
 * (RFC 6750 §3, RFC 9449 §7.1). Envelope and server errors have no challenge: they return
 * `undefined`. `revoked` is sent as `invalid_token`, the code RFC 6750 clients understand.
 *
 * @example
 * ```ts
 * renderWwwAuthenticate(new InsufficientScope('no write on /hotels'), { scope: 'hotels:write' });
 * // 'DPoP error="insufficient_scope", error_description="no write on /hotels", scope="hotels:write", algs="ES256 EdDSA Ed25519"'
 * ```
 */
export function renderWwwAuthenticate(error: OAuthError, options: WwwAuthenticateOptions = {}): string | undefined {
  if (!RESOURCE_ERRORS.has(error.code)) return undefined;
  const scheme = options.scheme ?? 'DPoP';
  const code = error.code === 'revoked' ? 'invalid_token' : error.code;
  const params = [`error=${quote(code)}`, `error_description=${quote(error.description)}`];
  if (options.scope !== undefined) params.push(`scope=${quote(options.scope)}`);
  // The default is DPOP_ALGS (dpop.ts, which imports this module): every name a proof may use.
  if (scheme === 'DPoP') params.push(`algs=${quote((options.algs ?? ['ES256', 'EdDSA', 'Ed25519']).join(' '))}`);
  return `${scheme} ${params.join(', ')}`;
}

/**
 * Turns anything thrown into an {@link OAuthError}: protocol errors pass through, everything
 * else becomes a `server_error` with a fixed text (the original stays in `cause`, for the log).
 *
 * @example
 * ```ts
 * toOAuthError(new TypeError('boom')).toJSON(); // { error: 'server_error', error_description: 'The server could not handle the request.' }
 * ```
 */
export function toOAuthError(error: unknown): OAuthError {
  return error instanceof OAuthError ? error : new ServerError({ cause: error });
}
