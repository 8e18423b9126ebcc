/**
 * Every DPoP proof case of dpop.spec.ts again, with a native (node:crypto) signature verifier
 * plugged in through `verifySignature`: the outcomes and exact errors must be the same as on the
 * Web Crypto path (test/dpop-cases.ts holds the cases; a module imported again would not run them
 * again in a worker that keeps its modules from file to file).
 */
import { createPublicKey, verify } from 'node:crypto';
import { describeDpopProofs } from '../test/dpop-cases.js';
import type { JwsSignatureVerifier } from './dpop.js';

const nativeVerifier: JwsSignatureVerifier = (alg, jwk, input, signature) =>
  verify(alg === 'ES256' ? 'sha256' : null, Buffer.from(input, 'latin1'), { key: createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));

describeDpopProofs({ verifySignature: nativeVerifier });
