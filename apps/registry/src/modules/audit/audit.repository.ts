import { hash } from 'node:crypto';
import { type AuditEvent, type MerkleHash, merkleLeafHash, merkleNodeHash, type MerkleNodeId } from '@writ/core';
import type { Pool, PoolClient, QueryResult } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { type EntityManager, IsNull, Not } from 'typeorm';
import type { Database } from '../../infra/database.service.js';
import { entityManager, type Transaction } from '../../infra/transaction.js';
import { AuditCheckpointEntity, AuditEventEntity } from './audit.entity.js';

/** The last event of the chain, or null on an empty chain. */
export type AuditHead = Pick<AuditEvent, 'seq' | 'hash'> | null;

/**
 * A signed checkpoint of the chain at `seq` (the tree's size): a C2SP tlog-checkpoint signed note,
 * or, for one taken before issue 19, a JWS over `{seq, hash, at}` by the registry's JWT key.
 */
export interface AuditCheckpoint {
  seq: number;
  /** The hash of event `seq`. */
  hash: string;
  at: string;
  /** The signed note (docs/audit.md, "Checkpoints"). */
  note?: string;
  /** A JWS checkpoint's key id and JWS (taken before issue 19: still read and verified). */
  kid?: string;
  jws?: string;
}

/** A complete subtree of the events' Merkle tree (RFC 9162 §2.1) and its hash. */
export interface AuditTreeNode extends MerkleNodeId {
  hash: MerkleHash;
}

/** A witness's cosignature of a checkpoint (C2SP tlog-cosignature): its signature line as given. */
export interface AuditCosignature {
  seq: number;
  /** The witness's verifier key name. */
  witness: string;
  line: string;
  at: string;
}

/** The last tree size and root `audit verify` found intact: where the next verification starts. */
export interface AuditVerifiedHead {
  size: number;
  root: MerkleHash;
  /** The hash of event `size` (where the chain's re-hashing goes on from). */
  hash: string;
  at: string;
}

/** A node a proof or root needs is not stored: the tree is incomplete (rows were deleted). */
export class AuditTreeIncomplete extends Error {
  override readonly name = 'AuditTreeIncomplete';
}

/** What the chain decided to write after reading the head: events, their JSON, checkpoints. */
export interface ChainExtension<R> {
  /** The linked events, in order (possibly none). */
  events: AuditEvent[];
  /**
   * The same events' JSON texts (each the RFC 8785 text that was hashed, with `hash` added as its
   * last member: {@link linkAuditEvent}'s `json`), stored as written.
   */
  eventTexts: string[];
  checkpoints: AuditCheckpoint[];
  /** The Merkle tree's complete subtrees the events completed, written in the same statement batch. */
  nodes?: AuditTreeNode[];
  /** The tree's compact range after the events (what the next append goes on from). */
  edge?: AuditTreeNode[];
  /** What the append answers its caller. */
  result: R;
}

/**
 * Links drafts after `head`; `known` holds the chain's events whose ids the drafts carry (or
 * nothing, on an optimistic first try: see {@link AuditRepository.extend}); `edge`
 * is the Merkle tree's compact range at the head as stored (largest subtree first; see
 * {@link compactRange}), from which the linker goes on.
 */
export type ChainLinker<R> = (head: AuditHead, known: Map<string, AuditEvent>, edge: AuditTreeNode[]) => Promise<ChainExtension<R>>;

