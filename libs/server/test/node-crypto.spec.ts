import { createHmac, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { tokenHash } from '@writ/core';
import { CompactSign, type JWK, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';

interface KeyPair {
  alg: 'ES256' | 'EdDSA';
  privateKey: KeyObject;
  jwk: JWK;
}

function keyPair(alg: KeyPair['alg']): KeyPair {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return { alg, privateKey, jwk: publicKey.export({ format: 'jwk' }) };
}
import { algOf, algsOf, type JwsFailure, JwsError, nodeSignatureVerifier, sha256Base64urlSync, verifyJws } from '../src/node-crypto.js';


const es = keyPair('ES256');
const ed = keyPair('EdDSA');
const otherEs = keyPair('ES256');
const otherEd = keyPair('EdDSA');

const CLAIMS = { iss: 'agt_1', sub: 'agt_1', aud: 'https://registry.example', exp: 1_800_000_000 };

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Signs `b64(header).b64(payload)` exactly as given (a string is used as is) with the pair's own algorithm. */
function forge(header: unknown, payload: unknown, key: KeyPair): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = sign(key.alg === 'ES256' ? 'sha256' : null, Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

function jwt(key: KeyPair, claims: Record<string, unknown> = CLAIMS): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, typ: 'JWT' }).sign(key.privateKey);
}

function part(token: string, index: 0 | 1 | 2): string {
  return token.split('.')[index]!;
}

function withPart(token: string, index: 0 | 1 | 2, value: string): string {
  const parts = token.split('.');
  parts[index] = value;
  return parts.join('.');
}

/** The reason `verifyJws` refuses with; fails the test when it accepts or throws anything else. */
function reason(token: string, jwk: JWK): JwsFailure {
  let error: unknown;
  try {
    verifyJws(token, jwk);
  } catch (e) {
    error = e;
  }
  expect(error, 'expected a JwsError').toBeInstanceOf(JwsError);
  expect((error as JwsError).message).toBe(`JWS refused: ${(error as JwsError).reason}`);
  return (error as JwsError).reason;
}

