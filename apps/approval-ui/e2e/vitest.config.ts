import swc from 'unplugin-swc';
import { defineProject } from 'vitest/config';

// The approval UI in a real Chromium against a real registry (NestJS, so SWC compiles: it needs
// decorator metadata). Builds the UI first when its sources changed, hence the long hook timeout.
export default defineProject({
  plugins: [swc.vite({ jsc: { target: 'es2022', parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } })],
  test: {
    name: 'approval-ui-e2e',
    root: import.meta.dirname,
    include: ['**/*.e2e.spec.ts'],
    environment: 'node',
    setupFiles: ['reflect-metadata'],
    // The registries these tests boot open PGlite from one migrated snapshot, made here once.
    globalSetup: ['../../registry/test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 300_000,
  },
});
