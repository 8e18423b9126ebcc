import swc from 'unplugin-swc';
import { defineProject } from 'vitest/config';

// The verifier's end-to-end tests boot a real registry (NestJS, TypeORM): SWC emits the decorator
// metadata they need.
export default defineProject({
  plugins: [swc.vite({ jsc: { target: 'es2022', parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } })],
  test: {
    name: 'verifier',
    root: import.meta.dirname,
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    environment: 'node',
    setupFiles: ['reflect-metadata'],
    // The registries these tests boot open PGlite from one migrated snapshot, made here once.
    globalSetup: ['../registry/test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
