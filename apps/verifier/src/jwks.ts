import { InvalidToken, TemporarilyUnavailable } from '@writ/core';
import { importJWK, type CryptoKey, type JWK, type JWTVerifyGetKey } from 'jose';

/** How long fetched keys are trusted before they are fetched again in the background. */
const REFRESH_EVERY_MS = 5 * 60_000;
/**
 * Unknown `kid`s fetch again at most this often, so garbage kids cannot hammer the registry; a
 * request that comes sooner waits for the next fetch (shared by every waiting request) instead of
 * being refused, so a key rotated in just after a garbage kid still verifies.
 */
const UNKNOWN_KID_COOLDOWN_MS = 1_000;
const FETCH_TIMEOUT_MS = 2_000;
const MAX_KEYS = 64;

interface KeySet {
  keys: Map<string, CryptoKey>;
  fetchedAtMs: number;
}

/**
 * The registry's signing keys, from `<registryUrl>/.well-known/jwks.json` only (never from a
 * location named in a token: no `jku`, no `x5u`). Cached; fetched again on an unknown `kid`
 * (at most every 5 s) and every 5 minutes. One fetch at a time: concurrent misses share it.
 *
 * `resolver` is the `JWTVerifyGetKey` libs/core's `verifyTxnToken` takes. An unknown `kid` after a
 * fresh fetch is `invalid_token`; a registry that cannot be reached (and no cached key for the
 * `kid`) is `temporarily_unavailable`: deny either way.
 */
export class JwksCache {
  private set: KeySet | undefined;
  private inflight: Promise<KeySet> | undefined;
  private delayed: Promise<KeySet> | undefined;
  private lastFetchStartedMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly jwksUrl: string,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly now: () => number = Date.now,
  ) {}

  readonly resolver: JWTVerifyGetKey = async (header) => {
    const kid = header.kid;
    if (typeof kid !== 'string') throw new InvalidToken('token kid header is missing');
    const cached = this.set?.keys.get(kid);
    if (cached !== undefined) {
      if (this.now() - this.set!.fetchedAtMs > REFRESH_EVERY_MS) this.refreshInBackground();
      return cached;
    }
    const set = await this.fetchAfterCooldown();
    const key = set.keys.get(kid);
    if (key === undefined) throw new InvalidToken('token signing key is unknown');
    return key;
  };

  /** Whether signing keys have been fetched: without them no token can be verified. */
  get loaded(): boolean {
    return this.set !== undefined && this.set.keys.size > 0;
  }

  /**
   * While no keys are loaded, fetches them again in the background, no more often than an unknown
   * `kid` would (every 5 s): a verifier that started while the registry was away becomes ready
   * without waiting for a token to ask.
   */
  retryIfEmpty(): void {
    if (!this.loaded) this.fetchAfterCooldown().catch(() => undefined);
  }

  /** Fetches now (start-up warm-up); resolves whether or not the registry answered. */
  async warm(): Promise<boolean> {
    try {
      await this.fetchKeys();
      return true;
    } catch {
      return false;
    }
  }

  private fetchAfterCooldown(): Promise<KeySet> {
    if (this.inflight !== undefined) return this.inflight;
    const wait = this.lastFetchStartedMs + UNKNOWN_KID_COOLDOWN_MS - this.now();
    if (wait <= 0) return this.fetchKeys();
    this.delayed ??= new Promise<void>((resolve) => setTimeout(resolve, wait).unref())
      .then(() => this.fetchKeys())
      .finally(() => (this.delayed = undefined));
    return this.delayed;
  }

  private refreshInBackground(): void {
    this.fetchKeys().catch(() => undefined);
  }

  private fetchKeys(): Promise<KeySet> {
    this.inflight ??= this.load().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async load(): Promise<KeySet> {
    this.lastFetchStartedMs = this.now();
    let body: unknown;
    try {
      const res = await this.fetchImpl(this.jwksUrl, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`JWKS answered ${res.status}`);
      body = await res.json();
    } catch (error) {
      throw new TemporarilyUnavailable('token signing keys could not be fetched', { cause: error });
    }
    const keys = new Map<string, CryptoKey>();
    const list = (body as { keys?: unknown }).keys;
    if (!Array.isArray(list)) throw new TemporarilyUnavailable('token signing keys could not be fetched');
    for (const jwk of list.slice(0, MAX_KEYS) as JWK[]) {
      // Only public signing keys of the algorithms tokens may use; anything else is skipped.
      if (typeof jwk?.kid !== 'string' || 'd' in jwk) continue;
      const alg = jwk.kty === 'EC' && jwk.crv === 'P-256' ? 'ES256' : jwk.kty === 'OKP' && jwk.crv === 'Ed25519' ? 'EdDSA' : undefined;
      if (alg === undefined || (jwk.alg !== undefined && jwk.alg !== alg) || (jwk.use !== undefined && jwk.use !== 'sig')) continue;
      try {
        keys.set(jwk.kid, (await importJWK(jwk, alg)) as CryptoKey);
      } catch {
        // A malformed key is skipped; tokens signed with it fail as an unknown kid.
      }
    }
    this.set = { keys, fetchedAtMs: this.now() };
    return this.set;
  }
}
