import type { GrantEntity } from '../modules/grants/grant.entity.js';
import { type StepUpEntity, type StepUpStatus, stepUpStatus } from '../modules/step-ups/step-up.entity.js';
import type { RequestedStepUp, StepUpsRepository } from '../modules/step-ups/step-ups.repository.js';
import { copy, type InMemoryStore } from './in-memory-store.js';

/** Step-ups in memory, owned through the in-memory grants, for unit tests. */
export class InMemoryStepUpsRepository implements StepUpsRepository {
  constructor(private readonly store: InMemoryStore) {}

  get transaction() {
    return this.store.transaction;
  }

  private get rows(): Map<string, StepUpEntity> {
    return this.store.table('step_ups');
  }

  insertRequested(s: RequestedStepUp): Promise<{ owner: string } | null> {
    const grant = this.store.table<string, GrantEntity>('grants').get(s.grantId);
    if (!grant || this.rows.has(s.id)) return Promise.resolve(null);
    this.rows.set(s.id, {
      id: s.id,
      grant_id: grant.id,
      owner: grant.owner,
      agent_id: s.agentId,
      txn: s.txn,
      service_id: s.serviceId,
      method: s.method,
      url: s.url,
      action: s.action,
      resource: s.resource,
      amount: s.amount,
      currency: s.currency,
      bound: copy(s.bound),
      status: 'pending',
      event_id: s.eventId,
      requested_at: s.requestedAt,
      expires_at: s.expiresAt,
      decided_at: null,
      credential_id: null,
      receipt: null,
      receipt_hash: null,
    });
    return Promise.resolve({ owner: grant.owner });
  }

  listForOwner(owner: string, status: StepUpStatus | undefined, now: Date, limit: number): Promise<StepUpEntity[]> {
    const rows = [...this.rows.values()]
      .filter((s) => s.owner === owner && (status === undefined || stepUpStatus(s, now.getTime()) === status))
      .sort((a, b) => b.requested_at.getTime() - a.requested_at.getTime());
    return Promise.resolve(rows.slice(0, limit).map(copy));
  }

  find(stepUpId: string): Promise<StepUpEntity | null> {
    const row = this.rows.get(stepUpId);
    return Promise.resolve(row ? copy(row) : null);
  }

  lock(stepUpId: string): Promise<StepUpEntity | null> {
    return this.find(stepUpId);
  }

  update(stepUp: StepUpEntity): Promise<void> {
    if (!this.rows.has(stepUp.id)) return Promise.reject(new Error(`no step-up ${stepUp.id}`));
    this.rows.set(stepUp.id, copy(stepUp));
    return Promise.resolve();
  }
}
