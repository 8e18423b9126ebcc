/**
 * What PostgreSQL itself spends per audit event, by storage shape (issue 19, goal 3):
 * `npm run bench:audit:storage`.
 *
 * The audit path's goal (25 µs of CPU per decision, registry and PostgreSQL together) depends on
 * what one event costs the database before any registry code runs. This writes the same events,
 * in groups of BENCH_GROUP (256) as the registry commits them, into a fresh database in several
 * shapes, and reads the CPU time of the one backend doing it from /proc (Linux; PostgreSQL on
 * this machine):
 *
 * - `rows as today (COPY)`: `audit_events` with its primary key, the unique index on `id` and the
 *   indexes on `grant_id` and `txn` (collation "C"), `data` as jsonb, written with one COPY per
 *   group as the registry does on PostgreSQL, with one tree row per 8 events;
 * - `rows by one JSON INSERT`: the same, inserted from one JSON literal per group (as the registry
 *   did before, and still does on PGlite);
 * - `rows, primary key only`: the same rows without the secondary indexes (what the indexes cost);
 * - `rows, data as text`: the same rows and indexes, `data` kept as the text it was hashed from;
 * - `one row per group`: the group's events as one text value, stored uncompressed (what a
 *   batch-per-row layout would cost: the floor under any row-per-event design).
 *
 * Each shape runs BENCH_GROUPS (200) groups after 20 unmeasured ones, shapes in turn, twice, and
 * the figures are the median of the two. Only 127.0.0.1 (DATABASE_URL) is used; the database is
 * dropped at the end.
 */
import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import { copyIn, copyValue } from '../../apps/registry/src/modules/audit/audit.repository.js';
import { processCpuSeconds } from '../support/cpu.js';
import { numberOption } from '../verify/setup.js';

const GROUP = numberOption('BENCH_GROUP', 256);
const GROUPS = numberOption('BENCH_GROUPS', 200);
const WARM_GROUPS = 20;

interface Shape {
  name: string;
  schema: string[];
  /** The group's statements after the lock (and after the COPY, if any); COMMIT is added to them. */
  insert(events: BenchEvent[]): string;
  /** For a shape written by COPY: the group's rows in COPY's text format, copied first. */
  copy?(events: BenchEvent[]): string;
}

