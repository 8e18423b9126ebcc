import type { AuditEvent, MerkleHash, MerkleNodeId } from '@writ/core';
import type { Transaction } from '../infra/transaction.js';
import {
  type AuditCheckpoint,
  type AuditCosignature,
  type AuditHead,
  type AuditRepository,
  type AuditTreeNode,
  AuditTreeIncomplete,
  type AuditVerifiedHead,
  type ChainLinker,
  compactRange,
  eventLeaf,
  hasLeaf,
  STORED_TREE_LEVEL,
  subtreeOfLeaves,
} from '../modules/audit/audit.repository.js';
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

  /** Keyed `level:index`, as the database's primary key. */
  private get nodeTable(): Map<string, MerkleHash> {
    return this.store.table('audit_merkle_nodes');
  }

  private get cosignatureTable(): Map<string, AuditCosignature> {
    return this.store.table('audit_cosignatures');
  }

  private get verifiedHeadTable(): Map<1, AuditVerifiedHead> {
    return this.store.table('audit_verified_head');
  }

  extend<R>(ids: string[], link: ChainLinker<R>, tx?: Transaction): Promise<R> {
    const work = async () => {
      const wanted = new Set(ids);
      const known = new Map([...this.eventTable.values()].filter((e) => wanted.has(e.id)).map((e) => [e.id, copy(e)]));
      const head = this.currentHead();
      const { events, checkpoints, nodes = [], result } = await link(head, known, this.edge(head?.seq ?? 0));
      for (const event of events) this.eventTable.set(event.seq, copy(event));
      // Only the nodes from STORED_TREE_LEVEL up are stored; the others are computed from the events.
      for (const node of nodes) if (node.level >= STORED_TREE_LEVEL) this.putNode(node);
      for (const checkpoint of checkpoints) this.checkpointTable.set(checkpoint.seq, copy(checkpoint));
      return result;
    };
    return tx ? work() : this.store.transaction(work);
  }

  checkpointHead(sign: (head: NonNullable<AuditHead>, edge: AuditTreeNode[]) => Promise<AuditCheckpoint>): Promise<AuditCheckpoint | undefined> {
    return this.store.transaction(async () => {
      const head = this.currentHead();
      if (!head) return undefined;
      const existing = this.checkpointTable.get(head.seq);
      if (existing) return copy(existing);
      const checkpoint = await sign(head, this.edge(head.seq));
      this.checkpointTable.set(checkpoint.seq, copy(checkpoint));
      return checkpoint;
    });
  }

  checkpoints(): Promise<AuditCheckpoint[]> {
    return Promise.resolve([...this.checkpointTable.values()].sort((a, b) => a.seq - b.seq).map(copy));
  }

  async latestCheckpoint(): Promise<AuditCheckpoint | undefined> {
    return (await this.checkpoints()).filter((c) => c.note !== undefined).at(-1);
  }

  eventsAfter(seq: number, limit: number): Promise<AuditEvent[]> {
    return Promise.resolve(this.events.filter((e) => e.seq > seq).slice(0, limit));
  }

  head(): Promise<AuditHead> {
    return Promise.resolve(this.currentHead());
  }

  nodes(ids: MerkleNodeId[]): Promise<MerkleHash[]> {
    return Promise.resolve(
      ids.map((id) => {
        const node = this.node(id);
        if (!node) throw new AuditTreeIncomplete(`the audit tree has no node at level ${id.level}, index ${id.index}`);
        return node;
      }),
    );
  }

  addCosignature(cosignature: AuditCosignature): Promise<void> {
    this.cosignatureTable.set(`${cosignature.seq}:${cosignature.witness}`, copy(cosignature));
    return Promise.resolve();
  }

  cosignatures(seq: number): Promise<AuditCosignature[]> {
    const rows = [...this.cosignatureTable.values()].filter((c) => c.seq === seq && this.checkpointTable.has(c.seq));
    return Promise.resolve(rows.sort((a, b) => (a.witness < b.witness ? -1 : 1)).map(copy));
  }

  verifiedHead(): Promise<AuditVerifiedHead | undefined> {
    const head = this.verifiedHeadTable.get(1);
    return Promise.resolve(head ? copy(head) : undefined);
  }

  saveVerifiedHead(head: AuditVerifiedHead): Promise<void> {
    this.verifiedHeadTable.set(1, copy(head));
    return Promise.resolve();
  }

  /** The stored compact range at `size` (the nodes present, as the database's query finds them). */
  private edge(size: number): AuditTreeNode[] {
    return compactRange(size).flatMap((id) => {
      const node = this.node(id);
      return node ? [{ ...id, hash: node }] : [];
    });
  }

  /** A node from STORED_TREE_LEVEL up from its table; one below from its events' leaves, as the database computes them. */
  private node(id: MerkleNodeId): MerkleHash | undefined {
    if (id.level >= STORED_TREE_LEVEL) {
      const stored = this.nodeTable.get(`${id.level}:${id.index}`);
      return stored && copy(stored);
    }
    return subtreeOfLeaves(id, (index) => {
      const event = this.eventTable.get(index + 1);
      if (!event) return undefined;
      return hasLeaf(event.hash) ? eventLeaf(event.hash) : null;
    });
  }

  private putNode(node: AuditTreeNode): void {
    const key = `${node.level}:${node.index}`;
    // The primary key of audit_merkle_nodes: a node is written once.
    if (this.nodeTable.has(key)) throw new Error(`duplicate key: audit_merkle_nodes (${key})`);
    this.nodeTable.set(key, copy(node.hash));
  }

  private currentHead(): AuditHead {
    let head: AuditEvent | undefined;
    for (const event of this.eventTable.values()) if (!head || event.seq > head.seq) head = event;
    return head ? { seq: head.seq, hash: head.hash } : null;
  }
}
