import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../../../..');

/** Runs the registry CLI as a user would (`npm run registry -- ...`), without npm's own output. */
export async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', '@swc-node/register/esm-register', 'apps/registry/src/cli.ts', ...args],
      { cwd: root, env: { ...process.env, SWC_NODE_PROJECT: 'apps/registry/tsconfig.json', DATABASE_URL: '', ...env } },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
