/**
 * Standard base64 with padding (RFC 4648 §4), the encoding C2SP notes, checkpoints and Writ's
 * proof arrays use. Decoding is canonical: one text per byte string, nothing else accepted.
 */

/** Canonical standard base64 (RFC 4648 §4) with padding. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Standard base64 of bytes (RFC 4648 §4), with padding.
 *
 * @example
 * ```ts
 * encodeBase64(Uint8Array.of(1, 2)); // 'AQI='
 * ```
 */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!);
  return btoa(binary);
}

/**
 * Bytes of canonical standard base64 with padding, or undefined for anything else (base64url,
 * missing padding, whitespace, non-zero padding bits).
 *
 * @example
 * ```ts
 * decodeBase64('AQI='); // Uint8Array [1, 2]
 * decodeBase64('AQJ='); // undefined
 * ```
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (typeof text !== 'string' || !BASE64.test(text)) return undefined;
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return encodeBase64(bytes) === text ? bytes : undefined;
}
