/*
 * The human API's own error codes, in one table (docs/approval.md, "Errors"): each code with the
 * HTTP status it is answered with and the template of its `error_description`. The registry throws
 * them with `humanError(code, values)`; the approval UI reads the same table. The OAuth endpoints
 * (/token, /introspect, /revoke, /register, ...) keep their RFC codes, and so do the few codes the
 * human API shares with every other route: `invalid_request` (a malformed body or query),
 * `login_required`, `not_found`, `rate_limited`, `temporarily_unavailable` and `server_error`.
 */

/** One row of the table: the status and the description, `{name}` standing for a value. */
interface HumanErrorRow {
  readonly status: 400 | 403;
  readonly message: string;
}

export const HUMAN_ERRORS = {
  // The session's request checks (ARCHITECTURE.md, "Security defaults").
  origin_missing: { status: 403, message: 'request has no Origin header' },
  origin_not_allowed: { status: 403, message: 'request origin is not allowed' },
  csrf_token_missing: { status: 403, message: 'CSRF token is missing' },
  csrf_token_mismatch: { status: 403, message: 'CSRF token does not match this session' },

  // A WebAuthn ceremony: started by step 1, finished once by step 2.
  ceremony_unknown: { status: 403, message: 'ceremony is unknown: start again' },
  ceremony_used: { status: 403, message: 'ceremony was already used: start again' },
  ceremony_expired: { status: 403, message: 'ceremony has expired: start again' },
  ceremony_other_session: { status: 403, message: 'ceremony was started in another session: start again' },
  ceremony_other_subject: { status: 403, message: 'ceremony is for another {subject}' },
  document_changed: { status: 403, message: '{document} differs from the one issued with this ceremony' },
  challenge_mismatch: { status: 403, message: '{document} does not match the ceremony challenge' },
  receipt_invalid: { status: 403, message: '{receipt} receipt does not verify offline: {reason}' },

  // The passkey's answer (W3C WebAuthn Level 3, §7.1 and §7.2).
  passkey_wrong_type: { status: 403, message: "passkey response has type '{type}', expected '{expected}'" },
  passkey_wrong_challenge: { status: 403, message: 'passkey response does not sign {what}' },
  passkey_wrong_origin: { status: 403, message: "passkey response comes from origin '{origin}', which is not allowed" },
  passkey_cross_origin: { status: 403, message: 'passkey response was made in a cross-origin frame' },
  passkey_counter: { status: 403, message: 'passkey signature counter did not increase ({received} after {stored}): the passkey may have been cloned' },
  passkey_unknown: { status: 403, message: 'passkey is not registered to this account' },
  passkey_removed: { status: 403, message: 'passkey was removed from this account' },
  passkey_refused: { status: 403, message: 'passkey {ceremony} refused: {reason}' },
  passkey_already_registered: { status: 403, message: 'this passkey is already registered' },
  no_passkey: { status: 403, message: 'this account has no passkey' },
  last_passkey: { status: 400, message: 'this is your only passkey: add another one before removing it' },

  // A fresh passkey confirmation (ADR 0018).
  confirmation_required: {
    status: 403,
    message: 'a fresh passkey confirmation is needed to {purpose}: confirm with one of your passkeys (POST /me/confirmation/options) and send it as confirmation',
  },
  confirmation_unknown: { status: 403, message: 'passkey confirmation is unknown or already used: confirm with your passkey again' },
  confirmation_expired: { status: 403, message: 'passkey confirmation has expired: confirm with your passkey again' },
  confirmation_other_session: { status: 403, message: 'passkey confirmation was made in another session: confirm with your passkey again' },
  confirmation_other_purpose: { status: 403, message: 'passkey confirmation was made to {made}, not to {purpose}' },

  // Deciding on a grant or a step-up.
  grant_not_found: { status: 400, message: 'grant not found' },
  grant_wrong_status: { status: 400, message: 'grant is {status}, not {expected}' },
  grant_changed: { status: 400, message: 'grant changed after the approval document was issued (version {signed}, now {current})' },
  approval_run_out: { status: 400, message: 'the signed approval has already run out' },
  denial_narrowed: { status: 400, message: 'a denial cannot be narrowed' },
  parties_gone: { status: 400, message: '{subject} names an agent or service that no longer exists' },
  step_up_not_found: { status: 400, message: 'step-up not found' },
  step_up_wrong_status: { status: 400, message: 'step-up is {status}, not pending' },
  step_up_expired_at_verifier: { status: 400, message: 'step-up is no longer pending at the verifier: it expired there' },
} as const satisfies Record<string, HumanErrorRow>;

export type HumanErrorCode = keyof typeof HUMAN_ERRORS;

/** The `{name}`s of a template. */
type Placeholders<T extends string> = T extends `${string}{${infer Name}}${infer Rest}` ? Name | Placeholders<Rest> : never;

/** The values a code's template needs: none, or one per placeholder. */
export type HumanErrorValues<C extends HumanErrorCode> = [Placeholders<(typeof HUMAN_ERRORS)[C]['message']>] extends [never]
  ? []
  : [values: Record<Placeholders<(typeof HUMAN_ERRORS)[C]['message']>, string | number>];

/** Whether `code` is one of the human API's own codes. */
export function isHumanErrorCode(code: string): code is HumanErrorCode {
  return Object.hasOwn(HUMAN_ERRORS, code);
}

/**
 * A refusal of the human API: answered with the table's status and `{error, error_description}`.
 *
 * @example
 * ```ts
 * throw humanError('grant_wrong_status', { status: 'revoked', expected: 'pending' });
 * // 400 {"error":"grant_wrong_status","error_description":"grant is revoked, not pending"}
 * ```
 */
export class HumanApiError extends Error {
  readonly status: number;

  constructor(
    readonly code: HumanErrorCode,
    readonly description: string,
  ) {
    super(description);
    this.name = 'HumanApiError';
    this.status = HUMAN_ERRORS[code].status;
  }

  /** The JSON body of the answer: the same shape as every other error of the registry. */
  toJSON(): { error: HumanErrorCode; error_description: string } {
    return { error: this.code, error_description: this.description };
  }
}

/** The error of `code`, its description filled in from `values`. */
export function humanError<C extends HumanErrorCode>(code: C, ...[values]: HumanErrorValues<C>): HumanApiError {
  const template: string = HUMAN_ERRORS[code].message;
  const description = template.replace(/\{(\w+)\}/g, (_, name: string) => String((values as Record<string, string | number> | undefined)?.[name] ?? `{${name}}`));
  return new HumanApiError(code, description);
}
