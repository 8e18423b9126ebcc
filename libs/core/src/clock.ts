/**
 * Time and randomness are passed in, so protocol code is deterministic under test.
 *
 * @example
 * ```ts
 * const fixed: Clock = { now: () => Date.parse('2026-11-24T09:00:00Z') };
 * ```
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/**
 * The real clock.
 *
 * @example
 * ```ts
 * await createDpopProof({ ...options, clock: systemClock });
 * ```
 */
export const systemClock: Clock = { now: () => Date.now() };

/**
 * Whole seconds since the Unix epoch, as JWT `iat`/`exp` use (RFC 7519 §2 NumericDate).
 *
 * @example
 * ```ts
 * epochSeconds({ now: () => 1_700_000_000_999 }); // 1700000000
 * ```
 */
export function epochSeconds(clock: Clock): number {
  return Math.floor(clock.now() / 1000);
}

/**
 * A random identifier: 128 bits, base64url, for `jti`, `txn` and nonces.
 *
 * @example
 * ```ts
 * randomId(); // 'n3L0y8Xo1m6t5Qy0dG3e4w'
 * ```
 */
export function randomId(bytes = 16): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  let bin = '';
  for (const b of buf) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
