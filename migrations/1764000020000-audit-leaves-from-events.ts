import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 19, goal 3: the Merkle tree's leaves are no longer rows of `audit_merkle_nodes`. A leaf is
 * SHA-256(0x00 || the 32 bytes of its event's hash), a function of a column the event row already
 * holds, so the registry computes it where it reads one (`LEAF_HASH_SQL` in audit.repository.ts)
 * and stores only the inner nodes: one row per event on average instead of two. The roots, proofs
 * and checkpoints are the same.
 */
export class AuditLeavesFromEvents1764000020000 implements MigrationInterface {
  name = 'AuditLeavesFromEvents1764000020000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('DELETE FROM audit_merkle_nodes WHERE level = 0');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      INSERT INTO audit_merkle_nodes (level, idx, hash)
      SELECT 0, seq - 1, sha256('\\x00'::bytea || decode(hash, 'hex')) FROM audit_events
      ON CONFLICT (level, idx) DO NOTHING`);
  }
}
