import { type Clock, type GrantStateSnapshot, grantStateKey, revocationKey, systemClock } from '@writ/core';
import {
  type DecisionInput,
  type DecisionOutcome,
  type EventJournal,
  GrantStateMissing,
  type GrantStateSource,
  MAX_MINOR,
  type QueuedEvent,
  type RevocationNotice,
  StoreUnavailable,
  type VerifierEventBatch,
  type VerifierEventSource,
  type VerifierStore,
  type VerifierStoreAdmin,
} from './store.js';

export interface InProcessVerifierStoreOptions {
  /** Names the keys like the Redis store does (they are only map keys here). */
  prefix?: string;
  /** The clock of the admin side (revocations, step-up approval); decisions use their `nowMs`. */
  clock?: Clock;
  /**
   * Queued events kept until read and acked (without a journal). A full queue fails closed: the
   * decision is refused with StoreUnavailable (503) rather than its event dropped (issue 16, 4).
   */
  queueMax?: number;
  /** Entries looked at for expiry on each decision (amortised sweeping). */
  sweepPerCall?: number;
  /**
   * Where a grant's state comes from when this store does not hold it (after a restart: ADR
   * 0017). With it, a grant's first decision waits for its state to be rebuilt from the
   * registry's durable record; without it, a grant the store does not know starts empty.
   */
  grantState?: GrantStateSource;
  /**
   * Keeps the event queue durably (the embedded database): every decision's event is recorded
   * before the decision is answered, and read and acked there. Without it the queue is in memory.
   */
  journal?: EventJournal;
}

/** The registry's revocation bus, as far as the store listens to it (matched structurally). */
export interface RevocationAnnouncer {
  subscribe(listener: (event: { kind: RevocationNotice['kind']; value: string; grantIds: string[]; expiresAt: Date }) => void): () => void;
}

