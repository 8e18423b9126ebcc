import { type Clock, grantStateKey, revocationKey, systemClock } from '@writ/core';
import type {
  DecisionInput,
  DecisionOutcome,
  QueuedEvent,
  RevocationNotice,
  VerifierEventBatch,
  VerifierEventSource,
  VerifierStore,
  VerifierStoreAdmin,
} from './store.js';

export interface InProcessVerifierStoreOptions {
  /** Names the keys like the Redis store does (they are only map keys here). */
  prefix?: string;
  /** The clock of the admin side (revocations, step-up approval); decisions use their `nowMs`. */
  clock?: Clock;
  /** Queued events kept until read and acked; beyond this they are counted in {@link InProcessVerifierStore.droppedEvents}. */
  queueMax?: number;
  /** Entries looked at for expiry on each decision (amortised sweeping). */
  sweepPerCall?: number;
}

/** Largest money value (thousandths) accepted, as in the Redis store: 10^12 currency units (ADR 0003). */
const MAX_MINOR = 1e15;

interface Expiring {
  /** Epoch ms after which the entry is gone; Infinity = no expiry. */
  expiresAt: number;
}
interface Counters extends Expiring {
  uses: number;
  spent: number;
}
interface RateLog extends Expiring {
  /** Instants (ms) of the allowed requests, ascending. */
  times: number[];
  /** The largest limit any decision on the grant asked for: the newest this many are kept (only raised). */
  keep: number;
  /** The newest instant ever trimmed from `times`, if any: a window reaching back past it cannot be counted. */
  floor?: number;
}
interface StepUpRecord extends Expiring {
  status: 'pending' | 'approved' | 'used';
  request: string;
}
interface Pointer extends Expiring {
  value: string;
}

/**
 * The verifier's state in memory (the embedded mode, no `REDIS_URL`), with the semantics of the
 * Redis script (docs/adr/0011) step for step; the same contract suite runs against both. Expiry
 * follows the `nowMs` of each decision; expired entries are swept a few per call. It is also the
 * embedded registry's {@link VerifierEventSource}: `read` returns the oldest waiting events,
 * `ack` removes exactly those, and what is not acked is read again (at least once).
 */
export class InProcessVerifierStore implements VerifierStore, VerifierStoreAdmin, VerifierEventSource {
  readonly prefix: string;
  private readonly clock: Clock;
  private readonly queueMax: number;
  private readonly sweepPerCall: number;
  /** Every map is keyed by the key the Redis store would use. */
  private readonly proofs = new Map<string, Expiring>();
  private readonly revocations = new Map<string, Expiring>();
  private readonly counters = new Map<string, Counters>();
  private readonly rates = new Map<string, RateLog>();
  private readonly stepUps = new Map<string, StepUpRecord>();
  private readonly stepUpFor = new Map<string, Pointer>();
  private readonly maps: Map<string, Expiring>[];
  private sweepCursor: { map: number; keys: Iterator<string> } | undefined;
  private queue: QueuedEvent[] = [];
  private dropped = 0;
  private readonly listeners = new Set<(notice: RevocationNotice) => void>();

  constructor(options: InProcessVerifierStoreOptions = {}) {
    this.prefix = options.prefix ?? 'writ:';
    this.clock = options.clock ?? systemClock;
    this.queueMax = options.queueMax ?? 100_000;
    this.sweepPerCall = options.sweepPerCall ?? 16;
    this.maps = [this.proofs, this.revocations, this.counters, this.rates, this.stepUps, this.stepUpFor];
  }