/** The audit chain's storage: the only code that reads or writes `audit_events` and `audit_checkpoints` for the chain. */
export interface AuditRepository {
  /**
   * Under the chain's append lock (one writer across every registry process), reads the head, lets
   * `link` decide what to append, and writes it: in `tx` when given (committing with it), or in a
   * transaction of its own, committed before this resolves. What is written was linked knowing the
   * chain's events with `ids`: a repository may first call `link` without them and, when the store
   * refuses an id it already holds, roll back and call it again with them.
   */
  extend<R>(ids: string[], link: ChainLinker<R>, tx?: Transaction): Promise<R>;
  /**
   * Under the append lock: the checkpoint at the head, made with `sign` when there is none yet;
   * undefined on an empty chain.
   */
  checkpointHead(sign: (head: NonNullable<AuditHead>, edge: AuditTreeNode[]) => Promise<AuditCheckpoint>): Promise<AuditCheckpoint | undefined>;
  /** Every checkpoint, oldest first. */
  checkpoints(): Promise<AuditCheckpoint[]>;
  /** The newest checkpoint that is a signed note; undefined when there is none. */
  latestCheckpoint(): Promise<AuditCheckpoint | undefined>;
  /** Up to `limit` events after `seq`, oldest first. */
  eventsAfter(seq: number, limit: number): Promise<AuditEvent[]>;
  /** The last event, or null on an empty chain. */
  head(): Promise<AuditHead>;
  /** The hashes of these complete subtrees, in the order asked; throws {@link AuditTreeIncomplete} when one is not stored. */
  nodes(ids: MerkleNodeId[]): Promise<MerkleHash[]>;
  /** Keeps a witness's cosignature of the checkpoint at `seq` (the latest per witness and checkpoint). */
  addCosignature(cosignature: AuditCosignature): Promise<void>;
  /** The cosignatures of the checkpoint at `seq`. */
  cosignatures(seq: number): Promise<AuditCosignature[]>;
  /** Where the last verification ended intact; undefined before the first. */
  verifiedHead(): Promise<AuditVerifiedHead | undefined>;
  saveVerifiedHead(head: AuditVerifiedHead): Promise<void>;
}

/**
 * The compact range of a tree of `size` leaves (RFC 9162 §2.1; the nodes MerkleFrontier keeps):
 * for every set bit `level` of `size`, from the highest, the complete subtree at that level whose
 * index is `(size >> level) - 1`.
 */
export function compactRange(size: number): MerkleNodeId[] {
  const ids: MerkleNodeId[] = [];
  for (let level = Math.floor(Math.log2(Math.max(size, 1))) + 1; level >= 0; level--) {
    const prefix = Math.floor(size / 2 ** level);
    if (prefix % 2 === 1) ids.push({ level, index: prefix - 1 });
  }
  return ids;
}

/** Any 64-bit constant: the PostgreSQL advisory lock that serialises every chain append. */
const AUDIT_APPEND_LOCK = 0x5772_6974_4175_6474n; // "WritAudt"

const HEAD_SQL = 'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1';

/**
 * A leaf of the tree (level 0) is not stored as a node: it is the RFC 9162 leaf hash of its
 * event's hash, SHA-256 of a 0x00 byte and the hash's 32 bytes, computed where it is read. Event
 * `seq` is leaf `seq - 1`. An event whose hash is not 64 lowercase hex digits (written outside the
 * registry) has no leaf: NULL, refused with {@link noLeaf}.
 */
const LEAF_HASH_SQL = "CASE WHEN e.hash ~ '^[0-9a-f]{64}$' THEN sha256('\\x00'::bytea || decode(e.hash, 'hex')) END";

/** An event's leaf, as {@link LEAF_HASH_SQL} computes it: where the tree is built in process. */
export function eventLeaf(eventHash: string): MerkleHash {
  return merkleLeafHash(Buffer.from(eventHash, 'hex'), nodeDigest);
}

/** Whether an event's stored hash has a leaf ({@link LEAF_HASH_SQL}'s test). */
export function hasLeaf(eventHash: string): boolean {
  return /^[0-9a-f]{64}$/.test(eventHash);
}

/** The error for an event {@link hasLeaf} refuses. */
export function noLeaf(seq: number): AuditTreeIncomplete {
  return new AuditTreeIncomplete(`the audit event at seq ${seq} has no leaf: its hash is not a SHA-256 hash in lowercase hex (changed outside the registry)`);
}

