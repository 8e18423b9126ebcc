import type { MigrationInterface, QueryRunner } from 'typeorm';

/** RFC 9449 §11.1: DPoP proof `jti`s already accepted at the token endpoint, kept until the proof is too old to be accepted. */
export class DpopProofJtis1764000003000 implements MigrationInterface {
  name = 'DpopProofJtis1764000003000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE dpop_proof_jtis (
        jkt         text NOT NULL,
        jti         text NOT NULL,
        expires_at  timestamptz NOT NULL,
        PRIMARY KEY (jkt, jti)
      )`);
    // The opportunistic sweep deletes by expiry.
    await q.query('CREATE INDEX dpop_proof_jtis_expiry_idx ON dpop_proof_jtis (expires_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE dpop_proof_jtis');
  }
}
