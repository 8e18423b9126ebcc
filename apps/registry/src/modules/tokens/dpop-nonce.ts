import { UseDpopNonce } from '@writ/core';

export { DpopNonces, NONCE_BUCKET_S } from '@writ/sdk/dpop-nonces';

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
