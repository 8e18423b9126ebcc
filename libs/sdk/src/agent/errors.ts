import {
  AccessDenied,
  ApprovalRequired,
  BudgetExceeded,
  InsufficientScope,
  InvalidAuthorizationDetails,
  InvalidClient,
  InvalidClientMetadata,
  InvalidDpopProof,
  InvalidGrant,
  InvalidRequest,
  InvalidScope,
  InvalidTarget,
  InvalidToken,
  LoginRequired,
  type OAuthError,
  type OAuthErrorCode,
  OutsideTimeWindow,
  RateLimited,
  Revoked,
  ServerError,
  TemporarilyUnavailable,
  UnauthorizedClient,
  UnsupportedGrantType,
  UnsupportedTokenType,
  UseDpopNonce,
} from '@writ/core';
import type { Grant, StepUp } from './types.js';

/**
 * The errors the agent side throws. Protocol answers become libs/core's `OAuthError` classes,
 * one per code, so callers switch on `instanceof` or `code`:
 *
 * ```ts
 * catch (e) { if (e instanceof ApprovalRequired) await agent.waitForStepUp(e.stepUpId!); }
 * ```
 *
 * Decisions on a grant or a step-up the agent waited for are subclasses of those (a denied grant
 * is an `AccessDenied` that also carries the grant). An answer without a known protocol code is a
 * {@link WritResponseError}; a wait that ran out of time is a {@link WaitTimeout}.
 */

/** What an error code may need besides its description. */
interface ErrorExtras {
  /** `DPoP-Nonce` of the answer (use_dpop_nonce). */
  nonce?: string | undefined;
  /** Seconds, from `Retry-After` (rate_limited). */
  retryAfter?: number | undefined;
  /** `step_up_id` of the body (approval_required). */
  stepUpId?: string | undefined;
}

/** Every code of libs/core, with the class that carries it: a new code fails to compile here until mapped. */
const FACTORIES: Record<OAuthErrorCode, (description: string, extras: ErrorExtras) => OAuthError> = {
  invalid_request: (d) => new InvalidRequest(d),
  invalid_client: (d) => new InvalidClient(d),
  invalid_client_metadata: (d) => new InvalidClientMetadata(d),
  invalid_grant: (d) => new InvalidGrant(d),
  unauthorized_client: (d) => new UnauthorizedClient(d),
  unsupported_grant_type: (d) => new UnsupportedGrantType(d),
  invalid_scope: (d) => new InvalidScope(d),
  invalid_target: (d) => new InvalidTarget(d),
  invalid_authorization_details: (d) => new InvalidAuthorizationDetails(d),
  access_denied: (d) => new AccessDenied(d),
  login_required: (d) => new LoginRequired(d),
  invalid_dpop_proof: (d) => new InvalidDpopProof(d),
  use_dpop_nonce: (d, x) => new UseDpopNonce(d, x.nonce ?? ''),
  invalid_token: (d) => new InvalidToken(d),
  insufficient_scope: (d) => new InsufficientScope(d),
  unsupported_token_type: (d) => new UnsupportedTokenType(d),
  rate_limited: (d, x) => new RateLimited(d, x.retryAfter ?? 0),
  outside_time_window: (d) => new OutsideTimeWindow(d),
  budget_exceeded: (d) => new BudgetExceeded(d),
  approval_required: (d, x) => new ApprovalRequired(d, x.stepUpId),
  revoked: (d) => new Revoked(d),
  temporarily_unavailable: (d) => new TemporarilyUnavailable(d),
  // ServerError's text is fixed; what the server said stays in `cause`.
  server_error: (d) => new ServerError({ cause: d }),
};

function isKnownCode(code: unknown): code is OAuthErrorCode {
  return typeof code === 'string' && Object.hasOwn(FACTORIES, code);
}

/**
 * An answer the SDK could not read as a protocol answer: an unexpected status, a body that is
 * not the JSON it should be, or an error code libs/core does not define (the registry's
 * `not_found` for an unknown grant, for instance).
 *
 * @example
 * ```ts
 * try {
 *   await agent.waitForGrant('grt_unknown');
 * } catch (e) {
 *   if (e instanceof WritResponseError && e.status === 404) console.log('no such grant');
 * }
 * ```
 */
export class WritResponseError extends Error {
  constructor(
    /** The HTTP status of the answer. */
    readonly status: number,
    /** The `error` member of the body, when it had one. */
    readonly error: string | undefined,
    /** The `error_description`, or what the SDK expected instead. */
    readonly description: string,
  ) {
    super(error === undefined ? `${status}: ${description}` : `${status} ${error}: ${description}`);
    this.name = 'WritResponseError';
  }
}

