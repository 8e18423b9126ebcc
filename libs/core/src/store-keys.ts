/**
 * Names of the keys and channels shared by the registry (which writes them) and the verifier
 * (which reads them in one Lua script per decision). Every key a decision touches carries the
 * grant's hash tag, so on Redis Cluster they all live in one slot and one script may touch them
 * (Redis Cluster specification, "Hash tags": only the part between the first `{` and the next `}`
 * is hashed).
 */

/**
 * What a revocation names: a grant, a transaction (its whole token tree), one token (by `jti`) or
 * an agent (by `client_id`, in every token where it acts).
 *
 * @example
 * ```ts
 * const kind: RevocationKind = 'txn';
 * ```
 */
export type RevocationKind = 'grant' | 'txn' | 'token' | 'agent';

/**
 * Every {@link RevocationKind}, in the order a verifier checks them.
 *
 * @example
 * ```ts
 * REVOCATION_KINDS.includes('agent'); // true
 * ```
 */
export const REVOCATION_KINDS: readonly RevocationKind[] = ['grant', 'txn', 'token', 'agent'];

/**
 * The hash tag that puts every key of one grant in one Redis Cluster slot.
 *
 * @example
 * ```ts
 * grantHashTag('grt_abc'); // '{g:grt_abc}'
 * ```
 */
export function grantHashTag(grantId: string): string {
  // A brace inside the id would end the tag early and scatter the grant's keys over slots.
  if (grantId === '' || /[{}]/.test(grantId)) throw new TypeError('grant id must be non-empty and contain no { or }');
  return `{g:${grantId}}`;
}

/**
 * The grant a key belongs to (the id in its hash tag right after `prefix`), or undefined for a key
 * that is not under `prefix` or carries no grant tag there: the inverse of the grant part of
 * {@link grantStateKey} and {@link revocationKey}, for a reader that found keys by a scan.
 *
 * @example
 * ```ts
 * grantOfKey('writ:', 'writ:{g:grt_abc}:events'); // 'grt_abc'
 * grantOfKey('writ:', 'writ:verifier:events'); // undefined
 * ```
 */
export function grantOfKey(prefix: string, key: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  return /^\{g:([^{}]+)\}/.exec(key.slice(prefix.length))?.[1];
}

/**
 * The key whose existence means "revoked" for one decision on this grant; it expires when nothing
 * it could affect is alive any more. `prefix` must hold no `{` or `}`, or it would become the hash tag.
 *
 * @example
 * ```ts
 * revocationKey('writ:', 'grt_abc', 'token', 'jti-1'); // 'writ:{g:grt_abc}:revoked:token:jti-1'
 * ```
 */
export function revocationKey(prefix: string, grantId: string, kind: RevocationKind, value: string): string {
  return `${prefix}${grantHashTag(grantId)}:revoked:${kind}:${value}`;
}

/**
 * The pub/sub channel on which every revocation is announced, so verifiers drop cached state.
 *
 * @example
 * ```ts
 * revocationChannel('writ:'); // 'writ:revocations'
 * ```
 */
export function revocationChannel(prefix: string): string {
  return `${prefix}revocations`;
}

/**
 * The verifier's per-grant state, every key under the grant's hash tag so one Lua script can read
 * and change all of it on Redis Cluster:
 * - `proof`: a DPoP proof's `jti` seen with key `jkt` (single use, RFC 9449 §11.1);
 * - `counters`: hash of `uses` and `spent` (thousandths of the envelope's currency), `rate_keep`
 *   and `rate_floor` (how much of the rate log is kept, ADR 0011) and `state` (below);
 * - `rate`: sorted set of the instants (ms) of the grant's allowed requests, the newest `rate_keep`;
 * - `stepup`: one step-up request (hash: `status`, `request`, `expires` in epoch ms);
 * - `stepup-for`: the current step-up id of one request fingerprint;
 * - `events`: the stream of this grant's decisions, waiting for the registry's audit chain;
 * - `state`: the marker that this grant's state is whole (written with the first state, or by a
 *   restore from the registry's durable record; in Redis it is the `state` field of `counters`,
 *   which every decision reads anyway); a decision without it is refused with 503 (ADR 0017).
 *
 * @example
 * ```ts
 * grantStateKey('writ:', 'grt_abc', 'counters'); // 'writ:{g:grt_abc}:counters'
 * grantStateKey('writ:', 'grt_abc', 'proof', 'jkt1:jti-9'); // 'writ:{g:grt_abc}:proof:jkt1:jti-9'
 * ```
 */
export function grantStateKey(
  prefix: string,
  grantId: string,
  part: 'proof' | 'counters' | 'rate' | 'stepup' | 'stepup-for' | 'events' | 'state',
  suffix?: string,
): string {
  const key = `${prefix}${grantHashTag(grantId)}:${part}`;
  return suffix === undefined ? key : `${key}:${suffix}`;
}

/**
 * Keys outside any grant: `events` is the stream of decisions taken before a grant was known (a
 * token that does not verify, a bad proof); `event-grants` is the set of grants whose `events`
 * stream may hold entries, a hint that spares the registry a scan of the key space; `epoch` is
 * written by the registry once every live grant's state is in this Redis (its absence means Redis
 * lost its data); `restore` is the channel on which verifiers ask for a grant's state.
 *
 * @example
 * ```ts
 * verifierKey('writ:', 'events'); // 'writ:verifier:events'
 * ```
 */
export function verifierKey(prefix: string, part: 'events' | 'event-grants' | 'epoch' | 'restore'): string {
  return `${prefix}verifier:${part}`;
}
