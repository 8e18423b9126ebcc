import type { Database } from './database.service.js';

/** Expired rows are swept every this many insertions, or when the last sweep is older than SWEEP_AFTER_MS. */
const SWEEP_EVERY = 256;
const SWEEP_AFTER_MS = 30_000;
const SWEEP_BATCH = 1000;

/** The single-use identifier tables: client assertion (and actor token) jtis, DPoP proof jtis. */
type JtiTable = { table: 'client_assertion_jtis'; key: 'client_id' } | { table: 'dpop_proof_jtis'; key: 'jkt' };

/**
 * Remembers single-use `jti`s (RFC 7523 §3 (7), RFC 9449 §11.1) in PostgreSQL, so that every
 * registry process sharing the database refuses a replay.
 *
 * One statement per check, outside any transaction: a concurrent insert of the same jti waits for
 * the first to commit, then sees the conflict; a row left over from an expired identifier (not
 * yet swept) is taken over. Expired rows are swept before an insertion every {@link SWEEP_EVERY}
 * insertions or {@link SWEEP_AFTER_MS}, whichever comes first, with `SKIP LOCKED` so concurrent
 * sweeps take different rows instead of waiting: bounded work, and the table never grows without limit.
 */
export class JtiStore {
  private insertions = 0;
  private lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly db: Database,
    private readonly target: JtiTable,
  ) {}

  /** Records `jti` under `key` until `expiresAt`; false if it is already recorded and not expired. */
  async remember(key: string, jti: string, expiresAt: Date, now: number): Promise<boolean> {
    if (++this.insertions % SWEEP_EVERY === 0 || now - this.lastSweepMs >= SWEEP_AFTER_MS) await this.sweep(now);
    const { table, key: column } = this.target;
    const inserted = await this.db.query<unknown[]>(
      `INSERT INTO ${table} (${column}, jti, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (${column}, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE ${table}.expires_at <= $4
       RETURNING jti`,
      [key, jti, expiresAt, new Date(now)],
    );
    return inserted.length === 1;
  }

  /** Deletes up to {@link SWEEP_BATCH} expired rows. */
  async sweep(now: number): Promise<void> {
    this.lastSweepMs = now;
    const { table, key: column } = this.target;
    await this.db.query(
      `DELETE FROM ${table} WHERE (${column}, jti) IN (
         SELECT ${column}, jti FROM ${table} WHERE expires_at <= $1 LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)`,
      [new Date(now)],
    );
  }
}
