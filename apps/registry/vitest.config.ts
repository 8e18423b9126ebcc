import swc from 'unplugin-swc';
import { configDefaults, defineProject } from 'vitest/config';
import { excludeOtherTiers } from '../../tools/test-tiers.js';

// NestJS and TypeORM need decorator metadata, which esbuild does not emit: SWC compiles here.
export default defineProject({
  plugins: [swc.vite({ jsc: { target: 'es2022', parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } })],
  test: {
    name: 'registry',
    root: import.meta.dirname,
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    // Only the tiers WRIT_TEST_TIERS names (tools/test-tiers.ts); every one by default.
    exclude: [...configDefaults.exclude, ...excludeOtherTiers(import.meta.dirname)],
    environment: 'node',
    // A worker keeps the modules it loaded from one file to the next (docs/testing.md, "Isolation").
    isolate: false,
    setupFiles: ['reflect-metadata'],
    // Every PGlite the tests open starts from one migrated snapshot, made here once.
    globalSetup: ['test/support/global-setup.ts'],
    // Files run side by side (one per core): a test that boots a registry or runs the CLI as a
    // process gets half the CPU it had alone.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
