import { InvalidRequest } from '@writ/core';

/** The largest size a Merkle tree of this log may have: positions stay exact JavaScript numbers. */
export const MAX_LOG_SIZE = Number.MAX_SAFE_INTEGER;

/** Decimal digits of a whole number from 1 up, no sign, no leading zero, no more than 16 digits. */
const POSITIVE_INTEGER = /^[1-9][0-9]{0,15}$/;

/**
 * Reads a proof request's query: exactly the parameters `names`, each given once as a whole
 * number from 1 to 2^53 - 1. Anything else is refused with the first problem found, in the order
 * of `names`, then unknown parameters.
 *
 * @throws {InvalidRequest} `<name> is required`, `<name> must be given once`,
 *   `<name> must be a whole number from 1 to 9007199254740991`, `unknown parameter <name>`.
 */
export function parsePositiveIntegers<N extends string>(query: unknown, names: readonly N[]): Record<N, number> {
  const given = (typeof query === 'object' && query !== null ? query : {}) as Record<string, unknown>;
  const parsed = {} as Record<N, number>;
  for (const name of names) {
    const value = given[name];
    if (value === undefined) throw new InvalidRequest(`${name} is required`);
    if (typeof value !== 'string') throw new InvalidRequest(`${name} must be given once`);
    const number = POSITIVE_INTEGER.test(value) ? Number(value) : Number.NaN;
    if (!(number <= MAX_LOG_SIZE)) throw new InvalidRequest(`${name} must be a whole number from 1 to ${MAX_LOG_SIZE}`);
    parsed[name] = number;
  }
  const unknown = Object.keys(given).find((key) => !(names as readonly string[]).includes(key));
  if (unknown !== undefined) throw new InvalidRequest(`unknown parameter ${JSON.stringify(unknown).slice(0, 80)}`);
  return parsed;
}
