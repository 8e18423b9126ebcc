import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Human principals and their passkeys, browser sessions, single-use WebAuthn ceremonies, and the
 * approval receipts their decisions leave (ARCHITECTURE.md "Human approval").
 */
export class Humans1764000005000 implements MigrationInterface {
  name = 'Humans1764000005000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE humans (
        id                text PRIMARY KEY,
        name              text NOT NULL,
        webauthn_user_id  text NOT NULL UNIQUE,
        created_at        timestamptz NOT NULL
      )`);
    // public_key: the COSE key as the authenticator sent it (base64url); jwk: the same key as a JWK,
    // which is what an offline receipt check needs.
    await q.query(`
      CREATE TABLE passkeys (
        id            text PRIMARY KEY,
        human_id      text NOT NULL REFERENCES humans (id),
        public_key    text NOT NULL,
        jwk           jsonb NOT NULL,
        counter       bigint NOT NULL,
        transports    jsonb NOT NULL,
        backed_up     boolean NOT NULL,
        label         text NOT NULL,
        created_at    timestamptz NOT NULL,
        last_used_at  timestamptz
      )`);
    await q.query('CREATE INDEX passkeys_human_idx ON passkeys (human_id)');
    // token_hash: SHA-256 of the cookie value; the value itself is never stored.
    await q.query(`
      CREATE TABLE human_sessions (
        token_hash  text PRIMARY KEY,
        human_id    text NOT NULL REFERENCES humans (id),
        created_at  timestamptz NOT NULL,
        expires_at  timestamptz NOT NULL,
        ended_at    timestamptz
      )`);
    await q.query(`
      CREATE TABLE webauthn_ceremonies (
        id          text PRIMARY KEY,
        kind        text NOT NULL CHECK (kind IN ('register', 'login', 'add_passkey', 'decision')),
        challenge   text NOT NULL,
        human_id    text,
        grant_id    text,
        document    text,
        data        jsonb NOT NULL,
        expires_at  timestamptz NOT NULL,
        used_at     timestamptz
      )`);
    await q.query('CREATE INDEX webauthn_ceremonies_expiry_idx ON webauthn_ceremonies (expires_at)');
    // One decision per grant: approve (possibly narrowed) or deny, each with its signed receipt.
    await q.query(`
      CREATE TABLE approval_receipts (
        grant_id       text PRIMARY KEY REFERENCES grants (id),
        human_id       text NOT NULL REFERENCES humans (id),
        credential_id  text NOT NULL REFERENCES passkeys (id),
        decision       text NOT NULL CHECK (decision IN ('approve', 'deny')),
        receipt        jsonb NOT NULL,
        hash           text NOT NULL,
        created_at     timestamptz NOT NULL
      )`);
    await q.query('ALTER TABLE grants ADD COLUMN approval text');
    // The inbox and the grants page list one human's grants by status.
    await q.query('CREATE INDEX grants_owner_status_idx ON grants (owner, status)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX grants_owner_status_idx');
    await q.query('ALTER TABLE grants DROP COLUMN approval');
    await q.query('DROP TABLE approval_receipts');
    await q.query('DROP TABLE webauthn_ceremonies');
    await q.query('DROP TABLE human_sessions');
    await q.query('DROP TABLE passkeys');
    await q.query('DROP TABLE humans');
  }
}
