import { describe, expect, it } from 'vitest';
import { ApiError } from './api';
import { describeError } from './errors';

describe('describeError', () => {
  it('puts the API refusal in plain words, keeping its description', () => {
    expect(describeError(new ApiError(403, 'csrf_token_missing', 'CSRF token is missing'))).toBe(
      'This was refused. CSRF token is missing.',
    );
    expect(describeError(new ApiError(403, 'passkey_unknown', 'passkey is not registered to this account'))).toBe(
      'This was refused. Passkey is not registered to this account.',
    );
    expect(describeError(new ApiError(403, 'access_denied', 'request refused'))).toBe('This was refused. Request refused.');
    expect(describeError(new ApiError(400, 'grant_wrong_status', 'grant is revoked, not pending'))).toBe('Grant is revoked, not pending.');
    expect(describeError(new ApiError(502, 'temporarily_unavailable', 'the registry cannot be reached'))).toBe(
      'Writ cannot be reached right now. The registry cannot be reached. Try again in a moment.',
    );
    expect(describeError(new ApiError(400, 'invalid_request', 'narrowing.duration_s exceeds the request'))).toBe(
      'Narrowing.duration_s exceeds the request.',
    );
    expect(describeError(new ApiError(409, 'conflict', undefined))).toBe('This was refused (conflict).');
  });

  it('tells a signed-out person to sign in', () => {
    expect(describeError(new ApiError(401, 'login_required', 'sign in with your passkey first'))).toMatch(/Sign in with your passkey/);
  });

  it('explains a closed or timed-out passkey prompt', () => {
    const closed = Object.assign(new Error('The operation either timed out or was not allowed.'), { name: 'NotAllowedError' });
    expect(describeError(closed)).toBe('The passkey prompt was closed or timed out, so nothing was signed. You can try again.');
  });

  it('still says something for anything else', () => {
    expect(describeError(new Error('boom'))).toBe('Something went wrong. Boom.');
    expect(describeError('?')).toBe('Something went wrong. Try again.');
  });
});
