import swc from 'unplugin-swc';
import { configDefaults, defineProject } from 'vitest/config';
import { excludeOtherTiers } from './test-tiers.js';

// The workspace's own tools: `npm start`, run as a user runs it. The independent verifier's test
// boots a real registry (NestJS, TypeORM): SWC emits the decorator metadata it needs.
export default defineProject({
  plugins: [swc.vite({ jsc: { target: 'es2022', parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } })],
  test: {
    name: 'tools',
    root: import.meta.dirname,
    include: ['test/**/*.spec.ts'],
    // Only the tiers WRIT_TEST_TIERS names (tools/test-tiers.ts); every one by default.
    exclude: [...configDefaults.exclude, ...excludeOtherTiers(import.meta.dirname)],
    environment: 'node',
    // A worker keeps the modules it loaded from one file to the next (docs/testing.md, "Isolation").
    isolate: false,
    setupFiles: ['reflect-metadata'],
    testTimeout: 240_000,
  },
});
