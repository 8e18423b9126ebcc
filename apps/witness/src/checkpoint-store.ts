import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { checkPrivateFile, DataDirError, openPrivateDir, writeFileAtomically } from './data-dir.js';

/** The latest checkpoint the witness cosigned for one log: what tlog-witness says it keeps. */
export interface CosignedCheckpoint {
  origin: string;
  size: number;
  root: Uint8Array;
  /** The signed checkpoint as the log submitted it (its note text and signature lines). */
  note: string;
  /** The witness's cosignature line(s) on it, each ending in a newline. */
  cosignature: string;
  /** When it was cosigned (the cosignature's timestamp), POSIX seconds. */
  time: number;
}

const recordSchema = z
  .object({
    origin: z.string().min(1),
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    root: z.base64().refine((value) => Buffer.from(value, 'base64').length === 32, 'a 32-byte hash'),
    note: z.string().min(1),
    cosignature: z.string().min(1),
    time: z.number().int().min(0),
  })
  .strict();

/** The folder inside the data folder that holds one file per log. */
const FOLDER = 'checkpoints';

/** A log's file name: the hex SHA-256 of its origin, so any origin text is a safe name. */
function fileNameOf(origin: string): string {
  return `${createHash('sha256').update(origin, 'utf8').digest('hex')}.json`;
}

/**
 * Where the witness keeps, for each log, the latest checkpoint it cosigned (tlog-witness
 * §add-checkpoint: "the witness is only required to keep track of the latest checkpoint it observed
 * and verified"): one JSON file per log, replaced atomically and durably before a cosignature is
 * answered. The files are read once at start; a file that cannot be read stops start-up rather
 * than making the witness forget a log (forgetting is what would let a log roll back).
 *
 * One process per data folder: the lock that makes check-then-persist atomic is in memory.
 */
export class CheckpointStore {
  private readonly latestByOrigin = new Map<string, CosignedCheckpoint>();
  private readonly tails = new Map<string, Promise<void>>();

  private constructor(private readonly folder: string) {}

  /**
   * Opens `<dataDir>/checkpoints` (0700) and reads every log's file.
   *
   * @throws {DataDirError} on a file that is open to others, not JSON or not a checkpoint record.
   */
  static open(options: { dataDir: string }): CheckpointStore {
    openPrivateDir(options.dataDir);
    const folder = join(options.dataDir, FOLDER);
    openPrivateDir(folder);
    const store = new CheckpointStore(folder);
    for (const name of readdirSync(folder)) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const record = readRecord(join(folder, name));
      if (fileNameOf(record.origin) !== name) throw new DataDirError(`${join(folder, name)} holds the checkpoint of another origin (${record.origin})`);
      store.latestByOrigin.set(record.origin, record);
    }
    return store;
  }

  /** The latest checkpoint cosigned for `origin`, or undefined when it never cosigned one. */
  latest(origin: string): CosignedCheckpoint | undefined {
    return this.latestByOrigin.get(origin);
  }

  /** Makes `record` the latest of its log: on disk (atomic, fsynced), then in memory. */
  async save(record: CosignedCheckpoint): Promise<void> {
    const content = JSON.stringify({ ...record, root: Buffer.from(record.root).toString('base64') }, null, 2);
    await writeFileAtomically(join(this.folder, fileNameOf(record.origin)), `${content}\n`);
    this.latestByOrigin.set(record.origin, { ...record, root: new Uint8Array(record.root) });
  }

  /**
   * Runs `task` alone for `origin`: tlog-witness §add-checkpoint requires the check of the old size
   * and the persisting of the new checkpoint to be atomic, or two requests could both pass and the
   * later write roll the log back. Tasks for one origin run in arrival order; other origins wait not.
   */
  async exclusive<T>(origin: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(origin) ?? Promise.resolve();
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => done);
    this.tails.set(origin, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      if (this.tails.get(origin) === tail) this.tails.delete(origin);
    }
  }
}

function readRecord(file: string): CosignedCheckpoint {
  checkPrivateFile(file);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new DataDirError(`${file} is not JSON: restore it from a backup; the witness does not start without its record of a log`);
  }
  const parsed = recordSchema.safeParse(json);
  if (!parsed.success) throw new DataDirError(`${file} is not a cosigned checkpoint record: restore it from a backup`);
  return { ...parsed.data, root: new Uint8Array(Buffer.from(parsed.data.root, 'base64')) };
}
