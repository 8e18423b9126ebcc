import { sha256 } from '@noble/hashes/sha2.js';
import { base64url, decodeProtectedHeader, exportSPKI } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  b64,
  expectOAuthError,
  fixedClock,
  flipChar,
  makeKey,
  replacePart,
  signCompact,
  T0,
  T0_S,
  type TestKey,
} from './fixtures.js';
import { DPOP_ALGS, createDpopProof, type JwsSignatureVerifier, jwkThumbprint, normalizeHtu, verifyDpopProof as verifyWithDefaults, type VerifyDpopProofOptions } from '../src/dpop.js';
import { UseDpopNonce } from '../src/errors.js';

/**
 * Every DPoP proof case: the algorithms, thumbprints, htu normalisation, proof creation, and each
 * valid and hostile proof with its exact outcome. `verifySignature`, when given, is plugged into
 * every `verifyDpopProof` call (a native verifier, say): the outcomes and errors must be the same
 * as on the Web Crypto path. src/dpop.spec.ts and src/dpop-native.spec.ts run them.
 */
export function describeDpopProofs(options: { verifySignature?: JwsSignatureVerifier } = {}): void {
  const verifyDpopProof: typeof verifyWithDefaults = (proof, verifyOptions) =>
    verifyWithDefaults(proof, options.verifySignature ? { ...verifyOptions, verifySignature: options.verifySignature } : verifyOptions);

  const HTU = 'https://api.example/hotels/42';
  const clock = fixedClock(T0);
  const ACCESS_TOKEN = 'eyJhbGciOiJFUzI1NiJ9.e30.sig-of-an-access-token';

  let agent: TestKey;
  let other: TestKey;
  let edAgent: TestKey;
  let rsa: TestKey;

  beforeAll(async () => {
    [agent, other, edAgent, rsa] = await Promise.all([makeKey('ES256'), makeKey('ES256'), makeKey('EdDSA'), makeKey('RS256')]);
  });

  function header(key: TestKey = agent, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk, ...extra };
  }

  function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { jti: 'proof-jti-0001', htm: 'GET', htu: HTU, iat: T0_S, ...extra };
  }

  function without(object: Record<string, unknown>, key: string): Record<string, unknown> {
    const { [key]: _removed, ...rest } = object;
    return rest;
  }

  /** A hand-made proof signed by `key` (default: the agent's key). */
  function handMade(h: Record<string, unknown> = header(), c: unknown = claims(), key: TestKey = agent): Promise<string> {
    return signCompact(h, c, { kind: 'key', key });
  }

  function verify(proof: string, options: Partial<VerifyDpopProofOptions> = {}) {
    return verifyDpopProof(proof, { htm: 'GET', htu: HTU, clock, ...options });
  }

  /** The proof must be rejected with exactly this code and description, which must not echo the proof. */
  async function rejects(proof: string, description: string, options: Partial<VerifyDpopProofOptions> = {}, code: 'invalid_dpop_proof' | 'use_dpop_nonce' = 'invalid_dpop_proof') {
    return expectOAuthError(verify(proof, options), code, description, proof.length > 0 ? [proof, ACCESS_TOKEN] : [ACCESS_TOKEN]);
  }

  describe('DPOP_ALGS', () => {
    it('lists only asymmetric algorithms, Ed25519 under both its names (RFC 9864 §2.2)', () => {
      expect(DPOP_ALGS).toEqual(['ES256', 'EdDSA', 'Ed25519']);
    });
  });

  describe('jwkThumbprint', () => {
    it('computes the RFC 7638 §3.1 example thumbprint of an RSA key', async () => {
      const jwk = {
        kty: 'RSA',
        n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
        e: 'AQAB',
        alg: 'RS256',
        kid: '2011-04-29',
      };
      // The value printed in RFC 7638 §3.1.
      expect(await jwkThumbprint(jwk)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    });

    it('computes the thumbprint of the RFC 9449 example key (its cnf.jkt in §6.1)', async () => {
      const jwk = { kty: 'EC', crv: 'P-256', x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs', y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA' };
      expect(await jwkThumbprint(jwk)).toBe('0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I');
    });
  });

  describe('normalizeHtu', () => {
    it.each([
      ['HTTPS://API.Example/hotels/42', 'https://api.example/hotels/42'],
      ['https://api.example:443/hotels/42', 'https://api.example/hotels/42'],
      ['http://api.example:80/x', 'http://api.example/x'],
      ['https://api.example:8443/x', 'https://api.example:8443/x'],
      ['https://api.example', 'https://api.example/'],
      ['https://api.example/a/./b/../c', 'https://api.example/a/c'],
      ['https://api.example/a/%2e%2E/c', 'https://api.example/c'],
      ['https://api.example/%7euser/%41%2d%5F', 'https://api.example/~user/A-_'],
      ['https://api.example/a%2fb%3a', 'https://api.example/a%2Fb%3A'],
      ['https://api.example/x?q=1#frag', 'https://api.example/x'],
      ['https://[2001:DB8::1]:443/x', 'https://[2001:db8::1]/x'],
    ])('normalises %s to %s', (input, expected) => {
      expect(normalizeHtu(input)).toBe(expected);
    });

    it.each([
      ['not a uri', 'htu is not an absolute URI'],
      ['/relative/path', 'htu is not an absolute URI'],
      ['ftp://api.example/x', 'htu is not an http or https URI'],
      ['https://user:pw@api.example/x', 'htu must not contain userinfo'],
    ])('rejects %s', (input, message) => {
      expect(() => normalizeHtu(input)).toThrow(new TypeError(message));
    });
  });

  describe('createDpopProof', () => {
    it('builds the RFC 9449 §4.2 header and claims', async () => {
      const proof = await createDpopProof({
        privateKey: agent.privateKey,
        publicJwk: agent.privateJwk, // private members must be dropped
        htm: 'POST',
        htu: 'HTTPS://API.example:443/hotels/42?x=1#f',
        accessToken: ACCESS_TOKEN,
        nonce: 'n-1',
        clock,
        jti: 'fixed-jti',
      });
      const h = decodeProtectedHeader(proof);
      expect(h).toEqual({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: agent.publicJwk.x, y: agent.publicJwk.y } });
      const payload = JSON.parse(new TextDecoder().decode(base64url.decode(proof.split('.')[1]!)));
      expect(payload).toEqual({
        jti: 'fixed-jti',
        htm: 'POST',
        htu: 'https://api.example/hotels/42',
        iat: T0_S,
        ath: base64url.encode(sha256(new TextEncoder().encode(ACCESS_TOKEN))),
        nonce: 'n-1',
      });
    });

    it('picks EdDSA for an Ed25519 key and a random jti', async () => {
      const a = await createDpopProof({ privateKey: edAgent.privateKey, publicJwk: edAgent.publicJwk, htm: 'GET', htu: HTU, clock });
      const b = await createDpopProof({ privateKey: edAgent.privateKey, publicJwk: edAgent.publicJwk, htm: 'GET', htu: HTU, clock });
      expect(decodeProtectedHeader(a).alg).toBe('EdDSA');
      const [ra, rb] = await Promise.all([verify(a), verify(b)]);
      expect(ra.jti).not.toBe(rb.jti);
    });

    it('refuses an alg that does not fit the key, a bad method, and an unsupported key', async () => {
      const base = { privateKey: agent.privateKey, publicJwk: agent.publicJwk, htm: 'GET', htu: HTU, clock };
      await expect(createDpopProof({ ...base, alg: 'EdDSA' })).rejects.toThrow(new TypeError('alg EdDSA does not match the key type'));
      await expect(createDpopProof({ ...base, htm: 'GE T' })).rejects.toThrow(new TypeError('htm is not an HTTP method token'));
      await expect(createDpopProof({ ...base, publicJwk: rsa.publicJwk })).rejects.toThrow(
        new TypeError('publicJwk must be an EC P-256 or OKP Ed25519 public key'),
      );
    });
  });

  describe('verifyDpopProof: valid proofs', () => {
    it('accepts a proof made by createDpopProof and returns jkt, jti, iat, htm, htu, publicJwk', async () => {
      const proof = await createDpopProof({ privateKey: agent.privateKey, publicJwk: agent.publicJwk, htm: 'GET', htu: HTU, clock, jti: 'j-1' });
      const result = await verify(proof, { expectedJkt: agent.jkt });
      expect(result).toEqual({
        jkt: agent.jkt,
        jti: 'j-1',
        iat: T0_S,
        htm: 'GET',
        htu: HTU,
        publicJwk: { kty: 'EC', crv: 'P-256', x: agent.publicJwk.x, y: agent.publicJwk.y },
      });
    });

    it('accepts an Ed25519 key signing under the fully-specified alg Ed25519 (RFC 9864 §2.2)', async () => {
      const proof = await createDpopProof({ privateKey: edAgent.privateKey, publicJwk: edAgent.publicJwk, alg: 'Ed25519', htm: 'POST', htu: HTU, accessToken: ACCESS_TOKEN, clock });
      expect(decodeProtectedHeader(proof).alg).toBe('Ed25519');
      const result = await verify(proof, { htm: 'POST', accessToken: ACCESS_TOKEN, expectedJkt: edAgent.jkt });
      expect(result.jkt).toBe(edAgent.jkt);
      await rejects(await handMade(header(agent, { alg: 'Ed25519' })), 'DPoP proof alg does not match the jwk key type');
    });

    it('accepts an EdDSA proof bound to an access token', async () => {
      const proof = await createDpopProof({
        privateKey: edAgent.privateKey,
        publicJwk: edAgent.publicJwk,
        htm: 'POST',
        htu: HTU,
        accessToken: ACCESS_TOKEN,
        clock,
      });
      const result = await verify(proof, { htm: 'POST', accessToken: ACCESS_TOKEN, expectedJkt: edAgent.jkt });
      expect(result.jkt).toBe(edAgent.jkt);
    });

    it('verifies the RFC 9449 §5 (Figure 3) example proof at its iat', async () => {
      const rfcProof =
        'eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19' +
        '.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ' +
        '.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg';
      const result = await verifyDpopProof(rfcProof, {
        htm: 'POST',
        htu: 'https://server.example.com/token',
        clock: fixedClock(1562262616 * 1000),
        expectedJkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I',
      });
      expect(result).toMatchObject({ jti: '-BwC3ESc6acc2lTc', iat: 1562262616, jkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I' });
    });

    it('computes ath as in RFC 9449 §7.1 and accepts an example-shaped proof carrying it', async () => {
      // RFC 9449 §7.1: this access token has ath fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo.
      const token = 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU';
      const proof = await handMade(
        header(),
        { jti: 'e1j3V_bKic8-LAEB', htm: 'GET', htu: 'https://resource.example.org/protectedresource', iat: T0_S, ath: 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo' },
      );
      const result = await verify(proof, { htu: 'https://resource.example.org/protectedresource', accessToken: token });
      expect(result.jti).toBe('e1j3V_bKic8-LAEB');
    });

    it.each([
      ['a default port', 'https://api.example:443/hotels/42'],
      ['the case of scheme and host', 'HTTPS://API.EXAMPLE/hotels/42'],
      ['a percent-encoded unreserved character', 'https://api.example/%68otels/42'],
      ['a query and a fragment', 'https://api.example/hotels/42?page=2#top'],
      ['a dot segment', 'https://api.example/hotels/./x/../42'],
    ])('accepts an htu that differs from the request URI only by %s', async (_what, htu) => {
      await expect(verify(await handMade(header(), claims({ htu })))).resolves.toMatchObject({ htu: HTU });
    });

    it('accepts a request URI with a query against a proof htu without one', async () => {
      await expect(verify(await handMade(), { htu: `${HTU}?q=1` })).resolves.toMatchObject({ htu: HTU });
    });

    it('accepts iat exactly maxAgeSeconds old and exactly futureSkewSeconds ahead', async () => {
      await expect(verify(await handMade(header(), claims({ iat: T0_S - 300 })))).resolves.toBeDefined();
      await expect(verify(await handMade(header(), claims({ iat: T0_S + 5 })))).resolves.toBeDefined();
      await expect(verify(await handMade(header(), claims({ iat: T0_S - 60 })), { maxAgeSeconds: 60 })).resolves.toBeDefined();
    });

    it('ignores ath when no access token is presented (no binding required)', async () => {
      await expect(verify(await handMade(header(), claims({ ath: 'whatever' })))).resolves.toBeDefined();
    });

    it('accepts the required nonce, and a nonce the predicate accepts', async () => {
      const proof = await handMade(header(), claims({ nonce: 'n-2026' }));
      await expect(verify(proof, { nonce: 'n-2026' })).resolves.toBeDefined();
      await expect(verify(proof, { nonce: (n) => n.startsWith('n-') })).resolves.toBeDefined();
    });

    it('keeps verifying (and rejecting) correctly after more than 1024 distinct keys passed through', async () => {
      const keys = await Promise.all(Array.from({ length: 1030 }, () => makeKey('EdDSA')));
      for (const key of keys) await verify(await handMade(header(key), claims(), key), { expectedJkt: key.jkt });
      await expect(verify(await handMade(), { expectedJkt: agent.jkt })).resolves.toMatchObject({ jkt: agent.jkt });
      await rejects(await handMade(header(keys[0]), claims(), keys[0]), 'DPoP proof key does not match the token cnf.jkt', { expectedJkt: agent.jkt });
    });

    it('ignores a nonce when the server requires none', async () => {
      await expect(verify(await handMade(header(), claims({ nonce: 'old' })))).resolves.toBeDefined();
    });
  });

  describe('verifyDpopProof: hostile proofs', () => {
    describe('structure', () => {
      it('rejects an empty proof', async () => {
        await rejects('', 'DPoP proof is missing');
      });

      it('rejects a compact JWS with two parts', async () => {
        const proof = await handMade();
        await rejects(proof.split('.').slice(0, 2).join('.'), 'DPoP proof is not a single compact JWS');
      });

      it('rejects characters outside base64url', async () => {
        await rejects('!!!.@@@.###', 'DPoP proof is not a single compact JWS');
      });

      it('rejects two proofs joined by a comma (two DPoP header fields)', async () => {
        const proof = await handMade();
        await rejects(`${proof},${proof}`, 'DPoP proof is not a single compact JWS');
      });

      it('rejects a header that is base64url but not JSON', async () => {
        const proof = await handMade();
        await rejects(replacePart(proof, 0, b64('not json')), 'DPoP proof header is not a base64url JSON object');
      });

      it('rejects a proof larger than 8 KiB', async () => {
        await rejects(`${'a'.repeat(8200)}.b.c`, 'DPoP proof is too large');
      });

      it('rejects a payload that is not JSON, even when signed', async () => {
        await rejects(await handMade(header(), 'hello'), 'DPoP proof payload is not JSON');
      });

      it('reads a payload with characters outside ASCII as UTF-8', async () => {
        await expect(verify(await handMade(header(), claims({ jti: 'prüf-€-🔑' })))).resolves.toMatchObject({ jti: 'prüf-€-🔑' });
      });

      it('rejects a signed payload that is not UTF-8', async () => {
        await rejects(await handMade(header(), new Uint8Array([0x7b, 0x22, 0x6a, 0xff, 0x22, 0x7d])), 'DPoP proof payload is not JSON');
      });

      it('rejects a signed payload part of 4n + 1 base64url characters, which encodes no whole bytes', async () => {
        const input = `${b64(header())}.AAAAA`;
        const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, agent.privateKey, new TextEncoder().encode(input));
        await rejects(`${input}.${base64url.encode(new Uint8Array(signature))}`, 'DPoP proof is not a valid JWS');
      });

      it('rejects a payload that is a JSON array', async () => {
        await rejects(await handMade(header(), [claims()]), 'DPoP proof payload is not a JSON object');
      });

      it('rejects a signature part that is not valid base64url', async () => {
        await rejects(replacePart(await handMade(), 2, 'A'), 'DPoP proof is not a valid JWS');
      });
    });

    describe('typ and alg', () => {
      it('rejects typ jwt', async () => {
        await rejects(await handMade(header(agent, { typ: 'jwt' })), 'DPoP proof typ must be dpop+jwt');
      });

      it('rejects a missing typ', async () => {
        await rejects(await handMade(without(header(), 'typ')), 'DPoP proof typ header is missing');
      });

      it('rejects typ application/dpop+jwt (exact match only)', async () => {
        await rejects(await handMade(header(agent, { typ: 'application/dpop+jwt' })), 'DPoP proof typ must be dpop+jwt');
      });

      it('rejects alg none, unsigned', async () => {
        const proof = await signCompact(header(agent, { alg: 'none' }), claims(), { kind: 'none' });
        await rejects(proof, 'DPoP proof is not a single compact JWS');
        await rejects(`${proof}AAAA`, 'DPoP proof alg is not an accepted asymmetric algorithm');
      });

      it('rejects a missing alg', async () => {
        await rejects(await handMade(without(header(), 'alg')), 'DPoP proof alg header is missing');
      });

      it('rejects HS256 signed with the public key bytes as the HMAC secret', async () => {
        const spki = new TextEncoder().encode(await exportSPKI(agent.publicKey));
        const proof = await signCompact(header(agent, { alg: 'HS256' }), claims(), { kind: 'hmac', secret: spki });
        await rejects(proof, 'DPoP proof alg is not an accepted asymmetric algorithm');
        const jwkBytes = new TextEncoder().encode(JSON.stringify(agent.publicJwk));
        const proof2 = await signCompact(header(agent, { alg: 'HS256' }), claims(), { kind: 'hmac', secret: jwkBytes });
        await rejects(proof2, 'DPoP proof alg is not an accepted asymmetric algorithm');
      });

      it('rejects RS256, a real signature by an RSA key', async () => {
        await rejects(await handMade(header(rsa), claims(), rsa), 'DPoP proof alg is not an accepted asymmetric algorithm');
      });

      it('rejects an alg the server narrowed away', async () => {
        await rejects(await handMade(), 'DPoP proof alg is not an accepted asymmetric algorithm', { algorithms: ['EdDSA'] });
      });

      it('rejects alg EdDSA over an EC key (alg/kty mismatch)', async () => {
        await rejects(await handMade(header(agent, { alg: 'EdDSA' })), 'DPoP proof alg does not match the jwk key type');
      });

      it('rejects alg ES256 over an Ed25519 key (alg/kty mismatch)', async () => {
        await rejects(await handMade(header(edAgent, { alg: 'ES256' }), claims(), edAgent), 'DPoP proof alg does not match the jwk key type');
      });

      it('rejects a crit header', async () => {
        await rejects(await handMade(header(agent, { crit: ['exp'], exp: 1 })), 'DPoP proof must not use crit or b64 headers');
      });
    });

    describe('jwk', () => {
      it('rejects a missing jwk', async () => {
        await rejects(await handMade(without(header(), 'jwk')), 'DPoP proof jwk header is missing');
      });

      it('rejects a jwk that is not an object', async () => {
        await rejects(await handMade(header(agent, { jwk: 'key' })), 'DPoP proof jwk header is not a JSON object');
      });

      it('rejects a jwk with a private member (d)', async () => {
        await rejects(await handMade(header(agent, { jwk: agent.privateJwk })), 'DPoP proof jwk contains private key material');
      });

      it('rejects a symmetric jwk (kty oct)', async () => {
        await rejects(await handMade(header(agent, { jwk: { kty: 'oct', k: 'c2VjcmV0' } })), 'DPoP proof jwk must be an asymmetric key, not kty oct');
      });

      it('rejects an RSA jwk under alg ES256', async () => {
        await rejects(await handMade(header(agent, { jwk: rsa.publicJwk })), 'DPoP proof jwk is not an EC P-256 or OKP Ed25519 public key');
      });

      it('rejects an EC key on another curve', async () => {
        await rejects(await handMade(header(agent, { jwk: { ...agent.publicJwk, crv: 'P-384' } })), 'DPoP proof jwk is not an EC P-256 or OKP Ed25519 public key');
      });

      it('rejects a jwk whose point is not on the curve', async () => {
        const jwk = { ...agent.publicJwk, y: agent.publicJwk.x };
        await rejects(await handMade(header(agent, { jwk })), 'DPoP proof jwk is not a valid public key');
      });
    });

    describe('signature', () => {
      it('rejects a tampered signature', async () => {
        await rejects(flipChar(await handMade(), 2), 'DPoP proof signature is invalid');
      });

      it('rejects a tampered payload (htm changed after signing)', async () => {
        const proof = await handMade(header(), claims({ htm: 'POST' }));
        await rejects(replacePart(proof, 1, b64(claims())), 'DPoP proof signature is invalid');
      });

      it('rejects a proof signed by another key than the one in its jwk header', async () => {
        await rejects(await handMade(header(agent), claims(), other), 'DPoP proof signature is invalid');
      });
    });

    describe('claims', () => {
      it.each(['jti', 'htm', 'htu', 'iat'])('rejects a proof without %s', async (claim) => {
        await rejects(await handMade(header(), without(claims(), claim)), `DPoP proof ${claim} claim is missing`);
      });

      it('rejects a non-numeric iat', async () => {
        await rejects(await handMade(header(), claims({ iat: String(T0_S) })), 'DPoP proof iat claim must be a number');
      });

      it('rejects an iat that overflows to Infinity (1e999)', async () => {
        const payload = JSON.stringify(claims()).replace(`"iat":${T0_S}`, '"iat":1e999');
        await rejects(await handMade(header(), payload), 'DPoP proof iat claim must be a number');
      });

      it('rejects a non-string jti', async () => {
        await rejects(await handMade(header(), claims({ jti: 42 })), 'DPoP proof jti claim must be a string');
      });

      it('rejects an empty jti and an overlong jti', async () => {
        await rejects(await handMade(header(), claims({ jti: '' })), 'DPoP proof jti must be 1 to 256 characters');
        await rejects(await handMade(header(), claims({ jti: 'x'.repeat(257) })), 'DPoP proof jti must be 1 to 256 characters');
      });

      it('rejects a non-string htu', async () => {
        await rejects(await handMade(header(), claims({ htu: ['https://api.example/hotels/42'] })), 'DPoP proof htu claim must be a string');
      });
    });

    describe('htm and htu', () => {
      it('rejects another method', async () => {
        await rejects(await handMade(header(), claims({ htm: 'POST' })), 'DPoP proof htm does not match the request method');
      });

      it('rejects a lowercase method (methods are case-sensitive)', async () => {
        await rejects(await handMade(header(), claims({ htm: 'get' })), 'DPoP proof htm does not match the request method');
      });

      it.each([
        ['another path', 'https://api.example/hotels/43'],
        ['a path prefix', 'https://api.example/hotels'],
        ['another host', 'https://evil.example/hotels/42'],
        ['another scheme', 'http://api.example/hotels/42'],
        ['another port', 'https://api.example:8443/hotels/42'],
        ['a percent-encoded reserved character', 'https://api.example/hotels%2F42'],
      ])('rejects an htu with %s', async (_what, htu) => {
        await rejects(await handMade(header(), claims({ htu })), 'DPoP proof htu does not match the request URI');
      });

      it('rejects an htu that is not an http(s) URI', async () => {
        await rejects(await handMade(header(), claims({ htu: 'api.example/hotels/42' })), 'DPoP proof htu is not an absolute http(s) URI');
        await rejects(await handMade(header(), claims({ htu: 'wss://api.example/hotels/42' })), 'DPoP proof htu is not an absolute http(s) URI');
      });

      it('answers invalid_request when the request URI itself is not an http(s) URI', async () => {
        await expectOAuthError(verify(await handMade(), { htu: '/hotels/42' }), 'invalid_request', 'request URI is not an absolute http(s) URI');
      });
    });

    describe('iat', () => {
      it('rejects an iat older than maxAgeSeconds', async () => {
        await rejects(await handMade(header(), claims({ iat: T0_S - 301 })), 'DPoP proof iat is too old');
      });

      it('rejects an iat too far in the future', async () => {
        await rejects(await handMade(header(), claims({ iat: T0_S + 6 })), 'DPoP proof iat is in the future');
      });
    });

    describe('ath and key binding', () => {
      it('rejects a proof without ath when an access token is presented', async () => {
        await rejects(await handMade(), 'DPoP proof ath claim is missing but an access token is presented', { accessToken: ACCESS_TOKEN });
      });

      it('rejects an ath computed over another token', async () => {
        const ath = base64url.encode(sha256(new TextEncoder().encode('another-token')));
        await rejects(await handMade(header(), claims({ ath })), 'DPoP proof ath does not match the access token', { accessToken: ACCESS_TOKEN });
      });

      it('compares ath with a precomputed token hash when the caller gives one', async () => {
        const ath = base64url.encode(sha256(new TextEncoder().encode(ACCESS_TOKEN)));
        const proof = await handMade(header(), claims({ ath }));
        await expect(verify(proof, { accessToken: ACCESS_TOKEN, accessTokenHash: ath })).resolves.toBeDefined();
        // The given hash is what counts: a wrong one fails even though the token itself would match.
        await rejects(proof, 'DPoP proof ath does not match the access token', { accessToken: ACCESS_TOKEN, accessTokenHash: 'x'.repeat(43) });
      });

      it('rejects a non-string ath', async () => {
        await rejects(await handMade(header(), claims({ ath: 1 })), 'DPoP proof ath claim must be a string', { accessToken: ACCESS_TOKEN });
      });

      it('rejects a valid proof from another key than the token cnf.jkt', async () => {
        const proof = await handMade(header(other), claims(), other);
        await rejects(proof, 'DPoP proof key does not match the token cnf.jkt', { expectedJkt: agent.jkt });
      });

      describe('with athOptional (a token endpoint given the token as a parameter)', () => {
        it('accepts a proof without ath from the token cnf.jkt key', async () => {
          await expect(verify(await handMade(), { accessToken: ACCESS_TOKEN, athOptional: true, expectedJkt: agent.jkt })).resolves.toMatchObject({ jkt: agent.jkt });
        });

        it('still checks an ath that is there', async () => {
          const ath = base64url.encode(sha256(new TextEncoder().encode('another-token')));
          await rejects(await handMade(header(), claims({ ath })), 'DPoP proof ath does not match the access token', { accessToken: ACCESS_TOKEN, athOptional: true, expectedJkt: agent.jkt });
        });

        it('still refuses a proof without ath from another key', async () => {
          await rejects(await handMade(header(other), claims(), other), 'DPoP proof key does not match the token cnf.jkt', { accessToken: ACCESS_TOKEN, athOptional: true, expectedJkt: agent.jkt });
        });

        it('is a programming error without expectedJkt: nothing would bind the proof to the token', async () => {
          await expect(verify(await handMade(), { accessToken: ACCESS_TOKEN, athOptional: true })).rejects.toThrow(new TypeError('athOptional requires expectedJkt'));
        });
      });
    });

    describe('nonce', () => {
      it('answers use_dpop_nonce with the required nonce when the proof has none', async () => {
        const error = await rejects(await handMade(), 'DPoP proof nonce is required', { nonce: 'n-new' }, 'use_dpop_nonce');
        expect(error).toBeInstanceOf(UseDpopNonce);
        expect((error as UseDpopNonce).nonce).toBe('n-new');
        expect(error.status).toBe(401);
      });

      it('answers use_dpop_nonce with the current nonce when the proof carries a stale one', async () => {
        const error = await rejects(await handMade(header(), claims({ nonce: 'n-old' })), 'DPoP proof nonce is stale or unknown', { nonce: 'n-new' }, 'use_dpop_nonce');
        expect((error as UseDpopNonce).nonce).toBe('n-new');
      });

      it('answers use_dpop_nonce with an empty nonce when a predicate rejects the nonce', async () => {
        const error = await rejects(await handMade(header(), claims({ nonce: 'n-old' })), 'DPoP proof nonce is stale or unknown', { nonce: () => false }, 'use_dpop_nonce');
        expect((error as UseDpopNonce).nonce).toBe('');
      });

      it('answers use_dpop_nonce when a predicate is set and the proof has no nonce', async () => {
        const error = await rejects(await handMade(), 'DPoP proof nonce is required', { nonce: () => true }, 'use_dpop_nonce');
        expect((error as UseDpopNonce).nonce).toBe('');
      });

      it('rejects a nonce that is not a string', async () => {
        await rejects(await handMade(header(), claims({ nonce: 7 })), 'DPoP proof nonce claim must be a string', { nonce: 'n-new' });
      });
    });
  });
}
