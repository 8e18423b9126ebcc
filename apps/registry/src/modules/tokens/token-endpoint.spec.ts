import { TOKEN_EXCHANGE_GRANT, TXN_TOKEN_TYPE } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { dpopProofUse, parseDelegationDetails, parseRequestDetails, readTokenRequest, requireTokenExchange } from './token-endpoint.js';

const FORM = 'application/x-www-form-urlencoded';

describe('the token endpoint steps in front', () => {
  it('reads the form, the one DPoP header and the peer', () => {
    expect(readTokenRequest({ contentType: `${FORM}; charset=utf-8`, body: { grant_type: 'g' }, dpop: 'proof', ip: '192.0.2.1' })).toEqual({
      params: { grant_type: 'g' },
      dpop: 'proof',
      ip: '192.0.2.1',
    });
  });

  it('refuses a body that is not a form, then a repeated parameter, then a second DPoP header, in that order', () => {
    expect(() => readTokenRequest({ contentType: 'application/json', body: { a: ['1', '2'] }, dpop: ['p', 'q'], ip: undefined })).toThrow(
      expect.objectContaining({ code: 'invalid_request', description: `the request body must be ${FORM}` }),
    );
    expect(() => readTokenRequest({ contentType: FORM, body: { a: ['1', '2'] }, dpop: ['p', 'q'], ip: undefined })).toThrow(
      expect.objectContaining({ code: 'invalid_request', description: 'parameter a is repeated' }),
    );
    expect(() => readTokenRequest({ contentType: FORM, body: {}, dpop: ['p', 'q'], ip: undefined })).toThrow(
      expect.objectContaining({ code: 'invalid_request', description: 'more than one DPoP header' }),
    );
  });

  it('checks the grant type, the requested token type and the subject token, in that order', () => {
    const valid = { grant_type: TOKEN_EXCHANGE_GRANT, requested_token_type: TXN_TOKEN_TYPE, subject_token: 'x' };
    expect(() => requireTokenExchange(valid)).not.toThrow();
    expect(() => requireTokenExchange({})).toThrow(expect.objectContaining({ code: 'invalid_request', description: 'grant_type is required' }));
    expect(() => requireTokenExchange({ grant_type: 'client_credentials' })).toThrow(
      expect.objectContaining({ code: 'unsupported_grant_type', description: `grant_type must be ${TOKEN_EXCHANGE_GRANT}` }),
    );
    expect(() => requireTokenExchange({ ...valid, requested_token_type: 'urn:ietf:params:oauth:token-type:jwt', subject_token: '' })).toThrow(
      expect.objectContaining({ code: 'invalid_request', description: `requested_token_type must be ${TXN_TOKEN_TYPE}` }),
    );
    expect(() => requireTokenExchange({ ...valid, subject_token: '' })).toThrow(expect.objectContaining({ code: 'invalid_request', description: 'subject_token is required' }));
  });

  it('keeps a DPoP proof jti as long as the proof could be accepted: its maximum age plus clock skew', () => {
    expect(dpopProofUse({ jkt: 'k', jti: 'j', iat: 1_000 })).toEqual({ jkt: 'k', jti: 'j', expiresAt: new Date((1_000 + 300 + 5) * 1000) });
  });
});

describe('request_details', () => {
  it('is required for a root token, and names the grant', () => {
    expect(() => parseRequestDetails(undefined)).toThrow(expect.objectContaining({ code: 'invalid_request', description: 'request_details is required' }));
    expect(parseRequestDetails('{"grant_id":"grt_1"}')).toEqual({ grant_id: 'grt_1' });
  });

  it('is optional for a delegation: the parent context when absent', () => {
    expect(parseDelegationDetails(undefined)).toEqual({});
    expect(parseDelegationDetails('')).toEqual({});
  });

  it('answers invalid_request for text that is not JSON or a field it does not know', () => {
    expect(() => parseRequestDetails('{')).toThrow(expect.objectContaining({ code: 'invalid_request', description: 'request_details is not JSON' }));
    expect(() => parseDelegationDetails('{"grant_id":"grt_1"}')).toThrow(expect.objectContaining({ code: 'invalid_request' }));
  });

  it('answers invalid_authorization_details (RFC 9396 §5) for a malformed capability, naming it', () => {
    expect(() => parseRequestDetails('{"grant_id":"grt_1","authorization_details":[{"type":""}]}')).toThrow(
      expect.objectContaining({ code: 'invalid_authorization_details', description: expect.stringMatching(/^request_details\.authorization_details/) as string }),
    );
  });
});
