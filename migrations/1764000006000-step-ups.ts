import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Step-ups (ARCHITECTURE.md "Behavioural envelope"): one request above a grant's `approval_above`
 * that the verifier holds until the grant's human approves exactly that request with a passkey.
 * The registry learns of each from the verifier's decision events, and keeps the human's signed
 * decision with it. Decision ceremonies gain a kind of their own.
 */
export class StepUps1764000006000 implements MigrationInterface {
  name = 'StepUps1764000006000';

  async up(q: QueryRunner): Promise<void> {
    // `status` is what was decided; a pending step-up past `expires_at` is shown as expired.
    // `amount` is the request's amount in currency units, exactly as the service provider stated it.
    await q.query(`
      CREATE TABLE step_ups (
        id             text PRIMARY KEY,
        grant_id       text NOT NULL REFERENCES grants (id),
        owner          text NOT NULL,
        agent_id       text NOT NULL,
        txn            text NOT NULL,
        service_id     text NOT NULL,
        method         text NOT NULL,
        url            text NOT NULL,
        action         text NOT NULL,
        resource       text,
        amount         numeric NOT NULL,
        currency       text NOT NULL,
        status         text NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
        event_id       text NOT NULL,
        requested_at   timestamptz NOT NULL,
        expires_at     timestamptz NOT NULL,
        decided_at     timestamptz,
        credential_id  text REFERENCES passkeys (id),
        receipt        jsonb,
        receipt_hash   text
      )`);
    // The inbox lists one human's step-ups by status.
    await q.query('CREATE INDEX step_ups_owner_status_idx ON step_ups (owner, status, requested_at)');
    await q.query('ALTER TABLE webauthn_ceremonies DROP CONSTRAINT webauthn_ceremonies_kind_check');
    await q.query(
      "ALTER TABLE webauthn_ceremonies ADD CONSTRAINT webauthn_ceremonies_kind_check CHECK (kind IN ('register', 'login', 'add_passkey', 'decision', 'step_up_decision'))",
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query("DELETE FROM webauthn_ceremonies WHERE kind = 'step_up_decision'");
    await q.query('ALTER TABLE webauthn_ceremonies DROP CONSTRAINT webauthn_ceremonies_kind_check');
    await q.query("ALTER TABLE webauthn_ceremonies ADD CONSTRAINT webauthn_ceremonies_kind_check CHECK (kind IN ('register', 'login', 'add_passkey', 'decision'))");
    await q.query('DROP INDEX step_ups_owner_status_idx');
    await q.query('DROP TABLE step_ups');
  }
}
