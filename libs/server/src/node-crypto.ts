import { createPublicKey, hash, type JsonWebKey, type KeyObject, verify } from 'node:crypto';
import type { DpopAlg, JwsSignatureVerifier } from '@writ/core';
import type { JWK } from 'jose';

/**
 * JWS signature checks on node:crypto, about twice as fast as Web Crypto for ES256, for the
 * hot paths: the registry's (client assertions, subject and actor tokens, DPoP proofs) and the
 * verifier's (transaction tokens and DPoP proofs). Only the
 * signature is checked here; every claim rule stays with its caller or in libs/core.
 */

/** Imported public keys by their public members: an agent signs many requests with one key. */
const keyCache = new Map<string, KeyObject>();
const KEY_CACHE_SIZE = 4096;

/** RFC 7515 §7.1: three base64url parts, none empty. */
const COMPACT_JWS = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;

/** The same key object for the same JWK object (callers that cache checked keys pass the same one). */
const keyByObject = new WeakMap<JWK, KeyObject>();

function publicKey(jwk: JWK): KeyObject {
  let key = keyByObject.get(jwk);
  if (key === undefined) {
    key = publicKeyByMembers(jwk);
    keyByObject.set(jwk, key);
  }
  return key;
}

function publicKeyByMembers(jwk: JWK): KeyObject {
  const members: JsonWebKey = jwk.kty === 'OKP' ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x } : { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
  const id = JSON.stringify(members);
  let key = keyCache.get(id);
  if (key === undefined) {
    key = createPublicKey({ key: members, format: 'jwk' });
    keyCache.set(id, key);
    if (keyCache.size > KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value as string);
  }
  return key;
}

/** The signature check libs/core's `verifyDpopProof` accepts as `verifySignature`. */
export const nodeSignatureVerifier: JwsSignatureVerifier = (alg, jwk, input, signature) =>
  // Both decoded into Node's pooled buffers (the input is ASCII: latin1 is a byte per character).
  verify(alg === 'ES256' ? 'sha256' : null, Buffer.from(input, 'latin1'), { key: publicKey(jwk), dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));

/** Why a JWS was refused: not a compact JWS with JSON parts, another algorithm than the key's, or a bad signature. */
export type JwsFailure = 'malformed' | 'alg' | 'signature';

/** A JWS refused for the given reason (the caller words the protocol error). */
export class JwsError extends Error {
  constructor(readonly reason: JwsFailure) {
    super(`JWS refused: ${reason}`);
  }
}

/** The algorithm a registered agent key signs with. */
export function algOf(jwk: JWK): DpopAlg {
  return jwk.alg === 'EdDSA' || jwk.kty === 'OKP' ? 'EdDSA' : 'ES256';
}

/**
 * The algorithm names a JWS signed with a registered agent key may carry: `ES256` for a P-256
 * key; `EdDSA` or the fully-specified `Ed25519` (RFC 9864 §2.2, the same signature) for an Ed25519 key.
 */
export function algsOf(jwk: JWK): readonly DpopAlg[] {
  return algOf(jwk) === 'ES256' ? ['ES256'] : ['EdDSA', 'Ed25519'];
}

function json(part: string): Record<string, unknown> {
  const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new JwsError('malformed');
  return value as Record<string, unknown>;
}

/**
 * Verifies a compact JWS signed with `jwk`, accepting only that key's algorithm (by either of its
 * names, see {@link algsOf}), and returns its
 * protected header and JSON payload. Throws {@link JwsError}; nothing about the token is trusted
 * before the signature verifies.
 */
export function verifyJws(token: string, jwk: JWK): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const parts = COMPACT_JWS.exec(token);
  if (parts === null) throw new JwsError('malformed');
  const [, headerPart, payloadPart, signaturePart] = parts as unknown as [string, string, string, string];
  let header: Record<string, unknown>;
  try {
    header = json(headerPart);
  } catch {
    throw new JwsError('malformed');
  }
  if (typeof header.alg !== 'string') throw new JwsError('malformed');
  const alg = header.alg;
  if (!(algsOf(jwk) as readonly string[]).includes(alg)) throw new JwsError('alg');
  // RFC 7515 §4.1.11: we understand no extension, so a critical header cannot be honoured.
  if ('crit' in header || 'b64' in header) throw new JwsError('malformed');
  let valid: boolean;
  try {
    valid = verify(alg === 'ES256' ? 'sha256' : null, Buffer.from(`${headerPart}.${payloadPart}`), { key: publicKey(jwk), dsaEncoding: 'ieee-p1363' }, Buffer.from(signaturePart, 'base64url'));
  } catch {
    throw new JwsError('signature');
  }
  if (!valid) throw new JwsError('signature');
  try {
    return { header, payload: json(payloadPart) };
  } catch {
    throw new JwsError('malformed');
  }
}

/**
 * base64url SHA-256 of a string, synchronously: the same value as libs/core's `sha256Base64url`
 * and `tokenHash`, without a Web Crypto round trip through the thread pool.
 */
export function sha256Base64urlSync(data: string): string {
  return hash('sha256', data, 'base64url');
}
