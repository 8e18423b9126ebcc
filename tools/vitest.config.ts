import { configDefaults, defineProject } from 'vitest/config';
import { excludeOtherTiers } from './test-tiers.js';

// The workspace's own tools: `npm start`, run as a user runs it.
export default defineProject({
  test: {
    name: 'tools',
    root: import.meta.dirname,
    include: ['test/**/*.spec.ts'],
    // Only the tiers WRIT_TEST_TIERS names (tools/test-tiers.ts); every one by default.
    exclude: [...configDefaults.exclude, ...excludeOtherTiers(import.meta.dirname)],
    environment: 'node',
    testTimeout: 240_000,
  },
});
