import { SignJWT, base64url, decodeProtectedHeader, errors, jwtVerify, type JWK, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { AuthorizationDetailsSchema } from './capabilities.js';
import { epochSeconds, type Clock } from './clock.js';
import { sha256Base64url } from './encoding.js';
import { EnvelopeSchema } from './envelope.js';
import { InvalidToken, OAuthError, TemporarilyUnavailable } from './errors.js';

/**
 * The JWT `typ` header of a Txn-Token (draft-ietf-oauth-transaction-tokens-10, "JWT Header").
 *
 * @example
 * ```ts
 * decodeProtectedHeader(token).typ === TXN_TOKEN_TYP;
 * ```
 */
export const TXN_TOKEN_TYP = 'txntoken+jwt';

/**
 * Token type URN of a Txn-Token, for `requested_token_type`, `issued_token_type` and
 * `subject_token_type` (draft-ietf-oauth-transaction-tokens-10, "Txn-Token Request"; RFC 8693 §3).
 *
 * @example
 * ```ts
 * body.get('requested_token_type') === TXN_TOKEN_TYPE;
 * ```
 */
export const TXN_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:txn_token';

/**
 * Token type URN of a workload's self-signed subject token (draft-ietf-oauth-transaction-tokens-10,
 * "Self-Signed Subject Token Type").
 *
 * @example
 * ```ts
 * body.get('subject_token_type') === SELF_SIGNED_TOKEN_TYPE;
 * ```
 */
export const SELF_SIGNED_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:self_signed';

/**
 * Token type URN of a plain JWT (RFC 8693 §3): the type of the actor token a delegate signs.
 *
 * @example
 * ```ts
 * body.get('actor_token_type') === JWT_TOKEN_TYPE;
 * ```
 */
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/**
 * The RFC 8693 §2.1 token exchange grant type.
 *
 * @example
 * ```ts
 * body.get('grant_type') === TOKEN_EXCHANGE_GRANT;
 * ```
 */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/**
 * Algorithms a Txn-Token may be signed with: asymmetric only, never `none` or an HMAC.
 *
 * @example
 * ```ts
 * TXN_TOKEN_ALGS.includes('ES256'); // true
 * ```
 */
export const TXN_TOKEN_ALGS = ['ES256', 'EdDSA'] as const;

/**
 * A Txn-Token signing algorithm.
 *
 * @example
 * ```ts
 * const alg: TxnTokenAlg = 'ES256';
 * ```
 */
export type TxnTokenAlg = (typeof TXN_TOKEN_ALGS)[number];

/**
 * The longest `act` chain accepted: one root agent plus 15 delegation hops. Bounds the work of
 * parsing a hostile token and the size of every token in a transaction tree.
 *
 * @example
 * ```ts
 * actDepth(act) <= MAX_ACT_DEPTH; // always true for a verified token
 * ```
 */
export const MAX_ACT_DEPTH = 16;

/** A Txn-Token is a few kilobytes; this bounds the work a hostile one can cause. */
const MAX_TOKEN_LENGTH = 65_536;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * RFC 8693 §4.1 actor: the current holder, with the previous holder nested in `act`.
 *
 * @example
 * ```ts
 * const act: Act = { sub: 'agent-b', act: { sub: 'agent-a' } };
 * ```
 */
export interface Act {
  sub: string;
  act?: Act;
}

const Identifier = z.string().min(1).max(256);
// RFC 7519 §2 NumericDate; Writ only issues whole seconds.
const NumericDate = z.number().int().nonnegative();
// RFC 6749 §3.3: scope = scope-token *( SP scope-token ), scope-token = 1*NQCHAR.
const Scope = z
  .string()
  .max(4096)
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/, 'scope is space-separated scope tokens');

const ActNode: z.ZodType<Act> = z.lazy(() => z.object({ sub: Identifier, act: ActNode.optional() }));

