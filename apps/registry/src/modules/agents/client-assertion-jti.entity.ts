import { Column, Entity, PrimaryColumn } from 'typeorm';

/** RFC 7523 §3 (7): a `jti` already accepted in a JWT the agent signed (client assertion, subject or actor token: one space per agent, ADR 0015), kept until that JWT expires. */
@Entity('client_assertion_jtis')
export class ClientAssertionJtiEntity {
  @PrimaryColumn('text') client_id: string;
  @PrimaryColumn('text') jti: string;
  @Column('timestamptz') expires_at: Date;
}
