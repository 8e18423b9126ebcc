import { hash, randomBytes, randomUUID } from 'node:crypto';
import {
  actChain,
  ApprovalRequired,
  type AuthorizationDetail,
  type BoundRequest,
  BudgetExceeded,
  canonicalJson,
  type Clock,
  type Envelope,
  evaluateEnvelope,
  findCoveringCapability,
  InsufficientScope,
  InvalidDpopProof,
  InvalidRequest,
  InvalidToken,
  locationCovers,
  normalizeHtu,
  OAuthError,
  RateLimited,
  Revoked,
  type RevocationKind,
  TemporarilyUnavailable,
  toMinorUnits,
  type TxnTokenClaims,
  UseDpopNonce,
  type VerificationEventRequest,
  VerificationEvents,
  type VerifiedDpopProof,
  verifyDpopProof,
  verifyTxnToken,
} from '@writ/core';
import type { DpopNonces } from '@writ/server/dpop-nonces';
import { nodeSignatureVerifier } from '@writ/server/node-crypto';
import type { VerifyAllow, VerifyAnswer, VerifyDenialCode, VerifyDeny, VerifyRemaining, VerifyRequest } from '@writ/contracts';
import type { JwksCache } from './jwks.js';
import type { ServiceIdentity } from './services.js';
import { type DecisionInput, type DecisionOutcome, GrantStateMissing, StoreUnavailable, type VerifierStore } from './store/store.js';
import type { TokenCache } from './token-cache.js';

/** An allow answer as the verifier writes it. */
export type Allow = VerifyAllow;
export type Deny = VerifyDeny;

/** Counters as `evaluateEnvelope` sees them for the stateless checks: none (the store counts). */
const NO_COUNTS = Object.freeze({ uses: 0, spent: 0, rateCount: 0, rateWindowEndsAtMs: 0 });

/** How long a step-up waits for the human, and an approved one for its retried request. */
const STEP_UP_TTL_MS = 15 * 60_000;
/** A grant lives at most 30 days: its counters outlive it (ADR 0011). */
const STATE_TTL_MS = 31 * 24 * 3600_000;
/** DPoP proofs older than this are refused, and their jti kept this long (plus skew). */
const PROOF_MAX_AGE_S = 300;
const PROOF_FUTURE_SKEW_S = 5;
/** Tolerated clock difference on the token's `exp` and `iat`. */
const TOKEN_SKEW_S = 30;

export interface VerifierOptions {
  issuer: string;
  trustDomain: string;
  jwks: JwksCache;
  store: VerifierStore;
  tokens: TokenCache;
  clock: Clock;
  /** Names this verifier process in audit events. */
  instance: string;
  /** When set, proofs must carry one of its nonces; a denial hands out a fresh one. */
  nonces?: DpopNonces;
}

/**
 * One-shot `crypto.hash`: unlike `createHash`, no native Hash object per call, so nothing for the
 * young-generation collector's weak-handle pass (measured: about 1 ms of each 2 ms scavenge at
 * 1,000 req/s came from such handles).
 */
function sha256(text: string): string {
  return hash('sha256', text, 'base64url');
}

/** Thrown inside `verify` to answer `deny` with its event already decided. */
function denyOf(error: OAuthError): Deny {
  // Every code the verifier answers is a VerifyDenialCode (the SDK reads any other as no answer).
  const deny: Deny = { allow: false, error: error.code as VerifyDenialCode, error_description: error.description, status: error.status };
  const challenge = error.wwwAuthenticate();
  if (challenge !== undefined) deny.www_authenticate = challenge;
  if (error instanceof RateLimited) deny.retry_after = error.retryAfter;
  if (error instanceof UseDpopNonce && error.nonce !== '') deny.dpop_nonce = error.nonce;
  return deny;
}

/** The revocations that would stop this token, in the order they are reported. */
function revocationsOf(claims: TxnTokenClaims): { kind: RevocationKind; value: string }[] {
  const checks: { kind: RevocationKind; value: string }[] = [
    { kind: 'grant', value: claims.tctx.grant_id },
    { kind: 'txn', value: claims.txn },
    { kind: 'token', value: claims.jti },
  ];
  if (claims.tctx.parent !== undefined) checks.push({ kind: 'token', value: claims.tctx.parent });
  for (const agent of new Set([...actChain(claims.act), claims.req_wl])) checks.push({ kind: 'agent', value: agent });
  return checks;
}

