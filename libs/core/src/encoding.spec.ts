import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalHash,
  canonicalJson,
  fromHex,
  sha256,
  sha256Base64url,
  timingSafeEqual,
  toHex,
} from './encoding.js';

function fromIeee754(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

describe('canonicalJson (RFC 8785)', () => {
  it('serialises the RFC 8785 §3.2.2 sample exactly', () => {
    // The input of RFC 8785 §3.2.2, parsed by JSON.parse as the RFC assumes.
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
        '"literals": [null, true, false]}',
    ) as unknown;
    expect(canonicalJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('sorts properties by UTF-16 code units as in RFC 8785 §3.2.3', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  // RFC 8785 Appendix B: IEEE 754 values and their canonical text.
  const appendixB: [string, string][] = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];
  it.each(appendixB)('formats IEEE 754 %s as %s (Appendix B)', (hex, expected) => {
    expect(canonicalJson(fromIeee754(hex))).toBe(expected);
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ])('rejects %s, which JSON cannot carry (RFC 8785 §3.2.2.3)', (_name, value) => {
    expect(() => canonicalJson({ amount: value })).toThrow('$.amount is not a finite number');
  });

  it('rejects values with no JSON representation', () => {
    expect(() => canonicalJson({ f: () => 1 })).toThrow('$.f has no JSON representation (function)');
    expect(() => canonicalJson([1n])).toThrow('$[0] has no JSON representation (bigint)');
    expect(() => canonicalJson(undefined)).toThrow('$ has no JSON representation (undefined)');
  });

  it('writes a flat object (the one-pass path) exactly as the general canonicaliser does, and refuses what it refuses', () => {
    // The reference is the canonicalize package itself: its text, or 'refused' (never a JSON text).
    const reference = (value: unknown): string => {
      try {
        return canonicalize(value) ?? 'refused';
      } catch {
        return 'refused';
      }
    };
    const ours = (value: unknown): string => {
      try {
        return canonicalJson(value);
      } catch {
        return 'refused';
      }
    };
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    const member = fc.oneof(text, fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.constantFrom(1e21, -0, 5e-324, 0.1));
    fc.assert(
      fc.property(fc.dictionary(text, member, { maxKeys: 12 }), (flat) => {
        expect(ours(flat)).toBe(reference(flat));
      }),
      { numRuns: 2000 },
    );
    // Lone surrogates in a value or a key, nesting, a null prototype: the same outcome as the reference.
    const bare = Object.assign(Object.create(null) as object, { b: 1, a: 'x' });
    for (const odd of [{ a: '\uD800' }, { '\uDC00': 1 }, { a: '\uD83D\uDE00' }, { a: { b: 1 } }, { a: [1] }, bare, { a: Number.NaN }, { a: 1n }]) {
      expect(ours(odd)).toBe(reference(odd));
    }
    expect(canonicalJson(bare)).toBe('{"a":"x","b":1}');
    // One level of plain objects inside is written in the same pass; anything deeper, or a
    // nested lone surrogate, non-finite number or array, the general way. (Arrays hold no
    // undefined here: canonicalJson refuses it where the reference writes null.)
    const item = fc.oneof(text, fc.double(), fc.boolean(), fc.constant(null));
    fc.assert(
      fc.property(fc.dictionary(text, fc.oneof(member, fc.dictionary(text, member, { maxKeys: 6 }), fc.array(item, { maxLength: 2 })), { maxKeys: 8 }), (nested) => {
        expect(ours(nested)).toBe(reference(nested));
      }),
      { numRuns: 1000 },
    );
    for (const odd of [{ z: { b: '\uDBFF', a: 1 } }, { z: { '\uDFFF': 1 } }, { z: { a: { b: 1 } } }, { z: { a: Number.POSITIVE_INFINITY } }, { z: bare }, { z: { a: undefined } }]) {
      expect(ours(odd)).toBe(reference(odd));
    }
    expect(canonicalJson({ z: { b: 2, a: 1 }, a: null })).toBe('{"a":null,"z":{"a":1,"b":2}}');
  });

  it('sorts keys an object would not keep in insertion order, and many keys, as the general canonicaliser does', () => {
    // Array-index keys come first in an object, in numeric order; "__proto__" is a member here, not the prototype.
    const indexed = { b: 1, '10': 'ten', '9': 'nine', '-1': 0, '': 'empty', a: { '2': 0, '1': 1 } };
    expect(canonicalJson(indexed)).toBe('{"":"empty","-1":0,"10":"ten","9":"nine","a":{"1":1,"2":0},"b":1}');
    expect(canonicalJson(indexed)).toBe(canonicalize(indexed));
    const proto = JSON.parse('{"__proto__":{"b":1},"a":2}') as object;
    expect(canonicalJson(proto)).toBe('{"__proto__":{"b":1},"a":2}');
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${(i * 7) % 40}\u00e9`, i]));
    expect(canonicalJson(many)).toBe(canonicalize(many));
    expect(canonicalJson({ n: many })).toBe(canonicalize({ n: many }));
  });

  it('writes a backslash before "ud" as text, and a lone surrogate not at all', () => {
    // An escaped backslash followed by "ud" is not a lone surrogate: the same text either way.
    expect(canonicalJson({ a: '\\ud800', b: { c: '\\udc00' } })).toBe('{"a":"\\\\ud800","b":{"c":"\\\\udc00"}}');
    expect(canonicalJson({ a: '\uD83D\uDE00', b: { '\uD83D\uDE00': 1 } })).toBe('{"a":"\uD83D\uDE00","b":{"\uD83D\uDE00":1}}');
    for (const lone of [{ a: '\uD800' }, { a: 'x\uDC00' }, { b: { a: '\uDBFF' } }, { b: { '\uD83D': 1 } }]) {
      expect(() => canonicalJson(lone)).toThrow('Lone surrogate is not allowed');
    }
  });

  it('drops undefined members as JSON does', () => {
    expect(canonicalJson({ b: undefined, a: 1 })).toBe('{"a":1}');
  });
});

describe('hashing helpers', () => {
  it('computes the FIPS 180-2 SHA-256 of "abc"', async () => {
    expect(toHex(await sha256('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(toHex(await sha256(new TextEncoder().encode('abc')))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('encodes SHA-256 as base64url without padding', async () => {
    expect(await sha256Base64url('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  });

  it('hashes equal JSON values equally whatever their key order', async () => {
    expect(await canonicalHash({ b: 1, a: { d: [1, 2], c: 'x' } })).toBe(await canonicalHash({ a: { c: 'x', d: [1, 2] }, b: 1 }));
    expect(await canonicalHash({ a: 1 })).not.toBe(await canonicalHash({ a: 2 }));
  });

  it('round-trips hex and rejects what is not hex', () => {
    expect(toHex(fromHex('00ff10Ab'))).toBe('00ff10ab');
    expect(() => fromHex('abc')).toThrow('not a hex string');
    expect(() => fromHex('zz')).toThrow('not a hex string');
    for (const bad of ['0g', 'g0', '\u00e90', '0 ', '-1']) expect(() => fromHex(bad)).toThrow('not a hex string');
    const every = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(toHex(every)).toBe(Buffer.from(every).toString('hex'));
    // Every length, so that a last chunk shorter than the others is written too.
    for (let length = 0; length <= 100; length++) {
      const bytes = every.slice(256 - length);
      expect(toHex(bytes)).toBe(Buffer.from(bytes).toString('hex'));
    }
    expect(toHex(every.subarray(10, 20))).toBe(Buffer.from(every.subarray(10, 20)).toString('hex'));
    expect(fromHex(Buffer.from(every).toString('hex').toUpperCase())).toEqual(every);
  });

  it('compares strings for equality without early exit', () => {
    expect(timingSafeEqual('abc', 'abc')).toBe(true);
    expect(timingSafeEqual('abc', 'abd')).toBe(false);
    expect(timingSafeEqual('abc', 'abcd')).toBe(false);
    expect(timingSafeEqual('', '')).toBe(true);
    expect(timingSafeEqual('', 'a')).toBe(false);
    expect(timingSafeEqual('a\u0000', 'a')).toBe(false);
    expect(timingSafeEqual('prüf-€-🔑', 'prüf-€-🔑')).toBe(true);
    expect(timingSafeEqual('prüf-€-🔑', 'prüf-€-🔒')).toBe(false);
    // Two different lone surrogates: both would be U+FFFD as UTF-8, but they are not the same string.
    expect(timingSafeEqual('\ud800', '\udc00')).toBe(false);
  });

  it('says two strings are equal exactly when === does', () => {
    const text = fc.string({ unit: 'binary', maxLength: 8 });
    fc.assert(fc.property(text, text, (a, b) => timingSafeEqual(a, b) === (a === b) && timingSafeEqual(a, a)), { numRuns: 2000 });
    // Mostly unequal pairs above; near misses too: one code unit changed, added or removed.
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }), fc.nat(), (a, at) => {
        const i = at % a.length;
        const changed = `${a.slice(0, i)}${String.fromCharCode((a.charCodeAt(i) + 1) & 0xffff)}${a.slice(i + 1)}`;
        return !timingSafeEqual(a, changed) && !timingSafeEqual(a, `${a}\u0000`) && !timingSafeEqual(a, a.slice(0, -1));
      }),
      { numRuns: 2000 },
    );
  });
});