/** Nesting depth of an untrusted value, counting at most to `MAX_ACT_DEPTH + 1` (no recursion). */
function untrustedActDepth(value: unknown): number {
  let depth = 0;
  let node = value;
  while (typeof node === 'object' && node !== null && depth <= MAX_ACT_DEPTH) {
    depth += 1;
    node = (node as { act?: unknown }).act;
  }
  return depth;
}

/**
 * The RFC 8693 §4.1 `act` claim: `{ sub, act? }`, newest actor outermost, at most
 * {@link MAX_ACT_DEPTH} actors. The depth is checked before the recursive parse, so a hostile
 * chain nested thousands deep costs one bounded loop.
 *
 * @example
 * ```ts
 * ActSchema.parse({ sub: 'agent-b', act: { sub: 'agent-a' } });
 * ```
 */
export const ActSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    if (untrustedActDepth(value) > MAX_ACT_DEPTH) {
      ctx.addIssue({ code: 'custom', message: `act chain is deeper than ${MAX_ACT_DEPTH} actors` });
    }
  })
  .pipe(ActNode);

/**
 * The claims of a Writ Txn-Token (ARCHITECTURE.md "The transaction token";
 * draft-ietf-oauth-transaction-tokens-10 "JWT Body Claims"). Unknown claims are ignored (and
 * dropped from the output); known ones are typed strictly. Beyond the types it holds Writ's
 * invariants: `exp` after `iat`; `tctx.depth` is the number of hops, so the `act` chain has
 * `depth + 1` actors; `tctx.parent` is present exactly when `depth > 0`.
 *
 * @example
 * ```ts
 * const claims = TxnTokenClaimsSchema.parse(payload);
 * claims.tctx.authorization_details[0]?.actions; // ['read']
 * ```
 */
export const TxnTokenClaimsSchema = z
  .object({
    iss: z.string().min(1).max(2048),
    iat: NumericDate,
    exp: NumericDate,
    jti: Identifier,
    // draft-ietf-oauth-transaction-tokens-10 "JWT Body Claims": aud identifies the one trust domain.
    aud: z.string().min(1).max(2048),
    txn: Identifier,
    sub: Identifier,
    scope: Scope,
    req_wl: Identifier,
    act: ActSchema,
    // RFC 9449 §6.1: base64url SHA-256 JWK thumbprint, 43 characters.
    cnf: z.object({ jkt: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'jkt is a base64url SHA-256 thumbprint') }),
    tctx: z.object({
      grant_id: Identifier,
      // The id (`svc_...`) of the one service the grant was approved for: only that service
      // provider's verify calls may honour the token (issue 16, finding 8). Every token Writ issues
      // carries it and the verifier refuses one without it; it is optional here only so that a
      // token issued before it existed still parses and is refused with that reason.
      service: Identifier.optional(),
      authorization_details: AuthorizationDetailsSchema,
      envelope: EnvelopeSchema,
      purpose: z.string().min(1).max(1024),
      // SHA-256 of the approval receipt, base64url (43) or hex (64).
      approval: z.string().regex(/^[A-Za-z0-9_-]{43,128}$/, 'approval is a SHA-256 hash'),
      parent: Identifier.optional(),
      depth: z
        .number()
        .int()
        .min(0)
        .max(MAX_ACT_DEPTH - 1),
    }),
    rctx: z
      .object({
        req_ip: z.union([z.ipv4(), z.ipv6()]).optional(),
        authn: z.string().min(1).max(256).optional(),
      })
      .optional(),
  })
  .superRefine((claims, ctx) => {
    if (claims.exp <= claims.iat) ctx.addIssue({ code: 'custom', path: ['exp'], message: 'exp must be after iat' });
    if (actDepth(claims.act) !== claims.tctx.depth + 1) {
      ctx.addIssue({ code: 'custom', path: ['tctx', 'depth'], message: 'depth must be the number of actors minus one' });
    }
    if ((claims.tctx.parent !== undefined) !== claims.tctx.depth > 0) {
      ctx.addIssue({ code: 'custom', path: ['tctx', 'parent'], message: 'parent is set exactly on delegated tokens' });
    }
  });

