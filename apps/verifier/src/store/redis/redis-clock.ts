import { Cluster, type Redis } from 'ioredis';
import type { RedisConnection } from './connection.js';

/** How often the offset is measured again while the connection stays up (clocks drift). */
const REFRESH_MS = 30_000;

/**
 * The decision deadline on Redis's own clock (issue 19, "Redis frozen"; decide.lua's header). The
 * verifier's clock and Redis's need not agree: the offset between them is measured with `TIME`
 * when the connection becomes ready and every {@link REFRESH_MS} after, off the request path, so a
 * decision costs no extra round trip.
 *
 * The measured offset is never larger than the true one (Redis read its clock no later than its
 * answer arrived), so a deadline errs early, never late; each decision's answer, which ends with
 * the clock its script read, tightens it further (the largest such bound is the closest). On a Redis Cluster each master is
 * measured and the smallest offset is used, for the same reason.
 */
export class RedisDeadlines {
  private offsetMs: number | undefined;
  private measuring: Promise<number> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly connection: RedisConnection,
    /** How long after it is sent a decision may still be taken: less than the command timeout. */
    private readonly budgetMs: number,
  ) {
    connection.onReady(() => {
      // Redis may have come back on another machine with another clock.
      this.offsetMs = undefined;
      void this.measure().catch(() => undefined);
    });
    this.timer = setInterval(() => {
      if (connection.isReady()) void this.measure().catch(() => undefined);
    }, REFRESH_MS);
    this.timer.unref();
  }

  /**
   * The deadline for a decision sent now, in epoch ms on Redis's clock. Known after the first
   * measurement; before it, the one decision that asks waits for it (StoreUnavailable if Redis
   * does not answer).
   */
  deadline(): number | Promise<number> {
    if (this.offsetMs !== undefined) return Math.floor(Date.now() + this.offsetMs + this.budgetMs);
    return this.measure().then((offset) => Math.floor(Date.now() + offset + this.budgetMs));
  }

  /**
   * Tightens the offset with the clock a decision script read (`redisMs`), now that its answer is
   * here: like a measurement, never more than the true offset. One node only: on a cluster each
   * master has its own clock, and the smallest measured offset stays.
   */
  observe(redisMs: number): void {
    if (!Number.isSafeInteger(redisMs) || this.offsetMs === undefined || this.connection.redis instanceof Cluster) return;
    const sample = redisMs - Date.now();
    if (sample > this.offsetMs) this.offsetMs = sample;
  }

  /** Stops the periodic measurement. */
  close(): void {
    clearInterval(this.timer);
  }

  private measure(): Promise<number> {
    this.measuring ??= this.connection
      .run('read the Redis clock', () => smallestOffset(this.connection.redis))
      .then((offset) => {
        this.offsetMs = offset;
        return offset;
      })
      .finally(() => {
        this.measuring = undefined;
      });
    return this.measuring;
  }
}

/** `TIME` exchanges per measurement of one node. */
const SAMPLES = 3;

/** Redis's clock minus ours, never more than it is, over every master of a cluster (the smallest). */
async function smallestOffset(redis: Redis | Cluster): Promise<number> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis];
  if (nodes.length === 0) throw new Error('no Redis master to read the clock of');
  const offsets = await Promise.all(nodes.map(offsetOf));
  return Math.min(...offsets);
}

/**
 * Redis read its clock before its answer reached us, so `TIME - (when the answer was read)` is at
 * most the true offset, and short of it by the exchange's time and any stall of this event loop.
 * The largest of a few such bounds is the closest that is still safe.
 */
async function offsetOf(node: Redis): Promise<number> {
  let best = -Infinity;
  for (let i = 0; i < SAMPLES; i++) {
    const [seconds, micros] = await node.time();
    const answeredAt = Date.now();
    best = Math.max(best, Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - answeredAt);
  }
  return best;
}
