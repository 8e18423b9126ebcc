import { defineProject } from 'vitest/config';

// Unit tests of the UI's pure logic (narrowing, hop tree, words, errors) and of the registry proxy
// against a local HTTP server. The pages themselves are tested in Chromium by the end-to-end test.
export default defineProject({
  test: {
    name: 'approval-ui',
    root: import.meta.dirname,
    include: ['src/**/*.spec.ts', 'src/**/*.spec.tsx', 'test/**/*.spec.ts'],
    environment: 'node',
  },
});
