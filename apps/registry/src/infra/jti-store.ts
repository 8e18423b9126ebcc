import type { Database } from './database.service.js';

/** Expired rows are swept every this many insertions, or when the last sweep is older than SWEEP_AFTER_MS. */
const SWEEP_EVERY = 256;
const SWEEP_AFTER_MS = 30_000;
const SWEEP_BATCH = 1000;

/** A single-use identifier to record in `store`, checked together with others by {@link JtiStore.rememberTogether}. */
export interface PendingJti {
  store: JtiStore;
  key: string;
  jti: string;
  expiresAt: Date;
}

/** The single-use identifier tables: the jtis of every JWT an agent signs (client assertions, subject and actor tokens, one space per agent: ADR 0015), DPoP proof jtis. */
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
    const [fresh] = await JtiStore.rememberTogether([{ store: this, key, jti, expiresAt }], now);
    return fresh!;
  }

  /**
   * Records several single-use identifiers (say, a client assertion's and a DPoP proof's) in one
   * statement, one round trip; for each, whether it was fresh. All are recorded even when one is
   * a replay: each was presented, and each is single-use.
   */
  static async rememberTogether(entries: PendingJti[], now: number): Promise<boolean[]> {
    const db = entries[0]!.store.db;
    for (const store of new Set(entries.map((e) => e.store))) {
      if (++store.insertions % SWEEP_EVERY === 0 || now - store.lastSweepMs >= SWEEP_AFTER_MS) await store.sweep(now);
    }
    const parameters: unknown[] = [new Date(now)];
    const inserts = entries.map(({ store, key, jti, expiresAt }, i) => {
      const { table, key: column } = store.target;
      parameters.push(key, jti, expiresAt);
      const p = 2 + i * 3;
      return `i${i} AS (INSERT INTO ${table} (${column}, jti, expires_at) VALUES ($${p}, $${p + 1}, $${p + 2})
        ON CONFLICT (${column}, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE ${table}.expires_at <= $1 RETURNING 1)`;
    });
    const counts = entries.map((_, i) => `(SELECT count(*) FROM i${i})::int AS f${i}`).join(', ');
    const [row] = await db.query<Record<string, number>[]>(`WITH ${inserts.join(', ')} SELECT ${counts}`, parameters);
    return entries.map((_, i) => row![`f${i}`] === 1);
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
