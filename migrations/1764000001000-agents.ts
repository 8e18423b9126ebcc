import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Agents registered with RFC 7591 dynamic registration, the one-time initial access tokens that
 * humans mint for them, and the RFC 7523 client-assertion `jti`s already seen.
 */
export class Agents1764000001000 implements MigrationInterface {
  name = 'Agents1764000001000';

  async up(q: QueryRunner): Promise<void> {
    // jwks holds public members only; jkt (RFC 7638) is unique so one key identifies one agent.
    await q.query(`
      CREATE TABLE agents (
        client_id    text PRIMARY KEY,
        client_name  text NOT NULL,
        owner        text NOT NULL,
        jwks         jsonb NOT NULL,
        jkt          text NOT NULL UNIQUE,
        status       text NOT NULL CHECK (status IN ('active', 'disabled')),
        created_at   timestamptz NOT NULL,
        disabled_at  timestamptz
      )`);
    await q.query('CREATE INDEX agents_owner_idx ON agents (owner)');
    // Only the SHA-256 of a token is stored: a database leak reveals no usable token.
    await q.query(`
      CREATE TABLE initial_access_tokens (
        token_hash  text PRIMARY KEY,
        owner       text NOT NULL,
        expires_at  timestamptz NOT NULL,
        used_at     timestamptz
      )`);
    await q.query(`
      CREATE TABLE client_assertion_jtis (
        client_id   text NOT NULL,
        jti         text NOT NULL,
        expires_at  timestamptz NOT NULL,
        PRIMARY KEY (client_id, jti)
      )`);
    // The opportunistic sweep deletes by expiry.
    await q.query('CREATE INDEX client_assertion_jtis_expiry_idx ON client_assertion_jtis (expires_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE client_assertion_jtis');
    await q.query('DROP TABLE initial_access_tokens');
    await q.query('DROP TABLE agents');
  }
}
