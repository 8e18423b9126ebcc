import {
  type Clock,
  type GrantStateSnapshot,
  grantStateKey,
  RESTORE_GRANT_LUA,
  restoreGrantCommand,
  REVOCATION_KINDS,
  type RevocationKind,
  revocationChannel,
  revocationKey,
  systemClock,
  verifierKey,
} from '@writ/core';
import { Cluster, type ClusterNode, Redis } from 'ioredis';
import { z } from 'zod';
import {
  type DecisionInput,
  type DecisionOutcome,
  GrantStateMissing,
  type GrantStateSource,
  type QueuedEvent,
  type RevocationNotice,
  StoreUnavailable,
  type VerifierStore,
  type VerifierStoreAdmin,
} from './store.js';

/**
 * Where the store's Redis is: a `redis://` URL (one node), the start-up nodes of a Redis Cluster,
 * or a client the caller built and owns (then the caller chooses its options; the store neither
 * reconfigures nor closes it).
 */
export type RedisTarget = string | ClusterNode[] | Redis | Cluster;

export interface RedisVerifierStoreOptions {
  /** Put before every key and the revocation channel (`WRIT_REDIS_PREFIX`); no `{` or `}`. */
  prefix?: string;
  /** A command that has not answered after this long fails the decision (fail closed). */
  commandTimeoutMs?: number;
  /** Events kept in memory while Redis is unreachable; beyond this they are counted in {@link RedisVerifierStore.droppedEvents}. */
  backlogMax?: number;
  /** How often the grants that got events are added to the `event-grants` hint set. */
  hintFlushMs?: number;
  /** First reconnection / retry delay; doubles up to `maxRetryMs`. */
  minRetryMs?: number;
  maxRetryMs?: number;
  /** The clock revocation TTLs are computed from (`expiresAtMs - now`). */
  clock?: Clock;
  logger?: { warn(message: string): void };
  /**
   * Where a grant's lost state comes from (ADR 0017) when the registry runs with this store (the
   * embedded `npm start` on Redis, tests): a decision that finds no state rebuilds it and goes
   * on. Without it, the store asks the registry on the `restore` channel and answers 503 until the
   * registry has written the state.
   */
  grantState?: GrantStateSource;
  /**
   * Without {@link grantState}: how long a decision that found no state waits for the registry to
   * write it (asked on the `restore` channel) before it answers 503. A grant's first decision can
   * race the registry's write of its empty state at approval; this absorbs that race.
   */
  stateWaitMs?: number;
}

/** How long a grant's rebuilt state lives without an allow: longer than any grant (ADR 0011). */
const RESTORED_STATE_TTL_MS = 31 * 24 * 3600_000;
/** One restore request per grant per this long, per verifier: decisions retry, the channel need not. */
const RESTORE_REQUEST_EVERY_MS = 1_000;
/** How often a decision waiting for a grant's state looks for it. */
const STATE_POLL_MS = 10;

export const DEFAULT_PREFIX = 'writ:';

/** Largest money value (thousandths) the store accepts: 10^12 currency units (ADR 0003). */
export const MAX_MINOR = 1e15;

/** Events per pipeline when the backlog is written back. */
const BACKLOG_BATCH = 256;

/**
 * The whole decision (docs/adr/0011), one script, one round trip. Every key is under the grant's hash tag.
 *
 * KEYS: 1 proof, 2 counters, 3 rate, 4 events, then the revocation keys (in checking order), then,
 *       with a step-up only, stepup-for:<fingerprint> and stepup:<newId>.
 * ARGV: 1 proof TTL ms, 2 state TTL ms, 3 event id, 4 event body,
 *       5 precheck code ('' = none), 6 max uses ('' = none),
 *       7 rate limit ('' = none), 8 window start (now - window: the window is after it), 9 window ms, 10 now ms, 11 rate member,
 *       12 amount in thousandths ('' = no money), 13 total max ('' = none),
 *       with a step-up only: 14 step-up key prefix, 15 new step-up id, 16 step-up request JSON, 17 step-up TTL ms,
 *       18 a new step-up's expiry (epoch ms).
 *
 * Nothing is sent that the decision does not use: a request without a step-up carries neither its
 * keys nor its arguments, and a revocation's kind is read from its key
 * (`<prefix>{g:<grant>}:revoked:<kind>:<value>`: the first `}` closes the hash tag) only when it
 * is revoked. Each argument is a string Redis copies into Lua, and each `redis.call` costs about a
 * microsecond beyond its command: the revocation keys are tested with one EXISTS, and one by one
 * only when one of them exists.
 *
 * Rate (ADR 0011 "Rate"): the grant's one log serves tokens with different windows and limits, so a
 * decision never trims it by its own window (that shortened a longer window's count, issue 16
 * finding 7). It counts over its own window (the `limit`-th newest entry, then ZCOUNT) and keeps
 * the newest `rate_keep` entries, the largest limit any decision on the grant asked for (counters
 * hash, only ever raised); `rate_floor` is the newest instant ever trimmed, and a window reaching
 * back past it cannot be counted, so it is refused until the trimmed entries leave that window.
 *
 * The event of an `approval_required` decision carries the step-up's id and expiry (fields
 * `step_up`, `step_up_expires_at`), and that of an allow the step-up it consumed (`step_up`): the
 * event body is written before the script decides, so only the script can name them.
 *
 * Numbers are never formatted by Lua (tostring(1e15) is "1e+15"): every number sent to Redis comes
 * from ARGV as the caller's decimal string, money is added with HINCRBY, and the values compared
 * stay below 2^53, where Lua's doubles are exact.
 */
