import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 19: the audit chain becomes a transparency log (docs/audit.md).
 *
 * - `audit_merkle_nodes`: every complete subtree of the RFC 9162 §2.1 Merkle tree over the events
 *   (leaf `seq - 1` = SHA-256(0x00 || the 32 bytes of the event's hash)), as appends complete them;
 *   proofs and roots are read from it. Filled here for the events already in the chain, level by
 *   level with PostgreSQL's own `sha256()`.
 * - `audit_checkpoints.note`: a checkpoint is now a C2SP tlog-checkpoint signed note; `kid` and
 *   `jws` stay for the JWS checkpoints taken before, which remain readable.
 * - `audit_cosignatures`: the C2SP tlog-cosignature lines witnesses gave each checkpoint.
 * - `audit_verified_head`: the last tree size, root and event hash `audit verify` found intact,
 *   where the next verification starts.
 */
export class AuditMerkleTree1764000019000 implements MigrationInterface {
  name = 'AuditMerkleTree1764000019000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE audit_merkle_nodes (
        level  smallint NOT NULL CHECK (level BETWEEN 0 AND 62),
        idx    bigint NOT NULL CHECK (idx >= 0),
        hash   bytea NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (level, idx)
      )`);
    await q.query(`
      INSERT INTO audit_merkle_nodes (level, idx, hash)
      SELECT 0, seq - 1, sha256('\\x00'::bytea || decode(hash, 'hex')) FROM audit_events`);
    // Each level's complete nodes from the pairs below it, until a level has no pair.
    for (let level = 0; level < 62; level++) {
      await q.query(
        `INSERT INTO audit_merkle_nodes (level, idx, hash)
         SELECT $1::smallint + 1, l.idx / 2, sha256('\\x01'::bytea || l.hash || r.hash)
         FROM audit_merkle_nodes l JOIN audit_merkle_nodes r ON r.level = l.level AND r.idx = l.idx + 1
         WHERE l.level = $1 AND l.idx % 2 = 0`,
        [level],
      );
      const [above] = (await q.query('SELECT count(*)::int AS n FROM audit_merkle_nodes WHERE level = $1', [level + 1])) as { n: number }[];
      if (!above || above.n === 0) break;
    }
    await q.query('ALTER TABLE audit_checkpoints ALTER COLUMN kid DROP NOT NULL, ALTER COLUMN jws DROP NOT NULL, ADD COLUMN note text');
    await q.query('ALTER TABLE audit_checkpoints ADD CONSTRAINT audit_checkpoints_signed CHECK (jws IS NOT NULL OR note IS NOT NULL)');
    await q.query(`
      CREATE TABLE audit_cosignatures (
        seq      bigint NOT NULL REFERENCES audit_checkpoints (seq) ON DELETE CASCADE,
        witness  text NOT NULL,
        line     text NOT NULL,
        at       text NOT NULL,
        PRIMARY KEY (seq, witness)
      )`);
    await q.query(`
      CREATE TABLE audit_verified_head (
        id           smallint PRIMARY KEY CHECK (id = 1),
        size         bigint NOT NULL,
        root         bytea NOT NULL,
        hash         char(64) NOT NULL,
        verified_at  text NOT NULL
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE audit_verified_head');
    await q.query('DROP TABLE audit_cosignatures');
    await q.query('DELETE FROM audit_checkpoints WHERE jws IS NULL');
    await q.query('ALTER TABLE audit_checkpoints DROP CONSTRAINT audit_checkpoints_signed, DROP COLUMN note');
    await q.query('ALTER TABLE audit_checkpoints ALTER COLUMN kid SET NOT NULL, ALTER COLUMN jws SET NOT NULL');
    await q.query('DROP TABLE audit_merkle_nodes');
  }
}
