import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { runCli } from '../../src/cli-commands.js';
import { createPostgresDatabase } from './databases.js';
import type { DatabaseTarget } from '../../src/infra/database.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../../../..');

/**
 * Runs a registry CLI command in this process (runCli, what cli.ts runs): the same commands,
 * configuration, lines and exit status as `npm run registry -- ...`, without a process's start-up
 * (about 2.5 s of CPU each: loading and compiling the registry). The environment is the test's,
 * with DATABASE_URL blank unless `env` sets it, as {@link cliProcess} gives it.
 */
export async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runCli(args, { env: { ...process.env, DATABASE_URL: '', ...env }, out: (line) => stdout.push(`${line}\n`), err: (line) => stderr.push(`${line}\n`) });
  return { code, stdout: stdout.join(''), stderr: stderr.join('') };
}

/** Runs the registry CLI as a user would (`npm run registry -- ...`) in a process of its own, without npm's own output. */
export async function cliProcess(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
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

/** Where a CLI test's registry keeps its data: the env the CLI gets, the target the test opens, and how to drop it. */
export interface CliStorage {
  name: string;
  env: Record<string, string>;
  target: DatabaseTarget;
  drop(): Promise<void>;
}

/**
 * The storage a CLI suite runs on: a fresh database on the real PostgreSQL when DATABASE_URL is set
 * (as in CI), else embedded PGlite in `dataDir`. The commands, not the storage, are these suites'
 * subject: opening PGlite on disk costs seconds per command, and the CLI on embedded storage is run
 * by data-dir.e2e.spec.ts (and `npm start` by tools/test/demo.spec.ts).
 */
export async function cliStorage(dataDir: string): Promise<CliStorage> {
  if (!process.env.DATABASE_URL) return { name: 'embedded PGlite', env: {}, target: { pgliteDir: dataDir }, drop: () => Promise.resolve() };
  const database = await createPostgresDatabase(process.env.DATABASE_URL, 'writ_cli_');
  const { url } = database.target as { url: string };
  return { name: 'PostgreSQL', env: { DATABASE_URL: url }, target: database.target, drop: () => database.drop() };
}
