import { Column, Entity, PrimaryColumn } from 'typeorm';

/** RFC 9449 §11.1: a DPoP proof `jti` already accepted, kept until the proof would be too old anyway. */
@Entity('dpop_proof_jtis')
export class DpopProofJtiEntity {
  @PrimaryColumn('text') jkt: string;
  @PrimaryColumn('text') jti: string;
  @Column('timestamptz') expires_at: Date;
}
