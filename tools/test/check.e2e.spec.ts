import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './support.js';

/**
 * `npm run check` (tools/check.mjs) on a small workspace laid out like this one: one tsconfig in
 * tools/typecheck-configs.json, an eslint.config.mjs whose typed rules name it. The program the
 * type-check builds is the one the lint reads, so both must still report what each finds alone.
 */
let workspace: string;

function check(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync(process.execPath, [join(ROOT, 'tools/check.mjs'), '--root', workspace, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

function writeSource(name: string, text: string): void {
  writeFileSync(join(workspace, 'src', name), text);
}

beforeAll(() => {
  workspace = mkdtempSync(join(tmpdir(), 'writ-check-'));
  symlinkSync(join(ROOT, 'node_modules'), join(workspace, 'node_modules'), 'dir');
  mkdirSync(join(workspace, 'tools'));
  mkdirSync(join(workspace, 'src'));
  writeFileSync(join(workspace, 'tools/typecheck-configs.json'), JSON.stringify(['tsconfig.json']));
  writeFileSync(
    join(workspace, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', types: [], skipLibCheck: true }, include: ['src/**/*.ts'] }),
  );
  writeFileSync(
    join(workspace, 'eslint.config.mjs'),
    [
      "import tseslint from 'typescript-eslint';",
      'export default tseslint.config(',
      "  { ignores: ['node_modules/**'] },",
      '  ...tseslint.configs.recommendedTypeChecked,',
      "  { languageOptions: { parserOptions: { project: ['./tsconfig.json'], tsconfigRootDir: import.meta.dirname } }, rules: { '@typescript-eslint/no-floating-promises': 'error' } },",
      "  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },",
      ');',
    ].join('\n'),
  );
  writeSource('ok.ts', 'export function later(): Promise<number> {\n  return Promise.resolve(1);\n}\n');
});

afterAll(() => {
  rmSync(workspace, { recursive: true, force: true });
});

describe('npm run check', () => {
  it('passes a clean workspace, naming each config and the files it linted', () => {
    const run = check();
    expect(run.output).toMatch(/^type-check tsconfig\.json: ok \(1 files\) in \d+\.\d s$/m);
    expect(run.output).toMatch(/^lint: ok \(2 files\) in \d+\.\d s$/m);
    expect(run.status).toBe(0);
  });

  it('fails on a type error and on a typed lint rule, reporting both, with the program shared', () => {
    writeSource('bad.ts', "import { later } from './ok.js';\nexport const count: number = 'one';\nexport function forget(): void {\n  later();\n}\n");
    try {
      const run = check();
      expect(run.output).toContain("src/bad.ts(2,14): error TS2322: Type 'string' is not assignable to type 'number'.");
      expect(run.output).toMatch(/^type-check tsconfig\.json: FAILED, 1 error\(s\) \(2 files\)/m);
      expect(run.output).toMatch(/4:3 +error +Promises must be awaited.*@typescript-eslint\/no-floating-promises/);
      expect(run.output).toMatch(/^lint: FAILED \(3 files\)/m);
      expect(run.output).toContain('type errors in tsconfig.json; 1 lint error(s)');
      expect(run.status).toBe(1);

      // --typecheck: the type error alone, no lint.
      const typecheck = check('--typecheck');
      expect(typecheck.output).toContain('error TS2322');
      expect(typecheck.output).not.toContain('lint:');
      expect(typecheck.status).toBe(1);
    } finally {
      rmSync(join(workspace, 'src/bad.ts'));
    }
  });

  it('refuses an argument it does not know, with its usage', () => {
    const run = check('--fix');
    expect(run.output).toContain("Unknown option '--fix'");
    expect(run.output).toContain('usage: node tools/check.mjs [--typecheck] [--root <workspace folder>]');
    expect(run.status).toBe(2);
  });
});