const DECIDE_LUA = `
local function emit(label, stepUp, expires)
  local entry = {'XADD', KEYS[4], '*', 'id', ARGV[3], 'body', ARGV[4], 'outcome', label}
  if stepUp then
    table.insert(entry, 'step_up')
    table.insert(entry, stepUp)
  end
  if expires then
    table.insert(entry, 'step_up_expires_at')
    table.insert(entry, expires)
  end
  redis.call(unpack(entry))
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
end
if redis.call('HEXISTS', KEYS[2], 'state') == 0 then
  return {'no_state'}
end
local stepUp = #ARGV >= 14
local lastRevocation = #KEYS
if stepUp then lastRevocation = #KEYS - 2 end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  emit('replayed')
  return {'replayed'}
end
if lastRevocation >= 5 and redis.call('EXISTS', unpack(KEYS, 5, lastRevocation)) > 0 then
  for i = 5, lastRevocation do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      emit('revoked:' .. string.match(KEYS[i], '}:revoked:(%a+):'))
      return {'revoked', i - 4}
    end
  end
end
if ARGV[5] ~= '' then
  emit(ARGV[5])
  return {'precheck'}
end
local counters = redis.call('HMGET', KEYS[2], 'uses', 'spent', 'rate_keep', 'rate_floor')
local uses = tonumber(counters[1] or '0')
if ARGV[6] ~= '' and uses >= tonumber(ARGV[6]) then
  emit('max_uses')
  return {'max_uses', uses}
end
local rateCount = 0
local keep = tonumber(counters[3] or '0')
local floor = counters[4]
if ARGV[7] ~= '' then
  local limit = tonumber(ARGV[7])
  if limit > keep then
    redis.call('HSET', KEYS[2], 'rate_keep', ARGV[7])
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    keep = limit
  end
  if limit == 0 then
    emit('rate_limited')
    return {'rate_limited', ARGV[9]}
  end
  local nth = redis.call('ZREVRANGE', KEYS[3], limit - 1, limit - 1, 'WITHSCORES')
  if nth[2] and tonumber(nth[2]) > tonumber(ARGV[8]) then
    emit('rate_limited')
    return {'rate_limited', tonumber(nth[2]) + tonumber(ARGV[9]) - tonumber(ARGV[10])}
  end
  if floor and tonumber(floor) > tonumber(ARGV[8]) then
    emit('rate_limited')
    return {'rate_limited', tonumber(floor) + tonumber(ARGV[9]) - tonumber(ARGV[10])}
  end
  rateCount = redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[8], '+inf') + 1
end
local spent = counters[2] or '0'
if ARGV[12] ~= '' and ARGV[13] ~= '' and tonumber(spent) + tonumber(ARGV[12]) > tonumber(ARGV[13]) then
  emit('budget_exceeded')
  return {'budget_exceeded', spent}
end
local consumed = ''
if stepUp then
  local stepUpFor, newStepUp = KEYS[#KEYS - 1], KEYS[#KEYS]
  local id = redis.call('GET', stepUpFor)
  local status = false
  if id then status = redis.call('HGET', ARGV[14] .. id, 'status') end
  if status == 'approved' then
    redis.call('HSET', ARGV[14] .. id, 'status', 'used')
    redis.call('DEL', stepUpFor)
    consumed = id
  elseif status == 'pending' then
    emit('approval_required', id, redis.call('HGET', ARGV[14] .. id, 'expires'))
    return {'approval_required', id}
  else
    redis.call('DEL', newStepUp)
    redis.call('HSET', newStepUp, 'status', 'pending', 'request', ARGV[16], 'expires', ARGV[18])
    redis.call('PEXPIRE', newStepUp, ARGV[17])
    redis.call('SET', stepUpFor, ARGV[15], 'PX', ARGV[17])
    emit('approval_required', ARGV[15], ARGV[18])
    return {'approval_required', ARGV[15]}
  end
end
local newUses = redis.call('HINCRBY', KEYS[2], 'uses', 1)
if ARGV[12] ~= '' then spent = redis.call('HINCRBY', KEYS[2], 'spent', ARGV[12]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[10], ARGV[11])
  local excess = redis.call('ZCARD', KEYS[3]) - keep
  if excess > 0 then
    local cut = redis.call('ZRANGE', KEYS[3], excess - 1, excess - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, excess - 1)
    if not floor or tonumber(cut[2]) > tonumber(floor) then redis.call('HSET', KEYS[2], 'rate_floor', cut[2]) end
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
if consumed ~= '' then emit('allow', consumed) else emit('allow') end
return {'allow', newUses, spent, rateCount, consumed}
`;

