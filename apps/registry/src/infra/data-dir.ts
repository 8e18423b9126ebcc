import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, type Stats, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** `WRIT_DATA_DIR` may be read or changed by another account on this machine: start-up stops. */
export class DataDirError extends Error {
  override readonly name = 'DataDirError';
}

/** Group and others: read, write, search. */
const GROUP_OR_OTHERS = 0o077;
/** Group or others may search (enter) a directory, so what is in it is within their reach. */
const GROUP_OR_OTHERS_SEARCH = 0o011;
/** The paths named in the refusal; the rest are counted. */
const LISTED = 5;

/**
 * Opens the registry's data folder (embedded database, signing keys, operator token, DPoP nonce
 * secret): creates it mode 0700 when missing, then refuses to go on when anything in it is within
 * reach of another account. Anyone who can write there can add a passkey row or flip a grant
 * (issue 17, finding 8), and anyone who can read there has the signing keys. Then takes group and
 * other access off everything in it, and puts a `.gitignore` of `*` in it, so that git ignores the
 * folder whatever its name and wherever it is (ADR 0020).
 *
 * @throws {DataDirError} naming the paths and the command that fixes them.
 */
export function openDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const root = lstatSync(dir);
  if (!root.isDirectory()) throw new DataDirError(`WRIT_DATA_DIR ${dir} is not a directory (a symbolic link is refused too)`);
  const uid = process.getuid?.();
  if (uid !== undefined && root.uid !== uid) {
    throw new DataDirError(`WRIT_DATA_DIR ${dir} belongs to another account (uid ${root.uid}); the registry runs as uid ${uid}: use a folder of its own`);
  }
  const open = reachableByOthers(dir, root);
  if (open.length > 0) {
    const listed = open.slice(0, LISTED).map((p) => `  ${p}`);
    if (open.length > LISTED) listed.push(`  … and ${open.length - LISTED} more`);
    throw new DataDirError(
      [
        `WRIT_DATA_DIR ${dir} is open to other accounts on this machine, who could read the signing keys or change the database:`,
        ...listed,
        `Check that nobody else changed it, then fix it with: chmod -R go-rwx '${dir.replaceAll("'", `'\\''`)}'`,
      ].join('\n'),
    );
  }
  const gitignore = join(dir, '.gitignore');
  if (!existsSync(gitignore)) writeFileSync(gitignore, '# Made by the Writ registry: its keys and database never go into git.\n*\n', { mode: 0o600 });
  makePrivate(dir);
}

/**
 * Takes group and other access off `dir` and everything in it (directories 0700 at most, files
 * 0600 at most). PGlite creates its files 0666 and folders 0755 whatever the umask: this runs again
 * once it has opened, and the folder itself (0700) keeps what it creates later out of reach.
 */
export function makePrivate(dir: string): void {
  walk(dir, lstatSync(dir), (path, stats) => {
    if ((stats.mode & GROUP_OR_OTHERS) !== 0) chmodSync(path, stats.mode & 0o700);
    return true;
  });
}

/**
 * Every path under `dir` (itself included) that grants group or others any access and that they
 * can reach: a folder they cannot enter hides what is in it, whatever its mode.
 */
function reachableByOthers(dir: string, root: Stats): string[] {
  const open: string[] = [];
  walk(dir, root, (path, stats) => {
    if ((stats.mode & GROUP_OR_OTHERS) !== 0) open.push(`${path} (mode ${(stats.mode & 0o777).toString(8).padStart(3, '0')})`);
    return (stats.mode & GROUP_OR_OTHERS_SEARCH) !== 0;
  });
  return open;
}

/**
 * Calls `visit` on `path` and, while it returns true for a directory, on everything inside.
 * Symbolic links are skipped (their own mode means nothing), never followed.
 */
function walk(path: string, stats: Stats, visit: (path: string, stats: Stats) => boolean): void {
  if (stats.isSymbolicLink()) return;
  const descend = visit(path, stats);
  if (!descend || !stats.isDirectory()) return;
  for (const name of readdirSync(path)) {
    const child = join(path, name);
    walk(child, lstatSync(child), visit);
  }
}
