import { configDefaults, defineProject } from 'vitest/config';
import { excludeOtherTiers } from '../tools/test-tiers.js';

// The benchmarks' own plumbing (their figures are printed by the benchmarks, never asserted here).
export default defineProject({
  test: {
    name: 'load-tests',
    root: import.meta.dirname,
    include: ['test/**/*.spec.ts'],
    // Only the tiers WRIT_TEST_TIERS names (tools/test-tiers.ts); every one by default.
    exclude: [...configDefaults.exclude, ...excludeOtherTiers(import.meta.dirname)],
    environment: 'node',
    // A worker keeps the modules it loaded from one file to the next (docs/testing.md, "Isolation").
    isolate: false,
  },
});
