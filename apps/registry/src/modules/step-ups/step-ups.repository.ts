import type { Database } from '../../infra/database.service.js';
import { databaseTransactions, entityManager, type Transaction, type TransactionRunner } from '../../infra/transaction.js';
import { type StepUpBound, StepUpEntity, type StepUpStatus } from './step-up.entity.js';

/** A step-up a verifier asked for, as it is first recorded (pending; its owner is the grant's human). */
export interface RequestedStepUp {
  id: string;
  grantId: string;
  agentId: string;
  txn: string;
  serviceId: string;
  method: string;
  url: string;
  action: string;
  resource: string | null;
  amount: number;
  currency: string;
  bound: StepUpBound | null;
  eventId: string;
  requestedAt: Date;
  expiresAt: Date;
}

/** Step-ups: the only code that reads or writes `step_ups`. */
export interface StepUpsRepository {
  readonly transaction: TransactionRunner;
  /**
   * Records a pending step-up owned by its grant's human, in one statement; nothing for an id
   * already recorded or an unknown grant. Answers the owner when a row was added, else null.
   */
  insertRequested(stepUp: RequestedStepUp): Promise<{ owner: string } | null>;
  /** The owner's step-ups, newest first, at most `limit`; `status` as the human sees it at `now` (a pending one past its expiry is expired). */
  listForOwner(owner: string, status: StepUpStatus | undefined, now: Date, limit: number): Promise<StepUpEntity[]>;
  find(stepUpId: string): Promise<StepUpEntity | null>;
  /** The step-up, locked until `tx` ends. */
  lock(stepUpId: string, tx: Transaction): Promise<StepUpEntity | null>;
  /** Writes the step-up's current fields. */
  update(stepUp: StepUpEntity, tx: Transaction): Promise<void>;
}

export class TypeOrmStepUpsRepository implements StepUpsRepository {
  readonly transaction: TransactionRunner;

  constructor(private readonly db: Database) {
    this.transaction = databaseTransactions(db);
  }

  async insertRequested(s: RequestedStepUp): Promise<{ owner: string } | null> {
    // The owner is the grant's human, read in the same statement; an unknown grant adds nothing.
    const [row] = await this.db.query<{ owner: string }[]>(
      `INSERT INTO step_ups (id, grant_id, owner, agent_id, txn, service_id, method, url, action, resource, amount, currency, status, event_id, requested_at, expires_at, bound)
       SELECT $1, g.id, g.owner, $3, $4, $5, $6, $7, $8, $9, $10::numeric, $11, 'pending', $12, $13, $14, $15::jsonb FROM grants g WHERE g.id = $2
       ON CONFLICT (id) DO NOTHING
       RETURNING owner`,
      [s.id, s.grantId, s.agentId, s.txn, s.serviceId, s.method, s.url, s.action, s.resource, String(s.amount), s.currency, s.eventId, s.requestedAt, s.expiresAt, s.bound === null ? null : JSON.stringify(s.bound)],
    );
    return row ?? null;
  }

  listForOwner(owner: string, status: StepUpStatus | undefined, now: Date, limit: number): Promise<StepUpEntity[]> {
    const query = this.db.dataSource.getRepository(StepUpEntity).createQueryBuilder('s').where('s.owner = :owner', { owner });
    if (status === 'pending') query.andWhere("s.status = 'pending' AND s.expires_at > :now", { now });
    else if (status === 'expired') query.andWhere("s.status = 'pending' AND s.expires_at <= :now", { now });
    else if (status !== undefined) query.andWhere('s.status = :status', { status });
    return query.orderBy('s.requested_at', 'DESC').take(limit).getMany();
  }

  find(stepUpId: string): Promise<StepUpEntity | null> {
    return this.db.dataSource.getRepository(StepUpEntity).findOneBy({ id: stepUpId });
  }

  lock(stepUpId: string, tx: Transaction): Promise<StepUpEntity | null> {
    return entityManager(tx).getRepository(StepUpEntity).findOne({ where: { id: stepUpId }, lock: { mode: 'pessimistic_write' } });
  }

  async update(stepUp: StepUpEntity, tx: Transaction): Promise<void> {
    await entityManager(tx).getRepository(StepUpEntity).save(stepUp);
  }
}