describe('verifyJws', () => {
  it('returns the protected header and the payload of a valid ES256 JWT', async () => {
    const token = await jwt(es);
    expect(verifyJws(token, es.jwk)).toEqual({ header: { alg: 'ES256', typ: 'JWT' }, payload: CLAIMS });
  });

  it('returns the protected header and the payload of a valid EdDSA JWT', async () => {
    const token = await jwt(ed);
    expect(verifyJws(token, ed.jwk)).toEqual({ header: { alg: 'EdDSA', typ: 'JWT' }, payload: CLAIMS });
  });

  it('returns the header and payload of an Ed25519 key JWT naming the fully-specified alg Ed25519 (RFC 9864 §2.2)', async () => {
    const token = await new SignJWT(CLAIMS).setProtectedHeader({ alg: 'Ed25519', typ: 'JWT' }).sign(ed.privateKey);
    expect(verifyJws(token, ed.jwk)).toEqual({ header: { alg: 'Ed25519', typ: 'JWT' }, payload: CLAIMS });
    expect(reason(withPart(token, 2, part(await jwt(otherEd), 2)), ed.jwk)).toBe('signature');
  });

  it('accepts a JWS made with CompactSign and a hand-made one alike', async () => {
    const compact = await new CompactSign(new TextEncoder().encode(JSON.stringify({ n: 1 }))).setProtectedHeader({ alg: 'EdDSA', kid: 'k1' }).sign(ed.privateKey);
    expect(verifyJws(compact, ed.jwk)).toEqual({ header: { alg: 'EdDSA', kid: 'k1' }, payload: { n: 1 } });
    expect(verifyJws(forge({ alg: 'ES256' }, { n: 2 }, es), es.jwk)).toEqual({ header: { alg: 'ES256' }, payload: { n: 2 } });
  });

  it('uses only the public members of the JWK it is given', async () => {
    const privateJwk = es.privateKey.export({ format: 'jwk' }) as JWK;
    expect(privateJwk.d).toBeTypeOf('string');
    expect(verifyJws(await jwt(es), { ...privateJwk, kid: 'ignored' }).payload).toEqual(CLAIMS);
  });

  describe("refuses what is not a compact JWS with JSON object parts as 'malformed'", () => {
    it.each([
      ['two parts', (t: string) => t.split('.').slice(0, 2).join('.')],
      ['four parts', (t: string) => `${t}.${part(t, 2)}`],
      ['one part', (t: string) => part(t, 1)],
      ['the empty string', () => ''],
      ['an empty header', (t: string) => withPart(t, 0, '')],
      ['an empty payload', (t: string) => withPart(t, 1, '')],
      ['an empty signature', (t: string) => withPart(t, 2, '')],
      ['a padded signature', (t: string) => `${t}==`],
      ['a standard base64 character', (t: string) => withPart(t, 2, `${part(t, 2).slice(1)}+`)],
      ['surrounding whitespace', (t: string) => ` ${t}`],
    ])('%s', async (_, mutate) => {
      const token = await jwt(es);
      expect(reason(mutate(token), es.jwk)).toBe('malformed');
    });

    it('a header that is not base64url JSON', async () => {
      const token = await jwt(es);
      expect(reason(withPart(token, 0, 'bm90LWpzb24'), es.jwk)).toBe('malformed');
      expect(reason(withPart(token, 0, b64('{"alg":"ES256"')), es.jwk)).toBe('malformed');
    });

    it.each([
      ['a JSON array', ['ES256']],
      ['JSON null', null],
      ['a JSON string', 'ES256'],
      ['a JSON number', 256],
    ])('a header that is %s', (_, header) => {
      // Signed correctly, so only the header's shape can refuse it.
      expect(reason(forge(header, CLAIMS, es), es.jwk)).toBe('malformed');
    });

    it.each([
      ['missing', { typ: 'JWT' }],
      ['a number', { alg: 256 }],
      ['null', { alg: null }],
      ['an array', { alg: ['ES256'] }],
    ])('alg %s', (_, header) => {
      expect(reason(forge(header, CLAIMS, es), es.jwk)).toBe('malformed');
      expect(reason(forge(header, CLAIMS, ed), ed.jwk)).toBe('malformed');
    });

    it('a crit header, even with a valid signature', () => {
      const token = forge({ alg: 'ES256', crit: ['exp'], exp: 1 }, CLAIMS, es);
      expect(reason(token, es.jwk)).toBe('malformed');
      expect(reason(forge({ alg: 'EdDSA', crit: [] }, CLAIMS, ed), ed.jwk)).toBe('malformed');
    });

    it('a b64 header, with or without crit, even with a valid signature', () => {
      expect(reason(forge({ alg: 'ES256', b64: false, crit: ['b64'] }, CLAIMS, es), es.jwk)).toBe('malformed');
      expect(reason(forge({ alg: 'ES256', b64: true }, CLAIMS, es), es.jwk)).toBe('malformed');
      expect(reason(forge({ alg: 'EdDSA', b64: false }, CLAIMS, ed), ed.jwk)).toBe('malformed');
    });

    it.each([
      ['not JSON', 'not json'],
      ['truncated JSON', '{"iss":"agt_1"'],
      ['a JSON array', JSON.stringify([CLAIMS])],
      ['JSON null', 'null'],
      ['a JSON string', '"agt_1"'],
      ['a JSON number', '42'],
    ])('a validly signed payload that is %s', (_, payload) => {
      expect(reason(forge({ alg: 'ES256' }, payload, es), es.jwk)).toBe('malformed');
      expect(reason(forge({ alg: 'EdDSA' }, payload, ed), ed.jwk)).toBe('malformed');
    });
  });

  describe("refuses an algorithm other than the key's as 'alg'", () => {
    it('an ES256 token checked against an Ed25519 key', async () => {
      expect(reason(await jwt(es), ed.jwk)).toBe('alg');
    });

    it('an EdDSA token checked against a P-256 key', async () => {
      expect(reason(await jwt(ed), es.jwk)).toBe('alg');
    });

    it('alg none, with and without a signature part', () => {
      const input = `${b64({ alg: 'none' })}.${b64(CLAIMS)}`;
      expect(reason(`${input}.${b64('x')}`, es.jwk)).toBe('alg');
      expect(reason(`${input}.`, es.jwk)).toBe('malformed');
    });

    it('HS256 keyed with the public key bytes', () => {
      const input = `${b64({ alg: 'HS256' })}.${b64(CLAIMS)}`;
      const mac = createHmac('sha256', JSON.stringify(es.jwk)).update(input).digest('base64url');
      expect(reason(`${input}.${mac}`, es.jwk)).toBe('alg');
      expect(reason(`${input}.${mac}`, ed.jwk)).toBe('alg');
    });

    it.each(['es256', 'ES384', 'Ed25519', 'ESP256', ''])('alg %j for a P-256 key', (alg) => {
      expect(reason(forge({ alg }, CLAIMS, es), es.jwk)).toBe('alg');
    });

    it('follows the JWK alg member: an OKP key with alg EdDSA, an EC key with alg ES256', async () => {
      expect(reason(await jwt(es), { ...ed.jwk, alg: 'EdDSA' })).toBe('alg');
      expect(reason(await jwt(ed), { ...es.jwk, alg: 'ES256' })).toBe('alg');
    });
  });

  describe("refuses a bad signature as 'signature'", () => {
    it.each([es, ed])('a signature from another key ($alg)', async (key) => {
      const other = key.alg === 'ES256' ? otherEs : otherEd;
      expect(reason(await jwt(other), key.jwk)).toBe('signature');
    });

    it.each([es, ed])('a tampered payload ($alg)', async (key) => {
      const token = await jwt(key);
      const tampered = withPart(token, 1, b64({ ...CLAIMS, sub: 'agt_2' }));
      expect(reason(tampered, key.jwk)).toBe('signature');
    });

    it.each([es, ed])('a tampered header ($alg)', async (key) => {
      const token = await jwt(key);
      expect(reason(withPart(token, 0, b64({ alg: key.alg, typ: 'JWS' })), key.jwk)).toBe('signature');
    });

    it.each([es, ed])('a truncated signature ($alg)', async (key) => {
      const token = await jwt(key);
      const signature = Buffer.from(part(token, 2), 'base64url');
      expect(signature).toHaveLength(64);
      expect(reason(withPart(token, 2, signature.subarray(0, 63).toString('base64url')), key.jwk)).toBe('signature');
      expect(reason(withPart(token, 2, signature.subarray(0, 32).toString('base64url')), key.jwk)).toBe('signature');
    });

    it.each([es, ed])('a signature with one byte changed ($alg)', async (key) => {
      const token = await jwt(key);
      const signature = Buffer.from(part(token, 2), 'base64url');
      signature[10] = signature[10]! ^ 0x01;
      expect(reason(withPart(token, 2, signature.toString('base64url')), key.jwk)).toBe('signature');
    });

    it('an ES256 signature in DER rather than IEEE P1363 encoding', () => {
      const input = `${b64({ alg: 'ES256' })}.${b64(CLAIMS)}`;
      const der = sign('sha256', Buffer.from(input), { key: es.privateKey, dsaEncoding: 'der' });
      expect(reason(`${input}.${der.toString('base64url')}`, es.jwk)).toBe('signature');
    });

    it('a JWK that is not a usable public key', async () => {
      expect(reason(await jwt(es), { ...es.jwk, x: es.jwk.y, y: es.jwk.x })).toBe('signature');
    });

    it('checks the signature before the payload: a bad signature over a non-JSON payload', () => {
      const token = withPart(forge({ alg: 'ES256' }, 'not json', es), 2, part(forge({ alg: 'ES256' }, 'other', es), 2));
      expect(reason(token, es.jwk)).toBe('signature');
    });
  });
});

