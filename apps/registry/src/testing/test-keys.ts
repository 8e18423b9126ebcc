import { createPrivateKey, sign } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import type { ActiveKey, KeyStore } from '../modules/keys/key-store.js';

/** One ES256 signing key held in memory, standing in for the KeyStore (no key file) in unit tests. */
export async function inMemoryKeys(kid = 'test-key'): Promise<Pick<KeyStore, 'active' | 'jwks'>> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const nodeKey = createPrivateKey({ key: await exportJWK(privateKey), format: 'jwk' });
  const active: ActiveKey = {
    kid,
    alg: 'ES256',
    privateKey,
    publicJwk,
    sign: (input) => sign('sha256', input, { key: nodeKey, dsaEncoding: 'ieee-p1363' }),
  };
  return { active: () => Promise.resolve(active), jwks: () => Promise.resolve({ keys: [publicJwk] }) };
}
