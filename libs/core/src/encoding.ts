import canonicalizeJson from 'canonicalize';
import { base64url } from 'jose';

const encoder = new TextEncoder();

/**
 * RFC 8785 JSON Canonicalization Scheme: the one byte-exact text of a JSON value (sorted keys,
 * ECMAScript number formatting, minimal string escaping). Rejects values JSON cannot carry.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [true, null, 1e21] }); // '{"a":[true,null,1e+21],"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const flat = flatCanonicalJson(value);
    if (flat !== undefined) return flat;
  }
  assertJsonValue(value, '$');
  const text = canonicalizeJson(value);
  if (text === undefined) throw new TypeError('value has no JSON representation');
  return text;
}

/**
 * The RFC 8785 text of a plain object whose members are all strings, finite numbers, booleans,
 * null or plain objects of those (an audit event with its `data` from the verifier, say).
 * RFC 8785 §3.2.2 writes each of these values and keys as JSON.stringify does, keys sorted by UTF-16
 * code units: a copy with the members inserted in that order, written by one JSON.stringify, is
 * that text, for a fraction of the cost of a call per member. Anything else (deeper nesting, an
 * array, undefined, a prototype, a lone surrogate, a key an object would not keep in insertion
 * order) answers undefined and goes the general way.
 */
function flatCanonicalJson(value: object): string | undefined {
  const ordered = orderedCopy(value, true);
  if (ordered === undefined) return undefined;
  const text = JSON.stringify(ordered);
  // JSON.stringify writes a lone surrogate as an escape, \ud800 to \udfff; RFC 8785 has no text for
  // it and the general way refuses it. A text with an escaped backslash before "ud" goes there too,
  // harmlessly: it writes the same text. Well-formed pairs are written as they are, by both ways.
  return text.includes('\\ud') ? undefined : text;
}

/**
 * A copy of a plain object with its members inserted in RFC 8785 order, when they are JSON
 * primitives or, if `nest`, plain objects of JSON primitives; undefined for anything else.
 */
function orderedCopy(value: object, nest: boolean): Record<string, unknown> | undefined {
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return undefined;
  const keys = sortedByCodeUnits(Object.keys(value));
  const ordered: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    let item: unknown = (value as Record<string, unknown>)[key];
    switch (typeof item) {
      case 'string':
      case 'boolean':
        break;
      case 'number':
        if (!Number.isFinite(item)) return undefined;
        break;
      case 'object':
        if (item === null) break;
        if (!nest) return undefined;
        item = orderedCopy(item, false);
        if (item === undefined) return undefined;
        break;
      default:
        return undefined;
    }
    if (!keepsInsertionOrder(key)) return undefined;
    ordered[key] = item;
  }
  return ordered;
}

/**
 * True for a key an object lists where it was inserted: not an array index (listed first, in
 * numeric order), told by its first character, and not `__proto__` (which an assignment would
 * take as the prototype).
 */
function keepsInsertionOrder(key: string): boolean {
  const first = key.charCodeAt(0);
  return !(first >= 0x30 && first <= 0x39) && key !== '__proto__';
}

/**
 * Sorts strings by UTF-16 code units, as Array.prototype.sort does by default. The few keys of a
 * flat object are sorted by insertion, which is faster than the built-in sort at that size and
 * makes no garbage; keys are distinct, so every correct sort gives the same order.
 */
function sortedByCodeUnits(keys: string[]): string[] {
  if (keys.length > SMALL_SORT) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > key; j--) keys[j + 1] = keys[j]!;
    keys[j + 1] = key;
  }
  return keys;
}

/** The most keys sortedByCodeUnits sorts by insertion. */
const SMALL_SORT = 16;

function assertJsonValue(value: unknown, path: string): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      // RFC 8785 §3.2.2.3: NaN and Infinity are not JSON numbers.
      if (!Number.isFinite(value)) throw new TypeError(`${path} is not a finite number`);
      return;
    case 'object':
      if (value === null) return;
      if (Array.isArray(value)) {
        value.forEach((item, i) => assertJsonValue(item, `${path}[${i}]`));
        return;
      }
      for (const [key, item] of Object.entries(value)) {
        if (item !== undefined) assertJsonValue(item, `${path}.${key}`);
      }
      return;
    default:
      throw new TypeError(`${path} has no JSON representation (${typeof value})`);
  }
}