/**
 * The envelope without what needs the grant's counters (`max_uses`, `rate`): with zero counters
 * and the step-up taken as given, `evaluateEnvelope` then decides exactly the stateless checks
 * (time window, amount stated and well-formed, currency, per-request maximum, an amount alone
 * above `total_max`); the store decides the rest.
 */
function statelessEnvelope(envelope: Envelope): Envelope {
  const { max_uses: _uses, rate: _rate, ...stateless } = envelope;
  return stateless;
}

/** What every decision on one verified token needs, computed once per token (claims are cached). */
interface PreparedToken {
  stateless: Envelope;
  revocations: { kind: RevocationKind; value: string }[];
  maxUses: number | undefined;
  rate: { limit: number; windowMs: number } | undefined;
  totalMaxMinor: number | undefined;
  approvalAboveMinor: number | undefined;
  /** The token's capabilities naming each service URI, by URI. */
  capabilitiesAt: Map<string, AuthorizationDetail[]>;
  /** The start of its audit events, by service id ({@link eventHead}). */
  eventHeads: Map<string, string>;
}

const prepared = new WeakMap<TxnTokenClaims, PreparedToken>();

/** Services remembered per token (a token names a few at most; more are computed each time). */
const SERVICES_PER_TOKEN = 16;

function prepare(claims: TxnTokenClaims): PreparedToken {
  let ready = prepared.get(claims);
  if (ready === undefined) {
    const { envelope } = claims.tctx;
    ready = {
      stateless: statelessEnvelope(envelope),
      revocations: revocationsOf(claims),
      maxUses: envelope.max_uses,
      rate: envelope.rate === undefined ? undefined : { limit: envelope.rate.limit, windowMs: envelope.rate.window_s * 1000 },
      totalMaxMinor: envelope.amount?.total_max === undefined ? undefined : toMinorUnits(envelope.amount.total_max),
      approvalAboveMinor: envelope.amount?.approval_above === undefined ? undefined : toMinorUnits(envelope.amount.approval_above),
      capabilitiesAt: new Map(),
      eventHeads: new Map(),
    };
    prepared.set(claims, ready);
  }
  return ready;
}

/**
 * The start of a decision's audit event for this token at this service ({@link VerificationEvents.head}):
 * the same for every request of the token there, so it is serialised once (a few services per
 * token at most, like {@link capabilitiesAt}).
 */
function eventHead(events: VerificationEvents, ready: PreparedToken, claims: TxnTokenClaims, serviceId: string): string {
  let head = ready.eventHeads.get(serviceId);
  if (head === undefined) {
    head = events.head({ actor: claims.act.sub, service: serviceId, grantId: claims.tctx.grant_id, txn: claims.txn, jti: claims.jti });
    if (ready.eventHeads.size < SERVICES_PER_TOKEN) ready.eventHeads.set(serviceId, head);
  }
  return head;
}

/** The token's capabilities with a location under `serviceUri` (a few services per token at most). */
function capabilitiesAt(ready: PreparedToken, claims: TxnTokenClaims, serviceUri: string): AuthorizationDetail[] {
  let here = ready.capabilitiesAt.get(serviceUri);
  if (here === undefined) {
    here = claims.tctx.authorization_details.filter((c) => c.locations.some((l) => locationCovers(serviceUri, l)));
    if (ready.capabilitiesAt.size < SERVICES_PER_TOKEN) ready.capabilitiesAt.set(serviceUri, here);
  }
  return here;
}

/** A request whose token and proof verified: what the store round trip decides on. */
interface VerifiedRequest {
  service: ServiceIdentity;
  request: VerifyRequest;
  claims: TxnTokenClaims;
  proof: VerifiedDpopProof;
  /** The verifier's clock when the request arrived (epoch ms). */
  nowMs: number;
  /** The URL as recorded ({@link safeUrl}). */
  url: string;
}

