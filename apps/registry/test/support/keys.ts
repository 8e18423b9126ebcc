import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';

/** A node:crypto key pair with its public JWK, for tests of the registry's native JWS path. */
export interface KeyPair {
  alg: 'ES256' | 'EdDSA';
  privateKey: KeyObject;
  jwk: JWK;
}

/** A fresh P-256 (ES256) or Ed25519 (EdDSA) key pair. */
export function keyPair(alg: KeyPair['alg']): KeyPair {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return { alg, privateKey, jwk: publicKey.export({ format: 'jwk' }) };
}
