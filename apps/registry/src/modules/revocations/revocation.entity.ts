import { Column, Entity, PrimaryColumn } from 'typeorm';

export type RevocationKind = 'grant' | 'txn' | 'token' | 'agent';

/** A revocation: what it names, and until when it can still matter. */
@Entity('revocations')
export class RevocationEntity {
  @PrimaryColumn('text') kind: RevocationKind;
  @PrimaryColumn('text') value: string;
  @Column('timestamptz') revoked_at: Date;
  @Column('timestamptz') expires_at: Date;
  @Column('text', { nullable: true }) reason: string | null;
}
