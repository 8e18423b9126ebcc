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

/** Any UTF-16 surrogate: strings holding one take the general path (which refuses lone ones). */
const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * The RFC 8785 text of a plain object whose members are all strings without surrogates, finite
 * numbers, booleans or null (an audit event's `data` from the verifier, say), written in one pass:
 * keys sorted by UTF-16 code units, every value by JSON.stringify, which is what RFC 8785 §3.2.2
 * prescribes for these. Anything else (nesting, undefined, a prototype, a surrogate) answers
 * undefined and goes the general way.
 */
function flatCanonicalJson(value: object): string | undefined {
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return undefined;
  const keys = Object.keys(value).sort();
  let text = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const item: unknown = (value as Record<string, unknown>)[key];
    let member: string;
    switch (typeof item) {
      case 'string':
        if (SURROGATE.test(item)) return undefined;
        member = JSON.stringify(item);
        break;
      case 'number':
        if (!Number.isFinite(item)) return undefined;
        member = JSON.stringify(item);
        break;
      case 'boolean':
        member = item ? 'true' : 'false';
        break;
      case 'object':
        if (item !== null) return undefined;
        member = 'null';
        break;
      default:
        return undefined;
    }
    if (SURROGATE.test(key)) return undefined;
    text += `${i === 0 ? '' : ','}${JSON.stringify(key)}:${member}`;
  }
  return `${text}}`;
}

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
  for (let i = 0; i < bytes.length; i++) out += HEX_PAIRS[bytes[i]!]!;
  return out;
}

/** `'00'` to `'ff'`, by byte value. */
const HEX_PAIRS = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

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