/** What the stateless checks decided (step 4.3): the denial the store reports, or the capability that allows. */
type StatelessDecision = { precheck: OAuthError; capability?: undefined } | { precheck?: undefined; capability: AuthorizationDetail };

/**
 * 4.3, decided without state and reported by the store after the replay and revocation checks, so
 * the order holds: the token's grant was approved for the calling provider, the URL is under its
 * URI, a capability naming it allows the action (and resource), then the envelope's stateless
 * checks (time window, amount stated and well-formed, currency, per-request maximum).
 */
function decideWithoutState({ service, request, claims, nowMs, url }: VerifiedRequest, ready: PreparedToken): StatelessDecision {
  const grantService = claims.tctx.service;
  if (grantService === undefined) {
    // Every token names its grant's service since issue 16 (finding 8); one from before lives 5 minutes at most.
    return { precheck: new InvalidToken('token names no service (tctx.service): it was issued before tokens were bound to their service; request a new one') };
  }
  if (grantService !== service.id) {
    // A grant is honoured only by the service it was approved for, wherever the URL points
    // (service URIs do not nest, but this does not depend on it).
    return { precheck: new InsufficientScope(`the token's grant was approved for service ${grantService}, not for this service provider (${service.id})`) };
  }
  if (!locationCovers(service.uri, request.url)) return { precheck: new InsufficientScope(`${url} is not under this service provider's URI ${service.uri}`) };
  // Only capabilities naming this provider count, whatever else the token may carry.
  const capability = findCoveringCapability(capabilitiesAt(ready, claims, service.uri), request);
  if (capability === undefined) {
    const what = request.resource === undefined ? '' : ` on resource '${request.resource}'`;
    return { precheck: new InsufficientScope(`no capability allows '${request.action}' at ${url}${what}`) };
  }
  const decision = evaluateEnvelope(ready.stateless, { amount: request.amount, currency: request.currency, stepUpApproved: true }, NO_COUNTS, nowMs);
  return decision.allow ? { capability } : { precheck: decision.error };
}

/**
 * 4.6 and 4.7: the money the store counts against `total_max` and, above `approval_above`, the
 * step-up this exact request needs. Undefined when the envelope or the request moves no money.
 */
function moneyCheck({ service, request, claims, url }: VerifiedRequest, ready: PreparedToken): { amount: NonNullable<DecisionInput['amount']>; bound?: BoundRequest } | undefined {
  if (claims.tctx.envelope.amount === undefined || request.amount === undefined) return undefined;
  const amount: NonNullable<DecisionInput['amount']> = { minor: toMinorUnits(request.amount) };
  if (ready.totalMaxMinor !== undefined) amount.totalMaxMinor = ready.totalMaxMinor;
  if (ready.approvalAboveMinor === undefined || amount.minor <= ready.approvalAboveMinor) return { amount };
  // What the person approves and the verifier lets through once: this exact request, its query as
  // sent (the audit `url` drops it) and the fields the service provider binds (ADR 0014
  // amendment). Any change to one of them is another request, another step-up.
  const bound: BoundRequest = { query: queryOf(request.url), fields: request.bind?.fields ?? {} };
  const shown = { grant_id: claims.tctx.grant_id, txn: claims.txn, agent: claims.act.sub, service: service.id, service_uri: service.uri, method: request.method, url, action: request.action, resource: request.resource ?? null, amount: request.amount, currency: request.currency ?? null, bound };
  amount.stepUp = { fingerprint: sha256(canonicalJson(shown)), newId: `su_${randomBytes(16).toString('base64url')}`, request: JSON.stringify(shown), ttlMs: STEP_UP_TTL_MS };
  return { amount, bound };
}

/**
 * One verification, step by step as docs/verifier.md "What is checked, in order" lists them (and
 * ARCHITECTURE.md "Verification"): the service provider, the token, the DPoP proof, then one store
 * round trip that makes the stateful checks in their order and queues the decision's audit event.
 */
export class Verifier {
  private readonly events: VerificationEvents;

  constructor(private readonly options: VerifierOptions) {
    this.events = new VerificationEvents(options.instance);
  }

