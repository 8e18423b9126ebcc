import { type QueuedDecisionEvent, queuedEventOfStreamEntry } from '@writ/contracts';
import { grantOfKey, grantStateKey, verifierKey } from '@writ/core';
import { Cluster, type Redis } from 'ioredis';
import { isKeyable } from '../revocations/redis-revocation-bus.js';

/** Keys one SCAN call looks at (see scanGrantStreams). */
const SCAN_STEP = 100;

/** A verifier decision as it waits in the queue: the one shape of `@writ/contracts`. */
export type QueuedVerifierEvent = QueuedDecisionEvent;

/** A batch read from the queue; `ack` removes exactly these events from it. */
export interface VerifierEventBatch {
  events: QueuedVerifierEvent[];
  ack(): Promise<void>;
}

/**
 * Where verifier events wait: Redis streams (`RedisVerifierEventSource`) or, embedded, the
 * verifier's in-process store. Delivery is at least once: what is read and not acked is read again.
 */
export interface VerifierEventSource {
  /** Up to `max` waiting events (those of one grant in order), or an empty batch. */
  read(max: number): Promise<VerifierEventBatch>;
  /** How many events wait, when the source can tell (for `/readyz`). */
  depth?(): Promise<number>;
}

export interface RedisVerifierEventSourceOptions {
  /** `WRIT_REDIS_PREFIX`, as the verifiers use it. */
  prefix?: string;
  /** How often every master is scanned for grant streams the hint set missed. */
  scanIntervalMs?: number;
  /** Grant ids taken from the hint set per read. */
  hintBatch?: number;
  /** Grant streams read in parallel. */
  parallel?: number;
}

interface Located extends QueuedVerifierEvent {
  stream: string;
  entryId: string;
}

/**
 * Reads the verifier's decision events from Redis (docs/adr/0011): the global stream
 * `<prefix>verifier:events` and the per-grant streams `<prefix>{g:<grant>}:events`. Which grant
 * streams to look at comes from the `event-grants` hint set the verifiers fill (SPOP), from a
 * SCAN of every master at the first read and every `scanIntervalMs` after (a verifier that died
 * before writing its hints), and from the streams found non-empty before, which are read until
 * they are empty. `ack` XDELs exactly the entries returned.
 *
 * The connection is the caller's (one node or a Cluster); the source does not close it.
 */
export class RedisVerifierEventSource implements VerifierEventSource {
  private readonly prefix: string;
  private readonly scanIntervalMs: number;
  private readonly hintBatch: number;
  private readonly parallel: number;
  /** Grants whose stream may hold entries, in the order they are visited (round robin). */
  private readonly active = new Set<string>();
  private lastScan: number | undefined;

  constructor(
    private readonly redis: Redis | Cluster,
    options: RedisVerifierEventSourceOptions = {},
  ) {
    this.prefix = options.prefix ?? 'writ:';
    this.scanIntervalMs = options.scanIntervalMs ?? 30_000;
    this.hintBatch = options.hintBatch ?? 1_000;
    this.parallel = options.parallel ?? 32;
  }

  async read(max: number): Promise<VerifierEventBatch> {
    if (this.lastScan === undefined || Date.now() - this.lastScan >= this.scanIntervalMs) {
      for (const grantId of await this.scanGrantStreams()) this.active.add(grantId);
      this.lastScan = Date.now();
    }
    const hinted = await this.redis.spop(verifierKey(this.prefix, 'event-grants'), this.hintBatch);
    for (const grantId of hinted) if (isKeyable(grantId)) this.active.add(grantId);

    const located: Located[] = [];
    if (max > 0) located.push(...(await this.range(verifierKey(this.prefix, 'events'), '-', max)));
    const visited: string[] = [];
    const grants = [...this.active];
    for (let i = 0; i < grants.length && located.length < max; i += this.parallel) {
      const chunk = grants.slice(i, i + this.parallel);
      visited.push(...chunk);
      // Each stream is asked for its share of what the batch still wants, not for all of it: with
      // a backlog in every stream, asking each for `max` read (and parsed) up to `parallel` times
      // what the batch keeps. A stream that gave its whole share may hold more, and is asked again
      // for its share of the rest, from after the last entry it gave, until the batch is full or
      // every stream is read to its end.
      let open = chunk.map((grantId) => ({ grantId, from: '-' }));
      while (open.length > 0 && located.length < max) {
        const share = Math.ceil((max - located.length) / open.length);
        const ranges = await Promise.all(open.map(({ grantId, from }) => this.range(this.grantStream(grantId), from, share)));
        const more: { grantId: string; from: string }[] = [];
        open.forEach(({ grantId, from }, j) => {
          const entries = ranges[j]!;
          // An empty stream leaves the set; its next event comes with a new hint (or the next scan).
          if (entries.length === 0 && from === '-') this.active.delete(grantId);
          // Each grant's part of the batch is a prefix of its stream, in stream order: the batch is
          // only ever cut at its end.
          const kept = entries.slice(0, Math.max(0, max - located.length));
          located.push(...kept);
          if (kept.length === share) more.push({ grantId, from: entryIdAfter(kept.at(-1)!.entryId) });
        });
        open = more;
      }
    }
    // The grants read this time go to the back, so a busy grant does not starve the others.
    for (const grantId of visited) {
      if (this.active.delete(grantId)) this.active.add(grantId);
    }

    return {
      events: located.map(({ stream: _stream, entryId: _entryId, ...event }) => event),
      ack: async () => {
        const byStream = new Map<string, string[]>();
        for (const e of located) {
          const ids = byStream.get(e.stream);
          if (ids) ids.push(e.entryId);
          else byStream.set(e.stream, [e.entryId]);
        }
        await Promise.all([...byStream].map(([stream, ids]) => this.redis.xdel(stream, ...ids)));
      },
    };
  }

