import {
  ACTOR_TOKEN_TYP,
  type AuthorizationDetails,
  CLIENT_ASSERTION_TYP,
  type Clock,
  createDpopProof,
  type Envelope,
  InvalidClientMetadata,
  JWT_TOKEN_TYPE,
  randomId,
  SELF_SIGNED_TOKEN_TYPE,
  SUBJECT_TOKEN_TYP,
  systemClock,
  TOKEN_EXCHANGE_GRANT,
  TXN_TOKEN_TYPE,
  TxnTokenClaimsSchema,
} from '@writ/core';
import type { z } from 'zod';
import { type CapabilityInput, type EnvelopeInput, toAuthorizationDetails, toEnvelope } from './builders.js';
import {
  GrantDenied,
  GrantExpired,
  GrantRevoked,
  nonceRequested,
  registryError,
  StepUpDenied,
  StepUpExpired,
  WaitTimeout,
  writDenialOf,
  WritResponseError,
} from './errors.js';
import { type AgentKey, AgentKeyFileError, loadOrCreateAgentKey, material, readAgentKey, saveRegistration, signJwt } from './key.js';
import {
  type Grant,
  GrantSchema,
  MetadataSchema,
  type RegistryMetadata,
  RegisteredClientSchema,
  type RequestedGrant,
  RequestedGrantSchema,
  type StepUp,
  StepUpSchema,
  TokenResponseSchema,
  type TransactionToken,
} from './types.js';

/** RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion. */
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** The registry holds a long-poll at most this many seconds (`GET /grants/:id?wait=`). */
const MAX_WAIT_S = 60;
/** How long past the asked wait a long-poll may take before the connection is presumed dead. */
const LONG_POLL_GRACE_MS = 15_000;
/** Back-off after a failed long-poll (registry restarting, network down): doubles up to this. */
const MAX_BACKOFF_MS = 15_000;
/** Client assertions and self-signed subject tokens are proofs of the moment. */
const ASSERTION_LIFETIME_S = 60;
/** The registry refuses self-signed tokens that live longer (apps/registry self-signed-jwt.ts). */
const MAX_ACTOR_TOKEN_TTL_S = 300;
const DEFAULT_RENEW_BEFORE_S = 30;
/** RFC 7235 §2.1 token68: what an initial access token may be (RFC 6750 §2.1). */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
/** Fetch normalises these methods to upper case (Fetch standard, "normalize a method"); the proof's htm must match. */
const NORMALISED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);

/**
 * How a {@link WritAgent} talks to the world.
 *
 * @example
 * ```ts
 * const common: AgentConnectionOptions = { fetch: globalThis.fetch, renewBeforeSeconds: 60 };
 * ```
 */
export interface AgentConnectionOptions {
  /** The `fetch` for every request (registry and services). Default: the global one. */
  fetch?: typeof fetch;
  /** Time for `iat`/`exp` and token renewal. Default: the system clock. */
  clock?: Clock;
  /**
   * Renew a root token when it has less than this many seconds left (default 30; never more than
   * half the token's life, so a short-lived token is not renewed on every request).
   */
  renewBeforeSeconds?: number;
}

/**
 * An agent that has already enrolled: its key, its client_id and its registry.
 *
 * @example
 * ```ts
 * const agent = new WritAgent({ key, clientId: 'agt_3kP0c9', registryUrl: 'https://registry.writ.example' });
 * ```
 */
export interface WritAgentOptions extends AgentConnectionOptions {
  key: AgentKey;
  clientId: string;
  /** The registry's issuer URL (its RFC 8414 metadata must name exactly this issuer). */
  registryUrl: string;
}

/**
 * What {@link WritAgent.enroll} needs: the registry, the one-time enrollment token a human
 * minted for this agent, a name the human will recognise, and the key (a file, or in memory).
 *
 * @example
 * ```ts
 * const options: EnrollOptions = {
 *   registryUrl: 'https://registry.writ.example',
 *   enrollmentToken: process.env.WRIT_ENROLLMENT_TOKEN!,
 *   name: 'Trip planner',
 *   keyFile: './agent-key.json',
 * };
 * ```
 */
export interface EnrollOptions extends AgentConnectionOptions {
  registryUrl: string;
  /** The initial access token minted in the approval UI (RFC 7591 §3): single use, short-lived. */
  enrollmentToken: string;
  /** `client_name`: what the human sees in the inbox. */
  name: string;
  /** Where the key is kept (created when missing); the registration is saved there too. */
  keyFile?: string;
  /** Or a key held in memory ({@link AgentKey.generate}); nothing is saved. */
  key?: AgentKey;
}

/**
 * What {@link WritAgent.load} needs: the key file an earlier {@link WritAgent.enroll} saved the
 * registration in.
 *
 * @example
 * ```ts
 * const options: LoadOptions = { keyFile: './agent-key.json', registryUrl: 'https://registry.writ.example' };
 * ```
 */
export interface LoadOptions extends AgentConnectionOptions {
  keyFile: string;
  /** When given, the file's registration must be at this registry. */
  registryUrl?: string;
}

