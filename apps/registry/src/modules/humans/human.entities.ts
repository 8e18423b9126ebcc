import type { ApprovalReceipt } from '@writ/core';
import type { JWK } from 'jose';
import { Column, Entity, PrimaryColumn } from 'typeorm';

/** bigint comes back from PostgreSQL as a string; signature counters are 32-bit. */
const bigintAsNumber = { to: (v: number) => v, from: (v: string | number) => Number(v) };

/** A human principal: the `sub` of every token issued on their grants. */
@Entity('humans')
export class HumanEntity {
  @PrimaryColumn('text') id: string;
  @Column('text') name: string;
  /** The WebAuthn user handle (base64url of 32 random bytes), never the id itself. */
  @Column('text') webauthn_user_id: string;
  @Column('timestamptz') created_at: Date;
  /** Passkeys added after this were not yet acknowledged: the UI warns about them (ADR 0018). */
  @Column('timestamptz') passkey_notice_at: Date;
}

/** One passkey of a human. */
@Entity('passkeys')
export class PasskeyEntity {
  /** The credential id, base64url. */
  @PrimaryColumn('text') id: string;
  @Column('text') human_id: string;
  /** The COSE public key as registered, base64url. */
  @Column('text') public_key: string;
  /** The same key as a public JWK, for offline receipt checks. */
  @Column('jsonb') jwk: JWK;
  @Column({ type: 'bigint', transformer: bigintAsNumber }) counter: number;
  @Column('jsonb') transports: string[];
  @Column('boolean') backed_up: boolean;
  @Column('text') label: string;
  @Column('timestamptz') created_at: Date;
  @Column('timestamptz', { nullable: true }) last_used_at: Date | null;
  /** Set when the person removed it: it signs nothing more, but its receipts still verify (ADR 0018). */
  @Column('timestamptz', { nullable: true }) removed_at: Date | null;
  /** SHA-256 of the session cookie that added it; null for the sign-up passkey. */
  @Column('text', { nullable: true }) added_in_session: string | null;
}

/** A signed-in browser: the cookie's hash, never the cookie. */
@Entity('human_sessions')
export class HumanSessionEntity {
  @PrimaryColumn('text') token_hash: string;
  @Column('text') human_id: string;
  @Column('timestamptz') created_at: Date;
  @Column('timestamptz') expires_at: Date;
  @Column('timestamptz', { nullable: true }) ended_at: Date | null;
}

export type CeremonyKind = 'register' | 'login' | 'add_passkey' | 'decision' | 'step_up_decision' | 'confirmation';

/** One WebAuthn challenge: single use, short-lived, bound to what it is for. */
@Entity('webauthn_ceremonies')
export class CeremonyEntity {
  @PrimaryColumn('text') id: string;
  @Column('text') kind: CeremonyKind;
  @Column('text') challenge: string;
  @Column('text', { nullable: true }) human_id: string | null;
  @Column('text', { nullable: true }) grant_id: string | null;
  /** A decision's approval (or step-up) document, exactly as issued. */
  @Column('text', { nullable: true }) document: string | null;
  @Column('jsonb') data: Record<string, unknown>;
  @Column('timestamptz') expires_at: Date;
  @Column('timestamptz', { nullable: true }) used_at: Date | null;
}

/** The signed decision on a grant. */
@Entity('approval_receipts')
export class ApprovalReceiptEntity {
  @PrimaryColumn('text') grant_id: string;
  @Column('text') human_id: string;
  @Column('text') credential_id: string;
  @Column('text') decision: 'approve' | 'deny';
  @Column('jsonb') receipt: ApprovalReceipt;
  @Column('text') hash: string;
  @Column('timestamptz') created_at: Date;
}
