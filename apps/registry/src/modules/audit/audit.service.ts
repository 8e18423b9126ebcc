import { randomUUID } from 'node:crypto';
import {
  appendAuditEvent,
  AuditChainVerifier,
  type AuditEvent,
  type ChainVerification,
  type Clock,
  signCheckpoint,
  verifyCheckpoint,
} from '@writ/core';
import { type EntityManager, In } from 'typeorm';
import type { Database } from '../../infra/database.service.js';
import { SerialLock } from '../../infra/serial-lock.js';
import type { KeyStore } from '../keys/key-store.js';
import { AuditCheckpointEntity, AuditEventEntity } from './audit.entity.js';

/** What a caller records; the chain adds seq, time, hashes. */
export interface AuditDraft {
  type: string;
  actor?: string | null;
  subject?: string | null;
  grant_id?: string | null;
  txn?: string | null;
  parent_id?: string | null;
  data?: Record<string, unknown>;
  /** Idempotency: an event id already in the chain is not appended again. */
  id?: string;
}

/** Any 64-bit constant: the PostgreSQL advisory lock that serialises every chain append. */
const AUDIT_APPEND_LOCK = 0x5772_6974_4175_6474n; // "WritAudt"

/** Page size when re-verifying from the database, so memory stays flat on long chains. */
const VERIFY_PAGE = 1000;

export interface AuditVerification {
  chain: ChainVerification;
  checkpoints: { verified: number; failed: { seq: number; reason: string }[] };
}

/** At most this many queued events go into one group commit (bounds one transaction's size). */
const MAX_GROUP = 256;

interface Pending {
  draft: AuditDraft;
  resolve: (event: AuditEvent) => void;
  reject: (error: unknown) => void;
}

/**
 * The one append path of the audit chain. Appends are serialised twice: an in-process lock
 * (so a process does not queue pool connections on the database lock) and a transaction-scoped
 * PostgreSQL advisory lock (so several registry processes never fork the chain). The event is
 * committed before `append` resolves: callers answer only after that.
 *
 * Appends that do not share a caller's transaction are group-committed (ADR 0007): while one
 * transaction is writing, new events queue; the next transaction appends all of them, in arrival
 * order, under one lock and one commit. Nothing waits on a timer, so a lone event is written at
 * once, and a burst costs one commit per group instead of one per event.
 */
export class AuditService {
  private readonly appendLock = new SerialLock();
  private queue: Pending[] = [];
  private flushing = false;

  constructor(
    private readonly db: Database,
    private readonly keys: KeyStore,
    private readonly clock: Clock,
    private readonly checkpointEvery: number,
  ) {}