  async verify(service: ServiceIdentity, request: VerifyRequest): Promise<VerifyAnswer> {
    // 1. The service provider: authenticated by the route (`ServiceDirectory.resolve`) before the
    // body is even parsed, so `service` is the caller.
    const nowMs = this.options.clock.now();
    const url = safeUrl(request.url);
    // A cached token brings its hash along; any other is hashed here (a bad one too: the hash
    // names it in the audit event).
    const cached = request.token === '' ? undefined : this.options.tokens.get(request.token, nowMs);
    const tokenHash = cached?.hash ?? (request.token === '' ? '' : sha256(request.token));
    let claims: TxnTokenClaims;
    let proof: VerifiedDpopProof;
    try {
      claims = cached?.claims ?? (await this.checkToken(request.token, tokenHash));
      proof = await this.checkDpopProof(request, claims, tokenHash);
    } catch (error) {
      return this.refuseUnverified(service, request, url, tokenHash, error);
    }
    return this.storeRoundTrip({ service, request, claims, proof, nowMs, url });
  }

  /**
   * Records the 503 deny of a request whose caller could not be confirmed because the registry
   * is unreachable, under the name the registry last gave its credential (issue 19: every denial
   * the verifier answers is recorded). Nothing in the request was checked, so no grant is named.
   */
  async recordUnconfirmed(service: ServiceIdentity, request: VerifyRequest, errorDescription: string): Promise<void> {
    const tokenHash = request.token === '' ? '' : sha256(request.token);
    const body = this.events.unverified({ service: service.id, method: request.method, url: safeUrl(request.url), action: request.action, tokenHash, errorDescription });
    await this.options.store.queueEvent({ id: eventId(), outcome: 'temporarily_unavailable', body });
  }

  /**
   * 2. The token: signature with the registry's cached JWKS, `typ`, `exp`/`iat`, `iss`, `aud`, the
   * claims profile. Called for a token that is not in the cache; caches it with its hash.
   */
  private async checkToken(token: string, hash: string): Promise<TxnTokenClaims> {
    const claims = await verifyTxnToken(token, {
      key: this.options.jwks.resolver,
      issuer: this.options.issuer,
      audience: this.options.trustDomain,
      clock: this.options.clock,
      maxSkewSeconds: TOKEN_SKEW_S,
    });
    this.options.tokens.set(token, { claims, hash });
    return claims;
  }

  /** 3. The DPoP proof: every check of RFC 9449 §4.3, bound to the token's `cnf.jkt` and `ath`. */
  private checkDpopProof(request: VerifyRequest, claims: TxnTokenClaims, tokenHash: string): Promise<VerifiedDpopProof> {
    return verifyDpopProof(request.dpop, {
      htm: request.method,
      htu: request.url,
      accessToken: request.token,
      accessTokenHash: tokenHash,
      expectedJkt: claims.cnf.jkt,
      clock: this.options.clock,
      maxAgeSeconds: PROOF_MAX_AGE_S,
      futureSkewSeconds: PROOF_FUTURE_SKEW_S,
      verifySignature: nodeSignatureVerifier,
      ...(this.options.nonces ? { nonce: this.options.nonces.accepts } : {}),
    });
  }

  /** The token or proof did not verify: nothing in it can be trusted, so no grant is named. */
  private async refuseUnverified(service: ServiceIdentity, request: VerifyRequest, url: string, tokenHash: string, error: unknown): Promise<Deny> {
    if (!(error instanceof OAuthError) || error instanceof TemporarilyUnavailable) throw error;
    const deny = denyOf(error);
    // RFC 9449 §8: use_dpop_nonce hands the client the nonce its next proof must carry.
    if (error instanceof UseDpopNonce && this.options.nonces) deny.dpop_nonce = this.options.nonces.issue();
    const body = this.events.unverified({ service: service.id, method: request.method, url, action: request.action, tokenHash, errorDescription: deny.error_description });
    await this.options.store.queueEvent({ id: eventId(), outcome: deny.error, body });
    return deny;
  }