  /**
   * Events waiting in the global stream and in every grant stream this reader knows of (those
   * hinted or found by its last scan and not yet read empty): one XLEN each, pipelined per node.
   */
  async depth(): Promise<number> {
    const streams = [verifierKey(this.prefix, 'events'), ...[...this.active].map((grantId) => this.grantStream(grantId))];
    const lengths = await Promise.all(streams.map((stream) => this.redis.xlen(stream)));
    return lengths.reduce((total, length) => total + length, 0);
  }

  /** Grants whose stream would be found by a scan now (every master of a cluster). */
  async scanGrantStreams(): Promise<string[]> {
    // The prefix literally, then any grant's events key (the grant part is the glob `*`).
    const pattern = `${escapeGlob(this.prefix)}${grantStateKey('', '*', 'events')}`;
    const nodes = this.redis instanceof Cluster ? this.redis.nodes('master') : [this.redis];
    const found = new Set<string>();
    await Promise.all(
      nodes.map(async (node) => {
        let cursor = '0';
        do {
          // Small steps: Redis runs one SCAN call at a time, and every verifier decision waits
          // behind it. With some 10^5 keys (proof jtis live five minutes), COUNT 1000 held Redis
          // for about 1.2 ms per call, in runs of a hundred calls: a tail the verifier's p99 saw.
          const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_STEP, 'TYPE', 'stream');
          for (const key of keys) {
            const grantId = this.grantOf(key);
            if (grantId !== undefined) found.add(grantId);
          }
          cursor = next;
        } while (cursor !== '0');
      }),
    );
    return [...found];
  }

  private grantStream(grantId: string): string {
    return grantStateKey(this.prefix, grantId, 'events');
  }

  /** The grant whose events stream `key` is, or undefined for any other key the glob matched. */
  private grantOf(key: string): string | undefined {
    const grantId = grantOfKey(this.prefix, key);
    return grantId !== undefined && this.grantStream(grantId) === key ? grantId : undefined;
  }

  private async range(stream: string, from: string, count: number): Promise<Located[]> {
    const entries = await this.redis.xrange(stream, from, '+', 'COUNT', count);
    return entries.map(([entryId, fields]) => ({ stream, entryId, ...queuedEventOfStreamEntry(stream, entryId, fields) }));
  }
}

/**
 * The least stream entry id after `entryId` (`<ms>-<seq>`: the next sequence number), as an
 * inclusive XRANGE start: what an exclusive `(` start says, on any Redis with streams.
 */
export function entryIdAfter(entryId: string): string {
  const dash = entryId.indexOf('-');
  const ms = BigInt(entryId.slice(0, dash));
  const seq = BigInt(entryId.slice(dash + 1));
  return seq < MAX_ENTRY_PART ? `${ms}-${seq + 1n}` : `${ms + 1n}-0`;
}

/** The largest millisecond or sequence part of a stream entry id (an unsigned 64-bit number). */
const MAX_ENTRY_PART = 2n ** 64n - 1n;

/** Redis glob: `*`, `?`, `[`, `]` and `\` of the prefix match themselves. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
