import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'contracts',
    root: import.meta.dirname,
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    environment: 'node',
  },
});