/**
 * A grant request (`POST /grants`): capabilities on one service, the envelope, why, for how long,
 * and how far it may be delegated. Capabilities and envelope are checked with the libs/core
 * schemas before the request is sent; the registry checks the rest.
 *
 * @example
 * ```ts
 * const request: GrantRequest = {
 *   service: 'https://flights.example',
 *   authorization_details: [capability('flight_booking').at('https://flights.example/api').actions('read', 'book')],
 *   envelope: envelope().maxUses(10),
 *   purpose: 'Book my trip to Lisbon',
 *   duration_s: 3600,
 *   delegation: { max_depth: 1 },
 * };
 * ```
 */
export interface GrantRequest {
  /** The service's id (`svc_...`) or URI. */
  service: string;
  authorization_details: readonly CapabilityInput[];
  /** Default: `{}` (no limits, and no money). */
  envelope?: EnvelopeInput;
  /** Shown to the human. */
  purpose: string;
  /** How long the grant lasts once approved, in seconds. */
  duration_s: number;
  /** How many hops of delegation, and to whom; default: none. */
  delegation?: { max_depth: number; allowed_agents?: string[] };
  signal?: AbortSignal;
}

/**
 * How long to wait for a human's decision.
 *
 * @example
 * ```ts
 * const controller = new AbortController();
 * const options: WaitOptions = { timeoutMs: 10 * 60_000, signal: controller.signal };
 * ```
 */
