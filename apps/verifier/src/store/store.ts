import type { QueuedDecisionEvent } from '@writ/contracts';
import type { GrantStateSnapshot, RevocationKind } from '@writ/core';

/**
 * The verifier's state, behind one interface with two implementations: Redis (one Lua script per
 * decision, keys under the grant's hash tag so it also runs on Redis Cluster) and in-process (the
 * embedded mode). One contract suite runs against both.
 *
 * Everything stateless (token signature and claims, DPoP proof, capability, time window, currency,
 * per-request maximum) is decided before `decide` is called; `decide` makes the stateful checks
 * and, when they all pass, counts the request, atomically, and queues the decision's audit event
 * in the same step.
 */

/** What a step-up shows the human, and how it is recognised when the request is retried. */
export interface StepUpInput {
  /**
   * Identifies the request across retries (hash of grant, txn, service, method, URL, action,
   * resource, amount, currency): a retried request finds its pending or approved step-up by it.
   */
  fingerprint: string;
  /** The id to give a new step-up when none is pending or approved for this fingerprint. */
  newId: string;
  /** JSON the approval UI shows (amount, currency, payee, txn, ...), stored with the step-up. */
  request: string;
  /** How long a pending or approved step-up lives. */
  ttlMs: number;
}

/** Largest money value (thousandths) a store accepts: 10^12 currency units (ADR 0003). */
export const MAX_MINOR = 1e15;

/** One decision's stateful checks, in the order they are made. */
export interface DecisionInput {
  grantId: string;
  /** The verifier's clock (epoch ms); rate windows and TTLs are computed from it. */
  nowMs: number;
  /** 1. The proof's `jti` must be unused for this key; it is kept until `keepUntilMs`. */
  proof: { jkt: string; jti: string; keepUntilMs: number };
  /** 2. None of these may be revoked; the first revoked one, in this order, is reported. */
  revocations: { kind: RevocationKind; value: string }[];
  /**
   * 2b. A denial already decided without state (capability, time window, amount format or
   * per-request maximum): reported after the replay and revocation checks, so the design's order
   * holds, with its error code as the outcome (`{ reason: 'precheck', code }`). Nothing is counted.
   */
  precheck?: { code: string };
  /** 3. Allowed requests so far must be below this. */
  maxUses?: number;
  /**
   * 4. Sliding window over the grant's one rate log, which every token of the grant shares: fewer
   * than `limit` requests of the grant allowed in this decision's own last `windowMs`. Tokens of
   * one grant carry different rates (a delegated token's is narrower: ADR 0011 "Rate"), and one
   * decision's window never shortens another's; `retryAfterMs` is exact for this window.
   */
  rate?: { limit: number; windowMs: number };
  /** 5, 6. Money, in integer thousandths of the envelope's currency. */
  amount?: {
    minor: number;
    /** spent + minor must not exceed this. */
    totalMaxMinor?: number;
    /** Set when `minor` is above the envelope's `approval_above`: an approved step-up is needed. */
    stepUp?: StepUpInput;
  };
  /** Counters, rate set and step-ups of the grant live at least this long after each allow. */
  stateTtlMs: number;
  /** The audit event of this decision (JSON), queued with the outcome in the same step. */
  event: { id: string; body: string };
}

/** The grant's counters after an allowed request. */
export interface Allowed {
  allow: true;
  uses: number;
  spentMinor: number;
  /** Requests allowed in the rate window, this one included (0 when the envelope has no rate). */
  rateCount: number;
  /** The step-up this request consumed, if it needed one. */
  stepUpId?: string;
}

export type Denied =
  | { allow: false; reason: 'replayed' }
  | { allow: false; reason: 'revoked'; kind: RevocationKind; value: string }
  | { allow: false; reason: 'precheck'; code: string }
  | { allow: false; reason: 'max_uses'; uses: number }
  | { allow: false; reason: 'rate_limited'; retryAfterMs: number }
  | { allow: false; reason: 'budget_exceeded'; spentMinor: number }
  | { allow: false; reason: 'approval_required'; stepUpId: string };

export type DecisionOutcome = Allowed | Denied;

/**
 * The short text an outcome is queued with, next to the event body: `allow`, or the denial reason
 * (`revoked:<kind>` for revocations). The registry stores it in the audit event.
 */
export function outcomeLabel(outcome: DecisionOutcome): string {
  if (outcome.allow) return 'allow';
  if (outcome.reason === 'revoked') return `revoked:${outcome.kind}`;
  return outcome.reason === 'precheck' ? outcome.code : outcome.reason;
}

