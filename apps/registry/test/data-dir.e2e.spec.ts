import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { DataDirError, openDataDir } from '../src/infra/data-dir.js';
import { createRegistry } from '../src/registry.js';
import { cliProcess as cli } from './support/cli.js';

/** Every path under `dir` (itself included) with its permission bits. */
function modes(dir: string): { path: string; mode: number }[] {
  const out = [{ path: dir, mode: lstatSync(dir).mode & 0o777 }];
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const path = join(dir, entry);
    out.push({ path, mode: lstatSync(path).mode & 0o777 });
  }
  return out;
}

/** Starts the registry on its embedded PGlite under `dataDir` (the default without DATABASE_URL), then stops it. */
async function startAndStop(dataDir: string): Promise<void> {
  const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: 'https://registry.writ.test' });
  const { app } = await createRegistry(config, { logger: false });
  await app.init();
  await app.close();
}

// Issue 17, finding 8: PGlite made its files 0666 and folders 0755 whatever the umask, so any
// local account could insert a passkey row or flip a grant.
describe('the registry data folder (WRIT_DATA_DIR)', () => {
  let parent: string;

  beforeAll(() => {
    parent = mkdtempSync(join(tmpdir(), 'writ-data-dir-'));
  });

  afterAll(() => {
    rmSync(parent, { recursive: true, force: true });
  });

  it('is created 0700 with its database and keys out of reach of every other account', async () => {
    const dataDir = join(parent, 'fresh', '.data');
    await startAndStop(dataDir);
    const entries = modes(dataDir);
    expect(entries.map((e) => e.path)).toEqual(expect.arrayContaining([join(dataDir, 'pglite'), join(dataDir, 'keys', 'signing-keys.json'), join(dataDir, 'keys', 'operator-token')]));
    expect(entries[0]).toEqual({ path: dataDir, mode: 0o700 });
    expect(entries.filter((e) => (e.mode & 0o077) !== 0)).toEqual([]);
  }, 60_000);

  it('refuses to start on a folder open to other accounts, naming the paths and the command that fixes them', async () => {
    const dataDir = join(parent, 'open');
    mkdirSync(join(dataDir, 'pglite'), { recursive: true });
    chmodSync(dataDir, 0o755);
    chmodSync(join(dataDir, 'pglite'), 0o777);
    writeFileSync(join(dataDir, 'pglite', 'PG_VERSION'), '17\n', { mode: 0o666 });
    chmodSync(join(dataDir, 'pglite', 'PG_VERSION'), 0o666);
    const config = loadConfig({ WRIT_DATA_DIR: dataDir });
    const refusal = await createRegistry(config, { logger: false }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(DataDirError);
    expect((refusal as Error).message).toBe(
      [
        `WRIT_DATA_DIR ${dataDir} is open to other accounts on this machine, who could read the signing keys or change the database:`,
        `  ${dataDir} (mode 755)`,
        `  ${join(dataDir, 'pglite')} (mode 777)`,
        `  ${join(dataDir, 'pglite', 'PG_VERSION')} (mode 666)`,
        `Check that nobody else changed it, then fix it with: chmod -R go-rwx '${dataDir}'`,
      ].join('\n'),
    );
    // Nothing was opened or changed: the modes are as they were.
    expect(modes(dataDir).map((e) => e.mode)).toEqual([0o755, 0o777, 0o666]);
  });

  it('refuses the CLI too, with the same message and exit code 1', async () => {
    const dataDir = join(parent, 'open-cli');
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o770);
    const { code, stdout, stderr } = await cli(['keys', 'rotate'], { WRIT_DATA_DIR: dataDir });
    expect({ code, stdout }).toEqual({ code: 1, stdout: '' });
    expect(stderr).toBe(
      `WRIT_DATA_DIR ${dataDir} is open to other accounts on this machine, who could read the signing keys or change the database:\n` +
        `  ${dataDir} (mode 770)\n` +
        `Check that nobody else changed it, then fix it with: chmod -R go-rwx '${dataDir}'\n`,
    );
  }, 60_000);

  it('starts once the suggested chmod has been run, and keeps everything private', async () => {
    const dataDir = join(parent, 'open');
    // The stand-in PG_VERSION above is no database: PGlite makes a real one.
    rmSync(join(dataDir, 'pglite'), { recursive: true });
    execFileSync('chmod', ['-R', 'go-rwx', dataDir]);
    await startAndStop(dataDir);
    expect(modes(dataDir).filter((e) => (e.mode & 0o077) !== 0)).toEqual([]);
  }, 60_000);

  it('is ignored by git whatever its name, with nothing in it to commit', () => {
    const repo = join(parent, 'repo');
    mkdirSync(repo);
    execFileSync('git', ['init', '--quiet', repo]);
    openDataDir(join(repo, 'registry-state'));
    writeFileSync(join(repo, 'registry-state', 'signing-keys.json'), '{}', { mode: 0o600 });
    expect(execFileSync('git', ['-C', repo, 'status', '--porcelain', '--untracked-files=all'], { encoding: 'utf8' })).toBe('');
  });

  it('restarts when PGlite left loose files inside a private folder (after a crash), and tightens them', async () => {
    const dataDir = join(parent, 'fresh', '.data');
    // What PGlite creates while it runs: out of reach (the folder is 0700), but loose.
    chmodSync(join(dataDir, 'pglite'), 0o755);
    chmodSync(join(dataDir, 'pglite', 'PG_VERSION'), 0o666);
    await startAndStop(dataDir);
    expect(modes(dataDir).filter((e) => (e.mode & 0o077) !== 0)).toEqual([]);
  }, 60_000);
});
