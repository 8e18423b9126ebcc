import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Passkey management (issue 17, ADR 0018): a passkey is removed by marking it (its public key
 * stays, so the receipts it signed still verify offline, but it signs nothing more); the session
 * that added a passkey is kept so the person's other sessions can warn about it; each human
 * remembers when they last acknowledged new passkeys; and the fresh passkey confirmation that
 * guards adding passkeys and minting enrollment tokens is a ceremony kind of its own.
 */
export class PasskeyManagement1764000011000 implements MigrationInterface {
  name = 'PasskeyManagement1764000011000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE passkeys ADD COLUMN removed_at timestamptz');
    // The SHA-256 of the session cookie that added the passkey (null for the sign-up passkey).
    await q.query('ALTER TABLE passkeys ADD COLUMN added_in_session text');
    // Existing accounts start with nothing to acknowledge.
    await q.query('ALTER TABLE humans ADD COLUMN passkey_notice_at timestamptz NOT NULL DEFAULT now()');
    await q.query('ALTER TABLE webauthn_ceremonies DROP CONSTRAINT webauthn_ceremonies_kind_check');
    await q.query(
      "ALTER TABLE webauthn_ceremonies ADD CONSTRAINT webauthn_ceremonies_kind_check CHECK (kind IN ('register', 'login', 'add_passkey', 'decision', 'step_up_decision', 'confirmation'))",
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query("DELETE FROM webauthn_ceremonies WHERE kind = 'confirmation'");
    await q.query('ALTER TABLE webauthn_ceremonies DROP CONSTRAINT webauthn_ceremonies_kind_check');
    await q.query(
      "ALTER TABLE webauthn_ceremonies ADD CONSTRAINT webauthn_ceremonies_kind_check CHECK (kind IN ('register', 'login', 'add_passkey', 'decision', 'step_up_decision'))",
    );
    await q.query('ALTER TABLE humans DROP COLUMN passkey_notice_at');
    await q.query('ALTER TABLE passkeys DROP COLUMN added_in_session');
    await q.query('ALTER TABLE passkeys DROP COLUMN removed_at');
  }
}