/**
 * A wait for a human's decision (a grant or a step-up) that ran out of `timeoutMs` while the
 * decision was still pending. Waiting again later is fine: nothing was lost.
 *
 * @example
 * ```ts
 * try {
 *   await agent.waitForGrant(grantId, { timeoutMs: 60_000 });
 * } catch (e) {
 *   if (e instanceof WaitTimeout) console.log(`still waiting for ${e.id}`);
 * }
 * ```
 */
export class WaitTimeout extends Error {
  readonly code = 'wait_timeout';

  constructor(
    /** What was awaited. */
    readonly kind: 'grant' | 'step_up',
    /** Its id. */
    readonly id: string,
    readonly timeoutMs: number,
  ) {
    super(`the ${kind === 'grant' ? 'grant' : 'step-up'} ${id} was still pending after ${timeoutMs} ms`);
    this.name = 'WaitTimeout';
  }
}

/**
 * The human denied the grant the agent was waiting for.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof GrantDenied) console.log(`denied at ${e.grant.decided_at}`); }
 * ```
 */
export class GrantDenied extends AccessDenied {
  constructor(readonly grant: Grant) {
    super(`the grant ${grant.grant_id} was denied`);
  }
}

/**
 * The grant expired: nobody decided before the request lapsed, or its duration is over.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof GrantExpired) await agent.requestGrant(request); }
 * ```
 */
export class GrantExpired extends InvalidGrant {
  constructor(readonly grant: Grant) {
    super(`the grant ${grant.grant_id} is expired`);
  }
}

/**
 * The human revoked the grant.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof GrantRevoked) console.log(`revoked at ${e.grant.revoked_at}`); }
 * ```
 */
export class GrantRevoked extends Revoked {
  constructor(readonly grant: Grant) {
    super(`the grant ${grant.grant_id} was revoked`);
  }
}

/**
 * The human denied the step-up: the request above `approval_above` must not be retried.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof StepUpDenied) console.log(`not paid: ${e.stepUp.step_up_id}`); }
 * ```
 */
export class StepUpDenied extends AccessDenied {
  constructor(readonly stepUp: StepUp) {
    super(`the step-up ${stepUp.step_up_id} was denied`);
  }
}

/**
 * Nobody approved the step-up in time. Retrying the request asks for a new one.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof StepUpExpired) console.log('the human did not answer in time'); }
 * ```
 */
export class StepUpExpired extends AccessDenied {
  constructor(readonly stepUp: StepUp) {
    super(`the step-up ${stepUp.step_up_id} expired before the human approved it`);
  }
}

/** RFC 9110 §10.2.3: `Retry-After` is delay-seconds or an HTTP-date; answered in whole seconds. */
function retryAfterSeconds(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

/** One challenge of a `WWW-Authenticate` header: its scheme (lowercase) and its auth-params. */
interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const PARAM = new RegExp(`^(${TOKEN})[ \\t]*=[ \\t]*(${TOKEN}|"(?:[^"\\\\]|\\\\.)*")`);
const SCHEME = new RegExp(`^(${TOKEN})(?=[ \\t]|,|$)`);
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;

/**
 * RFC 9110 §11.6.1: the challenges of a `WWW-Authenticate` header. One header may carry several
 * (RFC 9449 §7.2 has `Bearer` and `DPoP` together), so an error is read from its own scheme.
 */
function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let rest = header;
  let current: Challenge | undefined;
  for (;;) {
    rest = rest.replace(/^[\s,]+/, '');
    if (rest === '') return challenges;
    const param = PARAM.exec(rest);
    if (param !== null && current !== undefined) {
      const raw = param[2]!;
      current.params[param[1]!.toLowerCase()] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
      rest = rest.slice(param[0].length);
      continue;
    }
    const scheme = SCHEME.exec(rest);
    if (scheme !== null) {
      current = { scheme: scheme[1]!.toLowerCase(), params: {} };
      challenges.push(current);
      rest = rest.slice(scheme[0].length).replace(/^[ \t]+/, '');
      const token68 = TOKEN68.exec(rest);
      // A token68 stands alone after its scheme; an auth-param starts with a token then `=`.
      if (token68 !== null && !PARAM.test(rest)) rest = rest.slice(token68[0].length);
      continue;
    }
    return challenges;
  }
}

/** The `error` of the DPoP challenge (or else the Bearer one) of an answer, with its description. */
function challengeError(response: Response): { error: string; description: string | undefined } | undefined {
  const header = response.headers.get('www-authenticate');
  if (header === null) return undefined;
  const challenges = parseChallenges(header);
  const challenge = challenges.find((c) => c.scheme === 'dpop' && c.params.error) ?? challenges.find((c) => c.scheme === 'bearer' && c.params.error);
  return challenge === undefined ? undefined : { error: challenge.params.error!, description: challenge.params.error_description };
}

