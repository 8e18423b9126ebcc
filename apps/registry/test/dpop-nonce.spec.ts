import { describe, expect, it } from 'vitest';
import { InvalidDpopProof, InvalidGrant, type OAuthError, UseDpopNonce } from '@writ/core';
import { atTokenEndpoint, UseDpopNonceAtTokenEndpoint } from '../src/modules/tokens/dpop-nonce.js';

// The nonces themselves (issue, accept, the secret file) are libs/server's: libs/server/test/dpop-nonces.spec.ts.

describe('use_dpop_nonce at the token endpoint', () => {
  it('is a 400 with the nonce to use and no WWW-Authenticate challenge (RFC 9449 §8)', () => {
    const error = new UseDpopNonceAtTokenEndpoint('DPoP proof nonce is required', 'n');
    expect({ status: error.status, body: error.toJSON(), nonce: error.nonce, challenge: error.wwwAuthenticate() }).toEqual({
      status: 400,
      body: { error: 'use_dpop_nonce', error_description: 'DPoP proof nonce is required' },
      nonce: 'n',
      challenge: undefined,
    });
  });
});

describe('atTokenEndpoint', () => {
  const shape = (error: unknown) => {
    const e = error as OAuthError;
    return { status: e.status, body: e.toJSON(), challenge: e.wwwAuthenticate() };
  };

  it('turns invalid_dpop_proof into a 400 without WWW-Authenticate (RFC 6749 §5.2, RFC 9449 §5), leaving libs/core\'s resource error as it was', () => {
    const resourceError = new InvalidDpopProof('DPoP proof is missing');
    expect(shape(atTokenEndpoint(resourceError, undefined))).toEqual({ status: 400, body: { error: 'invalid_dpop_proof', error_description: 'DPoP proof is missing' }, challenge: undefined });
    // The verifier's answer is unchanged: 401 with its DPoP challenge (RFC 9449 §7.1).
    expect(shape(resourceError)).toMatchObject({ status: 401, challenge: expect.stringMatching(/^DPoP error="invalid_dpop_proof"/) });
  });

  it('turns use_dpop_nonce into a 400 carrying the nonce of this answer, or the one the check named', () => {
    expect(atTokenEndpoint(new UseDpopNonce('DPoP proof nonce is required', 'old'), 'fresh')).toMatchObject({ status: 400, nonce: 'fresh' });
    expect(atTokenEndpoint(new UseDpopNonce('DPoP proof nonce is required', 'named'), undefined)).toMatchObject({ status: 400, nonce: 'named' });
  });

  it('leaves every other error as it is', () => {
    const other = new InvalidGrant('grant is revoked');
    expect(atTokenEndpoint(other, 'n')).toBe(other);
  });
});
