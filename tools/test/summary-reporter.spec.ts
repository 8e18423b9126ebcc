import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './support.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'writ-reporter-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs vitest with the workspace's summary reporter over `files` (name -> source) and returns its output and exit code. */
async function vitestOver(files: Record<string, string>): Promise<{ code: number; out: string }> {
  const root = mkdtempSync(join(dir, 'run-'));
  for (const [name, source] of Object.entries(files)) writeFileSync(join(root, name), source);
  writeFileSync(join(root, 'vitest.config.mjs'), `export default { test: { include: ['*.spec.mjs'] } };\n`);
  const args = [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--root', root, '--reporter', join(ROOT, 'tools/vitest-summary-reporter.ts')];
  try {
    const { stdout } = await run(process.execPath, args, { cwd: root, env: { ...process.env, CI: 'true' } });
    return { code: 0, out: stdout };
  } catch (e) {
    const failure = e as { code: number; stdout: string };
    return { code: failure.code, out: failure.stdout };
  }
}

const PASSING = `import { it } from 'vitest';\nit('passes', () => {});\nit.skip('is skipped', () => {});\n`;

describe('the closing summary line', () => {
  it('counts passed, failed and skipped tests', async () => {
    const { code, out } = await vitestOver({ 'a.spec.mjs': PASSING, 'b.spec.mjs': `import { it, expect } from 'vitest';\nit('fails', () => expect(1).toBe(2));\n` });
    expect(code).toBe(1);
    expect(out).toContain('Tests: 1 passed, 1 failed, 1 skipped; files failed outside a test: 0; unhandled errors: 0');
    expect(out).toContain('Run failed.');
  });

  it('names a file whose hook failed although none of its tests did', async () => {
    const broken = `import { beforeAll, it } from 'vitest';\nbeforeAll(() => { throw new Error('no database'); });\nit('never runs', () => {});\n`;
    const { code, out } = await vitestOver({ 'a.spec.mjs': PASSING, 'broken.spec.mjs': broken });
    expect(code).toBe(1);
    expect(out).toMatch(/Tests: 1 passed, 0 failed, 2 skipped; files failed outside a test: 1; unhandled errors: 0\n {2}file failed outside a test: .*broken\.spec\.mjs/);
  });

  it('counts and names an error thrown outside every test', async () => {
    const stray = `import { it } from 'vitest';\nit('leaves a rejection behind', async () => { Promise.reject(new Error('nobody waited for me')); await new Promise((r) => setTimeout(r, 50)); });\n`;
    const { code, out } = await vitestOver({ 'stray.spec.mjs': stray });
    expect(code).toBe(1);
    expect(out).toContain('Tests: 1 passed, 0 failed, 0 skipped; files failed outside a test: 0; unhandled errors: 1\n  unhandled error: Error: nobody waited for me');
  });

  it('says nothing more when everything passed', async () => {
    const { code, out } = await vitestOver({ 'a.spec.mjs': PASSING });
    expect(code).toBe(0);
    expect(out.trimEnd().split('\n').at(-1)).toBe('Tests: 1 passed, 0 failed, 1 skipped; files failed outside a test: 0; unhandled errors: 0');
  });
});
