import type { AuditEvent } from '@writ/core';
import type { GrantEntity } from '../modules/grants/grant.entity.js';
import type { RevocationRow } from '../modules/revocations/revocations.repository.js';
import type { ChainDecision, GrantStateRepository, StateRevocation } from '../modules/verifier-state/grant-state.repository.js';
import type { InMemoryStore } from './in-memory-store.js';

/** An allow in the chain: appended, or recorded as unrecordable with its outcome. */
function isAllow(event: AuditEvent): boolean {
  return event.type === 'verification.allowed' || (event.type === 'verification.unrecordable' && event.data.outcome === 'allow');
}

/** What the store added for an allow, in thousandths: `charged_minor`, else the amount. */
function charged(event: AuditEvent): number {
  if (typeof event.data.charged_minor === 'number') return event.data.charged_minor;
  if (typeof event.data.amount === 'number') return Math.round(event.data.amount * 1000);
  return 0;
}

/** The grant-state rebuild's reads over the in-memory chain, grants and revocations, for unit tests. */
export class InMemoryGrantStateRepository implements GrantStateRepository {
  constructor(private readonly store: InMemoryStore) {}

  private get grants(): Map<string, GrantEntity> {
    return this.store.table('grants');
  }

  private get events(): AuditEvent[] {
    return [...this.store.table<number, AuditEvent>('audit_events').values()].sort((a, b) => a.seq - b.seq);
  }

  grantExists(grantId: string): Promise<boolean> {
    return Promise.resolve(this.grants.has(grantId));
  }

  liveGrants(now: Date): Promise<string[]> {
    return Promise.resolve([...this.grants.values()].filter((g) => g.status === 'approved' && g.expires_at > now).map((g) => g.id).sort());
  }

  allowedTotals(grantId: string): Promise<{ uses: number; spentMinor: number }> {
    const allows = this.events.filter((e) => e.grant_id === grantId && isAllow(e));
    return Promise.resolve({ uses: allows.length, spentMinor: allows.reduce((sum, e) => sum + charged(e), 0) });
  }

  decisionsSince(grantId: string, types: string[], since: Date): Promise<ChainDecision[]> {
    const at = since.toISOString();
    return Promise.resolve(
      this.events
        .filter((e) => e.grant_id === grantId && types.includes(e.type) && e.at >= at)
        .map((e) => ({ id: e.id, allowed: isAllow(e), at: e.at, data: { at_ms: e.data.at_ms ?? null, proof_jti: e.data.proof_jti ?? null, proof_jkt: e.data.proof_jkt ?? null } })),
    );
  }

  idsInChain(ids: string[]): Promise<Set<string>> {
    const wanted = new Set(ids);
    const found = this.events.flatMap((e) => {
      const queueId = e.type === 'verification.unrecordable' && typeof e.data.queue_id === 'string' ? [e.data.queue_id] : [];
      return [e.id, ...queueId].filter((id) => wanted.has(id));
    });
    return Promise.resolve(new Set(found));
  }

  revocationsFor(grantId: string, tokenTypes: string[], now: Date): Promise<StateRevocation[]> {
    const tokens = this.events.filter((e) => e.grant_id === grantId && tokenTypes.includes(e.type));
    const txns = new Set(tokens.flatMap((e) => (e.txn === null ? [] : [e.txn])));
    const jtis = new Set(tokens.flatMap((e) => (typeof e.data.jti === 'string' ? [e.data.jti] : [])));
    const agents = new Set(tokens.flatMap((e) => [e.actor, e.data.actor].filter((a): a is string => typeof a === 'string')));
    const requester = this.grants.get(grantId)?.agent_id;
    if (requester !== undefined) agents.add(requester);
    const names = (r: RevocationRow): boolean =>
      (r.kind === 'grant' && r.value === grantId) || (r.kind === 'txn' && txns.has(r.value)) || (r.kind === 'token' && jtis.has(r.value)) || (r.kind === 'agent' && agents.has(r.value));
    const rows = [...this.store.table<string, RevocationRow>('revocations').values()]
      .filter((r) => r.expiresAt > now && names(r))
      .sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime());
    return Promise.resolve(rows.map((r) => ({ kind: r.kind, value: r.value, expiresAtMs: r.expiresAt.getTime() })));
  }
}
