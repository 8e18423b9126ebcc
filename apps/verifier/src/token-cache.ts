import type { TxnTokenClaims } from '@writ/core';

interface Entry {
  claims: TxnTokenClaims;
  /** `exp` in ms: a cached token still expires on time. */
  expMs: number;
}

/**
 * Verified token claims by the token's SHA-256 (base64url, also the DPoP `ath`), bounded: least
 * recently used first out. Only tokens whose signature and claims verified get in, so a hit skips
 * the signature check and nothing else. Revocations drop every entry of the grants they name.
 */
export class TokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly byGrant = new Map<string, Set<string>>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(hash: string, nowMs: number): TxnTokenClaims | undefined {
    const entry = this.entries.get(hash);
    if (entry === undefined) return undefined;
    if (entry.expMs <= nowMs) {
      this.delete(hash);
      return undefined;
    }
    // Refresh its place in the eviction order.
    this.entries.delete(hash);
    this.entries.set(hash, entry);
    return entry.claims;
  }

  set(hash: string, claims: TxnTokenClaims): void {
    if (this.entries.has(hash)) this.delete(hash);
    while (this.entries.size >= this.capacity) this.delete(this.entries.keys().next().value!);
    this.entries.set(hash, { claims, expMs: claims.exp * 1000 });
    const grant = claims.tctx.grant_id;
    let hashes = this.byGrant.get(grant);
    if (hashes === undefined) this.byGrant.set(grant, (hashes = new Set()));
    hashes.add(hash);
  }

  /** Drops every cached token of these grants; answers how many were dropped. */
  dropGrants(grantIds: readonly string[]): number {
    let dropped = 0;
    for (const grant of grantIds) {
      for (const hash of this.byGrant.get(grant) ?? []) {
        this.entries.delete(hash);
        dropped += 1;
      }
      this.byGrant.delete(grant);
    }
    return dropped;
  }

  private delete(hash: string): void {
    const entry = this.entries.get(hash);
    if (entry === undefined) return;
    this.entries.delete(hash);
    const hashes = this.byGrant.get(entry.claims.tctx.grant_id);
    hashes?.delete(hash);
    if (hashes?.size === 0) this.byGrant.delete(entry.claims.tctx.grant_id);
  }
}
