import { In } from 'typeorm';
import type { Database } from '../../infra/database.service.js';
import { databaseTransactions, entityManager, type Transaction, type TransactionRunner } from '../../infra/transaction.js';
import { AgentEntity } from './agent.entity.js';
import { InitialAccessTokenEntity } from './initial-access-token.entity.js';

/** Another agent already has this key: the unique index on `jkt` refused the insert. */
export class DuplicateAgentKey extends Error {
  override readonly name = 'DuplicateAgentKey';
}

/** Agents and their initial access tokens: the only code that writes `agents` and `initial_access_tokens`. */
export interface AgentsRepository {
  readonly transaction: TransactionRunner;
  insertInitialAccessToken(token: InitialAccessTokenEntity, tx?: Transaction): Promise<void>;
  /** The initial access token with this hash, locked until `tx` ends (a concurrent use waits). */
  lockInitialAccessToken(tokenHash: string, tx: Transaction): Promise<InitialAccessTokenEntity | null>;
  markInitialAccessTokenUsed(tokenHash: string, at: Date, tx: Transaction): Promise<void>;
  /** Whether an agent registered the key with this RFC 7638 thumbprint. */
  keyRegistered(jkt: string, tx?: Transaction): Promise<boolean>;
  /** @throws DuplicateAgentKey when another agent has the same key. */
  insert(agent: AgentEntity, tx?: Transaction): Promise<void>;
  /** The agent, locked until `tx` ends. */
  lock(clientId: string, tx: Transaction): Promise<AgentEntity | null>;
  markDisabled(clientId: string, at: Date, tx: Transaction): Promise<void>;
  find(clientId: string): Promise<AgentEntity | null>;
  findByIds(clientIds: string[]): Promise<AgentEntity[]>;
  /** The person's agents, newest first; at most `limit` when given. */
  listByOwner(owner: string, limit?: number): Promise<AgentEntity[]>;
}

export class TypeOrmAgentsRepository implements AgentsRepository {
  readonly transaction: TransactionRunner;

  constructor(private readonly db: Database) {
    this.transaction = databaseTransactions(db);
  }

  async insertInitialAccessToken(token: InitialAccessTokenEntity, tx?: Transaction): Promise<void> {
    await this.manager(tx).getRepository(InitialAccessTokenEntity).insert(token);
  }

  lockInitialAccessToken(tokenHash: string, tx: Transaction): Promise<InitialAccessTokenEntity | null> {
    // FOR UPDATE: a concurrent registration with the same token waits here, then sees used_at.
    return entityManager(tx).getRepository(InitialAccessTokenEntity).findOne({ where: { token_hash: tokenHash }, lock: { mode: 'pessimistic_write' } });
  }

  async markInitialAccessTokenUsed(tokenHash: string, at: Date, tx: Transaction): Promise<void> {
    await entityManager(tx).getRepository(InitialAccessTokenEntity).update({ token_hash: tokenHash }, { used_at: at });
  }

  keyRegistered(jkt: string, tx?: Transaction): Promise<boolean> {
    return this.manager(tx).getRepository(AgentEntity).existsBy({ jkt });
  }

  async insert(agent: AgentEntity, tx?: Transaction): Promise<void> {
    try {
      await this.manager(tx).getRepository(AgentEntity).insert(agent);
    } catch (error) {
      // Two registrations of one key with two tokens at once: the unique index decides.
      if (isUniqueViolation(error)) throw new DuplicateAgentKey('jwks key is already registered to another agent', { cause: error });
      throw error;
    }
  }

  lock(clientId: string, tx: Transaction): Promise<AgentEntity | null> {
    return entityManager(tx).getRepository(AgentEntity).findOne({ where: { client_id: clientId }, lock: { mode: 'pessimistic_write' } });
  }

  async markDisabled(clientId: string, at: Date, tx: Transaction): Promise<void> {
    await entityManager(tx).getRepository(AgentEntity).update({ client_id: clientId }, { status: 'disabled', disabled_at: at });
  }

  find(clientId: string): Promise<AgentEntity | null> {
    return this.manager().getRepository(AgentEntity).findOneBy({ client_id: clientId });
  }

  findByIds(clientIds: string[]): Promise<AgentEntity[]> {
    return clientIds.length === 0 ? Promise.resolve([]) : this.manager().getRepository(AgentEntity).findBy({ client_id: In(clientIds) });
  }

  listByOwner(owner: string, limit?: number): Promise<AgentEntity[]> {
    return this.manager().getRepository(AgentEntity).find({ where: { owner }, order: { created_at: 'DESC' }, ...(limit !== undefined ? { take: limit } : {}) });
  }

  private manager(tx?: Transaction) {
    return tx ? entityManager(tx) : this.db.dataSource.manager;
  }
}

/** PostgreSQL unique_violation (SQLSTATE 23505), as `pg` and PGlite report it through TypeORM. */
function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: unknown; driverError?: { code?: unknown } } | null;
  return e?.code === '23505' || e?.driverError?.code === '23505';
}
