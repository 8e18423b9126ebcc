import type { TxnTokenClaims } from '@writ/core';

/** A verified token: its claims and its SHA-256 (base64url, the DPoP `ath`). */
export interface VerifiedToken {
  claims: TxnTokenClaims;
  hash: string;
}

interface Entry extends VerifiedToken {
  /** The whole token: a hit is a token equal to it, character for character. */
  token: string;
  /** `exp` in ms: a cached token still expires on time. */
  expMs: number;
}

/** The JWS signature part (after the last dot): short, and different for every token the registry signs. */
function keyOf(token: string): string {
  return token.slice(token.lastIndexOf('.') + 1);
}

/**
 * Verified tokens by their text, bounded: least recently used first out. Only tokens whose
 * signature and claims verified get in, so a hit skips the signature check and nothing else.
 *
 * A hit is a token equal to a cached one, character for character, so it costs no hashing: the
 * hash, which the DPoP proof's `ath` must equal and which names the token in audit events, is kept
 * with the claims (ADR 0012). The map is keyed by the token's signature part, and the whole text
 * is then compared: a map key of a whole token (1 to 2 KB) would be hashed character by character
 * on every lookup, where comparing two equal strings is one memory comparison. A token that only
 * borrows a cached token's signature is not equal to it, so it is a miss, and fails verification.
 * Revocations drop every entry of the grants they name.
 */
export class TokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly byGrant = new Map<string, Set<string>>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(token: string, nowMs: number): VerifiedToken | undefined {
    const key = keyOf(token);
    const entry = this.entries.get(key);
    if (entry === undefined || entry.token !== token) return undefined;
    if (entry.expMs <= nowMs) {
      this.delete(key);
      return undefined;
    }
    // Refresh its place in the eviction order.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  set(token: string, verified: VerifiedToken): void {
    const key = keyOf(token);
    if (this.entries.has(key)) this.delete(key);
    while (this.entries.size >= this.capacity) this.delete(this.entries.keys().next().value!);
    this.entries.set(key, { token, claims: verified.claims, hash: verified.hash, expMs: verified.claims.exp * 1000 });
    const grant = verified.claims.tctx.grant_id;
    let keys = this.byGrant.get(grant);
    if (keys === undefined) this.byGrant.set(grant, (keys = new Set()));
    keys.add(key);
  }

  /** Drops every cached token of these grants; answers how many were dropped. */
  dropGrants(grantIds: readonly string[]): number {
    let dropped = 0;
    for (const grant of grantIds) {
      for (const key of this.byGrant.get(grant) ?? []) {
        this.entries.delete(key);
        dropped += 1;
      }
      this.byGrant.delete(grant);
    }
    return dropped;
  }

  private delete(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    const keys = this.byGrant.get(entry.claims.tctx.grant_id);
    keys?.delete(key);
    if (keys?.size === 0) this.byGrant.delete(entry.claims.tctx.grant_id);
  }
}