/**
 * The validated claims of a Txn-Token.
 *
 * @example
 * ```ts
 * const claims: TxnTokenClaims = await verifyTxnToken(token, options);
 * ```
 */
export type TxnTokenClaims = z.infer<typeof TxnTokenClaimsSchema>;

/**
 * Options for {@link signTxnToken}.
 *
 * @example
 * ```ts
 * const options: SignTxnTokenOptions = { privateKey: signingKey, kid: '2026-11' };
 * ```
 */
export interface SignTxnTokenOptions {
  /** The registry's current signing key (Web Crypto). Not needed when `sign` is given. */
  privateKey?: CryptoKey;
  /**
   * A native signer to use instead of Web Crypto: returns the JWS signature (for ES256, the 64-byte
   * R || S form of RFC 7518 §3.4) over the ASCII signing input `header.payload`.
   */
  sign?: (signingInput: Uint8Array) => Uint8Array | Promise<Uint8Array>;
  /** Its `kid`, as published in the JWKS. */
  kid: string;
  /** Default `ES256`. */
  alg?: TxnTokenAlg;
}

/**
 * Signs a Txn-Token. The claims are validated with {@link TxnTokenClaimsSchema} first: invalid
 * claims are a bug in the issuer and throw a `TypeError` naming the first bad claim.
 *
 * @example
 * ```ts
 * const token = await signTxnToken(claims, { privateKey, kid: '2026-11' });
 * ```
 */
