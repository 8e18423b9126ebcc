import { SignJWT, calculateJwkThumbprint, compactVerify, decodeProtectedHeader, errors, importJWK, type JWK } from 'jose';
import { epochSeconds, randomId, type Clock } from './clock.js';
import { sha256Base64url, timingSafeEqual } from './encoding.js';
import { InvalidDpopProof, InvalidRequest, UseDpopNonce } from './errors.js';

/**
 * The DPoP proof algorithms Writ accepts: asymmetric signatures only (RFC 9449 §4.3 (5)); never
 * `none`, never an HMAC. Ed25519 keys sign under either name: the polymorphic `EdDSA` (RFC 8037)
 * or the fully-specified `Ed25519` (RFC 9864 §2.2), the same signature. Advertised as
 * `dpop_signing_alg_values_supported` (RFC 9449 §5.1); the same list applies to every JWT an
 * agent signs (client assertions, subject and actor tokens).
 *
 * @example
 * ```ts
 * DPOP_ALGS.includes('Ed25519'); // true
 * ```
 */
export const DPOP_ALGS = ['ES256', 'EdDSA', 'Ed25519'] as const;

/**
 * A DPoP proof algorithm Writ accepts.
 *
 * @example
 * ```ts
 * const alg: DpopAlg = 'EdDSA';
 * ```
 */
export type DpopAlg = (typeof DPOP_ALGS)[number];

/** The `typ` of a DPoP proof (RFC 9449 §4.2). */
const DPOP_TYP = 'dpop+jwt';

/** A proof is a few hundred characters; this bounds the work an attacker can make us do. */
const MAX_PROOF_LENGTH = 8192;
/** Bounds the replay-cache key the caller stores (RFC 9449 §11.1). */
const MAX_JTI_LENGTH = 256;

/** RFC 7517 §9.2 / RFC 7518 §6: members that only a private or symmetric key carries. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** RFC 9110 §9.1: a method is a token (RFC 9110 §5.6.2). */
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 7515 §7.1: a compact JWS is three base64url parts; the payload may not be empty here. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** RFC 3986 §2.3: unreserved characters, which percent-encoding must not change (§6.2.2.2). */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * RFC 7638 JWK thumbprint (SHA-256, base64url): the value of `cnf.jkt` (RFC 9449 §6.1).
 * Works for any key type jose knows (RSA included), even though RSA proofs are not accepted.
 *
 * @example
 * ```ts
 * await jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs', y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA' });
 * // '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I'
 * ```
 */
export function jwkThumbprint(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint(jwk, 'sha256');
}

/**
 * Normalises an HTTP(S) URI for `htu` comparison and drops its query and fragment.
 *
 * Applies RFC 3986 §6.2.2 syntax-based normalisation (lowercase scheme and host, uppercase
 * percent-encoding hex, decode percent-encoded unreserved characters, remove dot segments) and
 * §6.2.3 scheme-based normalisation (drop the default port, empty path becomes `/`), then drops
 * query and fragment (RFC 9449 §4.3 (9)). Throws a `TypeError` for anything that is not an
 * absolute `http:` or `https:` URI, or that carries userinfo (RFC 9110 §4.2.4).
 *
 * @example
 * ```ts
 * normalizeHtu('HTTPS://Api.Example:443/a/./b/%7euser/%2f?x=1#top'); // 'https://api.example/a/b/~user/%2F'
 * ```
 */
export function normalizeHtu(uri: string): string {
  const cached = normalizedHtus.get(uri);
  if (cached !== undefined) return cached;
  const normalized = normalizeHtuUncached(uri);
  if (normalizedHtus.size >= NORMALIZED_HTU_MAX) normalizedHtus.clear();
  normalizedHtus.set(uri, normalized);
  return normalized;
}

// Proofs and requests name the same few URLs over and over; only successes are remembered.
const NORMALIZED_HTU_MAX = 1024;
const normalizedHtus = new Map<string, string>();

