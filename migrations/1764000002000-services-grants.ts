import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Service providers with their capability catalogue, and the grants agents request for them. */
export class ServicesGrants1764000002000 implements MigrationInterface {
  name = 'ServicesGrants1764000002000';

  async up(q: QueryRunner): Promise<void> {
    // credential_hash: SHA-256 (hex) of the verifier-call secret; the secret itself is never stored.
    await q.query(`
      CREATE TABLE services (
        id               text PRIMARY KEY,
        uri              text NOT NULL UNIQUE,
        display_name     text NOT NULL,
        catalogue        jsonb NOT NULL,
        credential_hash  char(64) NOT NULL,
        created_at       timestamptz NOT NULL
      )`);
    // agent_id has no foreign key: agents live in their own module and migration, and a grant
    // row must outlive an agent's deletion for the audit trail to keep its meaning.
    await q.query(`
      CREATE TABLE grants (
        id                     text PRIMARY KEY,
        agent_id               text NOT NULL,
        owner                  text NOT NULL,
        service_id             text NOT NULL REFERENCES services (id),
        authorization_details  jsonb NOT NULL,
        envelope               jsonb NOT NULL,
        purpose                text NOT NULL,
        duration_s             integer NOT NULL CHECK (duration_s > 0),
        status                 text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'revoked', 'expired')),
        version                integer NOT NULL DEFAULT 1,
        delegation             jsonb NOT NULL,
        requested_at           timestamptz NOT NULL,
        decided_at             timestamptz,
        expires_at             timestamptz NOT NULL,
        revoked_at             timestamptz
      )`);
    await q.query('CREATE INDEX grants_agent_status_idx ON grants (agent_id, status)');
    // The expiry sweep only ever looks at live grants.
    await q.query(`CREATE INDEX grants_live_expiry_idx ON grants (expires_at) WHERE status IN ('pending', 'approved')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE grants');
    await q.query('DROP TABLE services');
  }
}
