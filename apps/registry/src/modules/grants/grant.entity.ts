import { type Delegation, GRANT_STATUSES, type GrantStatus } from '@writ/contracts';
import type { AuthorizationDetails, Envelope } from '@writ/core';
import { Column, Entity, PrimaryColumn } from 'typeorm';

// A grant's statuses and delegation are wire contracts (@writ/contracts), stored as they are sent.
export { type Delegation, GRANT_STATUSES, type GrantStatus };

@Entity('grants')
export class GrantEntity {
  @PrimaryColumn('text') id: string;
  @Column('text') agent_id: string;
  /** The human the agent acts for, copied from the agent at request time. */
  @Column('text') owner: string;
  @Column('text') service_id: string;
  @Column('jsonb') authorization_details: AuthorizationDetails;
  @Column('jsonb') envelope: Envelope;
  @Column('text') purpose: string;
  @Column('integer') duration_s: number;
  @Column('text') status: GrantStatus;
  /** Bumped on every change: the approval document commits to it. */
  @Column('integer') version: number;
  @Column('jsonb') delegation: Delegation;
  @Column('timestamptz') requested_at: Date;
  @Column('timestamptz', { nullable: true }) decided_at: Date | null;
  /** Pending: when the request lapses. Approved: approval time plus duration. */
  @Column('timestamptz') expires_at: Date;
  @Column('timestamptz', { nullable: true }) revoked_at: Date | null;
  /** Hash of the human's signed approval receipt (`tctx.approval`); null until approved. */
  @Column('text', { nullable: true }) approval: string | null;
}
