/**
 * What the registry hands a verifier store to rebuild one grant's state after the store lost it
 * (a restart of the embedded stack, a Redis restart without persistence, a `FLUSHALL`, a
 * fail-over to an empty replica): docs/adr/0017-verifier-state-recovery.md. The store keeps a
 * per-grant marker (`grantStateKey(prefix, grantId, 'state')`); a decision on a grant without it
 * is refused with 503 until the snapshot is written, and the snapshot is written only where the
 * marker is absent, with the marker, in one atomic step (on Redis: the restore-grant script of
 * @writ/server, `restoreGrantCommand`).
 */
import type { RevocationKind } from './store-keys.js';

/**
 * One grant's verifier state, rebuilt from the registry's durable record: the audit chain plus
 * the decisions still waiting in the queue.
 *
 * @example
 * ```ts
 * const empty: GrantStateSnapshot = { grantId: 'grt_1', uses: 0, spentMinor: 0, rate: [], proofs: [], revocations: [] };
 * ```
 */
export interface GrantStateSnapshot {
  grantId: string;
  /** Allowed requests so far. */
  uses: number;
  /** Money counted so far, in thousandths of the envelope's currency. */
  spentMinor: number;
  /** Allowed requests recent enough to count in any rate window (epoch ms, and a unique member), oldest first. */
  rate: { atMs: number; member: string }[];
  /** Set when older allowed requests were left out of `rate` ({@link RATE_RESTORE_MAX}): the newest of them. */
  rateFloorMs?: number;
  /** Proof `jti`s seen with key `jkt` that could still be replayed, kept until `keepUntilMs`. */
  proofs: { jkt: string; jti: string; keepUntilMs: number }[];
  /** Every unexpired revocation that can affect a token of this grant. */
  revocations: { kind: RevocationKind; value: string; expiresAtMs: number }[];
}

/**
 * Longest rate window an envelope may ask for (`rate.window_s` at most 86,400 s), plus the
 * tolerated clock skew: allowed requests older than this never count again, so a snapshot leaves
 * them out.
 *
 * @example
 * ```ts
 * const since = Date.now() - RATE_HISTORY_MS;
 * ```
 */
export const RATE_HISTORY_MS = 86_400_000 + 30_000;

/**
 * How long after a decision its proof's `jti` may still be replayed: a proof is accepted up to
 * 300 s after its `iat`, which may be 5 s ahead of the verifier's clock; a snapshot keeps each
 * proof this long after the decision that saw it (never shorter than the store would have).
 *
 * @example
 * ```ts
 * const keepUntilMs = decidedAtMs + PROOF_REPLAY_WINDOW_MS;
 * ```
 */
export const PROOF_REPLAY_WINDOW_MS = 310_000;

/**
 * Most allowed requests a snapshot carries for the rate log (newest first kept); when more were
 * allowed in {@link RATE_HISTORY_MS}, `rateFloorMs` names the newest one left out, and a window
 * reaching back past it is refused until it has left (fail closed, as when the log is trimmed).
 *
 * @example
 * ```ts
 * snapshot.rate.length <= RATE_RESTORE_MAX; // true
 * ```
 */
export const RATE_RESTORE_MAX = 100_000;