function normalizeHtuUncached(uri: string): string {
  let url: URL;
  try {
    // WHATWG URL parsing lowercases scheme and host, drops the default port, removes dot
    // segments (also percent-encoded ones) and turns an empty path into '/'.
    url = new URL(uri);
  } catch {
    throw new TypeError('htu is not an absolute URI');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError('htu is not an http or https URI');
  // RFC 9110 §4.2.4: userinfo is deprecated in http(s) URIs; a recipient treats it as an error.
  if (url.username !== '' || url.password !== '') throw new TypeError('htu must not contain userinfo');
  // RFC 3986 §6.2.2.1 and §6.2.2.2: WHATWG URL keeps percent-encodings as written; normalise them.
  const path = url.pathname.replace(/%([0-9A-Fa-f]{2})/g, (_match, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
  return `${url.protocol}//${url.host}${path}`;
}

/**
 * Options for {@link createDpopProof}.
 *
 * @example
 * ```ts
 * const options: CreateDpopProofOptions = { privateKey, publicJwk, htm: 'GET', htu: url, accessToken, nonce, clock: systemClock };
 * ```
 */
export interface CreateDpopProofOptions {
  /** The private key that signs the proof. */
  privateKey: CryptoKey;
  /** The matching public key; only its public members go into the `jwk` header. */
  publicJwk: JWK;
  /** Defaults to the algorithm of the key type (`ES256` for EC P-256, `EdDSA` for Ed25519; `Ed25519` is accepted too). */
  alg?: DpopAlg;
  /** The HTTP method of the request (`htm`), as sent: `POST`, `GET`, ... */
  htm: string;
  /** The target URI of the request (`htu`); query and fragment are dropped. */
  htu: string;
  /** The access token the request carries: adds `ath` (RFC 9449 §4.2). */
  accessToken?: string;
  /** The last `DPoP-Nonce` the server sent (RFC 9449 §8). */
  nonce?: string;
  clock: Clock;
  /** Defaults to 128 random bits. */
  jti?: string;
}

/**
 * Creates a DPoP proof JWT for one HTTP request (RFC 9449 §4.2). Make a new one for every request.
 *
 * @example
 * ```ts
 * const { privateKey, publicKey } = await generateKeyPair('ES256');
 * const proof = await createDpopProof({
 *   privateKey,
 *   publicJwk: await exportJWK(publicKey),
 *   htm: 'POST',
 *   htu: 'https://registry.example/oauth/token',
 *   clock: systemClock,
 * });
 * // send it as the `DPoP` header
 * ```
 */
export async function createDpopProof(options: CreateDpopProofOptions): Promise<string> {
  const jwk = publicMembers(options.publicJwk);
  if (jwk === undefined) throw new TypeError('publicJwk must be an EC P-256 or OKP Ed25519 public key');
  const alg = options.alg ?? algForKey(jwk);
  if (!keySignsWith(jwk, alg)) throw new TypeError(`alg ${alg} does not match the key type`);
  if (!METHOD_TOKEN.test(options.htm)) throw new TypeError('htm is not an HTTP method token');
  const claims: Record<string, string | number> = {
    jti: options.jti ?? randomId(),
    htm: options.htm,
    // RFC 9449 §4.2: htu is the target URI without query and fragment.
    htu: normalizeHtu(options.htu),
    iat: epochSeconds(options.clock),
  };
  // RFC 9449 §4.2: ath is base64url(SHA-256(ASCII(access token))).
  if (options.accessToken !== undefined) claims.ath = await sha256Base64url(options.accessToken);
  if (options.nonce !== undefined) claims.nonce = options.nonce;
  return new SignJWT(claims).setProtectedHeader({ typ: DPOP_TYP, alg, jwk }).sign(options.privateKey);
}

/**
 * Options for {@link verifyDpopProof}: what the request was, and the server's policy.
 *
 * @example
 * ```ts
 * const options: VerifyDpopProofOptions = { htm: 'POST', htu: 'https://registry.example/oauth/token', nonce: currentNonce, clock: systemClock };
 * ```
 */
export interface VerifyDpopProofOptions {
  /** The HTTP method of the request, compared case-sensitively with `htm` (RFC 9110 §9.1). */
  htm: string;
  /** The target URI of the request; compared with `htu` after {@link normalizeHtu} on both. */
  htu: string;
  /** The access token presented with the proof: then `ath` is required (unless {@link athOptional}) and must match. */
  accessToken?: string;
  /**
   * With `accessToken`: a proof without `ath` is accepted; one with `ath` must still match. For
   * a token endpoint that receives a DPoP-bound token as a parameter (an RFC 8693 `subject_token`),
   * where RFC 9449 §4.2 does not ask for `ath` (it is defined for requests to protected
   * resources) and generic clients do not send it; the proof key must then match the token's
   * `cnf.jkt` ({@link expectedJkt}), which binds the proof to the token.
   */
  athOptional?: boolean;
  /**
   * base64url SHA-256 of `accessToken`, when the caller has already computed it (the verifier
   * keys its token cache by it): then the token is not hashed again. Only used with `accessToken`.
   */
  accessTokenHash?: string;
  /** The `cnf.jkt` of the presented token: the proof key's thumbprint must equal it. */
  expectedJkt?: string;
  /**
   * The nonce the server currently requires (RFC 9449 §8, §9), or a predicate that accepts a
   * nonce (for servers that keep several valid nonces). Absent: no nonce is required.
   */
  nonce?: string | ((nonce: string) => boolean);
  clock: Clock;
  /** How old `iat` may be. Default 300 s. */
  maxAgeSeconds?: number;
  /** How far in the future `iat` may be (clock skew). Default 5 s. */
  futureSkewSeconds?: number;
  /** Accepted algorithms, a subset of {@link DPOP_ALGS}. Default: all of them. */
  algorithms?: readonly DpopAlg[];
  /** A native signature check to use instead of Web Crypto; every other check is unchanged. */
  verifySignature?: JwsSignatureVerifier;
}

/**
 * Checks one JWS signature: `signature` (the base64url text of the JWS's third part) over
 * `signingInput` (the ASCII text `header.payload`) with the public key `jwk` (public members only)
 * for `alg`. Returns false when the signature does not verify; throws when `jwk` is not a usable
 * public key. Lets a server plug in a faster native implementation (Node's `crypto.verify` is
 * about twice as fast as Web Crypto) while every other check stays here; it gets the proof's own
 * text, so that it can decode it into memory of its own choosing.
 *
 * @example
 * ```ts
 * // On a Node server, with `createPublicKey` and `verify` from Node's crypto module:
 * const nodeVerifier: JwsSignatureVerifier = (alg, jwk, input, signature) =>
 *   verify(alg === 'ES256' ? 'sha256' : null, Buffer.from(input, 'latin1'), { key: createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
 * await verifyDpopProof(proof, { htm: 'POST', htu, clock: systemClock, verifySignature: nodeVerifier });
 * ```
 */
export type JwsSignatureVerifier = (alg: DpopAlg, jwk: JWK, signingInput: string, signature: string) => boolean | Promise<boolean>;

/**
 * What a valid proof establishes.
 *
 * @example
 * ```ts
 * const { jkt }: VerifiedDpopProof = await verifyDpopProof(proof, options); // bind the new token to jkt
 * ```
 */
export interface VerifiedDpopProof {
  /** RFC 7638 thumbprint of the proof key, to bind a new token to (`cnf.jkt`). */
  jkt: string;
  /** The proof's unique id: the caller must reject it if seen before (RFC 9449 §11.1). */
  jti: string;
  /** The proof's creation time, seconds since the epoch: keep the `jti` at least until `iat + maxAgeSeconds`. */
  iat: number;
  htm: string;
  /** The normalised `htu`. */
  htu: string;
  /** The proof's public key, public members only. */
  publicJwk: JWK;
}

/**
 * Verifies a DPoP proof against the request it came with: every check of RFC 9449 §4.3 except
 * `jti` replay. **Replay detection is the caller's job** (it has the store): remember the
 * returned `jti` (for example keyed with `jkt`) until `iat + maxAgeSeconds + futureSkewSeconds`
 * and reject a proof whose `jti` was already seen (RFC 9449 §11.1).
 *
 * Throws {@link InvalidDpopProof} with a precise description for every failure,
 * {@link UseDpopNonce} when the server requires a nonce and the proof lacks it or carries a stale
 * one (the error's `nonce` is the required one, or `''` with a predicate), and
 * {@link InvalidRequest} if `options.htu` itself is not an http(s) URI. Descriptions never
 * contain the proof or the token.
 *
 * @example
 * ```ts
 * const { jkt, jti, iat } = await verifyDpopProof(request.headers.dpop, {
 *   htm: request.method,
 *   htu: 'https://api.example/hotels/42',
 *   accessToken,
 *   expectedJkt: claims.cnf.jkt,
 *   clock: systemClock,
 * });
 * if (!(await replayCache.setIfAbsent(`${jkt}:${jti}`, iat + 305))) throw new InvalidDpopProof('DPoP proof jti was already used');
 * ```
 */
export async function verifyDpopProof(proof: string, options: VerifyDpopProofOptions): Promise<VerifiedDpopProof> {
  const maxAge = options.maxAgeSeconds ?? 300;
  const futureSkew = options.futureSkewSeconds ?? 5;
  const algorithms: readonly string[] = options.algorithms ?? DPOP_ALGS;
  // Without ath, only the key binds the proof to the token: never one without the other.
  if (options.athOptional === true && options.expectedJkt === undefined) throw new TypeError('athOptional requires expectedJkt');
  let requestHtu: string;
  try {
    requestHtu = normalizeHtu(options.htu);
  } catch {
    throw new InvalidRequest('request URI is not an absolute http(s) URI');
  }

  // RFC 9449 §4.3 (1), (2): one well-formed JWT. A list of proofs joined by commas fails here too.
  if (typeof proof !== 'string' || proof.length === 0) throw new InvalidDpopProof('DPoP proof is missing');
  if (proof.length > MAX_PROOF_LENGTH) throw new InvalidDpopProof('DPoP proof is too large');
  if (!COMPACT_JWS.test(proof)) throw new InvalidDpopProof('DPoP proof is not a single compact JWS');
  // An agent signs every proof with the same key, so the same protected header comes again and
  // again: its checks (which depend on nothing but the header and the accepted algorithms) are
  // made once per distinct header.
  const headerSegment = proof.slice(0, proof.indexOf('.'));
  let checked = checkedHeaders.get(headerSegment);
  if (checked === undefined) {
    checked = checkHeader(proof);
    if (checkedHeaders.size >= KEY_CACHE_SIZE) checkedHeaders.delete(checkedHeaders.keys().next().value as string);
    checkedHeaders.set(headerSegment, checked);
  }
  const { alg, publicJwk } = checked;
  // RFC 9449 §4.3 (5): an algorithm acceptable to this server (the only option-dependent header check).
  if (!algorithms.includes(alg)) throw new InvalidDpopProof('DPoP proof alg is not an accepted asymmetric algorithm');

  // RFC 9449 §4.3 (6): the signature verifies with the key in the jwk header. The token hash
  // needs no trust in the proof, so it is computed meanwhile.
  const expectedAth =
    options.accessToken === undefined ? undefined : (options.accessTokenHash ?? sha256Base64url(options.accessToken));
  let jkt: string;
  // The payload's bytes (Web Crypto path) or its base64url segment (native path).
  let payload: Uint8Array | string;
  if (options.verifySignature === undefined) {
    const imported = await importProofKey(publicJwk, alg);
    jkt = imported.jkt;
    payload = await verifySignature(proof, imported.key, alg);
  } else {
    jkt = checked.jkt ??= await cachedThumbprint(publicJwk);
    payload = await verifyWith(options.verifySignature, proof, publicJwk, alg);
  }
  let claims: unknown;
  try {
    claims = JSON.parse(typeof payload === 'string' ? decodeText(payload) : utf8Strict.decode(payload));
  } catch {
    throw new InvalidDpopProof('DPoP proof payload is not JSON');
  }
  if (!isPlainObject(claims)) throw new InvalidDpopProof('DPoP proof payload is not a JSON object');

  // RFC 9449 §4.3 (3): the claims RFC 9449 §4.2 requires, with their types.
  const jti = requireClaim(claims, 'jti', 'string');
  if (jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
    throw new InvalidDpopProof(`DPoP proof jti must be 1 to ${MAX_JTI_LENGTH} characters`);
  }
  const htm = requireClaim(claims, 'htm', 'string');
  const htu = requireClaim(claims, 'htu', 'string');
  const iat = requireClaim(claims, 'iat', 'number');
  if (!Number.isFinite(iat)) throw new InvalidDpopProof('DPoP proof iat claim must be a number');

  // RFC 9449 §4.3 (8): htm equals the request method; methods are case-sensitive (RFC 9110 §9.1).
  if (htm !== options.htm) throw new InvalidDpopProof('DPoP proof htm does not match the request method');
  // RFC 9449 §4.3 (9): htu equals the request URI, ignoring query and fragment, after RFC 3986 §6 normalisation.
  let proofHtu: string;
  try {
    proofHtu = normalizeHtu(htu);
  } catch {
    throw new InvalidDpopProof('DPoP proof htu is not an absolute http(s) URI');
  }
  if (proofHtu !== requestHtu) throw new InvalidDpopProof('DPoP proof htu does not match the request URI');

  // RFC 9449 §4.3 (11): the creation time is within an acceptable window.
  const now = epochSeconds(options.clock);
  if (iat < now - maxAge) throw new InvalidDpopProof('DPoP proof iat is too old');
  if (iat > now + futureSkew) throw new InvalidDpopProof('DPoP proof iat is in the future');

  // RFC 9449 §4.3 (12): with an access token, ath must be the hash of that token.
  if (expectedAth !== undefined && !(options.athOptional === true && claims.ath === undefined)) {
    if (claims.ath === undefined) throw new InvalidDpopProof('DPoP proof ath claim is missing but an access token is presented');
    if (typeof claims.ath !== 'string') throw new InvalidDpopProof('DPoP proof ath claim must be a string');
    if (!timingSafeEqual(claims.ath, await expectedAth)) {
      throw new InvalidDpopProof('DPoP proof ath does not match the access token');
    }
  }

  // RFC 9449 §4.3 (12), §6.1: the key the token is bound to is the key that signed the proof.
  if (options.expectedJkt !== undefined && !timingSafeEqual(jkt, options.expectedJkt)) {
    throw new InvalidDpopProof('DPoP proof key does not match the token cnf.jkt');
  }

  // RFC 9449 §4.3 (10), §8, §9: checked last, so that a client that retries with the nonce we
  // hand back is not rejected again for a reason it could have been told about now.
  if (options.nonce !== undefined) checkNonce(claims.nonce, options.nonce);

  // A copy: the checked header (and its key) is shared with later proofs.
  return { jkt, jti, iat, htm, htu: proofHtu, publicJwk: { ...publicJwk } };
}

/** Imported proof keys and their thumbprints, by public members: an agent signs many proofs with one key. */
const keyCache = new Map<string, { key: CryptoKey; jkt: string }>();
const KEY_CACHE_SIZE = 1024;

async function importProofKey(jwk: JWK, alg: DpopAlg): Promise<{ key: CryptoKey; jkt: string }> {
  const id = JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y]);
  const cached = keyCache.get(id);
  if (cached !== undefined) {
    // Least recently used goes first: re-insert on every hit.
    keyCache.delete(id);
    keyCache.set(id, cached);
    return cached;
  }
  let entry: { key: CryptoKey; jkt: string };
  try {
    const [key, jkt] = await Promise.all([importJWK(jwk, alg), jwkThumbprint(jwk)]);
    entry = { key: key as CryptoKey, jkt };
  } catch {
    throw new InvalidDpopProof('DPoP proof jwk is not a valid public key');
  }
  keyCache.set(id, entry);
  if (keyCache.size > KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value as string);
  return entry;
}

async function verifySignature(proof: string, key: CryptoKey, alg: DpopAlg): Promise<Uint8Array> {
  try {
    return (await compactVerify(proof, key, { algorithms: [alg] })).payload;
  } catch (error) {
    if (error instanceof errors.JWSSignatureVerificationFailed) throw new InvalidDpopProof('DPoP proof signature is invalid');
    throw new InvalidDpopProof('DPoP proof is not a valid JWS');
  }
}

/** A protected header that passed every check of RFC 9449 §4.3 (4), (5), (7) except the caller's own algorithm list. */
interface CheckedHeader {
  alg: DpopAlg;
  publicJwk: JWK;
  /** The key's thumbprint, once computed (native path). */
  jkt?: string;
}

/** Checked headers by their base64url text; only headers that passed are kept. */
const checkedHeaders = new Map<string, CheckedHeader>();

function checkHeader(proof: string): CheckedHeader {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw new InvalidDpopProof('DPoP proof header is not a base64url JSON object');
  }

  // RFC 9449 §4.3 (4): typ is exactly dpop+jwt (RFC 9449 §4.2 defines the value).
  if (header.typ === undefined) throw new InvalidDpopProof('DPoP proof typ header is missing');
  if (header.typ !== DPOP_TYP) throw new InvalidDpopProof('DPoP proof typ must be dpop+jwt');
  // RFC 9449 §4.3 (5): an asymmetric signature algorithm acceptable to this server.
  if (typeof header.alg !== 'string') throw new InvalidDpopProof('DPoP proof alg header is missing');
  if (!(DPOP_ALGS as readonly string[]).includes(header.alg)) throw new InvalidDpopProof('DPoP proof alg is not an accepted asymmetric algorithm');
  const alg = header.alg as DpopAlg;
  // RFC 7515 §4.1.11: no extension we understand, so no critical header; RFC 7797 b64 is never valid here.
  if ('crit' in header || 'b64' in header) throw new InvalidDpopProof('DPoP proof must not use crit or b64 headers');

  // RFC 9449 §4.3 (7): the jwk header is a public key, never private or symmetric material.
  const rawJwk = header.jwk;
  if (rawJwk === undefined) throw new InvalidDpopProof('DPoP proof jwk header is missing');
  if (!isPlainObject(rawJwk)) throw new InvalidDpopProof('DPoP proof jwk header is not a JSON object');
  if (rawJwk.kty === 'oct') throw new InvalidDpopProof('DPoP proof jwk must be an asymmetric key, not kty oct');
  if (PRIVATE_JWK_MEMBERS.some((member) => member in rawJwk)) {
    throw new InvalidDpopProof('DPoP proof jwk contains private key material');
  }
  const publicJwk = publicMembers(rawJwk);
  if (publicJwk === undefined) throw new InvalidDpopProof('DPoP proof jwk is not an EC P-256 or OKP Ed25519 public key');
  // RFC 9449 §4.3 (5), (6): the alg must be the one this key type signs with.
  if (!keySignsWith(publicJwk, alg)) throw new InvalidDpopProof('DPoP proof alg does not match the jwk key type');
  return { alg, publicJwk };
}

