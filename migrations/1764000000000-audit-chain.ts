import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The append-only audit chain and its signed checkpoints (ARCHITECTURE.md, "Audit chain"). */
export class AuditChain1764000000000 implements MigrationInterface {
  name = 'AuditChain1764000000000';

  async up(q: QueryRunner): Promise<void> {
    // `at` is kept as the exact ISO text that was hashed, so re-hashing a row gives the same bytes.
    await q.query(`
      CREATE TABLE audit_events (
        seq        bigint PRIMARY KEY,
        id         text NOT NULL UNIQUE,
        at         text NOT NULL,
        type       text NOT NULL,
        actor      text,
        subject    text,
        grant_id   text,
        txn        text,
        parent_id  text,
        data       jsonb NOT NULL,
        prev_hash  char(64) NOT NULL,
        hash       char(64) NOT NULL UNIQUE
      )`);
    await q.query('CREATE INDEX audit_events_txn_idx ON audit_events (txn) WHERE txn IS NOT NULL');
    await q.query('CREATE INDEX audit_events_grant_idx ON audit_events (grant_id) WHERE grant_id IS NOT NULL');
    await q.query(`
      CREATE TABLE audit_checkpoints (
        seq   bigint PRIMARY KEY,
        hash  char(64) NOT NULL,
        at    text NOT NULL,
        kid   text NOT NULL,
        jws   text NOT NULL
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE audit_checkpoints');
    await q.query('DROP TABLE audit_events');
  }
}
