import { HUMAN_ERRORS, isHumanErrorCode } from '@writ/contracts';
import { ApiError } from './api';

/*
 * Every failure the person can meet, in plain words: refusals from the API and what the browser's
 * passkey prompt throws (WebAuthn errors are DOMExceptions, which @simplewebauthn/browser passes on
 * under the same `name`).
 */

/** "request origin is not allowed" -> "Request origin is not allowed." */
function sentence(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return '';
  const capital = `${trimmed.charAt(0).toUpperCase()}${trimmed.slice(1)}`;
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function describeApiError(error: ApiError): string {
  const detail = error.description === undefined ? '' : ` ${sentence(error.description)}`;
  switch (error.code) {
    case 'network_error':
      return 'Your browser could not reach Writ. Check your connection and try again.';
    case 'temporarily_unavailable':
      return `Writ cannot be reached right now.${detail} Try again in a moment.`;
    case 'login_required':
      return 'You are not signed in, or your session has ended. Sign in with your passkey.';
    case 'access_denied':
      return `This was refused.${detail}`;
    case 'not_found':
      return `This was not found.${detail}`;
    case 'server_error':
      return `Something went wrong on the server.${detail} Try again in a moment.`;
    default:
      // The human API's own codes (HUMAN_ERRORS): a 403 refuses what was signed or sent (a
      // ceremony, a passkey, a confirmation, the session's checks); a 400 says what to change.
      if (isHumanErrorCode(error.code) && HUMAN_ERRORS[error.code].status === 403) return `This was refused.${detail}`;
      return error.description === undefined ? `This was refused (${error.code}).` : sentence(error.description);
  }
}

function describeBrowserError(name: string, message: string): string | undefined {
  switch (name) {
    case 'NotAllowedError':
      return 'The passkey prompt was closed or timed out, so nothing was signed. You can try again.';
    case 'AbortError':
      return 'The passkey prompt was cancelled, so nothing was signed.';
    case 'InvalidStateError':
      return 'This passkey is already registered with this account.';
    case 'SecurityError':
      return `The browser refused to use a passkey on this site address. ${sentence(message)}`;
    case 'NotSupportedError':
      return 'This browser or device cannot use a passkey here.';
    default:
      return undefined;
  }
}

/**
 * What went wrong, in plain words, for the message next to the action that failed.
 *
 * @example
 * ```ts
 * describeError(new ApiError(403, 'csrf_token_missing', 'CSRF token is missing')); // 'This was refused. CSRF token is missing.'
 * ```
 */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return describeApiError(error);
  if (error instanceof Error) {
    return describeBrowserError(error.name, error.message) ?? `Something went wrong. ${sentence(error.message)}`.trim();
  }
  return 'Something went wrong. Try again.';
}
