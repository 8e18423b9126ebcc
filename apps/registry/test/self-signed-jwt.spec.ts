import { InvalidGrant, OAuthError } from '@writ/core';
import { CompactSign, type JWK, SignJWT } from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { type KeyPair, keyPair } from './support/keys.js';
import { CLOCK_SKEW_S } from '../src/modules/tokens/issued-tokens.js';
import { MAX_SELF_SIGNED_LIFETIME_S, type SelfSignedKind, verifySelfSignedJwt } from '../src/modules/tokens/self-signed-jwt.js';


const es = keyPair('ES256');
const ed = keyPair('EdDSA');
const otherEs = keyPair('ES256');

/** 2026-11-24T09:00:00.750Z: a fraction of a second, so whole seconds are floored. */
const NOW = Date.parse('2026-11-24T09:00:00.750Z');
const NOW_S = Math.floor(NOW / 1000);
const CLIENT = 'agt_0123456789abcdef';
const ISSUER = 'https://registry.example';

const valid = (): Record<string, unknown> => ({ iss: CLIENT, sub: CLIENT, aud: ISSUER, iat: NOW_S, exp: NOW_S + 60, jti: 'j1' });

/** The typ of the kind under test; set by each describe.each round. */
let currentTyp = '';

/** Signs `claims` with `key`, typ `typ` (none with null). */
function sign(claims: Record<string, unknown>, key: KeyPair = es, typ: string | null = currentTyp, alg: string = key.alg): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, ...(typ !== null && { typ }) }).sign(key.privateKey);
}

function without(claim: string): Record<string, unknown> {
  const claims = valid();
  delete claims[claim];
  return claims;
}

/** The kind under test; set by each describe.each round. */
let currentKind: SelfSignedKind = 'subject';

/** The InvalidGrant `verifySelfSignedJwt` throws; fails the test when it accepts or throws anything else. */
function rejection(token: string, _label: string, jwk: JWK = es.jwk): { code: string; status: number; message: string; description: string } {
  let error: unknown;
  try {
    verifySelfSignedJwt(token, jwk, { kind: currentKind, clientId: CLIENT, audience: ISSUER, now: NOW });
  } catch (e) {
    error = e;
  }
  expect(error, 'expected an InvalidGrant').toBeInstanceOf(InvalidGrant);
  expect(error).toBeInstanceOf(OAuthError);
  const { code, status, message, description } = error as InvalidGrant;
  expect(message).toBe(description);
  return { code, status, message, description };
}

function accept(token: string, _label: string, jwk: JWK = es.jwk): Record<string, unknown> {
  return verifySelfSignedJwt(token, jwk, { kind: currentKind, clientId: CLIENT, audience: ISSUER, now: NOW }).payload;
}

const invalidGrant = (message: string) => ({ code: 'invalid_grant', status: 400, message, description: message });

it('uses a 5 s clock skew and a 300 s maximum lifetime', () => {
  expect(CLOCK_SKEW_S).toBe(5);
  expect(MAX_SELF_SIGNED_LIFETIME_S).toBe(300);
});

