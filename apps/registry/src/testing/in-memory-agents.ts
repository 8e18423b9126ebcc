import type { Transaction } from '../infra/transaction.js';
import type { AgentEntity } from '../modules/agents/agent.entity.js';
import { type AgentsRepository, DuplicateAgentKey } from '../modules/agents/agents.repository.js';
import type { InitialAccessTokenEntity } from '../modules/agents/initial-access-token.entity.js';
import { copy, type InMemoryStore } from './in-memory-store.js';

/** Agents and initial access tokens in memory, for unit tests. */
export class InMemoryAgentsRepository implements AgentsRepository {
  constructor(private readonly store: InMemoryStore) {}

  get transaction() {
    return this.store.transaction;
  }

  private get agents(): Map<string, AgentEntity> {
    return this.store.table('agents');
  }

  private get tokens(): Map<string, InitialAccessTokenEntity> {
    return this.store.table('initial_access_tokens');
  }

  insertInitialAccessToken(token: InitialAccessTokenEntity): Promise<void> {
    if (this.tokens.has(token.token_hash)) return Promise.reject(new Error('duplicate initial access token'));
    this.tokens.set(token.token_hash, copy(token));
    return Promise.resolve();
  }

  /** In-memory transactions run one at a time: reading is locking. */
  lockInitialAccessToken(tokenHash: string, _tx: Transaction): Promise<InitialAccessTokenEntity | null> {
    const row = this.tokens.get(tokenHash);
    return Promise.resolve(row ? copy(row) : null);
  }

  markInitialAccessTokenUsed(tokenHash: string, at: Date): Promise<void> {
    const row = this.tokens.get(tokenHash);
    if (row) row.used_at = at;
    return Promise.resolve();
  }

  keyRegistered(jkt: string): Promise<boolean> {
    return Promise.resolve([...this.agents.values()].some((a) => a.jkt === jkt));
  }

  insert(agent: AgentEntity): Promise<void> {
    if ([...this.agents.values()].some((a) => a.jkt === agent.jkt)) return Promise.reject(new DuplicateAgentKey('jwks key is already registered to another agent'));
    if (this.agents.has(agent.client_id)) return Promise.reject(new Error(`duplicate agent ${agent.client_id}`));
    this.agents.set(agent.client_id, copy(agent));
    return Promise.resolve();
  }

  lock(clientId: string, _tx: Transaction): Promise<AgentEntity | null> {
    return this.find(clientId);
  }

  markDisabled(clientId: string, at: Date): Promise<void> {
    const row = this.agents.get(clientId);
    if (row) Object.assign(row, { status: 'disabled', disabled_at: at });
    return Promise.resolve();
  }

  find(clientId: string): Promise<AgentEntity | null> {
    const row = this.agents.get(clientId);
    return Promise.resolve(row ? copy(row) : null);
  }

  findByIds(clientIds: string[]): Promise<AgentEntity[]> {
    return Promise.resolve(clientIds.flatMap((id) => (this.agents.has(id) ? [copy(this.agents.get(id)!)] : [])));
  }

  listByOwner(owner: string, limit?: number): Promise<AgentEntity[]> {
    const rows = [...this.agents.values()].filter((a) => a.owner === owner).sort((a, b) => b.created_at.getTime() - a.created_at.getTime());
    return Promise.resolve(rows.slice(0, limit ?? rows.length).map(copy));
  }
}
