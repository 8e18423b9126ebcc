import { defineConfig } from 'vitest/config';

// One run for the whole workspace: every project's tests, one coverage report, one closing line.
export default defineConfig({
  test: {
    projects: ['libs/*/vitest.config.ts', 'apps/*/vitest.config.ts', 'apps/approval-ui/e2e/vitest.config.ts', 'tools/vitest.config.ts', 'load-tests/vitest.config.ts'],
    reporters: ['default', './tools/vitest-summary-reporter.ts'],
    coverage: {
      provider: 'v8',
      include: ['libs/core/src/**/*.ts', 'apps/registry/src/**/*.ts'],
      exclude: ['**/*.spec.ts', '**/index.ts'],
      reporter: ['text', 'text-summary'],
      thresholds: { 'libs/core/src/**/*.ts': { lines: 90 } },
    },
  },
});
