/**
 * Every DPoP proof case of dpop.spec.ts again, with a native (node:crypto) signature verifier
 * plugged in through `verifySignature`: the outcomes and exact errors must be the same as on the
 * Web Crypto path. The mock adds the verifier to every `verifyDpopProof` call the suite makes.
 */
import { createPublicKey, verify } from 'node:crypto';
import { vi } from 'vitest';
import type * as Dpop from './dpop.js';
import type { JwsSignatureVerifier, VerifyDpopProofOptions } from './dpop.js';

const nativeVerifier: JwsSignatureVerifier = (alg, jwk, input, signature) =>
  verify(alg === 'ES256' ? 'sha256' : null, Buffer.from(input, 'latin1'), { key: createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));

vi.mock('./dpop.js', async (importOriginal) => {
  const original = await importOriginal<typeof Dpop>();
  return {
    ...original,
    verifyDpopProof: (proof: string, options: VerifyDpopProofOptions) => original.verifyDpopProof(proof, { ...options, verifySignature: nativeVerifier }),
  };
});

await import('./dpop.spec.js');
