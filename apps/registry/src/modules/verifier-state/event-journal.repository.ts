import type { Database } from '../../infra/database.service.js';
import type { QueuedVerifierEvent } from '../audit/redis-verifier-events.js';

/** Rows per INSERT: well under PostgreSQL's 65,535 bind parameters at 6 per row. */
const INSERT_BATCH = 1_000;

interface JournalRow {
  id: string;
  body: string;
  outcome: string;
  step_up_id: string | null;
  step_up_expires_at: string | number | null;
}

/**
 * The embedded verifier's decision queue in the registry's database (ADR 0017; the verifier's
 * `EventJournal`, matched structurally: the registry never imports verifier code). Written before
 * each decision is answered, read by the audit ingestion in order, deleted once in the chain.
 */
export class DatabaseEventJournal {
  constructor(private readonly db: Database) {}

  async append(entries: { event: QueuedVerifierEvent; grantId: string | null }[]): Promise<void> {
    for (let start = 0; start < entries.length; start += INSERT_BATCH) {
      const batch = entries.slice(start, start + INSERT_BATCH);
      const values: unknown[] = [];
      const rows = batch.map(({ event, grantId }, i) => {
        values.push(event.id, grantId, event.body, event.outcome, event.stepUpId ?? null, event.stepUpExpiresAtMs ?? null);
        const p = i * 6;
        return `($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5}, $${p + 6})`;
      });
      // An id already there is the same event written again (a retried write): kept once.
      await this.db.query(
        `INSERT INTO verifier_event_journal (id, grant_id, body, outcome, step_up_id, step_up_expires_at) VALUES ${rows.join(', ')} ON CONFLICT (id) DO NOTHING`,
        values,
      );
    }
  }

  async read(max: number): Promise<QueuedVerifierEvent[]> {
    if (max <= 0) return [];
    const rows = await this.db.query<JournalRow[]>('SELECT id, body, outcome, step_up_id, step_up_expires_at FROM verifier_event_journal ORDER BY seq LIMIT $1', [max]);
    return rows.map(toEvent);
  }

  async ack(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db.query('DELETE FROM verifier_event_journal WHERE id = ANY($1::text[])', [ids]);
  }

  async pendingFor(grantId: string): Promise<QueuedVerifierEvent[]> {
    const rows = await this.db.query<JournalRow[]>('SELECT id, body, outcome, step_up_id, step_up_expires_at FROM verifier_event_journal WHERE grant_id = $1 ORDER BY seq', [grantId]);
    return rows.map(toEvent);
  }

  /** Events waiting to reach the chain. */
  async depth(): Promise<number> {
    const [row] = await this.db.query<{ n: number }[]>('SELECT count(*)::int AS n FROM verifier_event_journal');
    return row?.n ?? 0;
  }
}

function toEvent(row: JournalRow): QueuedVerifierEvent {
  return {
    id: row.id,
    body: row.body,
    outcome: row.outcome,
    ...(row.step_up_id === null ? {} : { stepUpId: row.step_up_id }),
    ...(row.step_up_expires_at === null ? {} : { stepUpExpiresAtMs: Number(row.step_up_expires_at) }),
  };
}
