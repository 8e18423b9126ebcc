/**
 * What the registry hands a verifier store to rebuild one grant's state after the store lost it
 * (a restart of the embedded stack, a Redis restart without persistence, a `FLUSHALL`, a
 * fail-over to an empty replica): docs/adr/0017-verifier-state-recovery.md. The store keeps a
 * per-grant marker (`grantStateKey(prefix, grantId, 'state')`); a decision on a grant without it
 * is refused with 503 until the snapshot is written, and the snapshot is written only where the
 * marker is absent, with the marker, in one atomic step.
 */
import { grantStateKey, revocationKey, type RevocationKind } from './store-keys.js';

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

/**
 * The Redis script that writes a {@link GrantStateSnapshot} (ADR 0017), shared by the verifier's
 * store and the registry so both write the one layout of `store-keys`. It writes only where the
 * grant's marker (the `state` field of its `counters` hash) is absent, and the marker last, in one
 * atomic step: a decision never sees half a state. Counters never go down (the larger of what is
 * there and the snapshot). Every key is under the grant's hash tag (Redis Cluster).
 *
 * KEYS: 1 counters, 2 rate, then one key per proof, then one key per revocation.
 * ARGV: 1 state TTL ms, 2 uses, 3 spent, 4 rate floor ('' = none), 5 marker value, 6 number of
 *       rate entries, then (score, member) per entry, then the number of proofs, then each proof's
 *       TTL ms, then (TTL ms, message) per revocation. Answers 1 when it wrote, 0 when the state
 *       was there.
 *
 * @example
 * ```ts
 * redis.defineCommand('writRestoreGrant', { lua: RESTORE_GRANT_LUA });
 * ```
 */
export const RESTORE_GRANT_LUA = `
if redis.call('HEXISTS', KEYS[1], 'state') == 1 then return 0 end
local ttl = ARGV[1]
local c = redis.call('HMGET', KEYS[1], 'uses', 'spent', 'rate_keep', 'rate_floor')
if tonumber(c[1] or '0') < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'uses', ARGV[2]) end
if tonumber(c[2] or '0') < tonumber(ARGV[3]) then redis.call('HSET', KEYS[1], 'spent', ARGV[3]) end
if ARGV[4] ~= '' and ((not c[4]) or tonumber(c[4]) < tonumber(ARGV[4])) then redis.call('HSET', KEYS[1], 'rate_floor', ARGV[4]) end
local n = tonumber(ARGV[6])
local a = 7
for i = 1, n do
  redis.call('ZADD', KEYS[2], ARGV[a], ARGV[a + 1])
  a = a + 2
end
if n > 0 then
  local size = redis.call('ZCARD', KEYS[2])
  if tonumber(c[3] or '0') < size then redis.call('HSET', KEYS[1], 'rate_keep', tostring(size)) end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
local proofs = tonumber(ARGV[a])
a = a + 1
for i = 1, proofs do
  redis.call('SET', KEYS[2 + i], '1', 'PX', ARGV[a])
  a = a + 1
end
for k = 3 + proofs, #KEYS do
  redis.call('SET', KEYS[k], ARGV[a + 1], 'PX', ARGV[a])
  a = a + 2
end
redis.call('HSET', KEYS[1], 'state', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`;

/**
 * The keys and arguments of {@link RESTORE_GRANT_LUA} for one snapshot, at `nowMs` (what has
 * expired by then is left out). `revocationMessage` is what a revocation key holds (ADR 0008).
 *
 * @example
 * ```ts
 * const { keys, args } = restoreGrantCommand('writ:', snapshot, Date.now(), 31 * 86_400_000);
 * await redis.writRestoreGrant(keys.length, ...keys, ...args);
 * ```
 */
export function restoreGrantCommand(prefix: string, snapshot: GrantStateSnapshot, nowMs: number, stateTtlMs: number): { keys: string[]; args: string[] } {
  const g = snapshot.grantId;
  const proofs = snapshot.proofs.filter((p) => p.keepUntilMs > nowMs);
  const revocations = snapshot.revocations.filter((r) => r.expiresAtMs > nowMs);
  const keys = [
    grantStateKey(prefix, g, 'counters'),
    grantStateKey(prefix, g, 'rate'),
    ...proofs.map((p) => grantStateKey(prefix, g, 'proof', `${p.jkt}:${p.jti}`)),
    ...revocations.map((r) => revocationKey(prefix, g, r.kind, r.value)),
  ];
  const args = [
    String(stateTtlMs),
    String(snapshot.uses),
    String(snapshot.spentMinor),
    snapshot.rateFloorMs === undefined ? '' : String(snapshot.rateFloorMs),
    String(nowMs),
    String(snapshot.rate.length),
  ];
  for (const entry of snapshot.rate) args.push(String(entry.atMs), entry.member);
  args.push(String(proofs.length));
  for (const p of proofs) args.push(String(Math.max(1, p.keepUntilMs - nowMs)));
  for (const r of revocations) {
    args.push(String(Math.max(1, r.expiresAtMs - nowMs)), JSON.stringify({ kind: r.kind, value: r.value, grantIds: [g], expiresAt: new Date(r.expiresAtMs).toISOString() }));
  }
  return { keys, args };
}
