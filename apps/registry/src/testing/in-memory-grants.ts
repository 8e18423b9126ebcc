import type { GrantEntity, GrantStatus } from '../modules/grants/grant.entity.js';
import type { GrantsRepository } from '../modules/grants/grants.repository.js';
import { copy, type InMemoryStore } from './in-memory-store.js';

/** Grants in memory, for unit tests. In-memory transactions run one at a time: reading is locking. */
export class InMemoryGrantsRepository implements GrantsRepository {
  constructor(private readonly store: InMemoryStore) {}

  get transaction() {
    return this.store.transaction;
  }

  private get rows(): Map<string, GrantEntity> {
    return this.store.table('grants');
  }

  lockAgentRequests(): Promise<void> {
    return Promise.resolve();
  }

  countPending(agentId: string, now: Date): Promise<number> {
    return Promise.resolve([...this.rows.values()].filter((g) => g.agent_id === agentId && g.status === 'pending' && g.expires_at > now).length);
  }

  insert(grant: GrantEntity): Promise<void> {
    if (this.rows.has(grant.id)) return Promise.reject(new Error(`duplicate grant ${grant.id}`));
    this.rows.set(grant.id, copy(grant));
    return Promise.resolve();
  }

  find(grantId: string): Promise<GrantEntity | null> {
    const row = this.rows.get(grantId);
    return Promise.resolve(row ? copy(row) : null);
  }

  lock(grantId: string): Promise<GrantEntity | null> {
    return this.find(grantId);
  }

  lockDue(statuses: readonly GrantStatus[], now: Date, limit: number): Promise<GrantEntity[]> {
    const due = [...this.rows.values()].filter((g) => statuses.includes(g.status) && g.expires_at <= now).sort((a, b) => a.expires_at.getTime() - b.expires_at.getTime());
    return Promise.resolve(due.slice(0, limit).map(copy));
  }

  update(grant: GrantEntity): Promise<void> {
    if (!this.rows.has(grant.id)) return Promise.reject(new Error(`no grant ${grant.id}`));
    this.rows.set(grant.id, copy(grant));
    return Promise.resolve();
  }
}
