import { hash, randomUUID } from 'node:crypto';
import {
  AuditChainVerifier,
  type AuditEvent,
  type ChainVerification,
  type Clock,
  linkAuditEvent,
  signCheckpoint,
  verifyCheckpoint,
} from '@writ/core';
import type { Pool, QueryResult } from 'pg';
import type { EntityManager } from 'typeorm';
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

/**
 * SHA-256 with node:crypto: synchronous, and far cheaper per event than a Web Crypto digest; one
 * shot, so no native Hash object per event for the garbage collector.
 */
const nodeDigest = (bytes: Uint8Array): Uint8Array => hash('sha256', bytes, 'buffer');

/** Any 64-bit constant: the PostgreSQL advisory lock that serialises every chain append. */
const AUDIT_APPEND_LOCK = 0x5772_6974_4175_6474n; // "WritAudt"

/** Page size when re-verifying from the database, so memory stays flat on long chains. */
const VERIFY_PAGE = 1000;

export interface AuditVerification {
  chain: ChainVerification;
  checkpoints: { verified: number; failed: { seq: number; reason: string }[] };
}

/**
 * A value's JSON as a SQL string literal, for a transaction with standard_conforming_strings on:
 * backslashes are then literal, so only single quotes are doubled (JSON text holds no NUL: it is
 * escaped as \u0000). One native pass, where pg's escapeLiteral walks the text character by
 * character (about 4 µs per audit event).
 */
function jsonLiteral(value: unknown): string {
  return sqlText(JSON.stringify(value));
}

