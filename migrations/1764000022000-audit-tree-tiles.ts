import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 19, goal 3: the Merkle tree's nodes below level 4 are no longer rows of
 * `audit_merkle_nodes`. Each covers at most 8 events and is computed from their leaves where it
 * is read (`STORED_TREE_LEVEL` in audit.repository.ts): one row per 8 events instead of one per
 * event. The roots, proofs and checkpoints are the same.
 */
export class AuditTreeTiles1764000022000 implements MigrationInterface {
  name = 'AuditTreeTiles1764000022000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('DELETE FROM audit_merkle_nodes WHERE level BETWEEN 1 AND 3');
  }

  /** Builds levels 1 to 3 again, level 1 from the events' leaves and each next from the one below. */
  async down(q: QueryRunner): Promise<void> {
    const leaf = (alias: string) => `sha256('\\x00'::bytea || decode(${alias}.hash, 'hex'))`;
    await q.query(`
      INSERT INTO audit_merkle_nodes (level, idx, hash)
      SELECT 1, (a.seq - 1) / 2, sha256('\\x01'::bytea || ${leaf('a')} || ${leaf('b')})
        FROM audit_events a JOIN audit_events b ON b.seq = a.seq + 1
       WHERE a.seq % 2 = 1
      ON CONFLICT (level, idx) DO NOTHING`);
    for (let level = 2; level <= 3; level++) {
      await q.query(
        `INSERT INTO audit_merkle_nodes (level, idx, hash)
         SELECT $1::smallint, a.idx / 2, sha256('\\x01'::bytea || a.hash || b.hash)
           FROM audit_merkle_nodes a JOIN audit_merkle_nodes b ON b.level = a.level AND b.idx = a.idx + 1
          WHERE a.level = $1::smallint - 1 AND a.idx % 2 = 0
         ON CONFLICT (level, idx) DO NOTHING`,
        [level],
      );
    }
  }
}
