import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import SlowestFirstSequencer from './tools/test-sequencer.js';

// One run for the whole workspace: every project's tests, one coverage report, one closing line.
// Tiers (unit, storage, e2e, system) are named in tools/test-tiers.ts; WRIT_TEST_TIERS picks some.
export default defineConfig({
  test: {
    projects: ['libs/*/vitest.config.ts', 'apps/*/vitest.config.ts', 'apps/approval-ui/e2e/vitest.config.ts', 'tools/vitest.config.ts', 'load-tests/vitest.config.ts'],
    // One test file per core, all cores (vitest's default leaves one idle: a single file at a time
    // on a 2-core machine). One more file than cores was measured too (docs/testing.md): alone the
    // suite then took 500 s instead of 608, but it leaves the cores no idle time, and the static
    // checks that `npm test` runs beside it at low priority then finished 95 s after the tests
    // (617 s in all). Files may run side by side: each boots its own registry and verifier on ports
    // the OS picks, in a database of its own and under a Redis key prefix of its own; servers they
    // start (redis-server, Redis Cluster, npm start) take free ports; the approval UI's production
    // build is taken in turns under a lock. At most four: each file's registries open up to ten
    // PostgreSQL connections apiece, and PostgreSQL allows a hundred by default.
    maxWorkers: Math.min(availableParallelism(), 4),
    reporters: ['default', './tools/vitest-summary-reporter.ts'],
    // Slowest tier first, across projects, so that no long file starts last (tools/test-sequencer.ts).
    sequence: { sequencer: SlowestFirstSequencer },
    // V8 coverage recorded while unit-tier files run (tools/coverage-by-tier.ts): the other tiers
    // run uninstrumented, as V8's block counters cost them a quarter of their CPU.
    coverage: {
      provider: 'custom',
      customProviderModule: './tools/coverage-by-tier.ts',
      include: ['libs/core/src/**/*.ts'],
      exclude: ['**/*.spec.ts', '**/index.ts'],
      reporter: ['text', 'text-summary'],
      thresholds: { 'libs/core/src/**/*.ts': { lines: 90 } },
    },
  },
});