/** Thumbprints by public members, for the native path (which caches its own imported keys). */
const thumbprintCache = new Map<string, string>();

async function cachedThumbprint(jwk: JWK): Promise<string> {
  const id = JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y]);
  const cached = thumbprintCache.get(id);
  if (cached !== undefined) return cached;
  const jkt = await jwkThumbprint(jwk);
  thumbprintCache.set(id, jkt);
  if (thumbprintCache.size > KEY_CACHE_SIZE) thumbprintCache.delete(thumbprintCache.keys().next().value as string);
  return jkt;
}

/**
 * The same outcomes as {@link verifySignature}, with a caller's signature check, which gets the
 * proof's own text (a native one decodes it into pooled memory; nothing is copied here). Answers
 * the payload's base64url segment.
 */
async function verifyWith(verifier: JwsSignatureVerifier, proof: string, jwk: JWK, alg: DpopAlg): Promise<string> {
  const firstDot = proof.indexOf('.');
  const lastDot = proof.lastIndexOf('.');
  const signature = proof.slice(lastDot + 1);
  // RFC 4648 §5: a base64url text of 4n + 1 characters encodes no whole number of bytes (the
  // segments' alphabet was checked with COMPACT_JWS). Checked where jose's compactVerify checks
  // it, the signature before and the payload after the signature check, for the same outcomes.
  if (signature.length % 4 === 1) throw new InvalidDpopProof('DPoP proof is not a valid JWS');
  let valid: boolean;
  try {
    valid = await verifier(alg, jwk, proof.slice(0, lastDot), signature);
  } catch {
    throw new InvalidDpopProof('DPoP proof jwk is not a valid public key');
  }
  if (!valid) throw new InvalidDpopProof('DPoP proof signature is invalid');
  if ((lastDot - firstDot - 1) % 4 === 1) throw new InvalidDpopProof('DPoP proof is not a valid JWS');
  return proof.slice(firstDot + 1, lastDot);
}