describe.each([
  { kind: 'subject' as const, label: 'subject token', typ: 'writ-subject+jwt', other: 'writ-actor+jwt' },
  { kind: 'actor' as const, label: 'actor token', typ: 'writ-actor+jwt', other: 'writ-subject+jwt' },
])('verifySelfSignedJwt ($label)', ({ kind, label, typ, other }) => {
  const claimInvalid = (claim: string) => invalidGrant(`${label} ${claim} claim is invalid`);
  beforeEach(() => {
    currentKind = kind;
    currentTyp = typ;
  });

  it('returns the jti and exp to be spent in the agent\'s one single-use space', async () => {
    expect(verifySelfSignedJwt(await sign(valid()), es.jwk, { kind, clientId: CLIENT, audience: ISSUER, now: NOW })).toEqual({ payload: valid(), jti: 'j1', exp: NOW_S + 60 });
  });

  describe('typ (ADR 0015)', () => {
    it('accepts its own typ in any case, with or without application/ (RFC 7515 §4.1.9)', async () => {
      for (const t of [typ, typ.toUpperCase(), `application/${typ}`]) expect(accept(await sign(valid(), es, t), label)).toEqual(valid());
    });

    it.each([
      ['no typ (the old shape)', null],
      ['JWT', 'JWT'],
      ['a client assertion', 'client-authentication+jwt'],
      ['another kind an agent signs', other],
      ['a DPoP proof', 'dpop+jwt'],
      ['another media type tree', `text/${typ}`],
    ])('refuses %s', async (_, t) => {
      expect(rejection(await sign(valid(), es, t), label)).toEqual(invalidGrant(`${label} typ must be ${typ}`));
    });
  });

  it('accepts a valid ES256 token and returns its payload', async () => {
    expect(accept(await sign(valid()), label)).toEqual(valid());
  });

  it('accepts a valid EdDSA token and returns its payload', async () => {
    expect(accept(await sign(valid(), ed), label, ed.jwk)).toEqual(valid());
  });

  it('accepts a token with neither iat nor nbf', async () => {
    const claims = without('iat');
    expect(accept(await sign(claims), label)).toEqual(claims);
  });

  describe('required claims', () => {
    it.each(['iss', 'sub', 'aud', 'exp', 'jti'])('refuses a token without %s, naming the claim', async (claim) => {
      expect(rejection(await sign(without(claim)), label)).toEqual(claimInvalid(claim));
    });

    it('checks presence before value: a wrong iss and no exp names exp', async () => {
      const claims = { ...without('exp'), iss: 'agt_other' };
      expect(rejection(await sign(claims), label)).toEqual(claimInvalid('exp'));
    });

    it('checks presence in order iss, sub, aud, exp', async () => {
      expect(rejection(await sign({ exp: NOW_S + 60 }), label)).toEqual(claimInvalid('iss'));
      expect(rejection(await sign({ iss: CLIENT, exp: NOW_S + 60 }), label)).toEqual(claimInvalid('sub'));
      expect(rejection(await sign({ iss: CLIENT, sub: CLIENT }), label)).toEqual(claimInvalid('aud'));
    });
  });

  describe('iss, sub, aud', () => {
    it.each([
      ['another client', 'agt_other'],
      ['the issuer', ISSUER],
      ['a case variant', CLIENT.toUpperCase()],
      ['an array holding the client', [CLIENT]],
      ['null', null],
    ])('refuses iss %s', async (_, iss) => {
      expect(rejection(await sign({ ...valid(), iss }), label)).toEqual(claimInvalid('iss'));
    });

    it.each([
      ['another client', 'agt_other'],
      ['a user', 'user_1'],
      ['null', null],
    ])('refuses sub %s', async (_, sub) => {
      expect(rejection(await sign({ ...valid(), sub }), label)).toEqual(claimInvalid('sub'));
    });

    it('checks iss before sub', async () => {
      expect(rejection(await sign({ ...valid(), iss: 'agt_a', sub: 'agt_b' }), label)).toEqual(claimInvalid('iss'));
    });

    it.each([
      ['another issuer', 'https://other.example'],
      ['the issuer with a trailing slash', `${ISSUER}/`],
      ['an array without the issuer', ['https://other.example']],
      ['an array containing the issuer (ADR 0015: one string)', ['https://other.example', ISSUER]],
      ['an array of the issuer alone', [ISSUER]],
      ['an empty array', []],
      ['null', null],
    ])('refuses aud %s', async (_, aud) => {
      expect(rejection(await sign({ ...valid(), aud }), label)).toEqual(claimInvalid('aud'));
    });
  });

  describe('jti', () => {
    it.each([
      ['empty', ''],
      ['a number', 7],
      ['too long', 'j'.repeat(257)],
    ])('refuses a jti %s', async (_, jti) => {
      expect(rejection(await sign({ ...valid(), jti }), label)).toEqual(invalidGrant(`${label} jti is required (1 to 256 characters)`));
    });
  });

  describe('NumericDate claims', () => {
    it.each(['iat', 'nbf', 'exp'])('refuses %s that is not a number', async (claim) => {
      for (const value of [String(NOW_S), null, true, [NOW_S], { t: NOW_S }]) {
        expect(rejection(await sign({ ...valid(), [claim]: value }), label)).toEqual(claimInvalid(claim));
      }
    });

    it('refuses nbf in the future beyond the skew, accepts it within', async () => {
      expect(rejection(await sign({ ...valid(), nbf: NOW_S + CLOCK_SKEW_S + 1 }), label)).toEqual(claimInvalid('nbf'));
      const within = { ...valid(), nbf: NOW_S + CLOCK_SKEW_S };
      expect(accept(await sign(within), label)).toEqual(within);
    });

    it('refuses exp passed beyond the skew as expired, accepts it within', async () => {
      const expired = { ...valid(), iat: NOW_S - 60, exp: NOW_S - CLOCK_SKEW_S };
      expect(rejection(await sign(expired), label)).toEqual(invalidGrant(`${label} is expired`));
      expect(rejection(await sign({ ...expired, exp: NOW_S - 3600 }), label)).toEqual(invalidGrant(`${label} is expired`));
      const within = { ...valid(), iat: NOW_S - 60, exp: NOW_S - CLOCK_SKEW_S + 1 };
      expect(accept(await sign(within), label)).toEqual(within);
    });

    it('checks nbf before exp', async () => {
      const claims = { ...valid(), nbf: NOW_S + 3600, exp: NOW_S - 3600, iat: undefined };
      expect(rejection(await sign(claims), label)).toEqual(claimInvalid('nbf'));
    });

    it('refuses a lifetime too long by exp - now', async () => {
      const claims = { ...without('iat'), exp: NOW_S + MAX_SELF_SIGNED_LIFETIME_S + 1 };
      expect(rejection(await sign(claims), label)).toEqual(invalidGrant(`${label} lifetime is too long`));
      const longest = { ...claims, exp: NOW_S + MAX_SELF_SIGNED_LIFETIME_S };
      expect(accept(await sign(longest), label)).toEqual(longest);
    });

    it('refuses a lifetime too long by exp - iat, even with exp close to now', async () => {
      const claims = { ...valid(), iat: NOW_S - 250, exp: NOW_S + MAX_SELF_SIGNED_LIFETIME_S - 249 };
      expect(rejection(await sign(claims), label)).toEqual(invalidGrant(`${label} lifetime is too long`));
      const longest = { ...claims, exp: NOW_S + MAX_SELF_SIGNED_LIFETIME_S - 250 };
      expect(accept(await sign(longest), label)).toEqual(longest);
    });
  });

  describe('the JWS itself', () => {
    it('refuses a signature by another key', async () => {
      expect(rejection(await sign(valid(), otherEs), label)).toEqual(invalidGrant(`${label} signature is invalid`));
    });

    it('refuses a tampered payload as a bad signature', async () => {
      const [header, , signature] = (await sign(valid())).split('.');
      const payload = Buffer.from(JSON.stringify({ ...valid(), exp: NOW_S + 120 })).toString('base64url');
      expect(rejection(`${header}.${payload}.${signature}`, label)).toEqual(invalidGrant(`${label} signature is invalid`));
    });

    it.each([
      ['garbage', 'not a jwt'],
      ['the empty string', ''],
      ['two parts', 'eyJhbGciOiJFUzI1NiJ9.e30'],
    ])('refuses %s as not a valid JWT', (_, token) => {
      expect(rejection(token, label)).toEqual(invalidGrant(`${label} is not a valid JWT`));
    });

    it("refuses a token signed with another algorithm than the key's, naming the key's", async () => {
      expect(rejection(await sign(valid(), ed), label, es.jwk)).toEqual(invalidGrant(`${label} alg must be ES256, the registered key's algorithm`));
      expect(rejection(await sign(valid(), es), label, ed.jwk)).toEqual(invalidGrant(`${label} alg must be EdDSA or Ed25519, the registered key's algorithm`));
    });

    it('refuses a validly signed payload that is not a JSON object as not a valid JWT', async () => {
      const token = await new CompactSign(new TextEncoder().encode(JSON.stringify([valid()]))).setProtectedHeader({ alg: 'ES256' }).sign(es.privateKey);
      expect(rejection(token, label)).toEqual(invalidGrant(`${label} is not a valid JWT`));
    });
  });
});