interface BenchEvent {
  seq: number;
  id: string;
  at: string;
  type: string;
  actor: string;
  subject: string;
  grant_id: string;
  txn: string;
  parent_id: null;
  data: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

const literal = (text: string): string => `'${text.replaceAll("'", "''")}'`;

const EVENTS_TABLE = (data: 'jsonb' | 'text', indexes: boolean): string[] => [
  `CREATE TABLE audit_events (seq bigint PRIMARY KEY, id text COLLATE "C" NOT NULL ${indexes ? 'UNIQUE' : ''}, at text NOT NULL, type text NOT NULL,
     actor text, subject text, grant_id text COLLATE "C", txn text COLLATE "C", parent_id text, data ${data} NOT NULL, prev_hash char(64) NOT NULL, hash char(64) NOT NULL)`,
  ...(indexes ? ['CREATE INDEX ON audit_events (txn) WHERE txn IS NOT NULL', 'CREATE INDEX ON audit_events (grant_id) WHERE grant_id IS NOT NULL'] : []),
  'CREATE TABLE audit_merkle_nodes (level smallint, idx bigint, hash bytea NOT NULL, PRIMARY KEY (level, idx))',
];

/** One tree row per 8 events, as the registry stores level 4 and up (there, one per 16 at level 4, per 32 at 5, ...). */
const insertNodes = (events: BenchEvent[]): string => {
  const nodes = events.filter((e) => e.seq % 8 === 0).map((e) => `(4, ${e.seq / 8 - 1}, decode('${e.hash}', 'hex'))`);
  return nodes.length > 0 ? `INSERT INTO audit_merkle_nodes VALUES ${nodes.join(', ')}` : 'SELECT 1';
};

const insertRows = (data: 'jsonb' | 'text') => (events: BenchEvent[]): string => {
  const rows = `INSERT INTO audit_events SELECT seq, id, at, type, actor, subject, grant_id, txn, parent_id, ${data === 'jsonb' ? 'data' : 'data::text'}, prev_hash, hash
    FROM jsonb_to_recordset(${literal(JSON.stringify(events))}::jsonb) AS e(seq bigint, id text, at text, type text, actor text, subject text,
      grant_id text, txn text, parent_id text, data jsonb, prev_hash char(64), hash char(64))`;
  return `${rows}; ${insertNodes(events)}`;
};

const SHAPES: Shape[] = [
  {
    name: 'rows as today (COPY)',
    schema: EVENTS_TABLE('jsonb', true),
    copy: (events) =>
      events
        .map((e) => [String(e.seq), e.id, e.at, e.type, e.actor, e.subject, e.grant_id, e.txn, e.parent_id, JSON.stringify(e.data), e.prev_hash, e.hash].map(copyValue).join('\t') + '\n')
        .join(''),
    insert: insertNodes,
  },
  { name: 'rows by one JSON INSERT', schema: EVENTS_TABLE('jsonb', true), insert: insertRows('jsonb') },
  { name: 'rows, primary key only', schema: EVENTS_TABLE('jsonb', false), insert: insertRows('jsonb') },
  { name: 'rows, data as text', schema: EVENTS_TABLE('text', true), insert: insertRows('text') },
  {
    name: 'one row per group',
    schema: ['CREATE TABLE audit_batches (first_seq bigint PRIMARY KEY, count int NOT NULL, events text NOT NULL)', 'ALTER TABLE audit_batches ALTER events SET STORAGE EXTERNAL'],
    insert: (events) => `INSERT INTO audit_batches VALUES (${events[0]!.seq}, ${events.length}, ${literal(events.map((e) => JSON.stringify(e)).join('\n'))})`,
  },
];

function eventsFrom(first: number, count: number, previous: { hash: string }): BenchEvent[] {
  const grants = Array.from({ length: 16 }, (_, i) => `grt_bench_${i}`);
  const events: BenchEvent[] = [];
  let prev = previous.hash;
  for (let seq = first; seq < first + count; seq++) {
    const grantId = grants[seq % grants.length]!;
    const data = { service: 'svc_bench', jti: `tok_${grantId}`, method: 'GET', url: 'https://flights.example/api/flights', action: 'read', proof_jti: randomUUID(), proof_jkt: 'x'.repeat(43), at_ms: Date.now(), verifier: 'bench', outcome: 'allow' };
    const hash = createHash('sha256').update(prev).update(JSON.stringify(data)).digest('hex');
    events.push({ seq, id: `vd_${randomUUID()}`, at: new Date().toISOString(), type: 'verification.allowed', actor: 'agt_bench', subject: 'svc_bench', grant_id: grantId, txn: `txn_${grantId}`, parent_id: null, data, prev_hash: prev, hash });
    prev = hash;
  }
  previous.hash = prev;
  return events;
}

/** The backend's CPU seconds so far (it lives as long as the connection). */
function backendCpuSeconds(pid: number): number {
  const seconds = processCpuSeconds(pid);
  if (seconds === undefined) throw new Error(`the PostgreSQL backend ${pid} is gone`);
  return seconds;
}

/** CPU µs per event of one run of `shape` on a fresh table. */
async function run(client: pg.Client, pid: number, shape: Shape): Promise<number> {
  await client.query('DROP TABLE IF EXISTS audit_events, audit_merkle_nodes, audit_batches');
  for (const statement of shape.schema) await client.query(statement);
  const previous = { hash: '0'.repeat(64) };
  let before = 0;
  for (let g = 0; g < WARM_GROUPS + GROUPS; g++) {
    if (g === WARM_GROUPS) before = backendCpuSeconds(pid);
    const events = eventsFrom(g * GROUP + 1, GROUP, previous);
    // As the registry commits a group: the lock and the head, then the writes and COMMIT.
    await client.query(`BEGIN; SELECT pg_advisory_xact_lock(1); SELECT 1`);
    if (shape.copy) await copyIn(client, 'COPY audit_events FROM STDIN', shape.copy(events));
    await client.query(`${shape.insert(events)}; COMMIT`);
  }
  return ((backendCpuSeconds(pid) - before) * 1e6) / (GROUPS * GROUP);
}

async function main(): Promise<void> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) throw new Error('DATABASE_URL must name a PostgreSQL server on this machine (its backends are read from /proc)');
  const name = `writ_bench_storage_${randomUUID().slice(0, 8)}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const client = new pg.Client(url.toString());
  try {
    await client.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const pid = rows[0]!.pid;
    console.log(`PostgreSQL backend CPU per event, groups of ${GROUP}, ${GROUPS} groups per run, two runs per shape in turn (median)`);
    const figures = new Map<string, number[]>();
    for (let round = 0; round < 2; round++) {
      for (const shape of SHAPES) figures.set(shape.name, [...(figures.get(shape.name) ?? []), await run(client, pid, shape)]);
    }
    for (const [shapeName, values] of figures) {
      const sorted = [...values].sort((a, b) => a - b);
      console.log(`  ${shapeName.padEnd(26)} ${((sorted[0]! + sorted[1]!) / 2).toFixed(1).padStart(6)} us  (runs ${values.map((v) => v.toFixed(1)).join(', ')})`);
    }
    console.log('  (the backend only: the WAL writer and checkpointer add to every shape in proportion to the bytes written)');
  } finally {
    await client.end().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${name}`).catch(() => undefined);
    await admin.end();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
