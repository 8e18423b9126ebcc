import type { TxnTokenClaims } from '@writ/core';

/** A verified token: its claims and its SHA-256 (base64url, the DPoP `ath`). */
export interface VerifiedToken {
  claims: TxnTokenClaims;
  hash: string;
}

interface Entry extends VerifiedToken {
  /** `exp` in ms: a cached token still expires on time. */
  expMs: number;
}

/**
 * Verified tokens by their text, bounded: least recently used first out. Only tokens whose
 * signature and claims verified get in, so a hit skips the signature check and nothing else.
 * Keyed by the text itself rather than by its hash so that a hit costs no hashing either: the
 * hash, which the DPoP proof's `ath` must equal and which names the token in audit events, is kept
 * with the claims (ADR 0012). Revocations drop every entry of the grants they name.
 */
export class TokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly byGrant = new Map<string, Set<string>>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(token: string, nowMs: number): VerifiedToken | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    if (entry.expMs <= nowMs) {
      this.delete(token);
      return undefined;
    }
    // Refresh its place in the eviction order.
    this.entries.delete(token);
    this.entries.set(token, entry);
    return entry;
  }

  set(token: string, verified: VerifiedToken): void {
    if (this.entries.has(token)) this.delete(token);
    while (this.entries.size >= this.capacity) this.delete(this.entries.keys().next().value!);
    this.entries.set(token, { claims: verified.claims, hash: verified.hash, expMs: verified.claims.exp * 1000 });
    const grant = verified.claims.tctx.grant_id;
    let tokens = this.byGrant.get(grant);
    if (tokens === undefined) this.byGrant.set(grant, (tokens = new Set()));
    tokens.add(token);
  }

  /** Drops every cached token of these grants; answers how many were dropped. */
  dropGrants(grantIds: readonly string[]): number {
    let dropped = 0;
    for (const grant of grantIds) {
      for (const token of this.byGrant.get(grant) ?? []) {
        this.entries.delete(token);
        dropped += 1;
      }
      this.byGrant.delete(grant);
    }
    return dropped;
  }

  private delete(token: string): void {
    const entry = this.entries.get(token);
    if (entry === undefined) return;
    this.entries.delete(token);
    const tokens = this.byGrant.get(entry.claims.tctx.grant_id);
    tokens?.delete(token);
    if (tokens?.size === 0) this.byGrant.delete(entry.claims.tctx.grant_id);
  }
}
