import { configDefaults, defineProject } from 'vitest/config';
import { excludeOtherTiers } from '../../tools/test-tiers.js';

// The witness's tests run its HTTP server on 127.0.0.1 (a port the OS picks) over temporary data
// folders: no database, Redis or registry.
export default defineProject({
  test: {
    name: 'witness',
    root: import.meta.dirname,
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    // Only the tiers WRIT_TEST_TIERS names (tools/test-tiers.ts); every one by default.
    exclude: [...configDefaults.exclude, ...excludeOtherTiers(import.meta.dirname)],
    environment: 'node',
    // A worker keeps the modules it loaded from one file to the next (docs/testing.md, "Isolation").
    isolate: false,
  },
});