  /**
   * 4. One store round trip: the proof's `jti` unused, nothing revoked, what was decided without
   * state (4.3, decided here), `max_uses`, the rate, the total, the step-up; the request counted
   * and its audit event queued in the same atomic step.
   */
  private async storeRoundTrip(verified: VerifiedRequest): Promise<VerifyAnswer> {
    const { service, request, claims, proof, nowMs } = verified;
    const ready = prepare(claims);
    const stateless = decideWithoutState(verified, ready);
    const money = stateless.precheck === undefined ? moneyCheck(verified, ready) : undefined;
    // The audit event: what this token and service always say, written once, then this request.
    // `at_ms` (the decision's own clock) and `proof_jkt` let the registry rebuild the grant's
    // rate log and proof replay state from the chain after the store lost them (ADR 0017).
    const event: VerificationEventRequest = {
      method: request.method,
      url: verified.url,
      action: request.action,
      proofJti: proof.jti,
      proofJkt: proof.jkt,
      atMs: nowMs,
      resource: request.resource,
      amount: request.amount,
      currency: request.currency,
      // What an allow adds to the grant's `spent`, so a rebuild adds exactly the same (ADR 0017),
      // and what a step-up binds: the registry shows and has signed it.
      chargedMinor: money?.amount.minor,
      bound: money?.bound,
    };
    const input: DecisionInput = {
      grantId: claims.tctx.grant_id,
      nowMs,
      proof: { jkt: proof.jkt, jti: proof.jti, keepUntilMs: (proof.iat + PROOF_MAX_AGE_S + PROOF_FUTURE_SKEW_S) * 1000 },
      revocations: ready.revocations,
      stateTtlMs: STATE_TTL_MS,
      event: { id: eventId(), body: this.events.decision(eventHead(this.events, ready, claims, service.id), event) },
    };
    if (stateless.precheck !== undefined) input.precheck = { code: stateless.precheck.code };
    if (ready.maxUses !== undefined) input.maxUses = ready.maxUses;
    if (ready.rate !== undefined) input.rate = ready.rate;
    if (money !== undefined) input.amount = money.amount;

    let outcome: DecisionOutcome;
    try {
      outcome = await this.options.store.decide(input);
    } catch (error) {
      // The answer is a 503 deny; its event waits in the store's backlog until the store is back.
      // A new id: if the script did run before the failure (a timeout), its own event stays too.
      if (error instanceof StoreUnavailable) await this.options.store.queueEvent({ id: eventId(), body: input.event.body, outcome: 'temporarily_unavailable' });
      throw error;
    }
    if (outcome.allow) return this.allowed(claims, ready, stateless.capability!, outcome);
    return this.denied(outcome, stateless.precheck, claims, request);
  }

  private allowed(claims: TxnTokenClaims, ready: PreparedToken, capability: AuthorizationDetail, outcome: Extract<DecisionOutcome, { allow: true }>): Allow {
    const remaining: VerifyRemaining = {};
    if (ready.maxUses !== undefined) remaining.uses = ready.maxUses - outcome.uses;
    if (ready.rate !== undefined) remaining.rate = ready.rate.limit - outcome.rateCount;
    if (ready.totalMaxMinor !== undefined) remaining.amount = (ready.totalMaxMinor - outcome.spentMinor) / 1000;
    const allow: Allow = {
      allow: true,
      sub: claims.sub,
      act: claims.act,
      txn: claims.txn,
      grant_id: claims.tctx.grant_id,
      jti: claims.jti,
      scope: claims.scope,
      capability,
      remaining,
    };
    if (outcome.stepUpId !== undefined) allow.step_up_id = outcome.stepUpId;
    return allow;
  }

