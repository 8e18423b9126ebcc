import type { TxnTokenClaims } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { TokenCache } from './token-cache.js';

/** Only what the cache reads of the claims: `exp` and the grant. */
function claims(grantId: string, expS: number): TxnTokenClaims {
  return { exp: expS, tctx: { grant_id: grantId } } as unknown as TxnTokenClaims;
}

const NOW_MS = 1_000_000_000;

/** A verified token of `grantId` with hash `hash`, expiring `inS` seconds after NOW_MS. */
function verified(grantId: string, hash: string, inS = 60): { claims: TxnTokenClaims; hash: string } {
  return { claims: claims(grantId, NOW_MS / 1000 + inS), hash };
}

describe('TokenCache', () => {
  it('answers the claims and the hash a token was cached with, for exactly that token text', () => {
    const cache = new TokenCache(10);
    const token = verified('g1', 'hash-of-t1');
    cache.set('header.payload.signature', token);
    const hit = cache.get('header.payload.signature', NOW_MS);
    expect(hit?.claims).toBe(token.claims);
    expect(hit?.hash).toBe('hash-of-t1');
    // One character more or less is another token.
    expect(cache.get('header.payload.signatur', NOW_MS)).toBeUndefined();
    expect(cache.get('header.payload.signatureX', NOW_MS)).toBeUndefined();
  });

  it('misses a token that carries a cached token\'s signature over another header or payload', () => {
    const cache = new TokenCache(10);
    cache.set('header.payload.signature', verified('g1', 'h1'));
    expect(cache.get('header.forged-payload.signature', NOW_MS)).toBeUndefined();
    expect(cache.get('forged-header.payload.signature', NOW_MS)).toBeUndefined();
    expect(cache.get('signature', NOW_MS)).toBeUndefined();
    // The cached token is still there, and still only for itself.
    expect(cache.get('header.payload.signature', NOW_MS)?.hash).toBe('h1');
    expect(cache.size).toBe(1);
  });

  it('drops a token once its exp has passed, so a cached token still expires on time', () => {
    const cache = new TokenCache(10);
    cache.set('t1', verified('g1', 'h1', 1));
    expect(cache.get('t1', NOW_MS + 999)?.hash).toBe('h1');
    expect(cache.get('t1', NOW_MS + 1000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used token when full', () => {
    const cache = new TokenCache(2);
    cache.set('t1', verified('g1', 'h1'));
    cache.set('t2', verified('g1', 'h2'));
    // t1 is used, so t2 is now the least recently used.
    expect(cache.get('t1', NOW_MS)?.hash).toBe('h1');
    cache.set('t3', verified('g2', 'h3'));
    expect(cache.size).toBe(2);
    expect(cache.get('t2', NOW_MS)).toBeUndefined();
    expect(cache.get('t1', NOW_MS)?.hash).toBe('h1');
    expect(cache.get('t3', NOW_MS)?.hash).toBe('h3');
  });

  it('drops every token of the grants a revocation names, and only those', () => {
    const cache = new TokenCache(10);
    cache.set('a1', verified('ga', 'ha1'));
    cache.set('a2', verified('ga', 'ha2'));
    cache.set('b1', verified('gb', 'hb1'));
    expect(cache.dropGrants(['ga', 'unknown'])).toBe(2);
    expect(cache.get('a1', NOW_MS)).toBeUndefined();
    expect(cache.get('a2', NOW_MS)).toBeUndefined();
    expect(cache.get('b1', NOW_MS)?.hash).toBe('hb1');
    expect(cache.size).toBe(1);
  });

  it('replaces an entry set twice without counting it twice', () => {
    const cache = new TokenCache(10);
    cache.set('t1', verified('g1', 'old'));
    cache.set('t1', verified('g1', 'new'));
    expect(cache.size).toBe(1);
    expect(cache.get('t1', NOW_MS)?.hash).toBe('new');
    expect(cache.dropGrants(['g1'])).toBe(1);
  });
});
