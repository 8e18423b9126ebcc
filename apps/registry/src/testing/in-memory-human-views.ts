import type { AuditEvent } from '@writ/core';
import type { AgentEntity } from '../modules/agents/agent.entity.js';
import type { GrantEntity, GrantStatus } from '../modules/grants/grant.entity.js';
import type { ApprovalReceiptEntity, PasskeyEntity } from '../modules/humans/human.entities.js';
import type { ApprovalSigner, HumanViewsRepository, NamedGrant, TransactionEvent, TransactionSummary } from '../modules/humans/human-views.repository.js';
import type { ServiceEntity } from '../modules/services/service.entity.js';
import { copy, type InMemoryStore } from './in-memory-store.js';

const HOPS = ['token.issued', 'token.delegated'];

/** The person's read side over the in-memory tables and chain, for unit tests. */
export class InMemoryHumanViewsRepository implements HumanViewsRepository {
  constructor(private readonly store: InMemoryStore) {}

  private get events(): AuditEvent[] {
    return [...this.store.table<number, AuditEvent>('audit_events').values()].sort((a, b) => a.seq - b.seq);
  }

  private get agents(): AgentEntity[] {
    return [...this.store.table<string, AgentEntity>('agents').values()];
  }

  grantsOfOwner(owner: string, status: GrantStatus | undefined, limit: number): Promise<NamedGrant[]> {
    const services = this.store.table<string, ServiceEntity>('services');
    const agents = this.store.table<string, AgentEntity>('agents');
    const rows = [...this.store.table<string, GrantEntity>('grants').values()]
      .filter((g) => g.owner === owner && (status === undefined || g.status === status) && services.has(g.service_id))
      .sort((a, b) => b.requested_at.getTime() - a.requested_at.getTime())
      .slice(0, limit);
    return Promise.resolve(
      rows.map((grant) => {
        const agent = agents.get(grant.agent_id);
        const service = services.get(grant.service_id)!;
        return { grant: copy(grant), agent: agent ? { name: agent.client_name, createdAt: agent.created_at } : null, service: { uri: service.uri, name: service.display_name } };
      }),
    );
  }

  agentNamesOf(owner: string): Promise<string[]> {
    return Promise.resolve(this.agents.filter((a) => a.owner === owner).map((a) => a.client_name));
  }

  approvalSigner(grantId: string): Promise<ApprovalSigner | null> {
    const receipt = this.store.table<string, ApprovalReceiptEntity>('approval_receipts').get(grantId);
    const passkey = receipt && this.store.table<string, PasskeyEntity>('passkeys').get(receipt.credential_id);
    return Promise.resolve(passkey ? { id: passkey.id, label: passkey.label, removedAt: passkey.removed_at } : null);
  }

  transactionsOf(subject: string, grantId: string | undefined, limit: number): Promise<TransactionSummary[]> {
    const events = this.events;
    const txns = new Set(
      events.filter((e) => e.type === 'token.issued' && e.subject === subject && e.txn !== null && (grantId === undefined || e.grant_id === grantId)).map((e) => e.txn!),
    );
    const summaries = [...txns].map((txn) => {
      const of = events.filter((e) => e.txn === txn);
      const grants = of.flatMap((e) => (e.grant_id === null ? [] : [e.grant_id])).sort();
      return {
        firstSeq: of[0]!.seq,
        summary: {
          txn,
          grant_id: grants[0] ?? null,
          started_at: of.map((e) => e.at).sort()[0]!,
          hops: of.filter((e) => HOPS.includes(e.type)).length,
          decisions: of.filter((e) => e.type.startsWith('verification.')).length,
        },
      };
    });
    return Promise.resolve(summaries.sort((a, b) => b.firstSeq - a.firstSeq).slice(0, limit).map((s) => s.summary));
  }

  rootNames(txn: string, subject: string): Promise<boolean> {
    return Promise.resolve(this.events.some((e) => e.txn === txn && e.type === 'token.issued' && e.subject === subject));
  }

  eventsOf(txn: string): Promise<TransactionEvent[]> {
    return Promise.resolve(
      this.events.filter((e) => e.txn === txn).map(({ seq, hash, at, type, actor, grant_id, txn: t, data }) => ({ seq, hash, at, type, actor, grant_id, txn: t, data: copy(data) })),
    );
  }

  subjectAt(seq: number): Promise<string | null> {
    return Promise.resolve(this.store.table<number, AuditEvent>('audit_events').get(seq)?.subject ?? null);
  }
}
