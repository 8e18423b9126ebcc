// @ts-check
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * libs/core must run in a browser and in k6-like runtimes: Web Crypto and `jose` only.
 * Any Node built-in (with or without the `node:` prefix), framework, database or Redis client
 * is a lint error there (ARCHITECTURE.md, "Dependency direction").
 */
const coreForbiddenImports = {
  paths: builtinModules
    .filter((name) => !name.startsWith('_'))
    .map((name) => ({ name, message: 'libs/core does no I/O: no Node built-in modules.' })),
  patterns: [
    { group: ['node:*'], message: 'libs/core does no I/O: no Node built-in modules.' },
    {
      group: [
        '@nestjs/*', 'fastify', 'fastify-*', '@fastify/*', 'typeorm', 'typeorm-*', 'pg', 'pg-*',
        '@electric-sql/*', 'ioredis', 'redis', '@redis/*', 'next', 'next/*', 'react', 'react-dom',
        '@simplewebauthn/server', 'undici', 'axios',
      ],
      message: 'libs/core is pure protocol code: no framework, database, Redis or HTTP client.',
    },
    { group: ['@writ/*', '**/apps/**', '**/libs/sdk/**'], message: 'libs/core depends on nothing else in the workspace.' },
  ],
};

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/coverage/**', '**/.next/**', '**/.nx/**', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: { ...globals.node },
      // Typed rules read TypeScript programs: the configs of tools/typecheck-configs.json, the Node
      // side's first, so that the registry, the verifier, the tools and the tests share one program
      // (found by each file's own tsconfig, the registry's sources were read into four). The first
      // program that holds a file is its. `npm run check` (tools/check.mjs) passes the programs its
      // type-check built, in this order, instead.
      parserOptions: { project: ['./tsconfig.node.json', './apps/approval-ui/tsconfig.json', './apps/witness/tsconfig.json', './libs/core/tsconfig.json', './libs/contracts/tsconfig.json', './libs/sdk/tsconfig.json', './libs/server/tsconfig.json', './tsconfig.json', './load-tests/k6/tsconfig.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['**/*.spec.ts', '**/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  {
    // The approval UI's pages and components run in the browser (and its route handler in Node).
    files: ['apps/approval-ui/src/**/*.ts', 'apps/approval-ui/src/**/*.tsx'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    files: ['libs/core/src/**/*.ts'],
    ignores: ['libs/core/src/**/*.spec.ts'],
    languageOptions: { globals: { ...globals.browser } },
    rules: {
      'no-restricted-imports': ['error', coreForbiddenImports],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'libs/core reads no environment.' },
        { name: 'Buffer', message: 'libs/core uses Uint8Array, not Buffer.' },
        { name: 'require', message: 'libs/core loads no modules at run time.' },
      ],
    },
  },
);
