/**
 * Shared test fixtures for libs/core: fixed clocks, key pairs, and hand-made JWS (any header, any
 * payload, any algorithm including `none` and HMAC) for attack cases a library would refuse to build.
 */
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { expect } from 'vitest';
import type { Clock } from '../src/clock.js';
import { OAuthError, type OAuthErrorCode } from '../src/errors.js';

/** 2026-11-24T09:00:00Z, in ms. */
export const T0 = Date.parse('2026-11-24T09:00:00Z');
/** {@link T0} in seconds. */
export const T0_S = T0 / 1000;

export function fixedClock(ms: number = T0): Clock {
  return { now: () => ms };
}

export interface TestKey {
  alg: 'ES256' | 'EdDSA' | 'RS256';
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  privateJwk: JWK;
  jkt: string;
}

export async function makeKey(alg: TestKey['alg'] = 'ES256'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { alg, privateKey, publicKey, publicJwk, privateJwk: await exportJWK(privateKey), jkt: await calculateJwkThumbprint(publicJwk) };
}

const encoder = new TextEncoder();

/** base64url of a string as it is, of bytes as they are, or of anything else's JSON. */
export function b64(value: unknown): string {
  if (value instanceof Uint8Array) return base64url.encode(value);
  return base64url.encode(typeof value === 'string' ? value : JSON.stringify(value));
}

/** How to sign a hand-made JWS. */
export type Signer =
  | { kind: 'key'; key: TestKey }
  | { kind: 'hmac'; secret: Uint8Array }
  | { kind: 'none' };

/** Signs `b64(header).b64(payload)` exactly as given; a string or byte payload is used as is. */
export async function signCompact(header: Record<string, unknown>, payload: unknown, signer: Signer): Promise<string> {
  const input = `${b64(header)}.${b64(payload)}`;
  const data = encoder.encode(input);
  let signature: ArrayBuffer;
  switch (signer.kind) {
    case 'none':
      return `${input}.`;
    case 'hmac': {
      const key = await crypto.subtle.importKey('raw', new Uint8Array(signer.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      signature = await crypto.subtle.sign('HMAC', key, data);
      break;
    }
    case 'key': {
      const { alg, privateKey } = signer.key;
      const params =
        alg === 'ES256'
          ? { name: 'ECDSA', hash: 'SHA-256' }
          : alg === 'EdDSA'
            ? { name: 'Ed25519' }
            : { name: 'RSASSA-PKCS1-v1_5' };
      signature = await crypto.subtle.sign(params, privateKey, data);
      break;
    }
  }
  return `${input}.${base64url.encode(new Uint8Array(signature))}`;
}

/** Replaces one part (0 header, 1 payload, 2 signature) of a compact JWS. */
export function replacePart(jws: string, index: 0 | 1 | 2, part: string): string {
  const parts = jws.split('.');
  parts[index] = part;
  return parts.join('.');
}

/** Flips one character in the middle of a part, keeping it valid base64url. */
export function flipChar(jws: string, index: 0 | 1 | 2): string {
  const part = jws.split('.')[index]!;
  const at = Math.floor(part.length / 2);
  const flipped = part[at] === 'A' ? 'B' : 'A';
  return replacePart(jws, index, part.slice(0, at) + flipped + part.slice(at + 1));
}

/**
 * Awaits a promise that must reject with an {@link OAuthError} of this code and description, and
 * checks that the description leaks none of `secrets` (the proof, the token).
 */
export async function expectOAuthError(
  promise: Promise<unknown>,
  code: OAuthErrorCode,
  description: string,
  secrets: readonly string[] = [],
): Promise<OAuthError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected a rejection').toBeInstanceOf(OAuthError);
  const oauth = error as OAuthError;
  expect({ code: oauth.code, description: oauth.description }).toEqual({ code, description });
  for (const secret of secrets) expect(oauth.description).not.toContain(secret);
  return oauth;
}