/**
 * UTF-8 bytes of a string.
 *
 * @example
 * ```ts
 * utf8('€'); // Uint8Array [226, 130, 172]
 * ```
 */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text);
}

/**
 * SHA-256 of bytes or of a UTF-8 string, with Web Crypto.
 *
 * @example
 * ```ts
 * toHex(await sha256('abc')); // 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
 * ```
 */
export async function sha256(data: Uint8Array | string): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = typeof data === 'string' ? utf8(data) : new Uint8Array(data);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/**
 * base64url (no padding) of the SHA-256 of a string: the form used for `ath` (RFC 9449 §4.2),
 * token hashes in logs and WebAuthn challenges.
 *
 * @example
 * ```ts
 * await sha256Base64url('abc'); // 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0'
 * ```
 */
export async function sha256Base64url(data: Uint8Array | string): Promise<string> {
  return base64url.encode(await sha256(data));
}

/**
 * SHA-256 of the RFC 8785 canonical form of a JSON value, as lowercase hex.
 *
 * @example
 * ```ts
 * await canonicalHash({ b: 1, a: 2 }) === await canonicalHash({ a: 2, b: 1 }); // true
 * ```
 */
export async function canonicalHash(value: unknown): Promise<string> {
  return toHex(await sha256(canonicalJson(value)));
}

/**
 * Lowercase hex of bytes.
 *
 * @example
 * ```ts
 * toHex(new Uint8Array([0, 255])); // '00ff'
 * ```
 */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (let start = 0; start < bytes.length; start += HEX_CHUNK_BYTES) {
    const end = Math.min(start + HEX_CHUNK_BYTES, bytes.length);
    for (let i = start, j = 0; i < end; i++, j += 2) {
      const byte = bytes[i]!;
      hexScratch[j] = HEX_CODES[byte * 2]!;
      hexScratch[j + 1] = HEX_CODES[byte * 2 + 1]!;
    }
    // One string per chunk: appending two characters at a time would make a rope of 32 pieces
    // for a hash, each an object, which is then copied flat again where the text is used.
    const codes = end - start === HEX_CHUNK_BYTES ? hexScratch : hexScratch.slice(0, (end - start) * 2);
    out += String.fromCharCode(...codes);
  }
  return out;
}

/** Bytes written per String.fromCharCode call in toHex: a SHA-256 hash in one. */
const HEX_CHUNK_BYTES = 32;

/** The char codes of `'00'` to `'ff'`, two per byte value. */
const HEX_CODES = Uint16Array.from({ length: 512 }, (_, i) => (i >> 1).toString(16).padStart(2, '0').charCodeAt(i % 2));

/** toHex's char codes of one chunk (it runs to completion, so one array serves every call). */
const hexScratch: number[] = new Array<number>(HEX_CHUNK_BYTES * 2).fill(0);

/** The value of a hex digit by its char code, -1 for anything else. */
const HEX_VALUES = (() => {
  const values = new Int8Array(128).fill(-1);
  for (let digit = 0; digit < 16; digit++) {
    values['0123456789abcdef'.charCodeAt(digit)] = digit;
    values['0123456789ABCDEF'.charCodeAt(digit)] = digit;
  }
  return values;
})();

/**
 * Bytes of a hex string; throws on odd length or a non-hex digit.
 *
 * @example
 * ```ts
 * fromHex('00ff'); // Uint8Array [0, 255]
 * ```
 */
export function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  if (hex.length % 2 !== 0) throw new TypeError('not a hex string');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const high = HEX_VALUES[hex.charCodeAt(i * 2)] ?? -1;
    const low = HEX_VALUES[hex.charCodeAt(i * 2 + 1)] ?? -1;
    if (high < 0 || low < 0) throw new TypeError('not a hex string');
    out[i] = (high << 4) | low;
  }
  return out;
}

/**
 * Compares two strings in time that depends only on their lengths, for secrets, hashes and
 * thumbprints. Compares UTF-16 code units as they are (no byte array is made: the verifier calls
 * it twice a request), so strings are equal exactly when `===` says so, lone surrogates included.
 *
 * @example
 * ```ts
 * timingSafeEqual('abc', 'abc'); // true
 * ```
 */
export function timingSafeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  // Past the end of the shorter string charCodeAt is NaN, and NaN | 0 is 0: every index is visited.
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0);
  return diff === 0;
}
