import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HUMAN_ERRORS, HumanApiError, humanError, isHumanErrorCode } from '../src/index.js';

/** Every code an OAuth endpoint of Writ may answer with (libs/core's OAuthErrorCode and the RFCs it cites). */
const OAUTH_CODES = [
  'invalid_request', 'invalid_client', 'invalid_client_metadata', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type',
  'invalid_scope', 'invalid_target', 'invalid_authorization_details', 'access_denied', 'login_required', 'invalid_dpop_proof',
  'use_dpop_nonce', 'invalid_token', 'insufficient_scope', 'unsupported_token_type', 'rate_limited', 'outside_time_window',
  'budget_exceeded', 'approval_required', 'revoked', 'temporarily_unavailable', 'server_error', 'not_found',
];

describe('the human API error table', () => {
  it('reuses no OAuth code: a client can tell a domain refusal from a protocol one', () => {
    expect(Object.keys(HUMAN_ERRORS).filter((code) => OAUTH_CODES.includes(code))).toEqual([]);
  });

  it('names every code in snake case, with a 400 or 403 and a description that is one clause without a capital or a full stop', () => {
    for (const [code, { status, message }] of Object.entries(HUMAN_ERRORS)) {
      expect(code, code).toMatch(/^[a-z]+(_[a-z]+)*$/);
      expect([400, 403], code).toContain(status);
      expect(message, code).toMatch(/^([a-z{]|CSRF)/);
      expect(message, code).not.toMatch(/\.$/);
    }
  });

  it('fills a template from its values, and answers with the table status', () => {
    const error = humanError('grant_wrong_status', { status: 'revoked', expected: 'approved or pending' });
    expect(error).toBeInstanceOf(HumanApiError);
    expect(error).toMatchObject({ code: 'grant_wrong_status', status: 400, description: 'grant is revoked, not approved or pending', message: 'grant is revoked, not approved or pending' });
    expect(error.toJSON()).toEqual({ error: 'grant_wrong_status', error_description: 'grant is revoked, not approved or pending' });
    expect(JSON.stringify(humanError('passkey_counter', { received: 1, stored: 7 }))).toBe(
      '{"error":"passkey_counter","error_description":"passkey signature counter did not increase (1 after 7): the passkey may have been cloned"}',
    );
  });

  it('answers a code without placeholders with its message as is', () => {
    expect(humanError('csrf_token_missing').toJSON()).toEqual({ error: 'csrf_token_missing', error_description: 'CSRF token is missing' });
    expect(humanError('csrf_token_missing').status).toBe(403);
  });

  it('tells its own codes from any other', () => {
    expect(isHumanErrorCode('ceremony_used')).toBe(true);
    expect(isHumanErrorCode('access_denied')).toBe(false);
    expect(isHumanErrorCode('toString')).toBe(false);
  });
});

describe('docs/approval.md, "Errors"', () => {
  it('lists every code of the table with its status and description, and no other', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../../docs/approval.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### Errors'), doc.indexOf('\n## ', doc.indexOf('### Errors')));
    const rows = [...section.matchAll(/^\| `(\w+)` \| (\d{3}) \| `(.*)` \|$/gm)].map(([, code, status, message]) => [code, Number(status), message]);
    expect(rows).toEqual(Object.entries(HUMAN_ERRORS).map(([code, { status, message }]) => [code, status, message]));
  });
});
