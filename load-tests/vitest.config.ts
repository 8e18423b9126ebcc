import { defineProject } from 'vitest/config';

// The benchmarks' own plumbing (their figures are printed by the benchmarks, never asserted here).
export default defineProject({
  test: {
    name: 'load-tests',
    root: import.meta.dirname,
    include: ['test/**/*.spec.ts'],
    environment: 'node',
  },
});
