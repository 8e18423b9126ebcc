import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getPGliteInstance } from 'typeorm-pglite';
import { openDatabase } from '../../src/infra/database.js';

/**
 * A migrated PGlite data directory, made once and opened by every test's throw-away database:
 * initdb and the migrations cost 1.7 to 3.3 s per boot, loading their result well under one.
 *
 * The snapshot is a file keyed by what decides its content (the migrations and the PGlite and
 * TypeORM versions), so a changed migration makes a new one and never reuses a stale one. It lives
 * under node_modules/.cache (private: 0700 folder, 0600 file) and is made by the test projects'
 * global setup before any test file runs, or by the first test file that needs it otherwise.
 */

const workspace = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const cacheDir = join(workspace, 'node_modules/.cache/writ-pglite-snapshot');

/** The versions of the packages that write the snapshot. */
function packageVersions(): string {
  return ['@electric-sql/pglite', 'typeorm', 'typeorm-pglite']
    .map((name) => {
      const manifest = JSON.parse(readFileSync(join(workspace, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
      return `${name}@${manifest.version}`;
    })
    .join('\n');
}

/** Where the snapshot of today's migrations is (or will be). */
export function pgliteSnapshotPath(): string {
  const hash = createHash('sha256').update(packageVersions());
  const migrationsDir = join(workspace, 'migrations');
  for (const name of readdirSync(migrationsDir).sort()) hash.update(`\n${name}\n`).update(readFileSync(join(migrationsDir, name)));
  return join(cacheDir, `${hash.digest('hex').slice(0, 32)}.tar.gz`);
}

/** Migrates a fresh in-memory PGlite and dumps its data directory. */
async function makeSnapshot(): Promise<Uint8Array> {
  const dataSource = await openDatabase({ pgliteDir: 'memory' });
  try {
    const dump = await (await getPGliteInstance()).dumpDataDir('gzip');
    return new Uint8Array(await dump.arrayBuffer());
  } finally {
    await dataSource.destroy();
  }
}

/**
 * Makes the snapshot file unless it exists. Written under a temporary name and renamed into
 * place, so a reader never sees half a file even when two processes make it at once.
 */
export async function ensurePgliteSnapshot(): Promise<string> {
  const path = pgliteSnapshotPath();
  if (existsSync(path)) return path;
  const bytes = await makeSnapshot();
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  chmodSync(cacheDir, 0o700);
  const partial = `${path}.${process.pid}.partial`;
  writeFileSync(partial, bytes, { mode: 0o600 });
  renameSync(partial, path);
  return path;
}

let loaded: Promise<Blob> | undefined;

/** The migrated snapshot, read once per test worker (a Blob can start any number of databases). */
export function pgliteSnapshot(): Promise<Blob> {
  loaded ??= ensurePgliteSnapshot().then((path) => new Blob([readFileSync(path)]));
  return loaded;
}