/** SHA-256 with node:crypto, answered as a plain Uint8Array (as the database's hashes are read). */
const nodeDigest = (bytes: Uint8Array): Uint8Array => {
  const digest = hash('sha256', bytes, 'buffer');
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
};

/**
 * The lowest level of the tree whose nodes are rows of `audit_merkle_nodes`. A node below it
 * covers at most 2^3 = 8 events and is computed from their leaves where it is read (a proof needs
 * at most three of them, all under one node of this level: 15 leaves at most, so a page of 200
 * proofs reads at most 3,000); a node at this level or above is stored once, when the append that
 * completes it commits. One row per 8 events instead of one per event (issue 19, goal 3): a
 * higher level would save PostgreSQL under a microsecond more per event and make every proof
 * read up to 16 times as many leaves per level added.
 */
export const STORED_TREE_LEVEL = 4;

/**
 * The nodes asked for that are stored (`$1` levels, `$2` indexes), and the leaves of the events
 * in the seq ranges `$3`..`$4` (inclusive), from which the others are computed.
 */
const NODES_SQL = `SELECT n.level, n.idx, n.hash FROM audit_merkle_nodes n
    JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx
  UNION ALL
  SELECT 0, e.seq - 1, ${LEAF_HASH_SQL} FROM audit_events e
    JOIN unnest($3::bigint[], $4::bigint[]) AS r(first, last) ON e.seq BETWEEN r.first AND r.last`;

interface NodeRow {
  level: number | string;
  idx: number | string;
  /** NULL for a leaf whose event's hash is not hex ({@link LEAF_HASH_SQL}). */
  hash: Uint8Array | null;
}

type Query = <T>(sql: string, parameters?: unknown[]) => Promise<T>;

/**
 * The audit chain on PostgreSQL or PGlite. The tree's compact range at the head is read from
 * `audit_merkle_nodes` when the head is not the one this process last committed (at start, after
 * another process appended), and otherwise kept from the last commit: the usual append reads no
 * tree node.
 */
export class TypeOrmAuditRepository implements AuditRepository {
  /** The compact range at the head this process last committed, and that head. */
  private lastEdge: { seq: number; hash: string; edge: AuditTreeNode[] } | undefined;

  constructor(private readonly db: Database) {}

  extend<R>(ids: string[], link: ChainLinker<R>, tx?: Transaction): Promise<R> {
    if (tx) {
      // Whether the caller's transaction commits is not known here: the kept range is dropped.
      this.lastEdge = undefined;
      return this.extendIn(entityManager(tx), ids, link).then(({ result }) => result);
    }
    // Optimistic first: the drafts' ids are not looked up, the insert's unique index on `id` is the
    // check. Only when it refuses one (a batch delivered again after a crash between commit and
    // ack, or read by two registries at once) is the group linked again, once, knowing the events
    // already in the chain. The usual group thus costs no lookup of its ids.
    return this.extendOnce(ids, link, false).catch((error: unknown) => {
      if (ids.length === 0 || !isDuplicateEventId(error)) throw error;
      return this.extendOnce(ids, link, true);
    });
  }

  private extendOnce<R>(ids: string[], link: ChainLinker<R>, lookup: boolean): Promise<R> {
    const known = lookup ? ids : [];
    const pool = this.db.pgPool();
    if (pool) return this.extendOnPostgres(pool, known, link);
    return this.db.transaction((manager) => this.extendIn(manager, known, link)).then(({ result, committed }) => {
      this.lastEdge = committed;
      return result;
    });
  }

  /** The range kept from the last commit when `head` is that commit's head; undefined otherwise. */
  private keptEdge(head: AuditHead): AuditTreeNode[] | undefined {
    if (!head) return [];
    const kept = this.lastEdge;
    return kept && kept.seq === head.seq && kept.hash === head.hash ? kept.edge : undefined;
  }

