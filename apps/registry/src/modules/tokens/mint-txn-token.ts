import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { InvalidGrant, scopeOf, signTxnToken, TXN_TOKEN_TYPE, type TxnTokenClaims } from '@writ/core';
import { sha256Base64urlSync } from '@writ/server/node-crypto';
import type { KeyStore } from '../keys/key-store.js';
import type { TokenResponse } from './token-endpoint.js';

/**
 * What a new Txn-Token says that its handler decides: who it is about, the transaction, who
 * holds it and its context. Minting adds the rest (times, `jti`, `scope`, `rctx`).
 */
export interface TxnTokenDraft {
  iss: string;
  aud: string;
  txn: string;
  sub: string;
  /** `req_wl`: the workload that asked for the token. */
  requester: string;
  act: TxnTokenClaims['act'];
  /** `cnf.jkt`: the key the token is bound to (RFC 9449 §6.1). */
  jkt: string;
  tctx: TxnTokenClaims['tctx'];
  /** Instants (seconds since the epoch) the token must not outlive: the grant's end, a parent's `exp`. */
  notAfter: readonly number[];
  /** The `invalid_grant` description when nothing is left of the token's life: what ran out. */
  expired: string;
}

/** How a token is minted: the signing key, its lifetime, the moment and the requesting peer. */
export interface MintContext {
  keys: Pick<KeyStore, 'active'>;
  tokenTtlSeconds: number;
  /** Milliseconds since the epoch. */
  now: number;
  /** The peer's address: recorded as `rctx.req_ip` when it is an IP address. */
  ip: string | undefined;
}

/** A signed Txn-Token, its claims, and its hash as the audit chain records it. */
export interface MintedTxnToken {
  token: string;
  claims: TxnTokenClaims;
  /** base64url SHA-256 of the token. */
  hash: string;
}

/**
 * Mints a Txn-Token (draft-ietf-oauth-transaction-tokens), root or delegated alike: it lives
 * `tokenTtlSeconds` and no longer than any of `draft.notAfter`, has a fresh `jti`, the scope of
 * its authorization details, the request context, and is signed with the active key. A token
 * with no life left is not minted: `invalid_grant` with `draft.expired`.
 */
export async function mintTxnToken(draft: TxnTokenDraft, context: MintContext): Promise<MintedTxnToken> {
  const iat = Math.floor(context.now / 1000);
  const exp = Math.min(iat + context.tokenTtlSeconds, ...draft.notAfter);
  if (exp <= iat) throw new InvalidGrant(draft.expired);
  const claims: TxnTokenClaims = {
    iss: draft.iss,
    aud: draft.aud,
    iat,
    exp,
    jti: `trt_${randomUUID()}`,
    txn: draft.txn,
    sub: draft.sub,
    scope: scopeOf(draft.tctx.authorization_details),
    req_wl: draft.requester,
    act: draft.act,
    cnf: { jkt: draft.jkt },
    tctx: draft.tctx,
    rctx: { ...(context.ip !== undefined && isIP(context.ip) !== 0 ? { req_ip: context.ip } : {}), authn: 'private_key_jwt' },
  };
  const key = await context.keys.active();
  const token = await signTxnToken(claims, { sign: key.sign, kid: key.kid });
  return { token, claims, hash: sha256Base64urlSync(token) };
}

/** RFC 8693 §2.2.1 with RFC 9449 §5: the answer that hands a minted token out. */
export function tokenResponse({ token, claims }: MintedTxnToken): TokenResponse {
  return { access_token: token, token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE, expires_in: claims.exp - claims.iat };
}
