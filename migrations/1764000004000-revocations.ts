import type { MigrationInterface, QueryRunner } from 'typeorm';

/** ARCHITECTURE.md "Revocation": what was revoked (a grant, a transaction, a token, an agent), kept until nothing it could affect is alive. */
export class Revocations1764000004000 implements MigrationInterface {
  name = 'Revocations1764000004000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE revocations (
        kind        text NOT NULL CHECK (kind IN ('grant', 'txn', 'token', 'agent')),
        value       text NOT NULL,
        revoked_at  timestamptz NOT NULL,
        expires_at  timestamptz NOT NULL,
        reason      text,
        PRIMARY KEY (kind, value)
      )`);
    await q.query('CREATE INDEX revocations_expiry_idx ON revocations (expires_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE revocations');
  }
}
