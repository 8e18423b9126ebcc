/**
 * The load generator's own signing fast path: compact ES256 JWS with node:crypto, and DPoP proofs
 * (RFC 9449 §4.2) with the header of each key encoded once. The benchmarks sign before the
 * measured window, so what is timed is the server's work, not this.
 */
import { createHash, type KeyObject, randomUUID, sign } from 'node:crypto';

export function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** A compact ES256 JWS (signature r||s, RFC 7518 §3.4). */
export function jws(header: object, payload: object, key: KeyObject): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** RFC 9449 §4.2 `ath`: base64url SHA-256 of the access token's ASCII. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

/** DPoP proofs by one key: a fresh `jti` and the current `iat` in each. */
export class ProofSigner {
  private readonly header: string;

  constructor(
    private readonly key: KeyObject,
    publicJwk: object,
  ) {
    this.header = b64url(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwk }));
  }

  /** A proof for `htm` `htu`, bound to the access token whose {@link accessTokenHash} is `ath`. */
  proof(htm: string, htu: string, ath?: string): string {
    const claims = { jti: randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000), ...(ath === undefined ? {} : { ath }) };
    const input = `${this.header}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), { key: this.key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }
}
