import { configDefaults, defineProject } from 'vitest/config';
import { excludeOtherTiers } from '../../tools/test-tiers.js';

// Unit tests of the UI's pure logic (narrowing, hop tree, words, errors) and of the registry proxy
// against a local HTTP server. The pages themselves are tested in Chromium by the end-to-end test.
export default defineProject({
  test: {
    name: 'approval-ui',
    root: import.meta.dirname,
    include: ['src/**/*.spec.ts', 'src/**/*.spec.tsx', 'test/**/*.spec.ts'],
    // Only the tiers WRIT_TEST_TIERS names (tools/test-tiers.ts); every one by default.
    exclude: [...configDefaults.exclude, ...excludeOtherTiers(import.meta.dirname)],
    environment: 'node',
    // A worker keeps the modules it loaded from one file to the next (docs/testing.md, "Isolation").
    isolate: false,
  },
});
