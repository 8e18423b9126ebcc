import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'sdk',
    root: import.meta.dirname,
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    environment: 'node',
    testTimeout: 30_000,
  },
});
