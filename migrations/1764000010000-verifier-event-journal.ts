import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * ADR 0017: the embedded verifier's decision queue, on disk. Each decision's event is written here
 * before the decision is answered and deleted once the audit chain holds it, so a crash loses no
 * decision and a restart rebuilds every grant's counters exactly. `body` is text, not jsonb: it is
 * stored as the verifier wrote it, and the chain decides what it can hold.
 */
export class VerifierEventJournal1764000010000 implements MigrationInterface {
  name = 'VerifierEventJournal1764000010000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE verifier_event_journal (
        seq                 bigserial PRIMARY KEY,
        id                  text NOT NULL UNIQUE,
        grant_id            text,
        body                text NOT NULL,
        outcome             text NOT NULL,
        step_up_id          text,
        step_up_expires_at  bigint
      )`);
    await q.query('CREATE INDEX verifier_event_journal_grant_idx ON verifier_event_journal (grant_id, seq) WHERE grant_id IS NOT NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE verifier_event_journal');
  }
}