/** JSON text as a SQL string literal (see {@link jsonLiteral}). */
function sqlText(json: string): string {
  return `'${json.replaceAll("'", "''")}'`;
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
          this.settle(group, await this.appendGroup(group));
        } catch (error) {
          // Nothing of the group was committed. When the database refused what one event holds
          // (a NUL, say), each event is tried alone so that it fails only its own caller (issue
          // 16, 4); otherwise (an outage) every caller learns it, none answers as if it were.
          if (group.length === 1 || !isUnrecordableEvent(error)) {
            for (const p of group) p.reject(error);
            continue;
          }
          for (const p of group) {
            try {
              this.settle([p], await this.appendGroup([p]));
            } catch (alone) {
              p.reject(alone);
            }
          }
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** One group in one transaction: an outcome per draft (an Error for one that cannot be hashed). */
  private appendGroup(group: Pending[]): Promise<(AuditEvent | Error)[]> {
    const drafts = group.map((p) => p.draft);
    const pool = this.db.pgPool();
    return this.appendLock.run(() => (pool ? this.appendGroupOnPostgres(pool, drafts) : this.db.transaction((m) => this.appendIn(m, drafts))));
  }

  private settle(group: Pending[], outcomes: (AuditEvent | Error)[]): void {
    group.forEach((p, i) => {
      const outcome = outcomes[i]!;
      if (outcome instanceof Error) p.reject(outcome);
      else p.resolve(outcome);
    });
  }

  /** Appends `drafts` after the current head inside `manager`'s transaction, under the lock. */
  private async appendIn(manager: EntityManager, drafts: AuditDraft[]): Promise<(AuditEvent | Error)[]> {
    const query: Query = (sql, parameters) => manager.query(sql, parameters);
    await query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK.toString()]);
    const known = await knownEvents(query, drafts);
    const [headRow] = await query<{ seq: string | number; hash: string }[]>(HEAD_SQL);
    const { result, appended, rows } = await this.chain(toHead(headRow), drafts, known);
    if (appended.length > 0) await query(insertEventsSql('$1::jsonb'), [rows]);
    const checkpoints = await this.checkpointsFor(appended);
    if (checkpoints.length > 0) await query(insertCheckpointsSql('$1::jsonb'), [JSON.stringify(checkpoints)]);
    return result;
  }

  /**
   * A group on PostgreSQL in two round trips on one pooled connection: `BEGIN`, the lock and the
   * head in one message (the head is read by a statement that starts after the lock is held),
   * then the inserts and `COMMIT` in another, the group inlined as an escaped JSON literal.
   */
  private async appendGroupOnPostgres(pool: Pool, drafts: AuditDraft[]): Promise<(AuditEvent | Error)[]> {
    const client = await pool.connect();
    let inTransaction = false;
    try {
      inTransaction = true;
      // standard_conforming_strings (PostgreSQL's default) is pinned for this transaction: the
      // inlined JSON literal below relies on backslashes being literal.
      const opened = (await client.query(
        `BEGIN; SET LOCAL standard_conforming_strings = on; SELECT pg_advisory_xact_lock(${AUDIT_APPEND_LOCK}); ${HEAD_SQL}`,
      )) as unknown as QueryResult<{ seq: string; hash: string }>[];
      const query: Query = async <T>(sql: string, parameters?: unknown[]) => (await client.query(sql, parameters)).rows as T;
      const known = await knownEvents(query, drafts);
      const { result, appended, rows } = await this.chain(toHead(opened[3]!.rows[0]), drafts, known);
      const checkpoints = await this.checkpointsFor(appended);
      const statements: string[] = [];
      if (appended.length > 0) statements.push(insertEventsSql(`${sqlText(rows)}::jsonb`));
      if (checkpoints.length > 0) statements.push(insertCheckpointsSql(`${jsonLiteral(checkpoints)}::jsonb`));
      await client.query([...statements, 'COMMIT'].join('; '));
      inTransaction = false;
      return result;
    } catch (error) {
      if (inTransaction) await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * Links `drafts` in order after `head`. A draft whose id is already in the chain (or earlier in
   * the group) is not appended again; one that cannot be hashed (its data is not JSON) yields its
   * error and is skipped, and the others go on.
   */
  private async chain(head: Head, drafts: AuditDraft[], known: Map<string, AuditEvent>): Promise<{ result: (AuditEvent | Error)[]; appended: AuditEvent[]; rows: string }> {
    const at = new Date(this.clock.now()).toISOString();
    const appended: AuditEvent[] = [];
    // The appended events' JSON texts, as linkAuditEvent wrote them for the hash: stored as they are.
    const texts: string[] = [];
    const result: (AuditEvent | Error)[] = [];
    let previous = head;
    for (const draft of drafts) {
      const existing = draft.id ? known.get(draft.id) : undefined;
      if (existing) {
        result.push(existing);
        continue;
      }
      const linked = await linkAuditEvent(previous, {
        id: draft.id ?? `evt_${randomUUID()}`,
        at,
        type: draft.type,
        actor: draft.actor ?? null,
        subject: draft.subject ?? null,
        grant_id: draft.grant_id ?? null,
        txn: draft.txn ?? null,
        parent_id: draft.parent_id ?? null,
        data: draft.data ?? {},
      }, nodeDigest).catch((error: unknown) => new UnhashableEvent(error instanceof Error ? error.message : String(error), { cause: error }));
      if (linked instanceof Error) {
        result.push(linked);
        continue;
      }
      const { event } = linked;
      texts.push(linked.json);
      known.set(event.id, event);
      appended.push(event);
      result.push(event);
      previous = event;
    }
    return { result, appended, rows: `[${texts.join(',')}]` };
  }

  /** A signed checkpoint for every event of the group whose seq is a multiple of `checkpointEvery`. */
  private async checkpointsFor(events: AuditEvent[]): Promise<Omit<AuditCheckpointEntity, never>[]> {
    const due = events.filter((e) => e.seq % this.checkpointEvery === 0);
    if (due.length === 0) return [];
    const key = await this.keys.active();
    const at = new Date(this.clock.now()).toISOString();
    return Promise.all(
      due.map(async (e) => {
        const checkpoint = { seq: e.seq, hash: e.hash, at };
        return { ...checkpoint, kid: key.kid, jws: await signCheckpoint(checkpoint, { privateKey: key.privateKey, kid: key.kid }) };
      }),
    );
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

/** An event `linkAuditEvent` could not canonicalise or hash (a lone surrogate, a non-JSON value). */
export class UnhashableEvent extends Error {
  override readonly name = 'UnhashableEvent';
}

/**
 * Why an append failed, when the failure is about what the event holds and would recur on every
 * try: it cannot be canonicalised or hashed ({@link UnhashableEvent}, from `linkAuditEvent`), or
 * the database refused its data (SQLSTATE class 22, data exception: a NUL that jsonb or text
 * cannot hold, a lone surrogate escape; class 54, a value over a limit). Undefined for anything
 * else (a connection lost, a database away): such a failure is retried, never dead-lettered.
 */
export function unrecordableReason(error: unknown): string | undefined {
  if (error instanceof UnhashableEvent) return `cannot be canonicalised: ${error.message}`;
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, driverError } = error as { code?: unknown; driverError?: { code?: unknown } };
  const sqlState = typeof code === 'string' ? code : typeof driverError?.code === 'string' ? driverError.code : undefined;
  if (sqlState === undefined || !/^(22|54)[0-9A-Z]{3}$/.test(sqlState)) return undefined;
  return `refused by the database (SQLSTATE ${sqlState}): ${error instanceof Error ? error.message : 'no message'}`;
}

/** Whether {@link unrecordableReason} names a reason. */
export function isUnrecordableEvent(error: unknown): boolean {
  return unrecordableReason(error) !== undefined;
}

const HEAD_SQL = 'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1';

type Head = Pick<AuditEvent, 'seq' | 'hash'> | null;
type Query = <T>(sql: string, parameters?: unknown[]) => Promise<T>;

function toHead(row: { seq: string | number; hash: string } | undefined): Head {
  return row ? { seq: Number(row.seq), hash: row.hash.trim() } : null;
}

/** Inserts a group of chained events given as a JSON array (a parameter or an escaped literal). */
function insertEventsSql(json: string): string {
  return `INSERT INTO audit_events (seq, id, at, type, actor, subject, grant_id, txn, parent_id, data, prev_hash, hash)
    SELECT seq, id, at, type, actor, subject, grant_id, txn, parent_id, data, prev_hash, hash
    FROM jsonb_to_recordset(${json}) AS e(seq bigint, id text, at text, type text, actor text, subject text,
      grant_id text, txn text, parent_id text, data jsonb, prev_hash char(64), hash char(64))`;
}

/** Inserts signed checkpoints given as a JSON array. */
function insertCheckpointsSql(json: string): string {
  return `INSERT INTO audit_checkpoints (seq, hash, at, kid, jws)
    SELECT seq, hash, at, kid, jws FROM jsonb_to_recordset(${json}) AS c(seq bigint, hash char(64), at text, kid text, jws text)`;
}

/** The events already in the chain with the ids some drafts carry (idempotent ingestion). */
async function knownEvents(query: Query, drafts: AuditDraft[]): Promise<Map<string, AuditEvent>> {
  const known = new Map<string, AuditEvent>();
  const ids = drafts.flatMap((d) => (d.id ? [d.id] : []));
  if (ids.length === 0) return known;
  const rows = await query<(Omit<AuditEventEntity, 'seq'> & { seq: string | number })[]>('SELECT * FROM audit_events WHERE id = ANY($1)', [ids]);
  for (const row of rows) known.set(row.id, toEvent({ ...row, seq: Number(row.seq) }));
  return known;
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
