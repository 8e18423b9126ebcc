import type { AuditEvent } from '@writ/core';
import type { GrantEntity } from '../modules/grants/grant.entity.js';
import type { RevocationKind } from '../modules/revocations/revocation.entity.js';
import type { RevocationRow, RevocationsRepository } from '../modules/revocations/revocations.repository.js';
import { copy, type InMemoryStore } from './in-memory-store.js';

/** Revocations in memory, resolved against the in-memory audit chain and grants, for unit tests. */
export class InMemoryRevocationsRepository implements RevocationsRepository {
  constructor(private readonly store: InMemoryStore) {}

  get transaction() {
    return this.store.transaction;
  }

  /** Every revocation written, by `kind:value` (what a test inspects). */
  get rows(): Map<string, RevocationRow> {
    return this.store.table('revocations');
  }

  private get events(): AuditEvent[] {
    return [...this.store.table<number, AuditEvent>('audit_events').values()];
  }

  upsert(revocation: RevocationRow): Promise<Date> {
    const key = `${revocation.kind}:${revocation.value}`;
    const existing = this.rows.get(key);
    if (existing) {
      if (revocation.expiresAt > existing.expiresAt) existing.expiresAt = revocation.expiresAt;
    } else {
      this.rows.set(key, copy(revocation));
    }
    return Promise.resolve(new Date(this.rows.get(key)!.expiresAt));
  }

  unexpired(now: Date): Promise<Pick<RevocationRow, 'kind' | 'value' | 'expiresAt'>[]> {
    const rows = [...this.rows.values()].filter((r) => r.expiresAt > now).sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime());
    return Promise.resolve(rows.map(({ kind, value, expiresAt }) => ({ kind, value, expiresAt: new Date(expiresAt) })));
  }

  anyRevoked(pairs: [RevocationKind, string][]): Promise<boolean> {
    return Promise.resolve(pairs.some(([kind, value]) => this.rows.has(`${kind}:${value}`)));
  }

  grantsOfTxn(txn: string, types: string[]): Promise<string[]> {
    return Promise.resolve(distinctGrants(this.events.filter((e) => e.txn === txn && types.includes(e.type))));
  }

  grantsOfToken(jti: string, types: string[]): Promise<string[]> {
    return Promise.resolve(distinctGrants(this.events.filter((e) => types.includes(e.type) && e.data.jti === jti)));
  }

  grantsOfAgent(clientId: string, types: string[], nowSeconds: number, skewSeconds: number): Promise<string[]> {
    const grants = [...this.store.table<string, GrantEntity>('grants').values()];
    const live = grants.filter((g) => g.agent_id === clientId && (g.status === 'pending' || g.status === 'approved')).map((g) => g.id);
    const held = this.events.filter(
      (e) => types.includes(e.type) && (e.actor === clientId || e.data.actor === clientId) && Number(e.data.exp) + skewSeconds > nowSeconds,
    );
    return Promise.resolve([...new Set([...live, ...distinctGrants(held)])]);
  }
}

function distinctGrants(events: AuditEvent[]): string[] {
  return [...new Set(events.flatMap((e) => (e.grant_id === null ? [] : [e.grant_id])))];
}