  private async extendIn<R>(manager: EntityManager, ids: string[], link: ChainLinker<R>): Promise<{ result: R; committed: AuditRepositoryEdge }> {
    const query: Query = (sql, parameters) => manager.query(sql, parameters);
    await query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK.toString()]);
    const known = await knownEvents(query, ids);
    const [headRow] = await query<{ seq: string | number; hash: string }[]>(HEAD_SQL);
    const head = toHead(headRow);
    const edge = this.keptEdge(head) ?? (await storedEdge(query, head?.seq ?? 0));
    const extension = await link(head, known, edge);
    const { events, eventTexts, checkpoints } = extension;
    const nodes = storedNodes(extension.nodes);
    if (events.length > 0) await query(insertEventsSql('$1::jsonb'), [`[${eventTexts.join(',')}]`]);
    if (nodes.length > 0) await query(insertNodesSql('$1::jsonb'), [nodesJson(nodes)]);
    if (checkpoints.length > 0) await query(insertCheckpointsSql('$1::jsonb'), [checkpointsJson(checkpoints)]);
    return { result: extension.result, committed: edgeAfter(head, edge, extension) };
  }

  /**
   * On PostgreSQL in three round trips on one pooled connection: `BEGIN`, the lock, the head and
   * the tree's compact range in one message (read by statements that start after the lock is
   * held), the events in one COPY ({@link copyEvents}), then the tree nodes, the checkpoints and
   * `COMMIT` in another, each inlined as an escaped JSON literal.
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
      )) as unknown as QueryResult[];
      const query: Query = async <T>(sql: string, parameters?: unknown[]) => (await client.query(sql, parameters)).rows as T;
      const known = await knownEvents(query, ids);
      const head = toHead(opened[3]!.rows[0] as { seq: string; hash: string } | undefined);
      const edge = this.keptEdge(head) ?? (await storedEdge(query, head?.seq ?? 0));
      const extension = await link(head, known, edge);
      const { events, eventTexts, checkpoints, result } = extension;
      const nodes = storedNodes(extension.nodes);
      const statements: string[] = [];
      if (events.length > 0) await copyEvents(client, events, eventTexts);
      if (nodes.length > 0) statements.push(insertNodesSql(`${sqlText(nodesJson(nodes))}::jsonb`));
      if (checkpoints.length > 0) statements.push(insertCheckpointsSql(`${sqlText(checkpointsJson(checkpoints))}::jsonb`));
      this.lastEdge = undefined;
      await client.query([...statements, 'COMMIT'].join('; '));
      inTransaction = false;
      this.lastEdge = edgeAfter(head, edge, extension);
      return result;
    } catch (error) {
      if (inTransaction) await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  checkpointHead(sign: (head: NonNullable<AuditHead>, edge: AuditTreeNode[]) => Promise<AuditCheckpoint>): Promise<AuditCheckpoint | undefined> {
    return this.db.transaction(async (manager) => {
      await manager.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK.toString()]);
      const [head] = await manager.getRepository(AuditEventEntity).find({ order: { seq: 'DESC' }, take: 1 });
      if (!head) return undefined;
      const existing = await manager.getRepository(AuditCheckpointEntity).findOneBy({ seq: head.seq });
      if (existing) return toCheckpoint(existing);
      const edge = await storedEdge((sql, parameters) => manager.query(sql, parameters), head.seq);
      const checkpoint = await sign({ seq: head.seq, hash: head.hash.trim() }, edge);
      await manager.query(insertCheckpointsSql('$1::jsonb'), [checkpointsJson([checkpoint])]);
      return checkpoint;
    });
  }

  async checkpoints(): Promise<AuditCheckpoint[]> {
    return (await this.db.dataSource.getRepository(AuditCheckpointEntity).find({ order: { seq: 'ASC' } })).map(toCheckpoint);
  }

  async latestCheckpoint(): Promise<AuditCheckpoint | undefined> {
    const [row] = await this.db.dataSource.getRepository(AuditCheckpointEntity).find({ where: { note: Not(IsNull()) }, order: { seq: 'DESC' }, take: 1 });
    return row ? toCheckpoint(row) : undefined;
  }

  async head(): Promise<AuditHead> {
    const [row] = await this.db.dataSource.query<{ seq: string | number; hash: string }[]>(HEAD_SQL);
    return toHead(row);
  }

  async nodes(ids: MerkleNodeId[]): Promise<MerkleHash[]> {
    const hashes = await readNodes((sql, parameters) => this.db.dataSource.query(sql, parameters), ids);
    return ids.map((id, i) => {
      const found = hashes[i];
      if (!found) throw new AuditTreeIncomplete(`the audit tree has no node at level ${id.level}, index ${id.index}`);
      return found;
    });
  }

  async addCosignature(c: AuditCosignature): Promise<void> {
    await this.db.dataSource.query(
      `INSERT INTO audit_cosignatures (seq, witness, line, at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (seq, witness) DO UPDATE SET line = excluded.line, at = excluded.at`,
      [c.seq, c.witness, c.line, c.at],
    );
  }

  async cosignatures(seq: number): Promise<AuditCosignature[]> {
    const rows = await this.db.dataSource.query<{ seq: string | number; witness: string; line: string; at: string }[]>(
      'SELECT seq, witness, line, at FROM audit_cosignatures WHERE seq = $1 ORDER BY witness',
      [seq],
    );
    return rows.map((r) => ({ seq: Number(r.seq), witness: r.witness, line: r.line, at: r.at }));
  }

  async verifiedHead(): Promise<AuditVerifiedHead | undefined> {
    const [row] = await this.db.dataSource.query<{ size: string | number; root: Uint8Array; hash: string; verified_at: string }[]>(
      'SELECT size, root, hash, verified_at FROM audit_verified_head WHERE id = 1',
    );
    return row ? { size: Number(row.size), root: new Uint8Array(row.root), hash: row.hash.trim(), at: row.verified_at } : undefined;
  }

  async saveVerifiedHead(head: AuditVerifiedHead): Promise<void> {
    await this.db.dataSource.query(
      `INSERT INTO audit_verified_head (id, size, root, hash, verified_at) VALUES (1, $1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET size = excluded.size, root = excluded.root, hash = excluded.hash, verified_at = excluded.verified_at`,
      [head.size, Buffer.from(head.root), head.hash, head.at],
    );
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

/**
 * Whether the insert failed because an event with one of the drafts' ids is already in the chain
 * (SQLSTATE 23505 on `audit_events`' unique index on `id`), on PostgreSQL (pg) or PGlite (through
 * TypeORM).
 */
