/**
 * The ingestion floor of `npm run bench:audit` (issue 19, goal 3; ADR 0025): what any registry has
 * to do to record a verifier decision in a Merkle-tree log whose decisions are stored as bytes, one
 * row per group, and nothing more. `bench:audit` measures it beside the registry, in the same run,
 * as `bench:verify` measures the verifier beside its floor server.
 *
 * Per round, with the registry's own reader (`RedisVerifierEventSource`: SPOP the hint set, XRANGE
 * a share of 256 decisions from each grant stream it knows), and once the group is committed its
 * ack (XDEL of exactly the entries read): reading is the same code, so the two differ only in what
 * linking and storing cost.
 * Per decision: JSON.parse of the body (the least validation at the edge: a JSON object, and its
 * grant and transaction for the index), the entry written once as the bytes stored
 * (`{"seq":…,"at":…,"id":…,"outcome":…,"body":<the body as queued>}`), its RFC 9162 leaf
 * SHA-256(0x00 || entry), and the tree's compact range moved on (`MerkleFrontier`, node:crypto).
 * Per group, one transaction: the append lock, one row holding the group's entries, a row per
 * grant of the group (the index a rebuild or a transaction page reads), and the tree's nodes from
 * level 4 up, as the registry stores them.
 *
 * Not done, and needed by a real log: checkpoints, the step-ups a decision asks for, dead letters,
 * redelivery after a crash between commit and ack. Each is per group or rare, not per decision.
 *
 * Run by bench-audit.ts as a child process (`node --import @swc-node/register/esm-register
 * load-tests/audit/ingest-floor.ts`, environment REDIS_URL, WRIT_REDIS_PREFIX, DATABASE_URL: a
 * database of its own, which it fills; INGEST_FLOOR_UNTIL: see {@link UNTIL}); prints `ingest
 * floor ready`, stops on SIGTERM.
 */
import { hash } from 'node:crypto';
import { MerkleFrontier, merkleLeafHash } from '@writ/core';
import { Redis } from 'ioredis';
import pg from 'pg';
import { RedisVerifierEventSource } from '../../apps/registry/src/modules/audit/redis-verifier-events.js';

const MAX_GROUP = 256;
const STORED_TREE_LEVEL = 4;
const BUSY_DELAY_MS = 100;
const IDLE_DELAY_MS = 100;

/**
 * How far the floor goes per batch (INGEST_FLOOR_UNTIL): `read` (read and ack only: the transport),
 * `hash` (and parse, write and hash every entry, storing nothing), `store` (everything: the default).
 */
const UNTIL = process.env.INGEST_FLOOR_UNTIL ?? 'store';
if (!['read', 'hash', 'store'].includes(UNTIL)) throw new Error(`INGEST_FLOOR_UNTIL must be read, hash or store, not ${JSON.stringify(UNTIL)}`);

const digest = (bytes: Uint8Array): Uint8Array => hash('sha256', bytes, 'buffer');

const SCHEMA = [
  'CREATE TABLE IF NOT EXISTS floor_groups (first_seq bigint PRIMARY KEY, count integer NOT NULL, entries text NOT NULL)',
  'ALTER TABLE floor_groups ALTER entries SET STORAGE EXTERNAL',
  'CREATE TABLE IF NOT EXISTS floor_group_grants (grant_id text COLLATE "C" NOT NULL, first_seq bigint NOT NULL, txns text[] NOT NULL, PRIMARY KEY (grant_id, first_seq))',
  'CREATE TABLE IF NOT EXISTS floor_tree (level smallint, idx bigint, hash bytea NOT NULL, PRIMARY KEY (level, idx))',
];

async function main(): Promise<void> {
  const prefix = process.env.WRIT_REDIS_PREFIX || 'writ:';
  const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  const db = new pg.Client(process.env.DATABASE_URL);
  await db.connect();
  for (const statement of SCHEMA) await db.query(statement);
  const tree = new MerkleFrontier({ size: 0, hashes: [], digest });
  let stopping = false;
  let round: Promise<void> | undefined;

  const source = new RedisVerifierEventSource(redis, { prefix });

  const ingest = async (): Promise<number> => {
    const batch = await source.read(MAX_GROUP);
    if (batch.events.length === 0) return 0;
    if (UNTIL === 'read') {
      await batch.ack();
      return batch.events.length;
    }
    const at = new Date().toISOString();
    const firstSeq = tree.size + 1;
    const lines: string[] = [];
    const txnsByGrant = new Map<string, Set<string>>();
    const nodes: { level: number[]; idx: number[]; hash: Buffer[] } = { level: [], idx: [], hash: [] };
    const encoder = new TextEncoder();
    for (const { id, body, outcome } of batch.events) {
      const parsed: unknown = JSON.parse(body);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`decision ${id}: the body is not a JSON object`);
      const { grant_id: grantId, txn } = parsed as { grant_id?: unknown; txn?: unknown };
      if (typeof grantId === 'string') {
        const txns = txnsByGrant.get(grantId) ?? new Set<string>();
        if (typeof txn === 'string') txns.add(txn);
        txnsByGrant.set(grantId, txns);
      }
      const entry = `{"seq":${tree.size + 1},"at":"${at}","id":${JSON.stringify(id)},"outcome":${JSON.stringify(outcome)},"body":${body}}`;
      lines.push(entry);
      for (const node of tree.append(merkleLeafHash(encoder.encode(entry), digest))) {
        if (node.level < STORED_TREE_LEVEL) continue;
        nodes.level.push(node.level);
        nodes.idx.push(node.index);
        nodes.hash.push(Buffer.from(node.hash));
      }
    }
    if (UNTIL === 'hash') {
      await batch.ack();
      return batch.events.length;
    }
    const grantIds = [...txnsByGrant.keys()];
    await db.query('BEGIN');
    try {
      await db.query('SELECT pg_advisory_xact_lock(1)');
      // JSON text escapes every newline, so one entry per line keeps them apart.
      await db.query('INSERT INTO floor_groups VALUES ($1, $2, $3)', [firstSeq, lines.length, lines.join('\n')]);
      await db.query('INSERT INTO floor_group_grants SELECT g, $2, string_to_array(t, $4) FROM unnest($1::text[], $3::text[]) AS x(g, t)', [
        grantIds,
        firstSeq,
        grantIds.map((g) => [...txnsByGrant.get(g)!].join('\u001f')),
        '\u001f',
      ]);
      if (nodes.level.length > 0) await db.query('INSERT INTO floor_tree SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])', [nodes.level, nodes.idx, nodes.hash]);
      await db.query('COMMIT');
    } catch (error) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    await batch.ack();
    return batch.events.length;
  };

  const loop = (delayMs: number): void => {
    if (stopping) return;
    setTimeout(() => {
      round = ingest().then(
        (count) => loop(count >= MAX_GROUP ? 0 : count > 0 ? BUSY_DELAY_MS : IDLE_DELAY_MS),
        (error: unknown) => {
          console.error(`ingest floor: ${error instanceof Error ? error.message : String(error)}`);
          process.exit(1);
        },
      );
    }, delayMs);
  };
  loop(0);
  console.log('ingest floor ready');
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopping = true;
      void Promise.resolve(round)
        .finally(async () => {
          await db.end().catch(() => undefined);
          redis.disconnect();
        })
        .finally(() => process.exit(0));
    });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
