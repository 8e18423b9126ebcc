import { InvalidDpopProof, UseDpopNonce } from '@writ/core';

export { DpopNonces, NONCE_BUCKET_S } from '@writ/server/dpop-nonces';

/**
 * RFC 9449 §8: at the token endpoint a missing or stale nonce is a 400 (not the resource
 * server's 401), carries the nonce to use and no `WWW-Authenticate` challenge.
 */
export class UseDpopNonceAtTokenEndpoint extends UseDpopNonce {
  override readonly status: number = 400;

  override wwwAuthenticate(): undefined {
    return undefined;
  }
}

/**
 * RFC 9449 §5, RFC 6749 §5.2: at the token endpoint an invalid proof is an ordinary token error,
 * HTTP 400 with no `WWW-Authenticate` challenge; the 401 and its `DPoP` challenge are a protected
 * resource's answer (RFC 9449 §7.1), which the verifier keeps.
 */
export class InvalidDpopProofAtTokenEndpoint extends InvalidDpopProof {
  override readonly status: number = 400;

  override wwwAuthenticate(): undefined {
    return undefined;
  }
}

/**
 * The token endpoint's answer for an error libs/core words for resources: `invalid_dpop_proof`
 * and `use_dpop_nonce` become 400s without challenge (with `nonce`, the one this answer hands
 * out, as the `DPoP-Nonce` to use); anything else is unchanged.
 */
export function atTokenEndpoint(error: unknown, nonce: string | undefined): unknown {
  if (error instanceof UseDpopNonce) return new UseDpopNonceAtTokenEndpoint(error.description, nonce ?? error.nonce);
  if (error instanceof InvalidDpopProof) return new InvalidDpopProofAtTokenEndpoint(error.description, { cause: error });
  return error;
}