function isDuplicateEventId(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const direct = error as { code?: unknown; constraint?: unknown; driverError?: { code?: unknown; constraint?: unknown } };
  const code = direct.code ?? direct.driverError?.code;
  const constraint = direct.constraint ?? direct.driverError?.constraint;
  return code === '23505' && constraint === 'audit_events_id_key';
}

/** JSON text as a SQL string literal, for a transaction with standard_conforming_strings on: only single quotes are doubled (JSON text holds no NUL: it is escaped as \u0000). */
function sqlText(json: string): string {
  return `'${json.replaceAll("'", "''")}'`;
}

type AuditRepositoryEdge = { seq: number; hash: string; edge: AuditTreeNode[] } | undefined;

/** The head and compact range once `extension` is committed onto `head` and its `edge`. */
function edgeAfter(head: AuditHead, edge: AuditTreeNode[], extension: ChainExtension<unknown>): AuditRepositoryEdge {
  const last = extension.events.at(-1) ?? head;
  if (!last) return undefined;
  if (extension.events.length === 0) return { seq: last.seq, hash: last.hash, edge };
  return extension.edge ? { seq: last.seq, hash: last.hash, edge: extension.edge } : undefined;
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
  return `INSERT INTO audit_checkpoints (seq, hash, at, kid, jws, note)
    SELECT seq, hash, at, kid, jws, note FROM jsonb_to_recordset(${json}) AS c(seq bigint, hash char(64), at text, kid text, jws text, note text)`;
}

