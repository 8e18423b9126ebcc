import swc from 'unplugin-swc';
import { configDefaults, defineProject } from 'vitest/config';
import { excludeOtherTiers } from '../../../tools/test-tiers.js';

// The approval UI in a real Chromium against a real registry (NestJS, so SWC compiles: it needs
// decorator metadata). Builds the UI first when its sources changed, hence the long hook timeout.
export default defineProject({
  plugins: [swc.vite({ jsc: { target: 'es2022', parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } })],
  test: {
    name: 'approval-ui-e2e',
    root: import.meta.dirname,
    include: ['**/*.e2e.spec.ts'],
    // Only the tiers WRIT_TEST_TIERS names (tools/test-tiers.ts); every one by default.
    exclude: [...configDefaults.exclude, ...excludeOtherTiers(import.meta.dirname)],
    environment: 'node',
    // Each file in a fresh worker: the Next.js server these files run in process keeps global state
    // that a second file in the same worker trips over (docs/testing.md, "Isolation").
    isolate: true,
    setupFiles: ['reflect-metadata'],
    // The registries these tests boot open PGlite from one migrated snapshot, made here once.
    globalSetup: ['../../registry/test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 300_000,
  },
});