export interface WaitOptions {
  /** Give up with {@link WaitTimeout} after this long. Default: wait until decided (or expired). */
  timeoutMs?: number;
  /** Aborts the wait, and the request in flight; the wait rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * What a root token covers: by default the whole grant; or a subset of its capabilities and a
 * narrower envelope, for a transaction that needs less.
 *
 * @example
 * ```ts
 * const options: TokenOptions = { authorization_details: [capability('flight_booking').at('https://flights.example/api').actions('read')] };
 * ```
 */
export interface TokenOptions {
  authorization_details?: readonly CapabilityInput[];
  envelope?: EnvelopeInput;
  signal?: AbortSignal;
}

/**
 * Where a delegated token comes from when it must be renewed: typically a call back to the
 * delegating agent. Called when the agent has no token from it yet, or when the last one is
 * about to expire. May answer a {@link TransactionToken} or the compact JWT.
 *
 * @example
 * ```ts
 * const source: TokenSource = async () => planner.delegate(root, { to: booker.clientId, actorToken: await booker.actorToken(), authorization_details });
 * ```
 */
export type TokenSource = () => Promise<TransactionToken | string>;

/**
 * The token an {@link WritAgent.fetch} call uses: a token (a root token from `agent.token()` is
 * renewed by exchanging again; any other is used until it expires), or a {@link TokenSource}.
 * With `throwOnDenial: false` a denial is returned as the `Response` instead of thrown
 * (read it with {@link writDenialOf}).
 *
 * @example
 * ```ts
 * const options: AgentFetchOptions = { token, throwOnDenial: false };
 * ```
 */
export type AgentFetchOptions = ({ token: TransactionToken | string; tokenSource?: never } | { tokenSource: TokenSource; token?: never }) & {
  throwOnDenial?: boolean;
};

/**
 * A delegation: to which agent, with its consent ({@link WritAgent.actorToken}, made by that
 * agent), and what it may do (no wider than the token delegated; by default the same).
 *
 * @example
 * ```ts
 * const options: DelegateOptions = {
 *   to: booker.clientId,
 *   actorToken: await booker.actorToken(),
 *   authorization_details: [capability('flight_booking').at('https://flights.example/api').actions('read')],
 * };
 * ```
 */
export interface DelegateOptions {
  /** The delegatee's client_id; its actor token must be its own. */
  to: string;
  actorToken: string;
  authorization_details?: readonly CapabilityInput[];
  envelope?: EnvelopeInput;
  signal?: AbortSignal;
}

/**
 * How long an actor token lives.
 *
 * @example
 * ```ts
 * const options: ActorTokenOptions = { ttlSeconds: 30 };
 * ```
 */
export interface ActorTokenOptions {
  /** 1 to 300 seconds (default 60): the delegator must use it within that time. */
  ttlSeconds?: number;
}

/** A root token and how to get its successor. */
interface RootRenewal {
  grantId: string;
  details: { authorization_details?: AuthorizationDetails; envelope?: Envelope };
  current: TransactionToken;
  pending?: Promise<TransactionToken> | undefined;
}

/** The last token a source gave. */
interface SourceState {
  current?: TransactionToken;
  pending?: Promise<TransactionToken> | undefined;
}

/** The issuer identifier of a registry URL: http(s), no query or fragment, no trailing slash. */
function issuerOf(registryUrl: string): string {
  let url: URL;
  try {
    url = new URL(registryUrl);
  } catch {
    throw new TypeError('registryUrl must be an absolute http(s) URL');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new TypeError('registryUrl must be an http(s) URL without query, fragment or credentials');
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** RFC 8414 §3.1: the metadata URL of an issuer, the well-known segment inserted before its path. */
function metadataUrl(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}/.well-known/oauth-authorization-server${path}`;
}

/** The payload of a compact JWS, without checking anything else. */
function jwtPayload(jwt: string): Record<string, unknown> | undefined {
  const part = jwt.split('.')[1];
  if (part === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A failure worth waiting out during a long wait: the network, or the registry failing (5xx). */
function isTransient(error: unknown): boolean {
  if (error instanceof TypeError) return true; // fetch: connection refused, reset, DNS
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === 'number' && status >= 500;
}

/**
 * An AI agent acting for a person through Writ: it enrolls its key with the registry, asks for
 * grants and waits for the human's passkey approval, exchanges approved grants for DPoP-bound
 * transaction tokens, calls services with them ({@link WritAgent.fetch}) and hands narrower tokens
 * to other agents ({@link WritAgent.delegate}). Every call to the registry is authenticated with
 * `private_key_jwt` (RFC 7523; a fresh single-use assertion each time); every token is bound to
 * the agent's key and used with a fresh DPoP proof (RFC 9449).
 *
 * @example
 * ```ts
 * import { capability, envelope, WritAgent } from '@writ/sdk/agent';
 *
 * const agent = await WritAgent.enroll({
 *   registryUrl: 'https://registry.writ.example',
 *   enrollmentToken: process.env.WRIT_ENROLLMENT_TOKEN!,
 *   name: 'Trip planner',
 *   keyFile: './agent-key.json',
 * });
 * const { grant_id } = await agent.requestGrant({
 *   service: 'https://flights.example',
 *   authorization_details: [capability('flight_booking').at('https://flights.example/api').actions('read', 'book')],
 *   envelope: envelope().maxUses(10),
 *   purpose: 'Book my trip to Lisbon',
 *   duration_s: 3600,
 * });
 * await agent.waitForGrant(grant_id, { timeoutMs: 10 * 60_000 });
 * const token = await agent.token(grant_id);
 * const response = await agent.fetch('https://flights.example/api/bookings', { method: 'POST', body: '{}' }, { token });
 * ```
 */
export class WritAgent {
  /** The agent's key (public part, thumbprint, file). */
  readonly key: AgentKey;
  /** The client_id the registry gave this agent. */
  readonly clientId: string;
  /** The registry's issuer URL. */
  readonly registryUrl: string;
  readonly #fetch: typeof fetch;
  readonly #clock: Clock;
  readonly #renewBeforeMs: number;
  #metadata: Promise<RegistryMetadata> | undefined;
  /** RFC 9449 §8.2, §9: the last `DPoP-Nonce` each origin sent, put in the next proof to it. */
  readonly #nonces = new Map<string, string>();
  readonly #roots = new WeakMap<TransactionToken, RootRenewal>();
  readonly #sources = new WeakMap<TokenSource, SourceState>();

  /**
   * An agent that has already enrolled. Prefer {@link WritAgent.enroll} and {@link WritAgent.load}.
   *
   * @example
   * ```ts
   * const agent = new WritAgent({ key: AgentKey.generate(), clientId: 'agt_3kP0c9', registryUrl: 'https://registry.writ.example' });
   * ```
   */
  constructor(options: WritAgentOptions) {
    if (options.clientId === '') throw new TypeError('clientId is required');
    const renewBefore = options.renewBeforeSeconds ?? DEFAULT_RENEW_BEFORE_S;
    if (!(renewBefore >= 0)) throw new TypeError('renewBeforeSeconds must be zero or more');
    this.key = options.key;
    this.clientId = options.clientId;
    this.registryUrl = issuerOf(options.registryUrl);
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#clock = options.clock ?? systemClock;
    this.#renewBeforeMs = renewBefore * 1000;
  }

  /**
   * Registers a new agent (RFC 7591) with the one-time enrollment token a human minted, and
   * saves the registration in the key file (created when missing), so {@link WritAgent.load}
   * finds it after a restart. A key that is already registered is refused before anything is
   * sent (`InvalidClientMetadata`): load that agent instead.
   *
   * @example
   * ```ts
   * const agent = await WritAgent.enroll({
   *   registryUrl: 'https://registry.writ.example',
   *   enrollmentToken: process.env.WRIT_ENROLLMENT_TOKEN!,
   *   name: 'Trip planner',
   *   keyFile: './agent-key.json',
   * });
   * console.log(agent.clientId); // agt_...
   * ```
   */
  static async enroll(options: EnrollOptions): Promise<WritAgent> {
    if ((options.key === undefined) === (options.keyFile === undefined)) throw new TypeError('give either keyFile or key');
    if (!TOKEN68.test(options.enrollmentToken)) throw new TypeError('enrollmentToken is not a token (RFC 6750 §2.1)');
    const registryUrl = issuerOf(options.registryUrl);
    let key = options.key ?? (await loadOrCreateAgentKey(options.keyFile!));
    if (key.registration !== undefined) {
      throw new InvalidClientMetadata(
        `this key is already registered as ${key.registration.client_id} at ${key.registration.registry}: load it with WritAgent.load instead of enrolling again`,
      );
    }
    const connection = new WritAgent({ ...options, key, clientId: 'unregistered', registryUrl });
    const metadata = await connection.metadata();
    const endpoint = metadata.registration_endpoint ?? `${registryUrl}/oauth/register`;
    const response = await connection.#send(endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.enrollmentToken}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ client_name: options.name, jwks: { keys: [key.publicJwk] }, token_endpoint_auth_method: 'private_key_jwt' }),
      redirect: 'error',
    });
    const client = await connection.#read(response, RegisteredClientSchema, 'an RFC 7591 client information response');
    const registered = client.jwks?.keys[0];
    if (registered !== undefined && (registered.x !== key.publicJwk.x || registered.y !== key.publicJwk.y)) {
      throw new WritResponseError(response.status, undefined, 'the registry registered another key than the one sent');
    }
    key = await saveRegistration(key, {
      registry: registryUrl,
      client_id: client.client_id,
      client_name: client.client_name ?? options.name,
      registered_at: new Date(connection.#now()).toISOString(),
    });
    return new WritAgent({ ...options, key, clientId: client.client_id, registryUrl });
  }

  /**
   * The agent an earlier {@link WritAgent.enroll} saved in `keyFile`. A missing file, a file
   * without a registration, or (with `registryUrl`) a registration at another registry throws
   * {@link AgentKeyFileError}; nothing is created or changed.
   *
   * @example
   * ```ts
   * const key = await loadOrCreateAgentKey('./agent-key.json');
   * const agent = key.registration
   *   ? await WritAgent.load({ keyFile: './agent-key.json' })
   *   : await WritAgent.enroll({ registryUrl, enrollmentToken, name: 'Trip planner', keyFile: './agent-key.json' });
   * ```
   */
  static async load(options: LoadOptions): Promise<WritAgent> {
    const key = await readAgentKey(options.keyFile);
    const registration = key.registration;
    if (registration === undefined) throw new AgentKeyFileError(options.keyFile, 'not_enrolled', 'holds no registration: enroll the agent first (WritAgent.enroll)');
    if (options.registryUrl !== undefined && issuerOf(options.registryUrl) !== registration.registry) {
      throw new AgentKeyFileError(options.keyFile, 'not_enrolled', `is registered at ${registration.registry}, not at ${issuerOf(options.registryUrl)}`);
    }
    return new WritAgent({ ...options, key, clientId: registration.client_id, registryUrl: registration.registry });
  }

  /**
   * The registry's RFC 8414 metadata, fetched once (again after a failure). Its `issuer` must be
   * exactly `registryUrl` (RFC 8414 §3.3), so an agent cannot be pointed at one server and sign
   * assertions for another.
   *
   * @example
   * ```ts
   * const { issuer, token_endpoint } = await agent.metadata();
   * ```
   */
  metadata(): Promise<RegistryMetadata> {
    // Shared by every caller, so no caller's signal may abort it.
    this.#metadata ??= this.#fetchMetadata().catch((error: unknown) => {
      this.#metadata = undefined;
      throw error;
    });
    return this.#metadata;
  }

  async #fetchMetadata(): Promise<RegistryMetadata> {
    const response = await this.#send(metadataUrl(this.registryUrl), { headers: { accept: 'application/json' }, redirect: 'error' });
    const metadata = await this.#read(response, MetadataSchema, 'RFC 8414 metadata');
    if (metadata.issuer !== this.registryUrl) {
      throw new WritResponseError(response.status, undefined, `the metadata names the issuer ${metadata.issuer}, not ${this.registryUrl} (RFC 8414 §3.3)`);
    }
    if (metadata.dpop_signing_alg_values_supported !== undefined && !metadata.dpop_signing_alg_values_supported.includes('ES256')) {
      throw new WritResponseError(response.status, undefined, 'the registry does not accept ES256 DPoP proofs');
    }
    return metadata;
  }

  /**
   * Asks the human for a grant (`POST /grants`). Resolves as soon as the request is recorded,
   * `pending`; wait for the decision with {@link WritAgent.waitForGrant}. Capabilities and
   * envelope are checked first (`InvalidAuthorizationDetails`, `InvalidRequest`).
   *
   * @example
   * ```ts
   * const { grant_id } = await agent.requestGrant({
   *   service: 'https://flights.example',
   *   authorization_details: [capability('flight_booking').at('https://flights.example/api').actions('read', 'book')],
   *   envelope: envelope().amount('EUR', { per_request_max: 400, approval_above: 250 }),
   *   purpose: 'Book my trip to Lisbon',
   *   duration_s: 24 * 3600,
   * });
   * ```
   */
  async requestGrant(request: GrantRequest): Promise<RequestedGrant> {
    const body = {
      service: request.service,
      authorization_details: toAuthorizationDetails(request.authorization_details),
      envelope: toEnvelope(request.envelope ?? {}),
      purpose: request.purpose,
      duration_s: request.duration_s,
      ...(request.delegation !== undefined && { delegation: request.delegation }),
    };
    const response = await this.#agentCall(`${this.registryUrl}/grants`, { method: 'POST', body: JSON.stringify(body), signal: request.signal });
    return this.#read(response, RequestedGrantSchema, 'a grant request answer');
  }

  /**
   * The grant as it stands now (`GET /grants/:id`), whatever its status.
   *
   * @example
   * ```ts
   * const { status } = await agent.getGrant(grantId);
   * ```
   */
  async getGrant(grantId: string, signal?: AbortSignal): Promise<Grant> {
    const response = await this.#agentCall(`${this.registryUrl}/grants/${encodeURIComponent(grantId)}`, { method: 'GET', signal });
    return this.#read(response, GrantSchema, 'a grant');
  }

  /**
   * Waits for the human's decision on a grant with the registry's long-poll
   * (`GET /grants/:id?wait=N`, N ≤ 60, asked again until decided): no polling in between.
   * Resolves with the approved grant (what the human approved, possibly narrowed); rejects with
   * {@link GrantDenied}, {@link GrantExpired}, {@link GrantRevoked}, {@link WaitTimeout} after
   * `timeoutMs`, or the signal's reason when aborted (the request in flight is aborted too). A
   * registry that is briefly unreachable or failing is waited out with a back-off.
   *
   * @example
   * ```ts
   * try {
   *   const grant = await agent.waitForGrant(grant_id, { timeoutMs: 15 * 60_000 });
   *   console.log('approved until', grant.expires_at);
   * } catch (e) {
   *   if (e instanceof GrantDenied) console.log('the human said no');
   *   else throw e;
   * }
   * ```
   */
  async waitForGrant(grantId: string, options: WaitOptions = {}): Promise<Grant> {
    const grant = await this.#waitFor('grant', grantId, `${this.registryUrl}/grants/${encodeURIComponent(grantId)}`, GrantSchema, options);
    switch (grant.status) {
      case 'approved':
        return grant;
      case 'denied':
        throw new GrantDenied(grant);
      case 'expired':
        throw new GrantExpired(grant);
      case 'revoked':
        throw new GrantRevoked(grant);
      case 'pending':
        throw new WaitTimeout('grant', grantId, options.timeoutMs ?? 0);
    }
  }

  /**
   * Waits for the human's decision on a step-up (an `ApprovalRequired` denial's `stepUpId`) with
   * the registry's long-poll `GET /step-ups/:id?wait=N`, exactly like {@link WritAgent.waitForGrant}.
   * Resolves once approved: then retry the request that was refused, once. Rejects with
   * {@link StepUpDenied}, {@link StepUpExpired}, {@link WaitTimeout} or the signal's reason.
   *
   * @example
   * ```ts
   * const pay = () => agent.fetch('https://pay.example/api/payments', { method: 'POST', body: JSON.stringify({ amount: 180 }) }, { token });
   * try {
   *   await pay();
   * } catch (e) {
   *   if (!(e instanceof ApprovalRequired) || e.stepUpId === undefined) throw e;
   *   await agent.waitForStepUp(e.stepUpId, { timeoutMs: 5 * 60_000 });
   *   await pay();
   * }
   * ```
   */
  async waitForStepUp(stepUpId: string, options: WaitOptions = {}): Promise<StepUp> {
    const stepUp = await this.#waitFor('step_up', stepUpId, `${this.registryUrl}/step-ups/${encodeURIComponent(stepUpId)}`, StepUpSchema, options);
    switch (stepUp.status) {
      case 'approved':
        return stepUp;
      case 'denied':
        throw new StepUpDenied(stepUp);
      case 'expired':
        throw new StepUpExpired(stepUp);
      case 'pending':
        throw new WaitTimeout('step_up', stepUpId, options.timeoutMs ?? 0);
    }
  }

  /** Long-polls `url` until the answer is no longer pending, the deadline passes, or the signal aborts. */
  async #waitFor<T extends { status: string }>(kind: 'grant' | 'step_up', id: string, url: string, schema: z.ZodType<T>, options: WaitOptions): Promise<T> {
    const { timeoutMs, signal } = options;
    if (timeoutMs !== undefined && !(timeoutMs >= 0)) throw new TypeError('timeoutMs must be zero or more');
    const started = Date.now();
    const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : started + timeoutMs;
    let failures = 0;
    for (let first = true; ; first = false) {
      signal?.throwIfAborted();
      const remaining = deadline - Date.now();
      if (!first && remaining <= 0) throw new WaitTimeout(kind, id, timeoutMs!);
      const waitS = remaining <= 0 ? 0 : Math.min(MAX_WAIT_S, Math.ceil(remaining / 1000));
      // The deadline aborts a long-poll in flight; the guard catches a connection that went silent.
      const deadlineTimer = new AbortController();
      const guard = new AbortController();
      const guardMs = waitS * 1000 + LONG_POLL_GRACE_MS;
      const timers = [
        setTimeout(() => guard.abort(), guardMs),
        // Only a deadline that falls within this long-poll needs a timer.
        ...(remaining > 0 && remaining < guardMs ? [setTimeout(() => deadlineTimer.abort(), remaining)] : []),
      ];
      const signals = [deadlineTimer.signal, guard.signal, ...(signal ? [signal] : [])];
      let answer: T;
      try {
        const response = await this.#agentCall(`${url}?wait=${waitS}`, { method: 'GET', signal: AbortSignal.any(signals) });
        answer = await this.#read(response, schema, kind === 'grant' ? 'a grant' : 'a step-up');
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (deadlineTimer.signal.aborted) throw new WaitTimeout(kind, id, timeoutMs!);
        if (!guard.signal.aborted && !isTransient(error)) throw error;
        failures += 1;
        const backoff = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failures - 1));
        const left = deadline - Date.now();
        if (left <= 0) throw new WaitTimeout(kind, id, timeoutMs!);
        await sleep(Math.min(backoff, left), signal);
        continue;
      } finally {
        for (const timer of timers) clearTimeout(timer);
      }
      failures = 0;
      if (answer.status !== 'pending') return answer;
      if (remaining <= 0) return answer;
    }
  }

  /**
   * Exchanges the approved grant for a root transaction token (RFC 8693 token exchange of a
   * self-signed subject token, `private_key_jwt`, DPoP-bound to the agent key). By default the
   * token covers the whole grant; ask for a subset for a transaction that needs less. Given to
   * {@link WritAgent.fetch} or {@link WritAgent.delegate}, it is renewed shortly before it expires,
   * by exchanging again.
   *
   * @example
   * ```ts
   * const token = await agent.token(grantId);
   * console.log(token.claims.txn, token.expiresAt);
   * ```
   */
  async token(grantId: string, options: TokenOptions = {}): Promise<TransactionToken> {
    const details = {
      ...(options.authorization_details !== undefined && { authorization_details: toAuthorizationDetails(options.authorization_details) }),
      ...(options.envelope !== undefined && { envelope: toEnvelope(options.envelope) }),
    };
    const token = await this.#exchangeRoot(grantId, details, options.signal);
    this.#roots.set(token, { grantId, details, current: token });
    return token;
  }

  async #exchangeRoot(grantId: string, details: RootRenewal['details'], signal?: AbortSignal): Promise<TransactionToken> {
    const token = await this.#tokenRequest(
      (issuer) => ({
        grant_type: TOKEN_EXCHANGE_GRANT,
        requested_token_type: TXN_TOKEN_TYPE,
        subject_token_type: SELF_SIGNED_TOKEN_TYPE,
        // ARCHITECTURE.md "Issuing a root token": the agent's own statement, iss = sub = client_id, aud = issuer.
        subject_token: this.#selfSigned(issuer, ASSERTION_LIFETIME_S, SUBJECT_TOKEN_TYP),
        client_assertion_type: JWT_BEARER,
        client_assertion: this.#selfSigned(issuer, ASSERTION_LIFETIME_S, CLIENT_ASSERTION_TYP),
        request_details: JSON.stringify({ grant_id: grantId, ...details }),
      }),
      undefined,
      signal,
    );
    if (token.claims.cnf.jkt !== this.key.jkt) throw new WritResponseError(200, undefined, 'the registry bound the token to another key');
    return token;
  }

  /**
   * The delegatee's consent to act (RFC 8693 `actor_token`): a short JWT signed with this agent's
   * registered key, `typ` `writ-actor+jwt`, `iss` = `sub` = its client_id, `aud` = the registry's
   * issuer, single-use `jti`. The registry takes it only as a consent, never as this agent's
   * login (ADR 0015). Hand it to the delegating agent, which passes it to {@link WritAgent.delegate}.
   *
   * @example
   * ```ts
   * // in the delegatee
   * const consent = await booker.actorToken({ ttlSeconds: 60 });
   * // in the delegator
   * const child = await planner.delegate(root, { to: booker.clientId, actorToken: consent, authorization_details });
   * ```
   */
  async actorToken(options: ActorTokenOptions = {}): Promise<string> {
    const ttl = options.ttlSeconds ?? 60;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_ACTOR_TOKEN_TTL_S) throw new TypeError(`ttlSeconds must be a whole number from 1 to ${MAX_ACTOR_TOKEN_TTL_S}`);
    const { issuer } = await this.metadata();
    return this.#selfSigned(issuer, ttl, ACTOR_TOKEN_TYP);
  }

  /**
   * Hands a narrower token to another agent (a hop, RFC 8693 with `act`): proves possession of
   * `token` with a DPoP proof, authenticates with `private_key_jwt`, and presents the delegatee's
   * actor token. The child token is bound to the delegatee's key, keeps the transaction, never
   * outlives `token`, and may cover only a subset of it. Send the child's `value` to the
   * delegatee, which calls {@link WritAgent.fetch} with it.
   *
   * @example
   * ```ts
   * const child = await planner.delegate(root, {
   *   to: booker.clientId,
   *   actorToken: await booker.actorToken(),
   *   authorization_details: [capability('flight_booking').at('https://flights.example/api').actions('read')],
   *   envelope: envelope().maxUses(5),
   * });
   * ```
   */
  async delegate(token: TransactionToken | string, options: DelegateOptions): Promise<TransactionToken> {
    const parent = await this.#fresh(typeof token === 'string' ? this.#readToken(token) : token);
    const consent = jwtPayload(options.actorToken);
    if (consent?.iss !== options.to || consent.sub !== options.to) throw new TypeError(`actorToken is not the consent of ${options.to}: it must be made by that agent's actorToken()`);
    const details = {
      ...(options.authorization_details !== undefined && { authorization_details: toAuthorizationDetails(options.authorization_details) }),
      ...(options.envelope !== undefined && { envelope: toEnvelope(options.envelope) }),
    };
    const child = await this.#tokenRequest(
      (issuer) => ({
        grant_type: TOKEN_EXCHANGE_GRANT,
        requested_token_type: TXN_TOKEN_TYPE,
        subject_token_type: TXN_TOKEN_TYPE,
        subject_token: parent.value,
        actor_token_type: JWT_TOKEN_TYPE,
        actor_token: options.actorToken,
        client_assertion_type: JWT_BEARER,
        client_assertion: this.#selfSigned(issuer, ASSERTION_LIFETIME_S, CLIENT_ASSERTION_TYP),
        ...(Object.keys(details).length > 0 && { request_details: JSON.stringify(details) }),
      }),
      parent.value,
      options.signal,
    );
    if (child.claims.act.sub !== options.to) throw new WritResponseError(200, undefined, 'the registry issued the token to another actor');
    return child;
  }