/** Any character outside ASCII (`atob` answers one character per byte, so none is above U+00FF). */
const NON_ASCII = /[\u0080-\u00ff]/;

/**
 * The UTF-8 text a base64url segment encodes; throws when it is not strict UTF-8. ASCII, which
 * every proof's payload is in practice, is read as decoded, with no byte array in between.
 */
function decodeText(segment: string): string {
  const binary = atob(segment.replaceAll('-', '+').replaceAll('_', '/'));
  if (!NON_ASCII.test(binary)) return binary;
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return utf8Strict.decode(bytes);
}

function checkNonce(claim: unknown, required: string | ((nonce: string) => boolean)): void {
  const handBack = typeof required === 'string' ? required : '';
  if (claim === undefined) throw new UseDpopNonce('DPoP proof nonce is required', handBack);
  if (typeof claim !== 'string') throw new InvalidDpopProof('DPoP proof nonce claim must be a string');
  const accepted = typeof required === 'string' ? timingSafeEqual(claim, required) : required(claim);
  if (!accepted) throw new UseDpopNonce('DPoP proof nonce is stale or unknown', handBack);
}

function requireClaim(claims: Record<string, unknown>, name: string, type: 'string'): string;
function requireClaim(claims: Record<string, unknown>, name: string, type: 'number'): number;
function requireClaim(claims: Record<string, unknown>, name: string, type: 'string' | 'number'): string | number {
  const value = claims[name];
  if (value === undefined) throw new InvalidDpopProof(`DPoP proof ${name} claim is missing`);
  if (typeof value !== type) throw new InvalidDpopProof(`DPoP proof ${name} claim must be a ${type}`);
  return value as string | number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The RFC 7638 §3.2 required public members of an accepted key, or `undefined` for any other
 * key type or curve. Dropping the rest keeps `use`, `key_ops` or `ext` from changing the import.
 */
function publicMembers(jwk: Record<string, unknown>): JWK | undefined {
  const { kty, crv, x, y } = jwk;
  if (kty === 'EC' && crv === 'P-256' && typeof x === 'string' && typeof y === 'string') return { kty, crv, x, y };
  if (kty === 'OKP' && crv === 'Ed25519' && typeof x === 'string') return { kty, crv, x };
  return undefined;
}

function algForKey(jwk: JWK): DpopAlg {
  return jwk.kty === 'EC' ? 'ES256' : 'EdDSA';
}

/** Whether an accepted key signs with `alg`: P-256 with ES256; Ed25519 with EdDSA or, fully specified, Ed25519 (RFC 9864 §2.2). */
function keySignsWith(jwk: JWK, alg: string): boolean {
  return jwk.kty === 'EC' ? alg === 'ES256' : alg === 'EdDSA' || alg === 'Ed25519';
}