/** The body, if it is a JSON object. Unless `consume`, the response itself is left unread (a clone is read). */
async function jsonBody(response: Response, consume = false): Promise<Record<string, unknown> | undefined> {
  if (!/[/+]json\b/i.test(response.headers.get('content-type') ?? '')) {
    if (consume) await response.body?.cancel();
    return undefined;
  }
  try {
    const value: unknown = await (consume ? response : response.clone()).json();
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** @internal The OAuthError for `code`, with what the answer's headers and body add to it. */
export function errorFor(code: OAuthErrorCode, description: string, response: Response, body: Record<string, unknown> | undefined, now: number): OAuthError {
  return FACTORIES[code](description, {
    nonce: response.headers.get('dpop-nonce') ?? undefined,
    retryAfter: retryAfterSeconds(response.headers.get('retry-after'), now),
    stepUpId: typeof body?.step_up_id === 'string' ? body.step_up_id : undefined,
  });
}

/**
 * @internal An error answer of the registry (`{error, error_description}`, RFC 6749 §5.2) as its
 * OAuthError, or a {@link WritResponseError} when it carries no known code.
 */
export async function registryError(response: Response, now: number): Promise<Error> {
  const body = await jsonBody(response, true);
  const code = body?.error;
  const description = typeof body?.error_description === 'string' ? body.error_description : `the registry answered ${response.status}`;
  if (isKnownCode(code)) return errorFor(code, description, response, body, now);
  return new WritResponseError(response.status, typeof code === 'string' ? code : undefined, description);
}

/** Denials a service provider's answer carries in its body alone (no challenge: envelope and availability codes). */
const BODY_ONLY_DENIALS: ReadonlySet<OAuthErrorCode> = new Set([
  'rate_limited',
  'outside_time_window',
  'budget_exceeded',
  'approval_required',
  'temporarily_unavailable',
  'revoked',
  'invalid_token',
  'invalid_dpop_proof',
  'use_dpop_nonce',
  'insufficient_scope',
]);

/**
 * Reads a service provider's answer the way the SDK middleware writes denials (libs/sdk
 * `verifyRequest`: the verifier's status, `WWW-Authenticate: DPoP error="..."`, `Retry-After`,
 * `DPoP-Nonce`, and a JSON body `{error, error_description, step_up_id?}`), and returns the
 * matching libs/core error, or `undefined` when the answer is not a Writ denial (a success, or the
 * service's own error). The body code wins when it refines the challenge's (`revoked` is sent as
 * `invalid_token` in the challenge); `invalid_request` counts only with a DPoP or Bearer
 * challenge, since services answer their own bad requests with 400 too. The response stays
 * unread (a clone is read).
 *
 * `WritAgent.fetch` throws this error for you; call this helper after
 * `agent.fetch(url, init, { token, throwOnDenial: false })`.
 *
 * @example
 * ```ts
 * const response = await agent.fetch(url, { method: 'POST', body }, { token, throwOnDenial: false });
 * const denial = await writDenialOf(response);
 * if (denial instanceof ApprovalRequired) console.log('ask the human:', denial.stepUpId);
 * else if (denial) throw denial;
 * ```
 */
export async function writDenialOf(response: Response, now: number = Date.now()): Promise<OAuthError | undefined> {
  if (response.status < 400) return undefined;
  const challenge = challengeError(response);
  const body = await jsonBody(response);
  const bodyCode = isKnownCode(body?.error) ? body.error : undefined;
  const bodyDescription = typeof body?.error_description === 'string' ? body.error_description : undefined;
  let code: OAuthErrorCode;
  if (challenge !== undefined && isKnownCode(challenge.error)) {
    const refines = bodyCode !== undefined && (bodyCode === challenge.error || (challenge.error === 'invalid_token' && bodyCode === 'revoked'));
    code = refines ? bodyCode : challenge.error;
  } else if (bodyCode !== undefined && BODY_ONLY_DENIALS.has(bodyCode)) {
    code = bodyCode;
  } else {
    return undefined;
  }
  const description = bodyDescription ?? challenge?.description ?? code;
  return errorFor(code, description, response, body, now);
}

/** @internal Whether an answer asks for a DPoP nonce: RFC 9449 §8 (token endpoint, 400 + body) or §9 (resource, 401 + challenge). */
export async function nonceRequested(response: Response): Promise<string | undefined> {
  const nonce = response.headers.get('dpop-nonce');
  if (nonce === null || nonce === '') return undefined;
  if (response.status === 401 && challengeError(response)?.error === 'use_dpop_nonce') return nonce;
  if (response.status === 400 && (await jsonBody(response))?.error === 'use_dpop_nonce') return nonce;
  return undefined;
}
