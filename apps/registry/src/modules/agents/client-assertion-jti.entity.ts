import { Column, Entity, PrimaryColumn } from 'typeorm';

/** RFC 7523 §3 (7): a client assertion `jti` already accepted, kept until the assertion expires. */
@Entity('client_assertion_jtis')
export class ClientAssertionJtiEntity {
  @PrimaryColumn('text') client_id: string;
  @PrimaryColumn('text') jti: string;
  @Column('timestamptz') expires_at: Date;
}