function checkpointsJson(checkpoints: AuditCheckpoint[]): string {
  return JSON.stringify(checkpoints.map(({ seq, hash, at, kid, jws, note }) => ({ seq, hash, at, kid: kid ?? null, jws: jws ?? null, note: note ?? null })));
}

/** The nodes stored: those at {@link STORED_TREE_LEVEL} and above (the others are computed from leaves). */
function storedNodes(nodes: AuditTreeNode[] = []): AuditTreeNode[] {
  return nodes.filter((node) => node.level >= STORED_TREE_LEVEL);
}

/**
 * The hashes of these complete subtrees, in the order asked (undefined for one that cannot be
 * found: a row or an event missing), in one query: the stored ones as rows, the ones below
 * {@link STORED_TREE_LEVEL} hashed up from the leaves of their events.
 * @throws {AuditTreeIncomplete} ({@link noLeaf}) when an event needed has no leaf.
 */
async function readNodes(query: Query, ids: MerkleNodeId[]): Promise<(MerkleHash | undefined)[]> {
  if (ids.length === 0) return [];
  const stored = ids.filter((id) => id.level >= STORED_TREE_LEVEL);
  // The seq ranges under the computed nodes, merged: event seq is leaf seq - 1.
  const ranges = ids
    .filter((id) => id.level < STORED_TREE_LEVEL)
    .map((id) => [id.index * 2 ** id.level + 1, (id.index + 1) * 2 ** id.level] as const)
    .sort((a, b) => a[0] - b[0])
    .reduce<[number, number][]>((merged, [first, last]) => {
      const previous = merged.at(-1);
      if (previous && first <= previous[1] + 1) previous[1] = Math.max(previous[1], last);
      else merged.push([first, last]);
      return merged;
    }, []);
  const rows = await query<NodeRow[]>(NODES_SQL, [
    stored.map((id) => id.level),
    stored.map((id) => String(id.index)),
    ranges.map(([first]) => String(first)),
    ranges.map(([, last]) => String(last)),
  ]);
  const found = new Map<string, MerkleHash | null>();
  for (const r of rows) found.set(`${Number(r.level)}:${Number(r.idx)}`, r.hash === null ? null : new Uint8Array(r.hash));
  return ids.map((id) => (id.level >= STORED_TREE_LEVEL ? (found.get(nodeKey(id)) ?? undefined) : subtreeOfLeaves(id, (index) => found.get(`0:${index}`))));
}

/**
 * A node below {@link STORED_TREE_LEVEL} from its leaves (RFC 9162 §2.1.1: the subtree of 2^level
 * leaves from index × 2^level), each given by `leafAt` (null: the event has no leaf; undefined: it
 * is missing); undefined when one is missing.
 * @throws {AuditTreeIncomplete} ({@link noLeaf}) when an event has no leaf.
 */
export function subtreeOfLeaves(id: MerkleNodeId, leafAt: (index: number) => MerkleHash | null | undefined): MerkleHash | undefined {
  const first = id.index * 2 ** id.level;
  let layer: MerkleHash[] = [];
  for (let i = first; i < first + 2 ** id.level; i++) {
    const leaf = leafAt(i);
    if (leaf === undefined) return undefined;
    if (leaf === null) throw noLeaf(i + 1);
    layer.push(leaf);
  }
  while (layer.length > 1) {
    const next: MerkleHash[] = [];
    for (let i = 0; i < layer.length; i += 2) next.push(merkleNodeHash(layer[i]!, layer[i + 1]!, nodeDigest));
    layer = next;
  }
  return layer[0];
}

/**
 * The tree's compact range at `size` as stored ({@link compactRange}), largest subtree first; a
 * node that cannot be found is left out, so that the caller sees the range is not whole.
 */
