import { describe, expect, it } from 'vitest';
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
  OAuthError,
  OutsideTimeWindow,
  RateLimited,
  renderWwwAuthenticate,
  Revoked,
  ServerError,
  TemporarilyUnavailable,
  toOAuthError,
  UnauthorizedClient,
  UnsupportedGrantType,
  UnsupportedTokenType,
  UseDpopNonce,
} from './errors.js';

describe('OAuth error classes', () => {
  it.each([
    [new InvalidRequest('x'), 'invalid_request', 400],
    [new InvalidClient('x'), 'invalid_client', 401],
    [new InvalidClientMetadata('x'), 'invalid_client_metadata', 400],
    [new InvalidGrant('x'), 'invalid_grant', 400],
    [new UnauthorizedClient('x'), 'unauthorized_client', 400],
    [new UnsupportedGrantType('x'), 'unsupported_grant_type', 400],
    [new InvalidScope('x'), 'invalid_scope', 400],
    [new InvalidTarget('x'), 'invalid_target', 400],
    [new InvalidAuthorizationDetails('x'), 'invalid_authorization_details', 400],
    [new AccessDenied('x'), 'access_denied', 403],
    [new LoginRequired('x'), 'login_required', 401],
    [new InvalidDpopProof('x'), 'invalid_dpop_proof', 401],
    [new UseDpopNonce('x', 'n'), 'use_dpop_nonce', 401],
    [new InvalidToken('x'), 'invalid_token', 401],
    [new InsufficientScope('x'), 'insufficient_scope', 403],
    [new UnsupportedTokenType('x'), 'unsupported_token_type', 400],
    [new RateLimited('x', 3), 'rate_limited', 429],
    [new OutsideTimeWindow('x'), 'outside_time_window', 403],
    [new BudgetExceeded('x'), 'budget_exceeded', 403],
    [new ApprovalRequired('x', 'su_1'), 'approval_required', 403],
    [new Revoked('x'), 'revoked', 401],
    [new TemporarilyUnavailable('x'), 'temporarily_unavailable', 503],
    [new ServerError(), 'server_error', 500],
  ] as const)('%s has code %s and status %i', (error, code, status) => {
    expect(error).toBeInstanceOf(OAuthError);
    expect(error.code).toBe(code);
    expect(error.status).toBe(status);
    expect(error.name).toBe(error.constructor.name);
  });

  it('renders the RFC 6749 §5.2 JSON body', () => {
    expect(new InvalidGrant('grant is revoked').toJSON()).toEqual({ error: 'invalid_grant', error_description: 'grant is revoked' });
    expect(JSON.stringify(new InvalidClient('unknown client'))).toBe('{"error":"invalid_client","error_description":"unknown client"}');
  });

  it('carries the nonce, retry delay and step-up id that clients need', () => {
    expect(new UseDpopNonce('nonce required', 'n-1').nonce).toBe('n-1');
    expect(new RateLimited('slow down', 7).retryAfter).toBe(7);
    expect(new ApprovalRequired('above 150 EUR', 'su_9').stepUpId).toBe('su_9');
  });
});

describe('renderWwwAuthenticate', () => {
  it('renders a DPoP challenge with the algs parameter (RFC 9449 §7.1)', () => {
    expect(new InvalidDpopProof('DPoP proof htm does not match').wwwAuthenticate()).toBe(
      'DPoP error="invalid_dpop_proof", error_description="DPoP proof htm does not match", algs="ES256 EdDSA Ed25519"',
    );
  });

  it('renders a Bearer challenge with scope for insufficient_scope (RFC 6750 §3)', () => {
    expect(renderWwwAuthenticate(new InsufficientScope('no write'), { scheme: 'Bearer', scope: 'hotels:write' })).toBe(
      'Bearer error="insufficient_scope", error_description="no write", scope="hotels:write"',
    );
  });

  it('sends revoked as invalid_token, which RFC 6750 clients understand', () => {
    expect(new Revoked('grant revoked').wwwAuthenticate({ algs: ['ES256'] })).toBe(
      'DPoP error="invalid_token", error_description="grant revoked", algs="ES256"',
    );
  });

  it('escapes quotes and backslashes and drops control characters', () => {
    expect(new InvalidToken('bad "x"\\\n').wwwAuthenticate({ scheme: 'Bearer' })).toBe(
      'Bearer error="invalid_token", error_description="bad \\"x\\"\\\\"',
    );
  });

  it('writes characters outside printable ASCII as ? in the challenge, which HTTP headers cannot carry', () => {
    expect(new InvalidRequest("unknown field '東京' (UTC−05:00) café").wwwAuthenticate({ scheme: 'Bearer' })).toBe(
      'Bearer error="invalid_request", error_description="unknown field \'??\' (UTC?05:00) caf?"',
    );
  });

  it('renders no challenge for envelope and server errors', () => {
    expect(new BudgetExceeded('over').wwwAuthenticate()).toBeUndefined();
    expect(new ServerError().wwwAuthenticate()).toBeUndefined();
  });
});

describe('toOAuthError', () => {
  it('passes protocol errors through', () => {
    const error = new InvalidToken('expired');
    expect(toOAuthError(error)).toBe(error);
  });

  it('hides anything unexpected behind a fixed server_error, keeping the cause for the log', () => {
    const cause = new TypeError('db password is hunter2');
    const error = toOAuthError(cause);
    expect(error.toJSON()).toEqual({ error: 'server_error', error_description: 'The server could not handle the request.' });
    expect(error.cause).toBe(cause);
  });
});
