import type { Database } from '../../infra/database.service.js';
import { databaseTransactions, entityManager, type Transaction, type TransactionRunner } from '../../infra/transaction.js';
import { GrantEntity, type GrantStatus } from './grant.entity.js';

/** Grants: the only code that reads or writes `grants`. */
export interface GrantsRepository {
  readonly transaction: TransactionRunner;
  /** Holds, until `tx` ends, the lock that serialises one agent's grant requests across registry processes. */
  lockAgentRequests(agentId: string, tx: Transaction): Promise<void>;
  /** How many of the agent's requests are pending and not yet past `now`. */
  countPending(agentId: string, now: Date, tx?: Transaction): Promise<number>;
  insert(grant: GrantEntity, tx?: Transaction): Promise<void>;
  /** The grant as stored, in one plain statement (it is read on every token request). */
  find(grantId: string): Promise<GrantEntity | null>;
  /** The grant, locked until `tx` ends. */
  lock(grantId: string, tx: Transaction): Promise<GrantEntity | null>;
  /**
   * Up to `limit` grants in `statuses` whose `expires_at` is at or before `now`, soonest first,
   * locked until `tx` ends; grants another transaction holds are skipped, not waited for.
   */
  lockDue(statuses: readonly GrantStatus[], now: Date, limit: number, tx: Transaction): Promise<GrantEntity[]>;
  /** Writes the grant's current fields. */
  update(grant: GrantEntity, tx: Transaction): Promise<void>;
}

/** Two-key advisory lock space (separate from the audit chain's one-key lock): one per agent. */
const GRANT_REQUEST_LOCK_CLASS = 0x5772_4772; // "WrGr"

export class TypeOrmGrantsRepository implements GrantsRepository {
  readonly transaction: TransactionRunner;

  constructor(private readonly db: Database) {
    this.transaction = databaseTransactions(db);
  }

  async lockAgentRequests(agentId: string, tx: Transaction): Promise<void> {
    await entityManager(tx).query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [GRANT_REQUEST_LOCK_CLASS, agentId]);
  }

  countPending(agentId: string, now: Date, tx?: Transaction): Promise<number> {
    return this.repo(tx)
      .createQueryBuilder('g')
      .where('g.agent_id = :agentId AND g.status = :status AND g.expires_at > :now', { agentId, status: 'pending', now })
      .getCount();
  }

  async insert(grant: GrantEntity, tx?: Transaction): Promise<void> {
    await this.repo(tx).insert(grant);
  }

  async find(grantId: string): Promise<GrantEntity | null> {
    const [grant] = await this.db.query<GrantEntity[]>('SELECT * FROM grants WHERE id = $1', [grantId]);
    return grant ?? null;
  }

  lock(grantId: string, tx: Transaction): Promise<GrantEntity | null> {
    return this.repo(tx).findOne({ where: { id: grantId }, lock: { mode: 'pessimistic_write' } });
  }

  lockDue(statuses: readonly GrantStatus[], now: Date, limit: number, tx: Transaction): Promise<GrantEntity[]> {
    return this.repo(tx)
      .createQueryBuilder('g')
      .setLock('pessimistic_write')
      .setOnLocked('skip_locked')
      .where('g.status IN (:...statuses) AND g.expires_at <= :now', { statuses, now })
      .orderBy('g.expires_at', 'ASC')
      .take(limit)
      .getMany();
  }

  async update(grant: GrantEntity, tx: Transaction): Promise<void> {
    await this.repo(tx).save(grant);
  }

  private repo(tx?: Transaction) {
    return (tx ? entityManager(tx) : this.db.dataSource.manager).getRepository(GrantEntity);
  }
}
