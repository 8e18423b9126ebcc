import { STEP_UP_STATUSES, type StepUpBound, type StepUpStatus } from '@writ/contracts';
import type { ApprovalReceipt } from '@writ/core';
import { Column, Entity, PrimaryColumn } from 'typeorm';

// What a step-up binds besides the request line, resource and amount (the query as sent, and
// chosen request fields) and its statuses are wire contracts (@writ/contracts).
export { STEP_UP_STATUSES, type StepUpBound, type StepUpStatus };

/** What was decided on a step-up; a pending one past its expiry is shown as `expired`. */
export type StoredStepUpStatus = 'pending' | 'approved' | 'denied';

/** numeric comes back from PostgreSQL as a string; amounts are at most 10^12 with 3 decimals. */
const numericAsNumber = { to: (v: number) => v, from: (v: string | number) => Number(v) };

/**
 * One request above a grant's `approval_above`, as the verifier saw it and the human is asked
 * to approve it: the agent that made it, the service, method, URL, action, resource, amount.
 */
@Entity('step_ups')
export class StepUpEntity {
  /** The verifier's id (`su_...`). */
  @PrimaryColumn('text') id: string;
  @Column('text') grant_id: string;
  /** The grant's human. */
  @Column('text') owner: string;
  /** The agent that made the request (the token's `act.sub`): the only one that may read it. */
  @Column('text') agent_id: string;
  @Column('text') txn: string;
  @Column('text') service_id: string;
  @Column('text') method: string;
  @Column('text') url: string;
  @Column('text') action: string;
  @Column('text', { nullable: true }) resource: string | null;
  @Column({ type: 'numeric', transformer: numericAsNumber }) amount: number;
  @Column('text') currency: string;
  /** The query as sent and the fields the service provider binds (ADR 0014 amendment); null before. */
  @Column('jsonb', { nullable: true }) bound: StepUpBound | null;
  @Column('text') status: StoredStepUpStatus;
  /** The verification event that first asked for it. */
  @Column('text') event_id: string;
  @Column('timestamptz') requested_at: Date;
  /** When the verifier forgets it (its step-up TTL): no decision after that. */
  @Column('timestamptz') expires_at: Date;
  @Column('timestamptz', { nullable: true }) decided_at: Date | null;
  @Column('text', { nullable: true }) credential_id: string | null;
  @Column('jsonb', { nullable: true }) receipt: ApprovalReceipt | null;
  @Column('text', { nullable: true }) receipt_hash: string | null;
}

/** The status a step-up is in at `nowMs`. */
export function stepUpStatus(stepUp: Pick<StepUpEntity, 'status' | 'expires_at'>, nowMs: number): StepUpStatus {
  return stepUp.status === 'pending' && stepUp.expires_at.getTime() <= nowMs ? 'expired' : stepUp.status;
}
