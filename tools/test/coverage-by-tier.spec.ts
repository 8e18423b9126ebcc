import { describe, expect, it } from 'vitest';
import { RECORDED_TIERS, shouldRecord } from '../coverage-by-tier.js';

describe('coverage by tier (tools/coverage-by-tier.ts)', () => {
  it('records only the unit tier', () => {
    expect([...RECORDED_TIERS]).toEqual(['unit']);
  });

  it('records a run of unit files, and not one that holds a file of another tier', () => {
    expect(shouldRecord(['libs/core/src/errors.spec.ts', 'apps/registry/test/faults-database-errors.spec.ts'])).toBe(true);
    expect(shouldRecord(['apps/registry/test/grants.integration.spec.ts'])).toBe(false);
    expect(shouldRecord(['apps/verifier/test/verify.e2e.spec.ts'])).toBe(false);
    expect(shouldRecord(['tools/test/demo.spec.ts'])).toBe(false);
    expect(shouldRecord(['libs/core/src/errors.spec.ts', 'apps/registry/test/cli.spec.ts'])).toBe(false);
  });

  it('records when vitest names no file, as its own provider would', () => {
    expect(shouldRecord([])).toBe(true);
  });
});
