import { type Clock, type TxnTokenClaims, verifyTxnToken } from '@writ/core';
import { createLocalJWKSet } from 'jose';
import type { RegistryConfig } from '../../config/config.js';
import type { KeyStore } from '../keys/key-store.js';

/** Clock skew the registry accepts on the tokens, proofs and assertions it checks. */
export const CLOCK_SKEW_S = 5;

/**
 * Verifies a Txn-Token this registry issued: signed by one of its keys still in JWKS, its issuer,
 * `aud` = the trust domain, within its lifetime. Throws `InvalidToken` otherwise; callers map it
 * to the error their endpoint answers with.
 */
export async function verifyIssuedTxnToken(
  token: string,
  keys: Pick<KeyStore, 'jwks'>,
  config: Pick<RegistryConfig, 'issuer' | 'trustDomain'>,
  clock: Clock,
): Promise<TxnTokenClaims> {
  return verifyTxnToken(token, {
    key: createLocalJWKSet(await keys.jwks()),
    issuer: config.issuer,
    audience: config.trustDomain,
    clock,
    maxSkewSeconds: CLOCK_SKEW_S,
  });
}