  /**
   * `fetch` with Writ: sends `Authorization: DPoP <token>` and a fresh DPoP proof (bound to the
   * method, the URL and the token's hash, `ath`) on every request. On `401` with
   * `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a `DPoP-Nonce`, it retries exactly once
   * with that nonce, and remembers each server's latest nonce for the next proofs. A root token
   * from {@link WritAgent.token} is renewed shortly before it expires; a token from a
   * `tokenSource` is asked for again; any other token is used until it expires.
   *
   * A denial by a service protected by the SDK middleware is thrown as its libs/core error
   * (`InsufficientScope`, `ApprovalRequired` with `stepUpId`, `RateLimited` with `retryAfter`,
   * `Revoked`, `InvalidToken`, ...; see {@link writDenialOf}); every other answer, error or not,
   * is returned as is. Redirects are returned, not followed (a proof is bound to one URL), unless
   * `init.redirect` says otherwise. A `ReadableStream` body is read into memory first, so the
   * request can be sent again. A token bound to another agent's key is sent all the same: the
   * service refuses it (`InvalidDpopProof`), as it refuses anyone who took a token without its key.
   *
   * @example
   * ```ts
   * const response = await agent.fetch(
   *   'https://flights.example/api/bookings',
   *   { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ flight: 'TP1351' }) },
   *   { token },
   * );
   * console.log(await response.json());
   * ```
   */
  async fetch(input: string | URL, init: RequestInit = {}, options: AgentFetchOptions): Promise<Response> {
    const url = new URL(input);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError('agent.fetch takes an absolute http(s) URL');
    const token = options.tokenSource !== undefined ? await this.#fromSource(options.tokenSource) : await this.#fresh(typeof options.token === 'string' ? this.#readToken(options.token) : options.token);
    const method = init.method === undefined ? 'GET' : NORMALISED_METHODS.has(init.method.toUpperCase()) ? init.method.toUpperCase() : init.method;
    // A stream can be read once; the nonce retry sends the body again.
    let body = init.body;
    if (body instanceof ReadableStream) body = await new Response(body).arrayBuffer();
    const { duplex: _duplex, ...rest } = init as RequestInit & { duplex?: unknown };
    const { privateKey, publicJwk } = await this.#dpopKey();

    for (let retried = false; ; retried = true) {
      const headers = new Headers(init.headers);
      headers.set('authorization', `DPoP ${token.value}`);
      headers.set(
        'dpop',
        await createDpopProof({ privateKey, publicJwk, htm: method, htu: url.href, accessToken: token.value, nonce: this.#nonces.get(url.origin), clock: this.#clock }),
      );
      const response = await this.#fetch(url, { ...rest, method, headers, body, redirect: init.redirect ?? 'manual' });
      this.#rememberNonce(url.origin, response);
      // RFC 9449 §9: a resource server asks for a nonce with 401 and a DPoP challenge; retried once.
      if (!retried && response.status === 401 && (await nonceRequested(response)) !== undefined) {
        await response.body?.cancel();
        continue;
      }
      if (options.throwOnDenial !== false) {
        const denial = await writDenialOf(response, this.#now());
        if (denial !== undefined) {
          await response.body?.cancel();
          throw denial;
        }
      }
      return response;
    }
  }

  /**
   * The freshest token for `token`: a root token near its end is exchanged again (once, however
   * many callers). A failed renewal is thrown only once the current token has expired: until then
   * the current one is used, and the next request tries again.
   */
  async #fresh(token: TransactionToken): Promise<TransactionToken> {
    const root = this.#roots.get(token);
    if (root === undefined) return token;
    return this.#renewed(root, () =>
      this.#exchangeRoot(root.grantId, root.details).then((renewed) => {
        this.#roots.set(renewed, root);
        return renewed;
      }),
    );
  }

  /** The source's current token, asked for again when there is none or it is about to expire. */
  async #fromSource(source: TokenSource): Promise<TransactionToken> {
    let state = this.#sources.get(source);
    if (state === undefined) this.#sources.set(source, (state = {}));
    return this.#renewed(state, async () => {
      const value = await source();
      return typeof value === 'string' ? this.#readToken(value) : value;
    });
  }

  /** `state.current` while it is not about to expire; otherwise the next one, obtained once for every concurrent caller. */
  async #renewed(state: { current?: TransactionToken; pending?: Promise<TransactionToken> | undefined }, next: () => Promise<TransactionToken>): Promise<TransactionToken> {
    const current = state.current;
    if (current !== undefined && !this.#expiresSoon(current)) return current;
    state.pending ??= next()
      .then((token) => {
        state.current = token;
        return token;
      })
      .finally(() => {
        state.pending = undefined;
      });
    try {
      return await state.pending;
    } catch (error) {
      if (current !== undefined && current.expiresAt.getTime() > this.#now()) return current;
      throw error;
    }
  }

  #expiresSoon(token: TransactionToken): boolean {
    const lifetimeMs = (token.claims.exp - token.claims.iat) * 1000;
    return token.expiresAt.getTime() - this.#now() <= Math.min(this.#renewBeforeMs, lifetimeMs / 2);
  }

  /** Reads a compact Txn-Token into a {@link TransactionToken}; `expiresIn` (seconds) from the answer that carried it. */
  #readToken(value: string, expiresIn?: number, receivedAt: number = this.#now()): TransactionToken {
    const claims = TxnTokenClaimsSchema.safeParse(jwtPayload(value));
    if (!claims.success) throw new TypeError('not a transaction token (txntoken+jwt claims)');
    const exp = claims.data.exp * 1000;
    const expiresAt = new Date(expiresIn === undefined ? exp : Math.min(exp, receivedAt + expiresIn * 1000));
    return { value, claims: claims.data, expiresAt };
  }

  /**
   * Posts one token exchange to the token endpoint with a fresh DPoP proof, retrying once when
   * the registry asks for a nonce (RFC 9449 §8: 400 `use_dpop_nonce` with `DPoP-Nonce`).
   * `form` is called for each attempt, so single-use assertions are never sent twice.
   */
  async #tokenRequest(form: (issuer: string) => Record<string, string>, accessToken: string | undefined, signal: AbortSignal | undefined): Promise<TransactionToken> {
    const { issuer, token_endpoint: endpoint } = await this.metadata();
    const origin = new URL(endpoint).origin;
    const { privateKey, publicJwk } = await this.#dpopKey();
    for (let retried = false; ; retried = true) {
      const proof = await createDpopProof({
        privateKey,
        publicJwk,
        htm: 'POST',
        htu: endpoint,
        ...(accessToken !== undefined && { accessToken }),
        nonce: this.#nonces.get(origin),
        clock: this.#clock,
      });
      const response = await this.#send(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', dpop: proof },
        body: new URLSearchParams(form(issuer)).toString(),
        redirect: 'error',
        ...(signal && { signal }),
      });
      const receivedAt = this.#now();
      this.#rememberNonce(origin, response);
      if (!response.ok && !retried && (await nonceRequested(response)) !== undefined) {
        await response.body?.cancel();
        continue;
      }
      const answer = await this.#read(response, TokenResponseSchema, 'a token response');
      // RFC 9449 §5: a DPoP-bound token is answered with token_type DPoP.
      if (answer.token_type.toLowerCase() !== 'dpop') throw new WritResponseError(response.status, undefined, `token_type is ${answer.token_type}, not DPoP`);
      try {
        return this.#readToken(answer.access_token, answer.expires_in, receivedAt);
      } catch {
        throw new WritResponseError(response.status, undefined, 'the access_token is not a transaction token');
      }
    }
  }

  #rememberNonce(origin: string, response: Response): void {
    const nonce = response.headers.get('dpop-nonce');
    if (nonce !== null && nonce !== '') this.#nonces.set(origin, nonce);
  }

  async #dpopKey(): Promise<{ privateKey: CryptoKey; publicJwk: AgentKey['publicJwk'] }> {
    return { privateKey: await material(this.key).webKey, publicJwk: this.key.publicJwk };
  }

  /**
   * A JWT about this agent: iss = sub = client_id, aud = the issuer, short-lived, single-use jti.
   * `typ` says which kind it is (client assertion, subject or actor token): the registry accepts
   * each only as its own kind (ADR 0015).
   */
  #selfSigned(issuer: string, lifetimeS: number, typ: typeof CLIENT_ASSERTION_TYP | typeof SUBJECT_TOKEN_TYP | typeof ACTOR_TOKEN_TYP): string {
    const iat = Math.floor(this.#now() / 1000);
    return signJwt(
      this.key,
      { kid: this.key.publicJwk.kid, typ },
      { iss: this.clientId, sub: this.clientId, aud: issuer, iat, exp: iat + lifetimeS, jti: randomId() },
    );
  }

  /** A registry call authenticated with `private_key_jwt` in the Authorization header (ADR 0005). */
  async #agentCall(url: string, init: { method: string; body?: string; signal?: AbortSignal | undefined }): Promise<Response> {
    const { issuer } = await this.metadata();
    return this.#send(url, {
      method: init.method,
      headers: {
        authorization: `private_key_jwt ${this.#selfSigned(issuer, ASSERTION_LIFETIME_S, CLIENT_ASSERTION_TYP)}`,
        accept: 'application/json',
        ...(init.body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(init.body !== undefined && { body: init.body }),
      // The assertion goes to the registry only, never wherever a redirect points.
      redirect: 'error',
      ...(init.signal && { signal: init.signal }),
    });
  }

  #send(url: string, init: RequestInit): Promise<Response> {
    return this.#fetch(url, init);
  }

  /** A success answer read with `schema`, or the error answer as its typed error. */
  async #read<T>(response: Response, schema: z.ZodType<T>, what: string): Promise<T> {
    if (!response.ok) throw await registryError(response, this.#now());
    let value: unknown;
    try {
      value = await response.json();
    } catch {
      throw new WritResponseError(response.status, undefined, `the answer is not JSON (expected ${what})`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new WritResponseError(response.status, undefined, `the answer is not ${what}`);
    return parsed.data;
  }

  #now(): number {
    return this.#clock.now();
  }
}