/** KEYS: 1 stepup:<id>. Flips `pending` to `approved`; 1 when it did. */
const APPROVE_LUA = `
if redis.call('HGET', KEYS[1], 'status') == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'approved')
  return 1
end
return 0
`;

interface ScriptCommands {
  writVerifierDecide(numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  writVerifierApprove(key: string): Promise<unknown>;
  writVerifierRestore(numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
}

/** What the registry writes under a revocation key and publishes on the channel (ADR 0008). */
const WireRevocation = z.object({
  kind: z.enum(REVOCATION_KINDS as [RevocationKind, ...RevocationKind[]]),
  value: z.string(),
  grantIds: z.array(z.string()),
  expiresAt: z.iso.datetime(),
});

/**
 * The verifier's state on Redis or Redis Cluster (docs/adr/0011): one Lua script per decision, all
 * its keys under the grant's hash tag, the decision's event queued in the same script. Fails
 * closed: any connection error, timeout or unexpected answer rejects with {@link StoreUnavailable},
 * and ioredis reconnects in the background so the same store works again when Redis is back.
 */
export class RedisVerifierStore implements VerifierStore, VerifierStoreAdmin {
  readonly prefix: string;
  private readonly redis: Redis | Cluster;
  private readonly owned: boolean;
  private readonly commands: ScriptCommands;
  private readonly timeoutMs: number;
  private readonly backlogMax: number;
  private readonly hintFlushMs: number;
  private readonly minRetryMs: number;
  private readonly maxRetryMs: number;
  private readonly clock: Clock;
  private readonly logger: { warn(message: string): void };

  /** Grants whose events stream got an entry since the last hint flush. */
  private hints = new Set<string>();
  private hintTimer: NodeJS.Timeout | undefined;
  private hintFailures = 0;
  private hintFlushing: Promise<void> | undefined;

  /** Events that could not be written (Redis unreachable), oldest first. */
  private backlog: QueuedEvent[] = [];
  private backlogTimer: NodeJS.Timeout | undefined;
  private backlogFailures = 0;
  private backlogFlushing: Promise<void> | undefined;
  private dropped = 0;

  private subscriber: Redis | Cluster | undefined;
  private subscribed: Promise<void> | undefined;
  private readonly listeners = new Set<(notice: RevocationNotice) => void>();
  private closed = false;
  private outageWarned = false;

  constructor(target: RedisTarget, options: RedisVerifierStoreOptions = {}) {
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    if (/[{}]/.test(this.prefix)) throw new TypeError('the key prefix may not contain { or }');
    this.timeoutMs = options.commandTimeoutMs ?? 500;
    this.backlogMax = options.backlogMax ?? 100_000;
    this.hintFlushMs = options.hintFlushMs ?? 50;
    this.minRetryMs = options.minRetryMs ?? 50;
    this.maxRetryMs = options.maxRetryMs ?? 2_000;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? { warn: (message) => console.warn(`[verifier store] ${message}`) };

    if (target instanceof Redis || target instanceof Cluster) {
      this.redis = target;
      this.owned = false;
    } else {
      this.owned = true;
      // No offline queue and no retries of a command: while Redis is away a decision fails at once
      // (deny, 503) instead of waiting. Reconnection goes on in the background.
      const redisOptions = { commandTimeout: this.timeoutMs, maxRetriesPerRequest: 0, connectionName: 'writ-verifier' } as const;
      // No auto-pipelining: it saves a system call per decision under heavy load (about 15 % of
      // the verifier's CPU there), but ioredis' pipelines keep about 2 MB alive per young-generation
      // collection, whose promotion then costs 3 to 10 ms pauses: the p99 at a steady 1,000 req/s
      // went from about 5 to about 9 ms with it (measured with --trace-gc-nvp and bench:verify).
      this.redis =
        typeof target === 'string'
          ? new Redis(target, { ...redisOptions, enableOfflineQueue: false, retryStrategy: (attempt) => this.backoff(attempt) })
          : new Cluster(target, {
              enableOfflineQueue: false,
              redisOptions,
              clusterRetryStrategy: (attempt) => this.backoff(attempt),
              // A node that went away is reconnected too, not only the cluster as a whole.
              clusterNodeRetryStrategy: (attempt) => this.backoff(attempt),
              retryDelayOnFailover: 20,
              retryDelayOnClusterDown: 20,
              maxRedirections: 4,
            });
    }
    this.redis.defineCommand('writVerifierDecide', { lua: DECIDE_LUA });
    this.redis.defineCommand('writVerifierApprove', { lua: APPROVE_LUA, numberOfKeys: 1 });
    this.redis.defineCommand('writVerifierRestore', { lua: RESTORE_GRANT_LUA });
    this.grantState = options.grantState;
    this.stateWaitMs = options.stateWaitMs ?? 500;
    this.commands = this.redis as unknown as ScriptCommands;
    this.redis.on('error', (error: unknown) => {
      if (this.outageWarned || this.closed) return;
      this.outageWarned = true;
      this.logger.warn(`Redis connection: ${describe(error)}; reconnecting (decisions fail closed meanwhile)`);
    });
    this.redis.on('ready', () => {
      this.outageWarned = false;
      this.kickBacklog();
      this.scheduleHints(0);
    });
  }

  /**
   * Revocation keys by the revocations list: the verifier hands the same list for every decision
   * on one token, so they are built once per token, not per request.
   */
  private readonly revocationKeys = new WeakMap<DecisionInput['revocations'], { grantId: string; keys: string[] }>();

  private revocationKeysOf(grantId: string, revocations: DecisionInput['revocations']): string[] {
    let ready = this.revocationKeys.get(revocations);
    if (ready === undefined || ready.grantId !== grantId) {
      ready = { grantId, keys: revocations.map((r) => revocationKey(this.prefix, grantId, r.kind, r.value)) };
      this.revocationKeys.set(revocations, ready);
    }
    return ready.keys;
  }

  async decide(input: DecisionInput): Promise<DecisionOutcome> {
    const { grantId, nowMs } = input;
    checkInteger('nowMs', nowMs, 0);
    checkInteger('stateTtlMs', input.stateTtlMs, 1);
    if (input.maxUses !== undefined) checkInteger('maxUses', input.maxUses, 0);
    if (input.rate) {
      checkInteger('rate.limit', input.rate.limit, 0);
      checkInteger('rate.windowMs', input.rate.windowMs, 1);
    }
    const amount = input.amount;
    if (amount) {
      checkInteger('amount.minor', amount.minor, 0, MAX_MINOR);
      if (amount.totalMaxMinor !== undefined) checkInteger('amount.totalMaxMinor', amount.totalMaxMinor, 0, MAX_MINOR);
      if (amount.stepUp) checkInteger('amount.stepUp.ttlMs', amount.stepUp.ttlMs, 1);
    }
    const stepUp = amount?.stepUp;
    const p = this.prefix;
    const keys = [
      grantStateKey(p, grantId, 'proof', `${input.proof.jkt}:${input.proof.jti}`),
      grantStateKey(p, grantId, 'counters'),
      grantStateKey(p, grantId, 'rate'),
      grantStateKey(p, grantId, 'events'),
      ...this.revocationKeysOf(grantId, input.revocations),
    ];
    const args = [
      String(Math.max(1, Math.ceil(input.proof.keepUntilMs - nowMs))),
      String(input.stateTtlMs),
      input.event.id,
      input.event.body,
      input.precheck?.code ?? '',
      input.maxUses === undefined ? '' : String(input.maxUses),
      input.rate ? String(input.rate.limit) : '',
      input.rate ? String(nowMs - input.rate.windowMs) : '',
      input.rate ? String(input.rate.windowMs) : '',
      String(nowMs),
      `${nowMs}:${input.proof.jkt}:${input.proof.jti}`,
      amount ? String(amount.minor) : '',
      amount?.totalMaxMinor === undefined ? '' : String(amount.totalMaxMinor),
    ];
    if (stepUp) {
      keys.push(grantStateKey(p, grantId, 'stepup-for', stepUp.fingerprint), grantStateKey(p, grantId, 'stepup', stepUp.newId));
      args.push(grantStateKey(p, grantId, 'stepup', ''), stepUp.newId, stepUp.request, String(stepUp.ttlMs), String(nowMs + stepUp.ttlMs));
    }
    this.coalesceWrites();
    let reply = await this.run('decide', () => this.commands.writVerifierDecide(keys.length, ...keys, ...args));
    if (isNoState(reply)) {
      // ADR 0017: this Redis lost the grant's state (or never had it). Never decide from zero.
      await this.stateMissing(grantId);
      reply = await this.run('decide', () => this.commands.writVerifierDecide(keys.length, ...keys, ...args));
      if (isNoState(reply)) throw new GrantStateMissing(grantId);
    }
    const outcome = parseDecision(reply, input);
    this.hints.add(grantId);
    this.scheduleHints(this.hintFlushMs);
    return outcome;
  }

  /** Whether the connection's socket is corked until the end of this turn of the event loop. */
  private corked = false;

  /**
   * Holds this turn's decisions in the socket (cork) and sends them in one write when the turn's
   * I/O callbacks are done (uncork in `setImmediate`): requests that arrived together go to Redis
   * together, one system call instead of one each, and Redis reads them in one go too. Unlike
   * ioredis' auto-pipelining this allocates nothing per command. One Redis node only: a cluster
   * routes each command to its node's own socket.
   */
  private coalesceWrites(): void {
    if (this.corked || !(this.redis instanceof Redis)) return;
    const stream = (this.redis as unknown as { stream?: { cork(): void; uncork(): void; writable: boolean } }).stream;
    if (stream === undefined || !stream.writable) return;
    stream.cork();
    this.corked = true;
    setImmediate(() => {
      this.corked = false;
      stream.uncork();
    });
  }

  /**
   * Never throws: when Redis cannot take the event now, it waits in memory (oldest first, up to
   * `backlogMax`) and is written as soon as Redis is back.
   */
  async queueEvent(event: QueuedEvent): Promise<void> {
    if (this.backlog.length === 0 && !this.closed) {
      try {
        await this.run('queue event', () => this.redis.xadd(verifierKey(this.prefix, 'events'), '*', 'id', event.id, 'body', event.body, 'outcome', event.outcome));
        return;
      } catch {
        // Falls through to the backlog.
      }
    }
    this.enqueue(event);
    this.kickBacklog();
  }

  /**
   * Resolves true once the connection is ready (a decision made before that fails closed), or
   * false after `timeoutMs`. For start-up: serve only once Redis answers.
   */
  async whenReady(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.isReady()) {
      if (this.closed || Date.now() >= deadline) return false;
      await sleep(10);
    }
    return true;
  }

  ready(): boolean {
    return !this.closed && this.isReady();
  }

  /** Events waiting in memory for Redis. */
  get backlogSize(): number {
    return this.backlog.length;
  }

  /** Events lost because the backlog was full. */
  get droppedEvents(): number {
    return this.dropped;
  }

  /** Resolves true once the backlog is empty, or false after `timeoutMs`. */
  async backlogDrained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.backlog.length > 0 || this.backlogFlushing) {
      if (Date.now() >= deadline) return false;
      this.kickBacklog();
      await sleep(10);
    }
    return true;
  }

  onRevocation(listener: (notice: RevocationNotice) => void): () => void {
    this.listeners.add(listener);
    if (!this.subscriber && !this.closed) {
      // Subscriber mode takes a connection of its own. It may queue SUBSCRIBE until connected, and
      // ioredis subscribes again after every reconnection.
      const subscriber =
        this.redis instanceof Cluster
          ? this.redis.duplicate(undefined, { enableOfflineQueue: true })
          : this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined, connectionName: 'writ-verifier-revocations' });
      this.subscriber = subscriber;
      subscriber.on('error', () => undefined);
      const channel = revocationChannel(this.prefix);
      subscriber.on('message', (from: string, message: string) => {
        if (from === channel) this.deliver(message);
      });
      this.subscribed = subscriber.subscribe(channel).then(
        () => undefined,
        (error: unknown) => this.logger.warn(`could not subscribe to ${channel}: ${describe(error)}`),
      );
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Resolves once the revocation subscription is active (after the first {@link onRevocation}). */
  async listening(): Promise<void> {
    await this.subscribed;
  }

  /** Writes what the registry writes (ADR 0008): one key per grant with the TTL left, then the announcement. */
  async revoke(notice: RevocationNotice): Promise<void> {
    const ttlMs = Math.ceil(notice.expiresAtMs - this.clock.now());
    if (ttlMs <= 0) return;
    const message = JSON.stringify({ kind: notice.kind, value: notice.value, grantIds: notice.grantIds, expiresAt: new Date(notice.expiresAtMs).toISOString() });
    await this.run('revoke', async () => {
      // One command per grant: on a cluster the grants' keys live in different slots.
      await Promise.all(notice.grantIds.map((grantId) => this.redis.set(revocationKey(this.prefix, grantId, notice.kind, notice.value), message, 'PX', ttlMs)));
      await this.redis.publish(revocationChannel(this.prefix), message);
    });
  }

  async approveStepUp(grantId: string, stepUpId: string): Promise<boolean> {
    const reply = await this.run('approve step-up', () => this.commands.writVerifierApprove(grantStateKey(this.prefix, grantId, 'stepup', stepUpId)));
    return reply === 1;
  }

  async restoreGrant(snapshot: GrantStateSnapshot): Promise<boolean> {
    const { keys, args } = restoreGrantCommand(this.prefix, snapshot, this.clock.now(), RESTORED_STATE_TTL_MS);
    const reply = await this.run('restore grant state', () => this.commands.writVerifierRestore(keys.length, ...keys, ...args));
    return reply === 1;
  }

  async pendingEvents(grantId: string): Promise<QueuedEvent[]> {
    const entries = await this.run('read pending events', () => this.redis.xrange(grantStateKey(this.prefix, grantId, 'events'), '-', '+'));
    return entries.flatMap(([, fields]) => {
      const event = queuedEventOf(fields);
      return event ? [event] : [];
    });
  }

  /**
   * The grant has no state here: rebuild it now when a source was given (then the decision runs
   * again), or ask the registry (at most once a second per grant) and answer 503.
   */
  private async stateMissing(grantId: string): Promise<void> {
    const source = this.grantState;
    if (source !== undefined) {
      // One rebuild however many decisions found the state missing together.
      let running = this.rebuilding.get(grantId);
      if (running === undefined) {
        running = (async () => {
          let snapshot: GrantStateSnapshot | null;
          try {
            snapshot = await source(grantId, await this.pendingEvents(grantId));
          } catch (error) {
            if (error instanceof StoreUnavailable) throw error;
            this.logger.warn(`could not rebuild the state of grant ${grantId}: ${describe(error)}`);
            throw new GrantStateMissing(grantId);
          }
          if (snapshot === null) throw new GrantStateMissing(grantId);
          await this.restoreGrant(snapshot);
        })().finally(() => this.rebuilding.delete(grantId));
        this.rebuilding.set(grantId, running);
      }
      await running;
      return;
    }
    // Decisions that found the state missing together wait for it together.
    let waiting = this.rebuilding.get(grantId);
    if (waiting === undefined) {
      waiting = this.askAndWait(grantId).finally(() => this.rebuilding.delete(grantId));
      this.rebuilding.set(grantId, waiting);
    }
    await waiting;
  }

  /** Asks the registry for the grant's state (at most once a second) and waits a moment for it. */
  private async askAndWait(grantId: string): Promise<void> {
    const now = this.clock.now();
    const last = this.restoreRequests.get(grantId);
    if (last === undefined || now - last >= RESTORE_REQUEST_EVERY_MS) {
      if (this.restoreRequests.size >= 10_000) this.restoreRequests.clear();
      this.restoreRequests.set(grantId, now);
      await this.run('ask for a restore', () => this.redis.publish(verifierKey(this.prefix, 'restore'), grantId)).catch(() => undefined);
    }
    const counters = grantStateKey(this.prefix, grantId, 'counters');
    const deadline = Date.now() + this.stateWaitMs;
    while (Date.now() < deadline) {
      await sleep(STATE_POLL_MS);
      if ((await this.run('look for the state', () => this.redis.hexists(counters, 'state'))) === 1) return;
    }
    this.logger.warn(`no state for grant ${grantId} in Redis: asked the registry to rebuild it (denying with 503 until then)`);
    throw new GrantStateMissing(grantId);
  }

  private readonly stateWaitMs: number;

  private readonly grantState: GrantStateSource | undefined;
  /** When each grant's restore was last asked for. */
  private readonly restoreRequests = new Map<string, number>();
  /** Rebuilds in progress (with a {@link grantState} source), by grant. */
  private readonly rebuilding = new Map<string, Promise<void>>();

  async stepUp(grantId: string, stepUpId: string): Promise<{ status: string; request: string } | null> {
    const [status, request] = await this.run('read step-up', () => this.redis.hmget(grantStateKey(this.prefix, grantId, 'stepup', stepUpId), 'status', 'request'));
    return status ? { status, request: request ?? '' } : null;
  }

  /**
   * Writes the hints and the backlog one last time if Redis is there, then closes the connections
   * the store opened. Events still in the backlog are lost (a warning says how many).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.hintTimer);
    clearTimeout(this.backlogTimer);
    await this.hintFlushing;
    await this.backlogFlushing;
    if (this.isReady()) {
      await this.flushHints().catch(() => undefined);
      await this.flushBacklog().catch(() => undefined);
    }
    if (this.backlog.length > 0) this.logger.warn(`${this.backlog.length} verifier event(s) never reached Redis`);
    await Promise.all([this.subscriber ? quit(this.subscriber) : undefined, this.owned ? quit(this.redis) : undefined]);
  }

  /** Runs one Redis exchange under the store's deadline; any failure becomes {@link StoreUnavailable}. */
  private async run<T>(what: string, exchange: () => Promise<T>): Promise<T> {
    if (this.owned) {
      // The client was built with `commandTimeout`: ioredis itself fails a command that has not
      // answered in time, so no second timer (and promise) per decision is needed.
      try {
        return await exchange();
      } catch (error) {
        throw new StoreUnavailable(`verifier store: ${what} failed: ${describe(error)}`, { cause: error });
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([exchange(), deadline]);
    } catch (error) {
      throw new StoreUnavailable(`verifier store: ${what} failed: ${describe(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Connected and able to send. One node's status leaves `ready` only on the socket's `close`
   * event; between the peer's FIN and that event the socket is no longer writable and every
   * command already fails, so that counts as not ready too.
   */
  private isReady(): boolean {
    if (this.redis.status !== 'ready') return false;
    const stream = this.redis instanceof Cluster ? undefined : this.redis.stream;
    return stream === undefined || stream.writable;
  }

  private enqueue(event: QueuedEvent): void {
    if (this.backlog.length >= this.backlogMax) {
      this.dropped += 1;
      if (this.dropped === 1 || this.dropped % 10_000 === 0) this.logger.warn(`verifier event backlog full (${this.backlogMax}): ${this.dropped} event(s) dropped`);
      return;
    }
    this.backlog.push(event);
  }

  private kickBacklog(): void {
    if (this.backlogFlushing || this.closed || this.backlog.length === 0) return;
    clearTimeout(this.backlogTimer);
    this.backlogTimer = undefined;
    this.backlogFlushing = this.flushBacklog()
      .then(
        () => {
          this.backlogFailures = 0;
        },
        () => {
          this.backlogFailures += 1;
          if (this.closed) return;
          this.backlogTimer = setTimeout(() => this.kickBacklog(), this.backoff(this.backlogFailures));
          this.backlogTimer.unref();
        },
      )
      .finally(() => {
        this.backlogFlushing = undefined;
      });
  }

  /** Writes the backlog batch by batch, oldest first; what fails stays, in order, for the next try. */
  private async flushBacklog(): Promise<void> {
    const stream = verifierKey(this.prefix, 'events');
    while (this.backlog.length > 0) {
      const batch = this.backlog.slice(0, BACKLOG_BATCH);
      const results = await this.run('write event backlog', async () => {
        const pipeline = this.redis.pipeline();
        for (const e of batch) pipeline.xadd(stream, '*', 'id', e.id, 'body', e.body, 'outcome', e.outcome);
        return pipeline.exec();
      });
      if (!results) throw new Error('pipeline discarded');
      const failed = batch.filter((_, i) => results[i]?.[0]);
      // New events were appended behind the batch meanwhile; the failed ones go back in front.
      this.backlog = [...failed, ...this.backlog.slice(batch.length)];
      if (failed.length > 0) throw failed.length === batch.length ? (results[0]?.[0] ?? new Error('write failed')) : new Error('part of the backlog failed');
    }
  }

  private scheduleHints(delayMs: number): void {
    if (this.hintTimer || this.hintFlushing || this.closed || this.hints.size === 0) return;
    this.hintTimer = setTimeout(() => {
      this.hintTimer = undefined;
      this.hintFlushing = this.flushHints()
        .then(
          () => {
            this.hintFailures = 0;
          },
          () => {
            this.hintFailures += 1;
          },
        )
        .finally(() => {
          this.hintFlushing = undefined;
          // New hints meanwhile, or a failed flush: next round (backing off after failures).
          this.scheduleHints(this.hintFailures > 0 ? this.backoff(this.hintFailures) : this.hintFlushMs);
        });
    }, delayMs);
    this.hintTimer.unref();
  }

  /** SADDs the grants noted since the last flush; on failure they are noted again. */
  private async flushHints(): Promise<void> {
    if (this.hints.size === 0) return;
    const grants = [...this.hints];
    this.hints = new Set();
    try {
      await this.run('write event hints', () => this.redis.sadd(verifierKey(this.prefix, 'event-grants'), ...grants));
    } catch (error) {
      // A hint is an optimisation (the registry also scans), so the set stays bounded.
      for (const grantId of grants) if (this.hints.size < this.backlogMax) this.hints.add(grantId);
      throw error;
    }
  }

  private deliver(message: string): void {
    let notice: RevocationNotice;
    try {
      const wire = WireRevocation.parse(JSON.parse(message));
      notice = { kind: wire.kind, value: wire.value, grantIds: wire.grantIds, expiresAtMs: Date.parse(wire.expiresAt) };
    } catch {
      this.logger.warn('ignored a malformed revocation announcement');
      return;
    }
    for (const listener of this.listeners) {
      try {
        listener(notice);
      } catch (error) {
        this.logger.warn(`a revocation listener failed: ${describe(error)}`);
      }
    }
  }

  private backoff(attempt: number): number {
    return Math.min(this.minRetryMs * 2 ** Math.min(Math.max(attempt - 1, 0), 20), this.maxRetryMs);
  }
}

function isNoState(reply: unknown): boolean {
  return Array.isArray(reply) && reply.length === 1 && reply[0] === 'no_state';
}

/** A stream entry's fields as a queued event (the fields `emit` writes), or undefined. */
function queuedEventOf(fields: string[]): QueuedEvent | undefined {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
  const id = map.get('id');
  const body = map.get('body');
  const outcome = map.get('outcome');
  if (id === undefined || body === undefined || outcome === undefined) return undefined;
  const stepUp = map.get('step_up');
  const expires = Number(map.get('step_up_expires_at'));
  return { id, body, outcome, ...(stepUp ? { stepUpId: stepUp } : {}), ...(Number.isSafeInteger(expires) ? { stepUpExpiresAtMs: expires } : {}) };
}

/** The script's answer as a {@link DecisionOutcome}; anything unexpected is {@link StoreUnavailable}. */
function parseDecision(reply: unknown, input: DecisionInput): DecisionOutcome {
  if (!Array.isArray(reply)) throw garbage(reply);
  const parts = reply as unknown[];
  const tag = parts[0];
  const int = (index: number): number => {
    const value = Number(parts[index]);
    if (!Number.isSafeInteger(value)) throw garbage(reply);
    return value;
  };
  switch (tag) {
    case 'allow': {
      const stepUpId = parts[4];
      return {
        allow: true,
        uses: int(1),
        spentMinor: int(2),
        rateCount: int(3),
        ...(typeof stepUpId === 'string' && stepUpId !== '' ? { stepUpId } : {}),
      };
    }
    case 'replayed':
      return { allow: false, reason: 'replayed' };
    case 'revoked': {
      const revocation = input.revocations[int(1) - 1];
      if (!revocation) throw garbage(reply);
      return { allow: false, reason: 'revoked', kind: revocation.kind, value: revocation.value };
    }
    case 'precheck':
      if (!input.precheck) throw garbage(reply);
      return { allow: false, reason: 'precheck', code: input.precheck.code };
    case 'max_uses':
      return { allow: false, reason: 'max_uses', uses: int(1) };
    case 'rate_limited':
      return { allow: false, reason: 'rate_limited', retryAfterMs: int(1) };
    case 'budget_exceeded':
      return { allow: false, reason: 'budget_exceeded', spentMinor: int(1) };
    case 'approval_required':
      if (typeof parts[1] !== 'string') throw garbage(reply);
      return { allow: false, reason: 'approval_required', stepUpId: parts[1] };
    default:
      throw garbage(reply);
  }
}

function garbage(reply: unknown): StoreUnavailable {
  return new StoreUnavailable(`verifier store: unexpected answer from the decision script: ${JSON.stringify(reply)}`);
}

function checkInteger(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** QUIT when connected (pending replies first), otherwise just drop the connection. */
async function quit(connection: Redis | Cluster): Promise<void> {
  if (connection.status === 'end') return;
  if (connection.status !== 'ready') {
    connection.disconnect();
    return;
  }
  await connection.quit().then(
    () => undefined,
    () => connection.disconnect(),
  );
}
