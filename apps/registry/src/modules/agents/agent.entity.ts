import { AGENT_STATUSES, type AgentStatus } from '@writ/contracts';
import type { JWK } from 'jose';
import { Column, Entity, PrimaryColumn } from 'typeorm';

// An agent's statuses are a wire contract (@writ/contracts), stored as they are sent.
export { AGENT_STATUSES, type AgentStatus };

/** An agent registered with RFC 7591, acting for one human principal. */
@Entity('agents')
export class AgentEntity {
  @PrimaryColumn('text') client_id: string;
  @Column('text') client_name: string;
  /** The human principal (`sub`) who minted the initial access token the agent registered with. */
  @Column('text') owner: string;
  /** RFC 7517 JWK Set with the agent's one public key, public members only. */
  @Column('jsonb') jwks: { keys: JWK[] };
  /** RFC 7638 thumbprint of that key. */
  @Column('text') jkt: string;
  @Column('text') status: AgentStatus;
  @Column('timestamptz') created_at: Date;
  @Column('timestamptz', { nullable: true }) disabled_at: Date | null;
}