  private denied(outcome: Exclude<DecisionOutcome, { allow: true }>, precheck: OAuthError | undefined, claims: TxnTokenClaims, request: VerifyRequest): Deny {
    const envelope = claims.tctx.envelope;
    switch (outcome.reason) {
      case 'replayed':
        return denyOf(new InvalidDpopProof('DPoP proof jti was already used'));
      case 'revoked':
        return denyOf(new Revoked(`the ${outcome.kind === 'token' && outcome.value !== claims.jti ? 'parent token' : outcome.kind} was revoked`));
      case 'precheck':
        if (precheck === undefined) throw new TemporarilyUnavailable('the store reported a denial that was not asked for');
        return denyOf(precheck);
      case 'max_uses':
        return denyOf(new BudgetExceeded('max_uses reached'));
      case 'rate_limited': {
        const rate = envelope.rate!;
        return denyOf(new RateLimited(`rate limit of ${rate.limit} per ${rate.window_s}s reached`, Math.max(1, Math.ceil(outcome.retryAfterMs / 1000))));
      }
      case 'budget_exceeded':
        return denyOf(new BudgetExceeded(`amount ${request.amount} would bring the total above total_max ${envelope.amount?.total_max}`));
      case 'approval_required': {
        const deny = denyOf(
          new ApprovalRequired(`amount ${request.amount} is above approval_above ${envelope.amount?.approval_above}: a human must approve this request`),
        );
        deny.step_up_id = outcome.stepUpId;
        return deny;
      }
    }
  }
}

/**
 * The JSON of allow answers up to their `remaining`, by the capability that allowed them. A
 * capability object belongs to the claims of one verified token (the token cache parses each token
 * once), and everything before `remaining` is the token's and that capability's alone, so it is
 * serialised once per token and capability.
 */
const allowPrefixes = new WeakMap<AuthorizationDetail, string>();

/**
 * `JSON.stringify(allow)`, byte for byte, with what is the same for every answer on one token and
 * capability serialised once: an allow answer is most of the verifier's answers.
 */
export function allowJson(allow: Allow): string {
  let prefix = allowPrefixes.get(allow.capability);
  if (prefix === undefined) {
    const fixed = { allow: true, sub: allow.sub, act: allow.act, txn: allow.txn, grant_id: allow.grant_id, jti: allow.jti, scope: allow.scope, capability: allow.capability };
    // Without its closing brace: `remaining` follows.
    prefix = JSON.stringify(fixed).slice(0, -1);
    allowPrefixes.set(allow.capability, prefix);
  }
  const stepUp = allow.step_up_id === undefined ? '' : `,"step_up_id":${JSON.stringify(allow.step_up_id)}`;
  return `${prefix},"remaining":${JSON.stringify(allow.remaining)}${stepUp}}`;
}

/** A fresh audit event id; the registry appends each id once. */
function eventId(): string {
  // randomUUID draws from a cached entropy pool: far cheaper per call than randomBytes.
  return `vd_${randomUUID()}`;
}

/** The query of `url` exactly as sent, without `?` and fragment; null when it has none. */
function queryOf(url: string): string | null {
  const [beforeFragment = ''] = url.split('#', 1);
  const start = beforeFragment.indexOf('?');
  const query = start === -1 ? '' : beforeFragment.slice(start + 1);
  return query === '' ? null : query;
}

/** The URL without query and fragment (they may carry secrets), normalised; or a placeholder. */
function safeUrl(url: string): string {
  try {
    return normalizeHtu(url);
  } catch {
    return '(not an http(s) URL)';
  }
}

/** Maps anything `verify` throws to the HTTP answer: store and key failures are 503, never allow. */
export function failureAnswer(error: unknown): { status: number; body: Deny | { error: string; error_description: string } } {
  if (error instanceof GrantStateMissing) {
    // ADR 0017: the store lost this grant's counters; they are being rebuilt from the audit log.
    return { status: 503, body: { ...denyOf(new TemporarilyUnavailable("the grant's verifier state is being rebuilt: deny, and retry in a second")), status: 503, retry_after: 1 } };
  }
  if (error instanceof StoreUnavailable) {
    return { status: 503, body: { ...denyOf(new TemporarilyUnavailable('the verifier cannot reach its store: deny')), status: 503 } };
  }
  if (error instanceof TemporarilyUnavailable) return { status: 503, body: { ...denyOf(error), status: 503 } };
  if (error instanceof InvalidRequest) return { status: 400, body: error.toJSON() };
  if (error instanceof OAuthError && error.code === 'invalid_client') return { status: 401, body: error.toJSON() };
  return { status: 503, body: { ...denyOf(new TemporarilyUnavailable('the verifier could not decide: deny')), status: 503 } };
}