/** How long a rebuilt grant's marker lives without a decision: longer than any grant (ADR 0011). */
const STATE_MARKER_TTL_MS = 31 * 24 * 3600_000;

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
  /** Decisions and events refused because the queue was full. */
  private refused = 0;
  private readonly listeners = new Set<(notice: RevocationNotice) => void>();
  /** Per grant: its state is whole here (present only when {@link grantState} is set). */
  private readonly states = new Map<string, Expiring>();
  private grantState: GrantStateSource | undefined;
  private readonly restoring = new Map<string, Promise<void>>();
  private journal: EventJournal | undefined;
  /** Events waiting for the next journal write, and the write they go with. */
  private journalBatch: { event: QueuedEvent; grantId: string | null }[] = [];
  private journalWrite: Promise<void> | undefined;
  /** Journal writes run one after another, so events reach it in the order they were decided. */
  private journalChain: Promise<void> = Promise.resolve();
  /** The grant whose decision is being made (its events go to the journal with it). */
  private current: string | null = null;

  constructor(options: InProcessVerifierStoreOptions = {}) {
    this.prefix = options.prefix ?? 'writ:';
    this.clock = options.clock ?? systemClock;
    this.queueMax = options.queueMax ?? 100_000;
    this.sweepPerCall = options.sweepPerCall ?? 16;
    this.grantState = options.grantState;
    this.journal = options.journal;
    this.maps = [this.proofs, this.revocations, this.counters, this.rates, this.stepUps, this.stepUpFor, this.states];
  }

  async decide(input: DecisionInput): Promise<DecisionOutcome> {
    // ADR 0017: never decide on a grant whose state this store lost (a restart): rebuild it first.
    if (this.grantState !== undefined && !live(this.states.get(this.stateKey(input.grantId)), input.nowMs)) await this.rebuild(input.grantId);
    // Checked before anything is counted: a decision whose event has no room is not made at all.
    this.checkRoom();
    this.current = input.grantId;
    let outcome: DecisionOutcome;
    try {
      outcome = this.decideNow(input);
    } finally {
      this.current = null;
    }
    if (this.grantState !== undefined) {
      const marker = this.states.get(this.stateKey(input.grantId));
      if (marker) marker.expiresAt = Math.max(marker.expiresAt, input.nowMs + STATE_MARKER_TTL_MS);
    }
    this.sweep(input.nowMs);
    // The decision is answered only once its event is durable (the counters it changed can then
    // always be rebuilt); a failed write answers 503, having counted: fail closed.
    await this.journalFlushed();
    return outcome;
  }

  /**
   * Binds the store to the registry it runs with (`npm start`), once the registry is open and
   * before the first decision: its durable journal, its state source, and its revocations (a
   * revocation announced by the registry is written here at once). Returns the unsubscribe.
   */
  attach(registry: { journal?: EventJournal; grantState?: GrantStateSource; revocations?: RevocationAnnouncer }): () => void {
    if (registry.journal) this.journal = registry.journal;
    if (registry.grantState) this.grantState = registry.grantState;
    return (
      registry.revocations?.subscribe((event) => {
        void this.revoke({ kind: event.kind, value: event.value, grantIds: event.grantIds, expiresAtMs: event.expiresAt.getTime() });
      }) ?? (() => undefined)
    );
  }

  private stateKey(grantId: string): string {
    return grantStateKey(this.prefix, grantId, 'state');
  }

  /** Rebuilds one grant's state once, however many decisions wait for it. */
  private rebuild(grantId: string): Promise<void> {
    let running = this.restoring.get(grantId);
    if (running === undefined) {
      running = (async () => {
        const snapshot = await this.grantState!(grantId, await this.pendingEvents(grantId));
        if (snapshot === null) throw new StoreUnavailable(`verifier store: grant ${grantId} is unknown to the registry`);
        await this.restoreGrant(snapshot);
      })()
        .catch((error: unknown) => {
          if (error instanceof StoreUnavailable) throw error;
          throw new GrantStateMissing(grantId);
        })
        .finally(() => this.restoring.delete(grantId));
      this.restoring.set(grantId, running);
    }
    return running;
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

  async queueEvent(event: QueuedEvent): Promise<void> {
    this.enqueue(event);
    await this.journalFlushed();
  }

  /**
   * Writes a rebuilt state (ADR 0017) where the grant's marker is absent: counters never go down
   * (the larger of what is here and the snapshot), the rate log and proofs are merged, the
   * revocations recorded; then the marker. One synchronous step, like every decision.
   */
  restoreGrant(snapshot: GrantStateSnapshot): Promise<boolean> {
    const now = this.clock.now();
    const p = this.prefix;
    const g = snapshot.grantId;
    const markerKey = this.stateKey(g);
    if (live(this.states.get(markerKey), now)) return Promise.resolve(false);
    const expiresAt = now + STATE_MARKER_TTL_MS;
    const countersKey = grantStateKey(p, g, 'counters');
    const counters = liveOr(this.counters, countersKey, now);
    this.counters.set(countersKey, {
      uses: Math.max(counters?.uses ?? 0, snapshot.uses),
      spent: Math.max(counters?.spent ?? 0, snapshot.spentMinor),
      expiresAt: Math.max(counters?.expiresAt ?? 0, expiresAt),
    });
    if (snapshot.rate.length > 0) {
      const rateKey = grantStateKey(p, g, 'rate');
      const log = liveOr(this.rates, rateKey, now) ?? { times: [], keep: 0, expiresAt };
      const times = [...new Set([...log.times, ...snapshot.rate.map((r) => r.atMs)])].sort((a, b) => a - b);
      log.times = times;
      log.keep = Math.max(log.keep, times.length);
      if (snapshot.rateFloorMs !== undefined && (log.floor === undefined || log.floor < snapshot.rateFloorMs)) log.floor = snapshot.rateFloorMs;
      log.expiresAt = Math.max(log.expiresAt, expiresAt);
      this.rates.set(rateKey, log);
    }
    for (const proof of snapshot.proofs) {
      if (proof.keepUntilMs <= now) continue;
      const key = grantStateKey(p, g, 'proof', `${proof.jkt}:${proof.jti}`);
      this.proofs.set(key, { expiresAt: Math.max(this.proofs.get(key)?.expiresAt ?? 0, proof.keepUntilMs) });
    }
    for (const revocation of snapshot.revocations) {
      if (revocation.expiresAtMs <= now) continue;
      const key = revocationKey(p, g, revocation.kind, revocation.value);
      this.revocations.set(key, { expiresAt: Math.max(this.revocations.get(key)?.expiresAt ?? 0, revocation.expiresAtMs) });
    }
    this.states.set(markerKey, { expiresAt });
    return Promise.resolve(true);
  }

  async pendingEvents(grantId: string): Promise<QueuedEvent[]> {
    // What is still on its way to the journal is the grant's too.
    const waiting = this.journalBatch.filter((e) => e.grantId === grantId).map((e) => ({ ...e.event }));
    if (this.journal) return [...(await this.journal.pendingFor(grantId)), ...waiting];
    return this.queue.filter((e) => grantOf(e) === grantId).map((e) => ({ ...e }));
  }

  /** The oldest `max` waiting events; `ack` removes exactly them (others may have been queued meanwhile). */
  read(max: number): Promise<VerifierEventBatch> {
    if (this.journal) return this.readJournal(max);
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

  /** The queue as `/readyz` shows it: waiting events, the bound, and what a full queue refused. */
  stats(): { queued: number; queueMax: number; refused: number } {
    return { queued: this.queue.length, queueMax: this.queueMax, refused: this.refused };
  }

  /** Events waiting (the registry's ingestion reports it): in the journal when there is one. */
  async depth(): Promise<number> {
    if (this.journal) return (await this.journal.depth()) + this.journalBatch.length;
    return this.queue.length;
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

  /** Resolves once every event queued so far is in the journal (at once without one). */
  private journalFlushed(): Promise<void> {
    if (this.journal === undefined || this.journalBatch.length === 0) return this.journalWrite ?? Promise.resolve();
    if (this.journalWrite === undefined) {
      const journal = this.journal;
      // One write for every event queued in this turn of the event loop.
      this.journalWrite = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        const batch = this.journalBatch;
        this.journalBatch = [];
        this.journalWrite = undefined;
        const written = this.journalChain.then(() => journal.append(batch));
        this.journalChain = written.catch(() => undefined);
        return written.catch((error: unknown) => {
          throw new StoreUnavailable(`verifier store: the event journal could not be written: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
        });
      });
    }
    return this.journalWrite;
  }

  private async readJournal(max: number): Promise<VerifierEventBatch> {
    const events = await this.journal!.read(Math.max(0, max));
    return {
      events: events.map((e) => ({ ...e })),
      ack: () => this.journal!.ack(events.map((e) => e.id)),
    };
  }

  private enqueue(event: QueuedEvent): void {
    if (this.journal) {
      this.journalBatch.push({ event: { ...event }, grantId: this.current });
      return;
    }
    this.checkRoom();
    this.queue.push({ ...event });
  }

  /** Throws StoreUnavailable (never drops) when the in-memory queue is full. */
  private checkRoom(): void {
    if (this.journal !== undefined || this.queue.length < this.queueMax) return;
    this.refused += 1;
    throw new StoreUnavailable(`verifier store: the event queue is full (${this.queue.length} waiting for the registry): deny until it has room`);
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

/** The grant an event's body names, if any. */
function grantOf(event: QueuedEvent): string | undefined {
  try {
    const body: unknown = JSON.parse(event.body);
    const grantId = typeof body === 'object' && body !== null ? (body as { grant_id?: unknown }).grant_id : undefined;
    return typeof grantId === 'string' ? grantId : undefined;
  } catch {
    return undefined;
  }
}
