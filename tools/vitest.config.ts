import { defineProject } from 'vitest/config';

// The workspace's own tools: `npm start`, run as a user runs it.
export default defineProject({
  test: {
    name: 'tools',
    root: import.meta.dirname,
    include: ['test/**/*.spec.ts'],
    environment: 'node',
    testTimeout: 240_000,
  },
});