describe('nodeSignatureVerifier', () => {
  // What libs/core hands it: the JWS's own text, `header.payload` and the signature's base64url.
  const input = (t: string) => t.split('.').slice(0, 2).join('.');
  const sig = (t: string) => part(t, 2);

  it.each([es, ed])('returns true for a valid $alg signature and false for another key or input', async (key) => {
    const token = await jwt(key);
    const other = key.alg === 'ES256' ? otherEs : otherEd;
    expect(await nodeSignatureVerifier(key.alg, key.jwk, input(token), sig(token))).toBe(true);
    expect(await nodeSignatureVerifier(key.alg, other.jwk, input(token), sig(token))).toBe(false);
    expect(await nodeSignatureVerifier(key.alg, key.jwk, `${input(token)}x`, sig(token))).toBe(false);
    const signature = sig(token);
    expect(await nodeSignatureVerifier(key.alg, key.jwk, input(token), `${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`)).toBe(false);
  });

  it('throws for an EC JWK whose point is not on the curve', async () => {
    const token = await jwt(es);
    const offCurve: JWK = { kty: 'EC', crv: 'P-256', x: es.jwk.x, y: Buffer.alloc(32, 1).toString('base64url') };
    expect(() => nodeSignatureVerifier('ES256', offCurve, input(token), sig(token))).toThrow();
    const swapped: JWK = { ...es.jwk, x: es.jwk.y, y: es.jwk.x };
    expect(() => nodeSignatureVerifier('ES256', swapped, input(token), sig(token))).toThrow();
  });

  it('throws for a JWK of no supported type or curve', async () => {
    const token = await jwt(es);
    expect(() => nodeSignatureVerifier('ES256', { kty: 'oct', k: 'c2VjcmV0' }, input(token), sig(token))).toThrow();
    expect(() => nodeSignatureVerifier('ES256', { ...es.jwk, crv: 'P-257' }, input(token), sig(token))).toThrow();
  });
});

describe('algsOf', () => {
  it('names ES256 for a P-256 key, EdDSA and Ed25519 for an Ed25519 key', () => {
    expect(algsOf(es.jwk)).toEqual(['ES256']);
    expect(algsOf(ed.jwk)).toEqual(['EdDSA', 'Ed25519']);
  });
});

describe('algOf', () => {
  it('is EdDSA for an OKP key or alg EdDSA, ES256 otherwise', () => {
    expect(algOf(ed.jwk)).toBe('EdDSA');
    expect(algOf(es.jwk)).toBe('ES256');
    expect(algOf({ ...es.jwk, alg: 'ES256' })).toBe('ES256');
    expect(algOf({ ...ed.jwk, alg: 'EdDSA' })).toBe('EdDSA');
  });
});

describe('sha256Base64urlSync', () => {
  it('is the base64url SHA-256 of the string', () => {
    expect(sha256Base64urlSync('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
    expect(sha256Base64urlSync('')).toBe('47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU');
  });

  it("equals libs/core's tokenHash for random strings, including non-ASCII ones", async () => {
    const samples = [...Array.from({ length: 20 }, (_, i) => randomBytes(1 + i * 7).toString('base64url')), 'héllo wörld ✓', '🔑.🔒'];
    for (const sample of samples) expect(sha256Base64urlSync(sample), sample).toBe(await tokenHash(sample));
  });
});
