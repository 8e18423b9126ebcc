import type { AuditEvent } from '@writ/core';
import type { Transaction } from '../infra/transaction.js';
import type { AuditCheckpoint, AuditHead, AuditRepository, ChainLinker } from '../modules/audit/audit.repository.js';
import { copy, type InMemoryStore } from './in-memory-store.js';

/** The audit chain in memory, for unit tests: the same contract as on the database. */
export class InMemoryAuditRepository implements AuditRepository {
  constructor(private readonly store: InMemoryStore) {}

  /** Every event, oldest first (what a test inspects). */
  get events(): AuditEvent[] {
    return [...this.eventTable.values()].sort((a, b) => a.seq - b.seq).map(copy);
  }

  private get eventTable(): Map<number, AuditEvent> {
    return this.store.table('audit_events');
  }

  private get checkpointTable(): Map<number, AuditCheckpoint> {
    return this.store.table('audit_checkpoints');
  }

  extend<R>(ids: string[], link: ChainLinker<R>, tx?: Transaction): Promise<R> {
    const work = async () => {
      const wanted = new Set(ids);
      const known = new Map([...this.eventTable.values()].filter((e) => wanted.has(e.id)).map((e) => [e.id, copy(e)]));
      const { events, checkpoints, result } = await link(this.head(), known);
      for (const event of events) this.eventTable.set(event.seq, copy(event));
      for (const checkpoint of checkpoints) this.checkpointTable.set(checkpoint.seq, copy(checkpoint));
      return result;
    };
    return tx ? work() : this.store.transaction(work);
  }

  checkpointHead(sign: (head: NonNullable<AuditHead>) => Promise<AuditCheckpoint>): Promise<AuditCheckpoint | undefined> {
    return this.store.transaction(async () => {
      const head = this.head();
      if (!head) return undefined;
      const existing = this.checkpointTable.get(head.seq);
      if (existing) return copy(existing);
      const checkpoint = await sign(head);
      this.checkpointTable.set(checkpoint.seq, copy(checkpoint));
      return checkpoint;
    });
  }

  checkpoints(): Promise<AuditCheckpoint[]> {
    return Promise.resolve([...this.checkpointTable.values()].sort((a, b) => a.seq - b.seq).map(copy));
  }

  eventsAfter(seq: number, limit: number): Promise<AuditEvent[]> {
    return Promise.resolve(this.events.filter((e) => e.seq > seq).slice(0, limit));
  }

  private head(): AuditHead {
    let head: AuditEvent | undefined;
    for (const event of this.eventTable.values()) if (!head || event.seq > head.seq) head = event;
    return head ? { seq: head.seq, hash: head.hash } : null;
  }
}