  decide(input: DecisionInput): Promise<DecisionOutcome> {
    try {
      const outcome = this.decideNow(input);
      this.sweep(input.nowMs);
      return Promise.resolve(outcome);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private decideNow(input: DecisionInput): DecisionOutcome {
    const { grantId, nowMs: now } = input;
    checkInteger('nowMs', now, 0);
    checkInteger('stateTtlMs', input.stateTtlMs, 1);
    const amount = input.amount;
    if (amount) {
      checkInteger('amount.minor', amount.minor, 0, MAX_MINOR);
      if (amount.totalMaxMinor !== undefined) checkInteger('amount.totalMaxMinor', amount.totalMaxMinor, 0, MAX_MINOR);
    }
    const p = this.prefix;
    const emit = (outcome: string, stepUp?: { id: string; expiresAtMs?: number }): void =>
      this.enqueue({
        id: input.event.id,
        body: input.event.body,
        outcome,
        ...(stepUp ? { stepUpId: stepUp.id } : {}),
        ...(stepUp?.expiresAtMs === undefined ? {} : { stepUpExpiresAtMs: stepUp.expiresAtMs }),
      });

    // 1. Replay.
    const proofKey = grantStateKey(p, grantId, 'proof', `${input.proof.jkt}:${input.proof.jti}`);
    if (live(this.proofs.get(proofKey), now)) {
      emit('replayed');
      return { allow: false, reason: 'replayed' };
    }
    this.proofs.set(proofKey, { expiresAt: now + Math.max(1, Math.ceil(input.proof.keepUntilMs - now)) });

    // 2. Revocations, in the order given.
    for (const { kind, value } of input.revocations) {
      if (live(this.revocations.get(revocationKey(p, grantId, kind, value)), now)) {
        emit(`revoked:${kind}`);
        return { allow: false, reason: 'revoked', kind, value };
      }
    }

    // 2b. A denial decided without state.
    if (input.precheck) {
      emit(input.precheck.code);
      return { allow: false, reason: 'precheck', code: input.precheck.code };
    }

    // 3. Uses.
    const countersKey = grantStateKey(p, grantId, 'counters');
    const counters = liveOr(this.counters, countersKey, now);
    const uses = counters?.uses ?? 0;
    const spent = counters?.spent ?? 0;
    if (input.maxUses !== undefined && uses >= input.maxUses) {
      emit('max_uses');
      return { allow: false, reason: 'max_uses', uses };
    }

    // 4. Sliding-window log, shared by every token of the grant: counted over this decision's own
    // window, never trimmed by it (ADR 0011 "Rate"; a shorter window must not shorten a longer one).
    const rateKey = grantStateKey(p, grantId, 'rate');
    let rateCount = 0;
    let log: RateLog | undefined;
    if (input.rate) {
      const { limit, windowMs } = input.rate;
      log = liveOr(this.rates, rateKey, now);
      if (log === undefined || log.keep < limit) {
        log ??= { times: [], keep: 0, expiresAt: now + input.stateTtlMs };
        log.keep = limit;
        this.rates.set(rateKey, log);
      }
      const { times, floor } = log;
      const start = now - windowMs;
      // The limit-th newest request still in the window: the window is full until it leaves.
      const nth = limit === 0 ? undefined : times[times.length - limit];
      if (limit === 0 || (nth !== undefined && nth > start)) {
        emit('rate_limited');
        return { allow: false, reason: 'rate_limited', retryAfterMs: nth === undefined ? windowMs : nth + windowMs - now };
      }
      if (floor !== undefined && floor > start) {
        emit('rate_limited');
        return { allow: false, reason: 'rate_limited', retryAfterMs: floor + windowMs - now };
      }
      rateCount = times.length - firstAfter(times, start) + 1;
    }

    // 5. Total budget.
    if (amount?.totalMaxMinor !== undefined && spent + amount.minor > amount.totalMaxMinor) {
      emit('budget_exceeded');
      return { allow: false, reason: 'budget_exceeded', spentMinor: spent };
    }

    // 6. Step-up.
    let consumed: string | undefined;
    const stepUp = amount?.stepUp;
    if (stepUp) {
      const forKey = grantStateKey(p, grantId, 'stepup-for', stepUp.fingerprint);
      const id = liveOr(this.stepUpFor, forKey, now)?.value;
      const record = id === undefined ? undefined : liveOr(this.stepUps, grantStateKey(p, grantId, 'stepup', id), now);
      if (id !== undefined && record?.status === 'approved') {
        record.status = 'used';
        this.stepUpFor.delete(forKey);
        consumed = id;
      } else if (id !== undefined && record?.status === 'pending') {
        emit('approval_required', { id, expiresAtMs: record.expiresAt });
        return { allow: false, reason: 'approval_required', stepUpId: id };
      } else {
        const expiresAt = now + stepUp.ttlMs;
        this.stepUps.set(grantStateKey(p, grantId, 'stepup', stepUp.newId), { status: 'pending', request: stepUp.request, expiresAt });
        this.stepUpFor.set(forKey, { value: stepUp.newId, expiresAt });
        emit('approval_required', { id: stepUp.newId, expiresAtMs: expiresAt });
        return { allow: false, reason: 'approval_required', stepUpId: stepUp.newId };
      }
    }

    // 7. Allow: count it, refresh the state's life.
    const stateExpiresAt = now + input.stateTtlMs;
    const next: Counters = { uses: uses + 1, spent: spent + (amount?.minor ?? 0), expiresAt: stateExpiresAt };
    this.counters.set(countersKey, next);
    if (log) {
      log.times.splice(firstAfter(log.times, now), 0, now);
      const excess = log.times.length - log.keep;
      if (excess > 0) {
        const cut = log.times[excess - 1]!;
        log.times.splice(0, excess);
        if (log.floor === undefined || cut > log.floor) log.floor = cut;
      }
      log.expiresAt = stateExpiresAt;
    }
    emit('allow', consumed === undefined ? undefined : { id: consumed });
    return { allow: true, uses: next.uses, spentMinor: next.spent, rateCount, ...(consumed === undefined ? {} : { stepUpId: consumed }) };
  }

  queueEvent(event: QueuedEvent): Promise<void> {
    this.enqueue(event);
    return Promise.resolve();
  }

  /** The oldest `max` waiting events; `ack` removes exactly them (others may have been queued meanwhile). */
  read(max: number): Promise<VerifierEventBatch> {
    const events = this.queue.slice(0, Math.max(0, max));
    return Promise.resolve({
      events: events.map((e) => ({ ...e })),
      ack: () => {
        const taken = new Set(events);
        this.queue = this.queue.filter((e) => !taken.has(e));
        return Promise.resolve();
      },
    });
  }

  /** Events waiting to be read and acked. */
  get queued(): number {
    return this.queue.length;
  }

  /** Events lost because the queue was full. */
  get droppedEvents(): number {
    return this.dropped;
  }

  onRevocation(listener: (notice: RevocationNotice) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  revoke(notice: RevocationNotice): Promise<void> {
    if (notice.expiresAtMs <= this.clock.now()) return Promise.resolve();
    for (const grantId of notice.grantIds) {
      const key = revocationKey(this.prefix, grantId, notice.kind, notice.value);
      const existing = this.revocations.get(key);
      this.revocations.set(key, { expiresAt: Math.max(notice.expiresAtMs, existing?.expiresAt ?? 0) });
    }
    for (const listener of this.listeners) {
      try {
        listener(notice);
      } catch {
        // One listener's failure does not keep the others from hearing it.
      }
    }
    return Promise.resolve();
  }

  approveStepUp(grantId: string, stepUpId: string): Promise<boolean> {
    const record = liveOr(this.stepUps, grantStateKey(this.prefix, grantId, 'stepup', stepUpId), this.clock.now());
    if (record?.status !== 'pending') return Promise.resolve(false);
    record.status = 'approved';
    return Promise.resolve(true);
  }

  stepUp(grantId: string, stepUpId: string): Promise<{ status: string; request: string } | null> {
    const record = liveOr(this.stepUps, grantStateKey(this.prefix, grantId, 'stepup', stepUpId), this.clock.now());
    return Promise.resolve(record ? { status: record.status, request: record.request } : null);
  }

  /**
   * Milliseconds `key` has left at `nowMs` (like Redis PTTL: -2 when absent or expired, -1 when it
   * never expires). For tests and diagnostics.
   */
  pttl(key: string, nowMs: number = this.clock.now()): number {
    for (const map of this.maps) {
      const entry = map.get(key);
      if (!entry) continue;
      if (!live(entry, nowMs)) return -2;
      return entry.expiresAt === Infinity ? -1 : entry.expiresAt - nowMs;
    }
    return -2;
  }

  /** Entries held, expired or not (the sweeping keeps it bounded by what is alive plus a little). */
  get size(): number {
    return this.maps.reduce((total, map) => total + map.size, 0);
  }

  /** Always: the state is in this process. */
  ready(): boolean {
    return true;
  }

  close(): Promise<void> {
    this.listeners.clear();
    return Promise.resolve();
  }

  private enqueue(event: QueuedEvent): void {
    if (this.queue.length >= this.queueMax) {
      this.dropped += 1;
      return;
    }
    this.queue.push({ ...event });
  }

  /** Looks at `sweepPerCall` entries, map after map, deleting the expired ones. */
  private sweep(now: number): void {
    for (let looked = 0, emptyMaps = 0; looked < this.sweepPerCall && emptyMaps <= this.maps.length; ) {
      this.sweepCursor ??= { map: 0, keys: this.maps[0]!.keys() };
      const map = this.maps[this.sweepCursor.map]!;
      const next = this.sweepCursor.keys.next();
      if (next.done) {
        const index = (this.sweepCursor.map + 1) % this.maps.length;
        this.sweepCursor = { map: index, keys: this.maps[index]!.keys() };
        emptyMaps += 1;
        continue;
      }
      emptyMaps = 0;
      looked += 1;
      const entry = map.get(next.value);
      if (entry && !live(entry, now)) map.delete(next.value);
    }
  }
}

/** The index of the first of the ascending `times` after `t` (binary search). */
function firstAfter(times: number[], t: number): number {
  let low = 0;
  let high = times.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (times[mid]! > t) high = mid;
    else low = mid + 1;
  }
  return low;
}

function live(entry: Expiring | undefined, now: number): entry is Expiring {
  return entry !== undefined && entry.expiresAt > now;
}

/** The live entry under `key`, deleting it when expired. */
function liveOr<T extends Expiring>(map: Map<string, T>, key: string, now: number): T | undefined {
  const entry = map.get(key);
  if (entry === undefined) return undefined;
  if (entry.expiresAt > now) return entry;
  map.delete(key);
  return undefined;
}

function checkInteger(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
}
