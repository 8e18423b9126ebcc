import type { AuditEvent } from '@writ/core';
import type { Pool, QueryResult } from 'pg';
import type { EntityManager } from 'typeorm';
import type { Database } from '../../infra/database.service.js';
import { entityManager, type Transaction } from '../../infra/transaction.js';
import { AuditCheckpointEntity, AuditEventEntity } from './audit.entity.js';

/** The last event of the chain, or null on an empty chain. */
export type AuditHead = Pick<AuditEvent, 'seq' | 'hash'> | null;

/** A signed checkpoint of the chain at `seq`. */
export interface AuditCheckpoint {
  seq: number;
  hash: string;
  at: string;
  kid: string;
  jws: string;
}

/** What the chain decided to write after reading the head: events, their JSON, checkpoints. */
export interface ChainExtension<R> {
  /** The linked events, in order (possibly none). */
  events: AuditEvent[];
  /** The same events as one JSON array, exactly as they were hashed: stored as written. */
  eventsJson: string;
  checkpoints: AuditCheckpoint[];
  /** What the append answers its caller. */
  result: R;
}

/** Links drafts after `head`; `known` holds the chain's events whose ids the drafts carry. */
export type ChainLinker<R> = (head: AuditHead, known: Map<string, AuditEvent>) => Promise<ChainExtension<R>>;

/** The audit chain's storage: the only code that reads or writes `audit_events` and `audit_checkpoints` for the chain. */
export interface AuditRepository {
  /**
   * Under the chain's append lock (one writer across every registry process), reads the head and
   * the events with `ids`, lets `link` decide what to append, and writes it: in `tx` when given
   * (committing with it), or in a transaction of its own, committed before this resolves.
   */
  extend<R>(ids: string[], link: ChainLinker<R>, tx?: Transaction): Promise<R>;
  /**
   * Under the append lock: the checkpoint at the head, made with `sign` when there is none yet;
   * undefined on an empty chain.
   */
  checkpointHead(sign: (head: NonNullable<AuditHead>) => Promise<AuditCheckpoint>): Promise<AuditCheckpoint | undefined>;
  /** Every checkpoint, oldest first. */
  checkpoints(): Promise<AuditCheckpoint[]>;
  /** Up to `limit` events after `seq`, oldest first. */
  eventsAfter(seq: number, limit: number): Promise<AuditEvent[]>;
}

/** Any 64-bit constant: the PostgreSQL advisory lock that serialises every chain append. */
const AUDIT_APPEND_LOCK = 0x5772_6974_4175_6474n; // "WritAudt"

const HEAD_SQL = 'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1';

type Query = <T>(sql: string, parameters?: unknown[]) => Promise<T>;

/** The audit chain on PostgreSQL or PGlite. */
export class TypeOrmAuditRepository implements AuditRepository {
  constructor(private readonly db: Database) {}

  extend<R>(ids: string[], link: ChainLinker<R>, tx?: Transaction): Promise<R> {
    if (tx) return this.extendIn(entityManager(tx), ids, link);
    const pool = this.db.pgPool();
    return pool ? this.extendOnPostgres(pool, ids, link) : this.db.transaction((manager) => this.extendIn(manager, ids, link));
  }

  private async extendIn<R>(manager: EntityManager, ids: string[], link: ChainLinker<R>): Promise<R> {
    const query: Query = (sql, parameters) => manager.query(sql, parameters);
    await query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK.toString()]);
    const known = await knownEvents(query, ids);
    const [headRow] = await query<{ seq: string | number; hash: string }[]>(HEAD_SQL);
    const { events, eventsJson, checkpoints, result } = await link(toHead(headRow), known);
    if (events.length > 0) await query(insertEventsSql('$1::jsonb'), [eventsJson]);
    if (checkpoints.length > 0) await query(insertCheckpointsSql('$1::jsonb'), [JSON.stringify(checkpoints)]);
    return result;
  }

  /**
   * On PostgreSQL in two round trips on one pooled connection: `BEGIN`, the lock and the head in
   * one message (the head is read by a statement that starts after the lock is held), then the
   * inserts and `COMMIT` in another, the events inlined as an escaped JSON literal.
   */
  private async extendOnPostgres<R>(pool: Pool, ids: string[], link: ChainLinker<R>): Promise<R> {
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
      const known = await knownEvents(query, ids);
      const { events, eventsJson, checkpoints, result } = await link(toHead(opened[3]!.rows[0]), known);
      const statements: string[] = [];
      if (events.length > 0) statements.push(insertEventsSql(`${sqlText(eventsJson)}::jsonb`));
      if (checkpoints.length > 0) statements.push(insertCheckpointsSql(`${sqlText(JSON.stringify(checkpoints))}::jsonb`));
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

  checkpointHead(sign: (head: NonNullable<AuditHead>) => Promise<AuditCheckpoint>): Promise<AuditCheckpoint | undefined> {
    return this.db.transaction(async (manager) => {
      await manager.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK.toString()]);
      const [head] = await manager.getRepository(AuditEventEntity).find({ order: { seq: 'DESC' }, take: 1 });
      if (!head) return undefined;
      const existing = await manager.getRepository(AuditCheckpointEntity).findOneBy({ seq: head.seq });
      if (existing) return toCheckpoint(existing);
      const checkpoint = await sign({ seq: head.seq, hash: head.hash.trim() });
      await manager.getRepository(AuditCheckpointEntity).insert(checkpoint);
      return checkpoint;
    });
  }

  async checkpoints(): Promise<AuditCheckpoint[]> {
    return (await this.db.dataSource.getRepository(AuditCheckpointEntity).find({ order: { seq: 'ASC' } })).map(toCheckpoint);
  }

  async eventsAfter(seq: number, limit: number): Promise<AuditEvent[]> {
    const rows = await this.db.dataSource
      .getRepository(AuditEventEntity)
      .createQueryBuilder('e')
      .where('e.seq > :seq', { seq })
      .orderBy('e.seq', 'ASC')
      .take(limit)
      .getMany();
    return rows.map(toEvent);
  }
}

/** JSON text as a SQL string literal, for a transaction with standard_conforming_strings on: only single quotes are doubled (JSON text holds no NUL: it is escaped as \u0000). */
function sqlText(json: string): string {
  return `'${json.replaceAll("'", "''")}'`;
}

function toHead(row: { seq: string | number; hash: string } | undefined): AuditHead {
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

/** The events already in the chain with these ids (idempotent ingestion). */
async function knownEvents(query: Query, ids: string[]): Promise<Map<string, AuditEvent>> {
  const known = new Map<string, AuditEvent>();
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

function toCheckpoint(row: AuditCheckpointEntity): AuditCheckpoint {
  return { seq: row.seq, hash: row.hash, at: row.at, kid: row.kid, jws: row.jws };
}
