import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 19, goal 3: what PostgreSQL does per appended event, made smaller without changing what
 * any query finds.
 *
 * - `hash` loses its unique index. Nothing looks an event up by its hash, and two events can only
 *   share one by sharing their seq and every member (the hash covers the previous hash and the
 *   event), which the primary key on seq already refuses; the index cost a random B-tree insert of
 *   a 64-character key per event.
 * - `id`, `grant_id` and `txn`, whose indexes every append updates, compare byte by byte (the "C"
 *   collation) instead of through the database's locale: equality, the only comparison any query
 *   makes on them, is the same, and each index step is a memcmp instead of a strcoll.
 */
export class AuditLeanIndexes1764000021000 implements MigrationInterface {
  name = 'AuditLeanIndexes1764000021000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE audit_events DROP CONSTRAINT audit_events_hash_key');
    await q.query('ALTER TABLE audit_events ALTER COLUMN id TYPE text COLLATE "C", ALTER COLUMN grant_id TYPE text COLLATE "C", ALTER COLUMN txn TYPE text COLLATE "C"');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE audit_events ALTER COLUMN id TYPE text COLLATE "default", ALTER COLUMN grant_id TYPE text COLLATE "default", ALTER COLUMN txn TYPE text COLLATE "default"');
    await q.query('ALTER TABLE audit_events ADD CONSTRAINT audit_events_hash_key UNIQUE (hash)');
  }
}
