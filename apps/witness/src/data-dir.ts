import { lstatSync, mkdirSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The data folder is within reach of another account, or not a folder of this account's. */
export class DataDirError extends Error {
  override readonly name = 'DataDirError';
}

/** Group and others: read, write, search. */
const GROUP_OR_OTHERS = 0o077;

/**
 * Opens a private folder of the witness (its data folder or one inside it): creates it mode 0700
 * when missing and refuses one that is a symbolic link, belongs to another account or grants
 * group or others any access. Whoever can write there can roll the witness's memory of a log back
 * (and so get a fork cosigned); whoever can read there has its key.
 *
 * @throws {DataDirError} naming the folder and the command that fixes it.
 */
export function openPrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stats = lstatSync(dir);
  if (!stats.isDirectory()) throw new DataDirError(`${dir} is not a directory (a symbolic link is refused too)`);
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) throw new DataDirError(`${dir} belongs to another account (uid ${stats.uid}); the witness runs as uid ${uid}`);
  if ((stats.mode & GROUP_OR_OTHERS) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(3, '0');
    throw new DataDirError(`${dir} is open to other accounts (mode ${mode}); check that nobody changed it, then: chmod 700 '${dir.replaceAll("'", `'\\''`)}'`);
  }
}

/**
 * Refuses a private file that another account could read or change (a key or a checkpoint the
 * witness is about to trust).
 *
 * @throws {DataDirError}
 */
export function checkPrivateFile(file: string): void {
  const stats = lstatSync(file);
  if (!stats.isFile()) throw new DataDirError(`${file} is not a regular file (a symbolic link is refused too)`);
  if ((stats.mode & GROUP_OR_OTHERS) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(3, '0');
    throw new DataDirError(`${file} is open to other accounts (mode ${mode}); check that nobody changed it, then: chmod 600 '${file.replaceAll("'", `'\\''`)}'`);
  }
}

/**
 * Replaces `file` with `content` so that a crash leaves either the old or the new file, never a
 * mix, and the new one is on disk when this resolves: write a temporary file (0600) beside it,
 * fsync it, rename it over `file`, fsync the folder (the rename itself is durable only then).
 */
export async function writeFileAtomically(file: string, content: string): Promise<void> {
  const folder = dirname(file);
  const temporary = join(folder, `.${basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  const directory = await open(folder, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