  /**
   * Appends one event (or returns the existing one with the same id) and resolves once it is
   * committed. With `manager`, the event joins the caller's transaction and commits with it.
   */
  append(draft: AuditDraft, manager?: EntityManager): Promise<AuditEvent> {
    if (manager) {
      return this.appendIn(manager, [draft]).then(([outcome]) => {
        if (outcome instanceof Error) throw outcome;
        return outcome!;
      });
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ draft, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** Writes queued events group by group until the queue is empty; each group is one transaction. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_GROUP);
        try {
          const outcomes = await this.appendLock.run(() => this.db.transaction((m) => this.appendIn(m, group.map((p) => p.draft))));
          group.forEach((p, i) => {
            const outcome = outcomes[i]!;
            if (outcome instanceof Error) p.reject(outcome);
            else p.resolve(outcome);
          });
        } catch (error) {
          // Nothing of the group was committed: every caller learns it, none answers as if it were.
          for (const p of group) p.reject(error);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Appends `drafts` in order after the current head, inside `manager`'s transaction. A draft that
   * cannot be hashed (its data is not JSON) yields its error and is skipped; the others go on.
   */
  private async appendIn(manager: EntityManager, drafts: AuditDraft[]): Promise<(AuditEvent | Error)[]> {
    await manager.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK.toString()]);
    const events = manager.getRepository(AuditEventEntity);
    // Idempotency: a draft whose id is already in the chain (or earlier in this group) is not appended again.
    const known = new Map<string, AuditEvent>();
    const ids = drafts.flatMap((d) => (d.id ? [d.id] : []));
    if (ids.length > 0) {
      for (const row of await events.findBy({ id: In(ids) })) known.set(row.id, toEvent(row));
    }
    const [headRow] = await manager.query<{ seq: string | number; hash: string }[]>('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
    let head: Pick<AuditEvent, 'seq' | 'hash'> | null = headRow ? { seq: Number(headRow.seq), hash: headRow.hash.trim() } : null;
    const at = new Date(this.clock.now()).toISOString();
    const appended: AuditEvent[] = [];
    const result: (AuditEvent | Error)[] = [];
    for (const draft of drafts) {
      const existing = draft.id ? known.get(draft.id) : undefined;
      if (existing) {
        result.push(existing);
        continue;
      }
      const event = await appendAuditEvent(head, {
        id: draft.id ?? `evt_${randomUUID()}`,
        at,
        type: draft.type,
        actor: draft.actor ?? null,
        subject: draft.subject ?? null,
        grant_id: draft.grant_id ?? null,
        txn: draft.txn ?? null,
        parent_id: draft.parent_id ?? null,
        data: draft.data ?? {},
      }).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
      if (event instanceof Error) {
        result.push(event);
        continue;
      }
      known.set(event.id, event);
      appended.push(event);
      result.push(event);
      head = event;
    }
    if (appended.length === 0) return result;
    // The whole group in one statement with one parameter, whatever its size.
    await manager.query(
      `INSERT INTO audit_events (seq, id, at, type, actor, subject, grant_id, txn, parent_id, data, prev_hash, hash)
       SELECT seq, id, at, type, actor, subject, grant_id, txn, parent_id, data, prev_hash, hash
       FROM jsonb_to_recordset($1::jsonb) AS e(seq bigint, id text, at text, type text, actor text, subject text,
         grant_id text, txn text, parent_id text, data jsonb, prev_hash char(64), hash char(64))`,
      [JSON.stringify(appended)],
    );
    for (const event of appended) if (event.seq % this.checkpointEvery === 0) await this.checkpointIn(manager, event);
    return result;
  }

  /** Signs a checkpoint of the current head now (also called on a timer). */
  async checkpoint(): Promise<AuditCheckpointEntity | undefined> {
    return this.appendLock.run(() =>
      this.db.transaction(async (manager) => {
        await manager.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK.toString()]);
        const [head] = await manager.getRepository(AuditEventEntity).find({ order: { seq: 'DESC' }, take: 1 });
        if (!head) return undefined;
        const existing = await manager.getRepository(AuditCheckpointEntity).findOneBy({ seq: head.seq });
        return existing ?? this.checkpointIn(manager, head);
      }),
    );
  }

  private async checkpointIn(manager: EntityManager, head: Pick<AuditEvent, 'seq' | 'hash'>): Promise<AuditCheckpointEntity> {
    const key = await this.keys.active();
    const checkpoint = { seq: head.seq, hash: head.hash, at: new Date(this.clock.now()).toISOString() };
    const jws = await signCheckpoint(checkpoint, { privateKey: key.privateKey, kid: key.kid });
    const row = manager.getRepository(AuditCheckpointEntity).create({ ...checkpoint, kid: key.kid, jws });
    await manager.getRepository(AuditCheckpointEntity).insert(row);
    return row;
  }

  /**
   * Re-computes the whole chain from the database, page by page, naming the first broken seq,
   * and checks every checkpoint's signature and that it matches the chain.
   */
  async verify(): Promise<AuditVerification> {
    const repo = this.db.dataSource.getRepository(AuditEventEntity);
    const verifier = new AuditChainVerifier();
    const hashes = new Map<number, string>();
    const checkpoints = await this.db.dataSource.getRepository(AuditCheckpointEntity).find({ order: { seq: 'ASC' } });
    const wanted = new Set(checkpoints.map((c) => c.seq));
    for (let after = 0; ; ) {
      const page = await repo.createQueryBuilder('e').where('e.seq > :after', { after }).orderBy('e.seq', 'ASC').take(VERIFY_PAGE).getMany();
      let ok = true;
      for (const row of page) {
        if (wanted.has(row.seq)) hashes.set(row.seq, row.hash.trim());
        if (!(await verifier.push(toEvent(row)))) {
          ok = false;
          break;
        }
      }
      if (!ok || page.length < VERIFY_PAGE) break;
      after = page.at(-1)!.seq;
    }
    const { keys } = await this.keys.jwks();
    const failed: { seq: number; reason: string }[] = [];
    let verified = 0;
    for (const cp of checkpoints) {
      const jwk = keys.find((k) => k.kid === cp.kid);
      if (!jwk) {
        // A key past its serving time can no longer be checked: say so, do not count it as verified.
        failed.push({ seq: cp.seq, reason: `signing key ${cp.kid} is no longer published` });
        continue;
      }
      try {
        const payload = await verifyCheckpoint(cp.jws, jwk);
        if (payload.seq !== cp.seq || payload.hash !== cp.hash.trim()) failed.push({ seq: cp.seq, reason: 'checkpoint row differs from its signed payload' });
        else if (hashes.get(cp.seq) !== payload.hash) failed.push({ seq: cp.seq, reason: 'chain hash at this seq differs from the signed checkpoint' });
        else verified++;
      } catch (error) {
        failed.push({ seq: cp.seq, reason: (error as Error).message });
      }
    }
    return { chain: verifier.result(), checkpoints: { verified, failed } };
  }

  /** Every event of the chain, oldest first, for export (JSON Lines). */
  async *export(): AsyncGenerator<AuditEvent> {
    const repo = this.db.dataSource.getRepository(AuditEventEntity);
    for (let after = 0; ; ) {
      const page = await repo.createQueryBuilder('e').where('e.seq > :after', { after }).orderBy('e.seq', 'ASC').take(VERIFY_PAGE).getMany();
      for (const row of page) yield toEvent(row);
      if (page.length < VERIFY_PAGE) return;
      after = page.at(-1)!.seq;
    }
  }
}

/** A row as the chain hashed it (char(64) columns come back padded on some drivers). */
function toEvent(row: AuditEventEntity): AuditEvent {
  return {
    seq: row.seq,
    id: row.id,
    at: row.at,
    type: row.type,
    actor: row.actor,
    subject: row.subject,
    grant_id: row.grant_id,
    txn: row.txn,
    parent_id: row.parent_id,
    data: row.data,
    prev_hash: row.prev_hash.trim(),
    hash: row.hash.trim(),
  };
}