async function storedEdge(query: Query, size: number): Promise<AuditTreeNode[]> {
  const ids = compactRange(size);
  const hashes = await readNodes(query, ids);
  return ids.flatMap((id, i) => {
    const found = hashes[i];
    return found ? [{ ...id, hash: found }] : [];
  });
}

/** Inserts Merkle tree nodes given as a JSON array of `{l, i, h}` (level, index, hex hash). */
function insertNodesSql(json: string): string {
  return `INSERT INTO audit_merkle_nodes (level, idx, hash)
    SELECT l, i, decode(h, 'hex') FROM jsonb_to_recordset(${json}) AS n(l smallint, i bigint, h text)`;
}

function nodesJson(nodes: AuditTreeNode[]): string {
  return `[${nodes.map((n) => `{"l":${n.level},"i":${n.index},"h":"${Buffer.from(n.hash.buffer, n.hash.byteOffset, n.hash.byteLength).toString('hex')}"}`).join(',')}]`;
}

function nodeKey(id: MerkleNodeId): string {
  return `${id.level}:${id.index}`;
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

/** A row as a checkpoint; the members a kind of checkpoint does not have are left out. */
function toCheckpoint(row: AuditCheckpointEntity): AuditCheckpoint {
  return {
    seq: row.seq,
    hash: row.hash.trim(),
    at: row.at,
    ...(row.note !== null ? { note: row.note } : {}),
    ...(row.kid !== null ? { kid: row.kid } : {}),
    ...(row.jws !== null ? { jws: row.jws } : {}),
  };
}

/** The events' columns, in the order {@link copyEvents} writes them. */
const COPY_EVENTS_SQL = 'COPY audit_events (seq, id, at, type, actor, subject, grant_id, txn, parent_id, data, prev_hash, hash) FROM STDIN';

const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * A column value in COPY's text format: NULL as `\N`; backslash, tab, newline and carriage return
 * escaped (every other character stands for itself, so a value can never end the data early).
 */
export function copyValue(value: string | null): string {
  if (value === null) return '\\N';
  return COPY_SPECIAL.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : value;
}

/**
 * The `data` member of an event's canonical text, as it was hashed. The text's members are in
 * RFC 8785 order (`actor`, `at`, `data`, `grant_id`, ...): `actor` and `at` are strings or null,
 * and every member after `data` a string, null or a number, in none of which a quote stands
 * unescaped, so `data` runs from the first `,"data":` to the last `,"grant_id":`.
 */
export function dataOfEventText(text: string): string {
  const start = text.indexOf(',"data":');
  const end = text.lastIndexOf(',"grant_id":');
  if (start < 0 || end <= start) throw new Error('an audit event text without data and grant_id members in canonical order');
  return text.slice(start + 8, end);
}

/**
 * The events as one COPY (PostgreSQL's bulk load: measured at about two thirds of the backend CPU
 * per event of an INSERT from one JSON value, ADR 0025), `data` cut from the text that was hashed
 * rather than serialised again. An id already in the chain fails the COPY with the unique index's
 * 23505, as the INSERT did.
 */
function copyEvents(client: PoolClient, events: AuditEvent[], texts: string[]): Promise<void> {
  let rows = '';
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    rows += `${e.seq}\t${copyValue(e.id)}\t${copyValue(e.at)}\t${copyValue(e.type)}\t${copyValue(e.actor)}\t${copyValue(e.subject)}\t${copyValue(e.grant_id)}\t${copyValue(e.txn)}\t${copyValue(e.parent_id)}\t${copyValue(dataOfEventText(texts[i]!))}\t${e.prev_hash}\t${e.hash}\n`;
  }
  return copyIn(client, COPY_EVENTS_SQL, rows);
}

/** Runs `copySql` (a `COPY ... FROM STDIN`) with `rows` as its data; settles when PostgreSQL has taken them or refused them. */
export function copyIn(client: Pick<PoolClient, 'query'>, copySql: string, rows: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = client.query(copyFrom(copySql));
    stream.on('error', reject);
    stream.on('finish', () => resolve());
    stream.end(rows);
  });
}
