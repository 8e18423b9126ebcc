import { describe, expect, it } from 'vitest';
import { grantHashTag, grantOfKey, grantStateKey, REVOCATION_KINDS, revocationChannel, revocationKey, verifierKey } from './store-keys.js';

/** The part of a key Redis Cluster hashes: between the first `{` and the next `}`, if non-empty. */
function hashedPart(key: string): string {
  const open = key.indexOf('{');
  const close = key.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
}

describe('store keys', () => {
  it('names a revocation key under the grant hash tag, after the prefix', () => {
    expect(revocationKey('writ:', 'grt_abc', 'token', 'jti-1')).toBe('writ:{g:grt_abc}:revoked:token:jti-1');
    expect(grantHashTag('grt_abc')).toBe('{g:grt_abc}');
  });

  it('puts every revocation key of one grant in the same cluster slot, whatever the value holds', () => {
    const keys = REVOCATION_KINDS.map((kind) => revocationKey('p:', 'grt_1', kind, 'v{x}:y'));
    expect(new Set(keys.map(hashedPart))).toEqual(new Set(['g:grt_1']));
  });

  it('refuses a grant id that would break the hash tag', () => {
    for (const id of ['', 'grt_}x', 'grt_{x']) expect(() => grantHashTag(id)).toThrow(TypeError);
  });

  it('announces on one channel per prefix', () => {
    expect(revocationChannel('writ:')).toBe('writ:revocations');
    expect(revocationChannel('test-42:')).toBe('test-42:revocations');
  });

  it("puts every piece of a grant's verifier state in the grant's slot", () => {
    const parts = ['proof', 'counters', 'rate', 'stepup', 'stepup-for', 'events'] as const;
    const keys = parts.map((part) => grantStateKey('writ:', 'grt_1', part, 'a{b}:c'));
    expect(keys[1]).toBe('writ:{g:grt_1}:counters:a{b}:c');
    expect(grantStateKey('writ:', 'grt_1', 'events')).toBe('writ:{g:grt_1}:events');
    expect(new Set([...keys, revocationKey('writ:', 'grt_1', 'grant', 'grt_1')].map(hashedPart))).toEqual(new Set(['g:grt_1']));
  });

  it('reads the grant back from any of its keys, and no grant from other keys', () => {
    for (const key of [grantStateKey('writ:', 'grt_1', 'events'), grantStateKey('writ:', 'grt_1', 'proof', 'k:{x}'), revocationKey('writ:', 'grt_1', 'agent', 'a{g:grt_2}')]) {
      expect(grantOfKey('writ:', key)).toBe('grt_1');
    }
    expect(grantOfKey('writ:', verifierKey('writ:', 'events'))).toBeUndefined();
    expect(grantOfKey('other:', grantStateKey('writ:', 'grt_1', 'events'))).toBeUndefined();
    expect(grantOfKey('w', 'w{g:}:events')).toBeUndefined();
  });

  it('names the keys that belong to no grant after the prefix', () => {
    expect(verifierKey('writ:', 'events')).toBe('writ:verifier:events');
    expect(verifierKey('t:', 'event-grants')).toBe('t:verifier:event-grants');
  });
});