/**
 * A decision's audit event as it waits in the queue: the one shape the registry reads
 * (@writ/contracts). `outcome` is {@link outcomeLabel}, or the error code of a decision taken
 * before `decide`.
 */
export type QueuedEvent = QueuedDecisionEvent;

/** A revocation as the registry announces it (ADR 0008). */
export interface RevocationNotice {
  kind: RevocationKind;
  value: string;
  grantIds: string[];
  expiresAtMs: number;
}

/** Thrown (or rejected with) when the store cannot be reached or answers garbage: deny with 503. */
export class StoreUnavailable extends Error {
  override readonly name: string = 'StoreUnavailable';
}

/**
 * The store does not hold this grant's state (it lost it: a restart, a flushed or replaced Redis)
 * and has asked for it to be rebuilt from the registry's durable record (ADR 0017): deny with 503
 * until it is, never decide on counters that start again from zero.
 */
export class GrantStateMissing extends StoreUnavailable {
  override readonly name = 'GrantStateMissing';

  constructor(readonly grantId: string) {
    super(`the state of grant ${grantId} is being rebuilt`);
  }
}

/**
 * Rebuilds a grant's state the store lost, from the registry's durable record (ADR 0017): the
 * store hands over the grant's decisions still waiting in its own queue (not yet in the chain).
 * Null when the registry has no such grant. Given to a store that runs with the registry (the
 * embedded `npm start`, tests); a standalone verifier on Redis asks the registry on a channel.
 */
export type GrantStateSource = (grantId: string, pending: QueuedEvent[]) => Promise<GrantStateSnapshot | null>;

/**
 * Where the in-process store's queue is kept durably (the embedded database, ADR 0017): an event
 * is on disk before its decision is answered, so a crash loses no decision and a restart can
 * rebuild every grant's counters exactly. Read and acked like the in-memory queue.
 */
export interface EventJournal {
  /** Records the events, in order; resolves once they are durable. */
  append(entries: { event: QueuedEvent; grantId: string | null }[]): Promise<void>;
  /** The oldest `max` waiting events, in order. */
  read(max: number): Promise<QueuedEvent[]>;
  /** Removes exactly these events. */
  ack(ids: string[]): Promise<void>;
  /** The waiting events of one grant, in order. */
  pendingFor(grantId: string): Promise<QueuedEvent[]>;
  /** How many events wait (for `/readyz`). */
  depth(): Promise<number>;
}

export interface VerifierStore {
  /** Makes the stateful checks, counts an allowed request, queues the event. Atomic. */
  decide(input: DecisionInput): Promise<DecisionOutcome>;
  /** Queues the event of a decision taken before any grant state was read (one write). */
  queueEvent(event: QueuedEvent): Promise<void>;
  /**
   * Calls `listener` with the grants of each revocation announced from now on, so local caches
   * drop them. Returns a function that removes the listener.
   */
  onRevocation(listener: (notice: RevocationNotice) => void): () => void;
  /**
   * Whether a decision can reach the store now (Redis: the connection is up and ready). For
   * readiness probes only: a decision made while it is false still fails closed by itself.
   */
  ready(): boolean;
  close(): Promise<void>;
}

/**
 * What the registry does to the verifier's state, behind the same interface: record a revocation
 * and approve a step-up. The registry writes the same keys itself when it owns a Redis
 * connection; tests and the embedded mode use these.
 */
export interface VerifierStoreAdmin {
  revoke(notice: RevocationNotice): Promise<void>;
  /** Marks a pending step-up approved; false when it is unknown, used or expired. */
  approveStepUp(grantId: string, stepUpId: string): Promise<boolean>;
  /** The stored step-up: status (`pending`, `approved`, `used`) and the request JSON. */
  stepUp(grantId: string, stepUpId: string): Promise<{ status: string; request: string } | null>;
  /**
   * Writes a grant's rebuilt state with its marker, atomically, only where the marker is absent
   * (a state that is there is never overwritten); true when it wrote (ADR 0017).
   */
  restoreGrant(snapshot: GrantStateSnapshot): Promise<boolean>;
  /** The grant's decisions still waiting in this store's queue (not yet read into the chain). */
  pendingEvents(grantId: string): Promise<QueuedEvent[]>;
}

/** A batch of queued decision events, read by the registry; `ack` removes them from the queue. */
export interface VerifierEventBatch {
  events: QueuedEvent[];
  ack(): Promise<void>;
}

/** The registry's side of the queue: read what waits, append it to the chain, then ack. */
export interface VerifierEventSource {
  /** Up to `max` waiting events (those of one grant stay in order), or an empty batch. */
  read(max: number): Promise<VerifierEventBatch>;
}
