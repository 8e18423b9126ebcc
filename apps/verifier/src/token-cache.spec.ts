import type { TxnTokenClaims } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { TokenCache } from './token-cache.js';

/** Only what the cache reads of the claims: `exp` and the grant. */
function claims(grantId: string, expS: number): TxnTokenClaims {
  return { exp: expS, tctx: { grant_id: grantId } } as unknown as TxnTokenClaims;
}

const NOW_MS = 1_000_000_000;

describe('TokenCache', () => {
  it('answers the claims and the hash a token was cached with, for exactly that token text', () => {
    const cache = new TokenCache(10);
    const verified = { claims: claims('g1', NOW_MS / 1000 + 60), hash: 'hash-of-t1' };
    cache.set('header.payload.signature', verified);
    const hit = cache.get('header.payload.signature', NOW_MS);
    expect(hit?.claims).toBe(verified.claims);
    expect(hit?.hash).toBe('hash-of-t1');
    // One character more or less is another token.
    expect(cache.get('header.payload.signatur', NOW_MS)).toBeUndefined();
    expect(cache.get('header.payload.signatureX', NOW_MS)).toBeUndefined();
  });

  it('misses a token that carries a cached token\'s signature over another header or payload', () => {
    const cache = new TokenCache(10);
    cache.set('header.payload.signature', { claims: claims('g1', NOW_MS / 1000 + 60), hash: 'h1' });
    expect(cache.get('header.forged-payload.signature', NOW_MS)).toBeUndefined();
    expect(cache.get('forged-header.payload.signature', NOW_MS)).toBeUndefined();
    expect(cache.get('signature', NOW_MS)).toBeUndefined();
    // The cached token is still there, and still only for itself.
    expect(cache.get('header.payload.signature', NOW_MS)?.hash).toBe('h1');
    expect(cache.size).toBe(1);
  });

  it('drops a token once its exp has passed, so a cached token still expires on time', () => {
    const cache = new TokenCache(10);
    cache.set('t1', { claims: claims('g1', NOW_MS / 1000 + 1), hash: 'h1' });
    expect(cache.get('t1', NOW_MS + 999)?.hash).toBe('h1');
    expect(cache.get('t1', NOW_MS + 1000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used token when full', () => {
    const cache = new TokenCache(2);
    cache.set('t1', { claims: claims('g1', NOW_MS / 1000 + 60), hash: 'h1' });
    cache.set('t2', { claims: claims('g1', NOW_MS / 1000 + 60), hash: 'h2' });
    // t1 is used, so t2 is now the least recently used.
    expect(cache.get('t1', NOW_MS)?.hash).toBe('h1');
    cache.set('t3', { claims: claims('g2', NOW_MS / 1000 + 60), hash: 'h3' });
    expect(cache.size).toBe(2);
    expect(cache.get('t2', NOW_MS)).toBeUndefined();
    expect(cache.get('t1', NOW_MS)?.hash).toBe('h1');
    expect(cache.get('t3', NOW_MS)?.hash).toBe('h3');
  });

  it('drops every token of the grants a revocation names, and only those', () => {
    const cache = new TokenCache(10);
    cache.set('a1', { claims: claims('ga', NOW_MS / 1000 + 60), hash: 'ha1' });
    cache.set('a2', { claims: claims('ga', NOW_MS / 1000 + 60), hash: 'ha2' });
    cache.set('b1', { claims: claims('gb', NOW_MS / 1000 + 60), hash: 'hb1' });
    expect(cache.dropGrants(['ga', 'unknown'])).toBe(2);
    expect(cache.get('a1', NOW_MS)).toBeUndefined();
    expect(cache.get('a2', NOW_MS)).toBeUndefined();
    expect(cache.get('b1', NOW_MS)?.hash).toBe('hb1');
    expect(cache.size).toBe(1);
  });

  it('replaces an entry set twice without counting it twice', () => {
    const cache = new TokenCache(10);
    cache.set('t1', { claims: claims('g1', NOW_MS / 1000 + 60), hash: 'old' });
    cache.set('t1', { claims: claims('g1', NOW_MS / 1000 + 60), hash: 'new' });
    expect(cache.size).toBe(1);
    expect(cache.get('t1', NOW_MS)?.hash).toBe('new');
    expect(cache.dropGrants(['g1'])).toBe(1);
  });
});