export async function signTxnToken(claims: TxnTokenClaims, options: SignTxnTokenOptions): Promise<string> {
  const parsed = TxnTokenClaimsSchema.safeParse(claims);
  if (!parsed.success) throw new TypeError(`transaction token claims are invalid: ${firstIssuePath(parsed.error)}`);
  const alg = options.alg ?? 'ES256';
  // draft-ietf-oauth-transaction-tokens-10 "JWT Header": typ txntoken+jwt; kid for key rotation.
  // The input is signed as given, so an issuer's extra claims survive.
  const header = { typ: TXN_TOKEN_TYP, alg, kid: options.kid };
  if (options.sign !== undefined) {
    const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}`;
    return `${input}.${base64url.encode(await options.sign(new TextEncoder().encode(input)))}`;
  }
  if (options.privateKey === undefined) throw new TypeError('signTxnToken needs a privateKey or a sign function');
  return new SignJWT(claims).setProtectedHeader(header).sign(options.privateKey);
}

/**
 * Options for {@link verifyTxnToken}.
 *
 * @example
 * ```ts
 * const options: VerifyTxnTokenOptions = { key: jwks, issuer: 'https://registry.example', audience: 'writ.example', clock: systemClock, maxLifetimeSeconds: 300 };
 * ```
 */
export interface VerifyTxnTokenOptions {
  /** The registry's public key, or a jose key resolver such as `createRemoteJWKSet(jwksUri)`. */
  key: CryptoKey | JWTVerifyGetKey;
  /** The registry's issuer identifier; `iss` must equal it. */
  issuer: string;
  /** The trust domain; `aud` must be exactly this string. */
  audience: string;
  clock: Clock;
  /** Tolerated clock difference for `exp` and `iat`. Default 30 s. */
  maxSkewSeconds?: number;
  /** Default: {@link TXN_TOKEN_ALGS}. */
  algorithms?: readonly TxnTokenAlg[];
  /** If set, tokens whose `exp - iat` is longer are rejected. */
  maxLifetimeSeconds?: number;
}

/**
 * Verifies a Txn-Token: `typ` exactly `txntoken+jwt`, `alg` in the allow-list, `kid` present,
 * signature, `iss`, `aud` equal to the trust domain (a single string: an array is rejected even
 * if it contains the trust domain, because the draft defines `aud` as the one trust domain and a
 * multi-audience token could have been minted for use elsewhere), `exp` not passed and `iat` not in
 * the future (both with `maxSkewSeconds`), `exp` after `iat`, the optional lifetime bound, then
 * {@link TxnTokenClaimsSchema}. Every failure is an {@link InvalidToken} with a precise
 * description that never contains the token; a key resolver timeout is a
 * {@link TemporarilyUnavailable} (deny, but do not blame the token).
 *
 * @example
 * ```ts
 * const claims = await verifyTxnToken(token, {
 *   key: createRemoteJWKSet(new URL('https://registry.example/jwks')),
 *   issuer: 'https://registry.example',
 *   audience: 'writ.example',
 *   clock: systemClock,
 * });
 * claims.cnf.jkt; // check the DPoP proof key against this
 * ```
 */
export async function verifyTxnToken(token: string, options: VerifyTxnTokenOptions): Promise<TxnTokenClaims> {
  const skew = options.maxSkewSeconds ?? 30;
  const algorithms: readonly string[] = options.algorithms ?? TXN_TOKEN_ALGS;
  if (typeof token !== 'string' || token.length === 0) throw new InvalidToken('token is missing');
  if (token.length > MAX_TOKEN_LENGTH) throw new InvalidToken('token is too large');
  if (!COMPACT_JWS.test(token)) throw new InvalidToken('token is malformed');
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new InvalidToken('token is malformed');
  }
  // draft-ietf-oauth-transaction-tokens-10 "JWT Header": typ MUST be txntoken+jwt. Compared
  // exactly (not as a case-insensitive media type) so an access token or ID token never passes.
  if (header.typ !== TXN_TOKEN_TYP) throw new InvalidToken('token typ must be txntoken+jwt');
  if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) throw new InvalidToken('token alg is not allowed');
  if (typeof header.kid !== 'string' || header.kid.length === 0) throw new InvalidToken('token kid header is missing');

  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, checkedKey(options.key), {
      algorithms: [...algorithms],
      issuer: options.issuer,
      audience: options.audience,
      requiredClaims: ['iat', 'exp'],
      currentDate: new Date(options.clock.now()),
      clockTolerance: skew,
    }));
  } catch (error) {
    throw fromJoseError(error);
  }

  // jose accepts an aud array that contains the audience; the trust domain is a single value.
  if (typeof payload.aud !== 'string') throw new InvalidToken('token aud must be the trust domain, not an array');
  const iat = payload.iat as number;
  const exp = payload.exp as number;
  if (iat > epochSeconds(options.clock) + skew) throw new InvalidToken('token iat is in the future');
  if (exp <= iat) throw new InvalidToken('token exp is not after iat');
  if (options.maxLifetimeSeconds !== undefined && exp - iat > options.maxLifetimeSeconds) {
    throw new InvalidToken('token lifetime exceeds the allowed maximum');
  }

  const parsed = TxnTokenClaimsSchema.safeParse(payload);
  if (!parsed.success) throw new InvalidToken(`token claims are invalid: ${firstIssuePath(parsed.error)}`);
  return parsed.data;
}

/**
 * Wraps the key (or resolver) so a key of the wrong type for the token's `alg` is reported as
 * such, rather than as the `TypeError` jose throws for it.
 */
function checkedKey(key: CryptoKey | JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, input) => {
    const resolved = typeof key === 'function' ? await key(header, input) : key;
    if (!keyFitsAlg(resolved, header.alg)) throw new InvalidToken('token alg does not match the verification key type');
    return resolved;
  };
}

function keyFitsAlg(key: CryptoKey | Uint8Array | JWK | object, alg: string | undefined): boolean {
  if (key instanceof Uint8Array) return false; // a shared secret: never for Txn-Tokens
  if ('kty' in key) {
    const { kty, crv } = key;
    return alg === 'ES256' ? kty === 'EC' && crv === 'P-256' : kty === 'OKP' && crv === 'Ed25519';
  }
  if ('algorithm' in key && 'type' in key) {
    const algorithm = key.algorithm as { name: string; namedCurve?: string };
    return alg === 'ES256' ? algorithm.name === 'ECDSA' && algorithm.namedCurve === 'P-256' : algorithm.name === 'Ed25519';
  }
  // A platform key object (Node's KeyObject): jose checks it itself.
  return true;
}

/** Maps jose's errors to `invalid_token` with a stable description. */
function fromJoseError(error: unknown): OAuthError {
  if (error instanceof OAuthError) return error;
  if (error instanceof errors.JWTExpired) return new InvalidToken('token expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return new InvalidToken(`token claims are invalid: ${error.claim} is missing`);
    switch (error.claim) {
      case 'iss':
        return new InvalidToken('token issuer is not trusted');
      case 'aud':
        return new InvalidToken('token audience is not this trust domain');
      case 'nbf':
        return new InvalidToken('token is not yet valid');
      default:
        return new InvalidToken(`token claims are invalid: ${error.claim}`);
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return new InvalidToken('token signature is invalid');
  // Unreachable while the header pre-check stands; kept so the mapping covers every jose error.
  if (error instanceof errors.JOSEAlgNotAllowed) return new InvalidToken('token alg is not allowed');
  if (error instanceof errors.JWKSNoMatchingKey) return new InvalidToken('token signing key is unknown');
  if (error instanceof errors.JWKSMultipleMatchingKeys) return new InvalidToken('token kid matches more than one key');
  if (error instanceof errors.JOSENotSupported) return new InvalidToken('token uses an unsupported header or algorithm');
  if (error instanceof errors.JWKSTimeout) return new TemporarilyUnavailable('token signing keys could not be fetched');
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return new InvalidToken('token is malformed');
  // Anything else (a broken key resolver, a bad option) is a server fault, not the token's.
  throw error;
}

function firstIssuePath(error: z.ZodError): string {
  const path = error.issues[0]?.path ?? [];
  return path.length === 0 ? '(root)' : path.join('.');
}

/**
 * The `act` of a token handed to a new actor (RFC 8693 §4.1): the new actor outermost, the
 * previous chain nested. Throws a `RangeError` past {@link MAX_ACT_DEPTH}; the registry enforces
 * the grant's own (smaller) delegation limit before this.
 *
 * @example
 * ```ts
 * delegateAct({ sub: 'agent-a' }, 'agent-b'); // { sub: 'agent-b', act: { sub: 'agent-a' } }
 * ```
 */
export function delegateAct(parentAct: Act, newActorSub: string): Act {
  if (actDepth(parentAct) >= MAX_ACT_DEPTH) throw new RangeError(`act chain cannot be deeper than ${MAX_ACT_DEPTH} actors`);
  return { sub: newActorSub, act: parentAct };
}

/**
 * The actors of an `act` chain, newest (current holder) first.
 *
 * @example
 * ```ts
 * actChain({ sub: 'agent-b', act: { sub: 'agent-a' } }); // ['agent-b', 'agent-a']
 * ```
 */
export function actChain(act: Act): string[] {
  const chain: string[] = [];
  for (let node: Act | undefined = act; node !== undefined; node = node.act) chain.push(node.sub);
  return chain;
}

/**
 * The number of actors in an `act` chain (1 for a root token).
 *
 * @example
 * ```ts
 * actDepth({ sub: 'agent-b', act: { sub: 'agent-a' } }); // 2
 * ```
 */
export function actDepth(act: Act): number {
  let depth = 0;
  for (let node: Act | undefined = act; node !== undefined; node = node.act) depth += 1;
  return depth;
}

/**
 * base64url SHA-256 of a token: what logs and audit events carry instead of the token.
 *
 * @example
 * ```ts
 * logger.info({ token: await tokenHash(token) }, 'token issued');
 * ```
 */
export function tokenHash(token: string): Promise<string> {
  return sha256Base64url(token);
}
