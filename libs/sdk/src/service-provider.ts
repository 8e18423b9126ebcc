import { BOUND_FIELD_NAME, MAX_BOUND_FIELDS, VerifyAnswerSchema, type VerifyClaims, type VerifyDenialCode, type VerifyRemaining } from '@writ/contracts';
import {
  DPOP_ALGS,
  InvalidDpopProof,
  InvalidRequest,
  InvalidToken,
  OAuthError,
  pathStepProblem,
  TemporarilyUnavailable,
  textProblem,
  tokenHash,
} from '@writ/core';
import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import type { z } from 'zod';

/**
 * The service provider's side of Writ: read the agent's transaction token and DPoP proof, ask the
 * verifier (`POST /v1/verify`, docs/verifier.md) whether this request is allowed, and answer the
 * agent with the verifier's decision. Fails closed: whenever the verifier cannot be asked or its
 * answer cannot be read, the request is denied with `503 temporarily_unavailable`.
 */

/**
 * How a service provider reaches the verifier.
 *
 * @example
 * ```ts
 * const options: VerifierOptions = {
 *   verifierUrl: 'https://verifier.writ.example',
 *   serviceId: process.env.WRIT_SERVICE_ID!,
 *   credential: process.env.WRIT_SERVICE_CREDENTIAL!,
 * };
 * ```
 */
export interface VerifierOptions {
  /** Base URL of the verifier; `/v1/verify` is appended. */
  verifierUrl: string;
  /** The service id `services register` printed. */
  serviceId: string;
  /** The credential `services register` printed once. Sent only to the verifier, never logged. */
  credential: string;
  /** The `fetch` to call the verifier with (default: the global one). */
  fetch?: typeof fetch;
  /** How long to wait for the verifier's answer before denying with 503 (default 2000 ms). */
  timeoutMs?: number;
  /** Where to report a verifier that cannot be asked (default: `console.warn`). */
  logger?: WritLogger;
}

/**
 * The one logging call the SDK makes: pino's `(details, message)` shape, so a Fastify
 * `request.log` fits as is. Details never hold a token, a proof or the credential.
 *
 * @example
 * ```ts
 * const logger: WritLogger = { warn: (details, message) => console.warn(message, details) };
 * ```
 */
export interface WritLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

/**
 * The request headers as received: a Fetch `Headers`, a plain object (Node's `req.headers`,
 * any letter case, repeated values as arrays) or Node's flat `req.rawHeaders` list. Prefer
 * `rawHeaders` under Node: Node keeps only the first of several `Authorization` headers in
 * `req.headers`, and a repeated `Authorization` must be refused (RFC 6750 §3.1).
 *
 * @example
 * ```ts
 * const headers: RequestHeaders = ['Authorization', 'DPoP eyJ...', 'DPoP', 'eyJ...'];
 * ```
 */
export type RequestHeaders = Headers | Readonly<Record<string, string | readonly string[] | undefined>> | readonly string[];

/**
 * The agent's request, as the service provider received it, and what it does.
 *
 * @example
 * ```ts
 * const input: VerifyRequestInput = {
 *   method: 'POST',
 *   url: 'https://hotels.example/rooms/42/book',
 *   headers: req.headers,
 *   action: 'book',
 *   resource: 'room:42',
 *   amount: 180,
 *   currency: 'EUR',
 * };
 * ```
 */
export interface VerifyRequestInput {
  /** The HTTP method of the agent's request. */
  method: string;
  /** The absolute URL the agent called (scheme, host, path and query), as received. */
  url: string;
  /** The request headers. */
  headers: RequestHeaders;
  /** What the request does: one of the capability's `actions` (for example `book`). */
  action: string;
  /** The resource it acts on, matched against the capability's `identifier`. */
  resource?: string;
  /** Money the request moves, in currency units; given together with `currency`. */
  amount?: number;
  /** ISO 4217 code of `amount`. */
  currency?: string;
  /**
   * Request fields a person's step-up approval must hold to (a payee, an account), by name: the
   * verifier fingerprints them with the method, URL and its query, action, resource and amount,
   * and the person sees and signs them. An approved request passes only with the same values.
   * At most 16; names are tokens (`payee`, `to.iban`), values text shown to a person.
   */
  bind?: Record<string, string>;
}

/**
 * What is left of the grant's envelope after this request, as the verifier reports it.
 *
 * @example
 * ```ts
 * const remaining: WritRemaining = { uses: 9, amount: 320, rate: 59 };
 * ```
 */
export type WritRemaining = VerifyRemaining;

/**
 * Who the allowed request acts for and through, from the verifier's answer.
 *
 * @example
 * ```ts
 * const claims: WritClaims = {
 *   sub: 'user_1', act: { sub: 'agt_b', act: { sub: 'agt_a' } }, txn: 'txn_1', grant_id: 'grt_1',
 *   jti: 'tok_1', scope: 'book', remaining: { uses: 9 },
 * };
 * ```
 */
export type WritClaims = VerifyClaims;

/**
 * Every error code a denial carries: the verifier's codes, plus `temporarily_unavailable` when
 * the verifier could not decide.
 *
 * @example
 * ```ts
 * const code: WritDenialCode = 'approval_required';
 * ```
 */
export type WritDenialCode = VerifyDenialCode;

/**
 * The response a service provider sends when the request is denied.
 *
 * @example
 * ```ts
 * if (!result.allow) {
 *   res.writeHead(result.status, result.headers).end(JSON.stringify(result.body));
 * }
 * ```
 */
export interface WritDenial {
  allow: false;
  status: number;
  error: WritDenialCode;
  error_description: string;
  headers: {
    'WWW-Authenticate'?: string;
    'Retry-After'?: string;
    'DPoP-Nonce'?: string;
    'Cache-Control': 'no-store';
  };
  body: { error: WritDenialCode; error_description: string; step_up_id?: string };
}

/**
 * The verifier's decision on one request.
 *
 * @example
 * ```ts
 * const result: VerifyResult = await verifyRequest(input, options);
 * if (result.allow) console.log(result.claims.sub);
 * else console.log(result.status, result.error);
 * ```
 */
export type VerifyResult = { allow: true; claims: WritClaims } | WritDenial;

const DEFAULT_TIMEOUT_MS = 2000;
/** docs/verifier.md: the verifier reads at most 96 KiB of body (a token may be 64 KiB). */
const MAX_VERIFY_BODY_BYTES = 96 * 1024;
/** RFC 7235 §2.1 token68: a JWS (three base64url parts) is one. */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
/** RFC 7235 §2.1: `auth-scheme [ 1*SP ( token68 / #auth-param ) ]`. */
const CREDENTIALS = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?: +(.*))?$/;
/** RFC 6750 §3 / RFC 9449 §7.1: the challenge to a request that carries no token at all. */
const BARE_CHALLENGE = `DPoP algs="${DPOP_ALGS.join(' ')}"`;

/** A denial with the verifier's code and status, for rendering its challenge with libs/core. */
class VerifierDenial extends OAuthError {
  constructor(
    readonly code: WritDenialCode,
    readonly status: number,
    description: string,
  ) {
    super(description);
  }
}

type DenialExtras = Partial<Pick<WritDenial['headers'], 'Retry-After' | 'DPoP-Nonce'>> & { stepUpId?: string };

function denial(error: OAuthError & { code: WritDenialCode }, challenge: string | undefined, extra: DenialExtras = {}): WritDenial {
  const headers: WritDenial['headers'] = { 'Cache-Control': 'no-store' };
  if (challenge !== undefined) headers['WWW-Authenticate'] = challenge;
  if (extra['Retry-After'] !== undefined) headers['Retry-After'] = extra['Retry-After'];
  if (extra['DPoP-Nonce'] !== undefined) headers['DPoP-Nonce'] = extra['DPoP-Nonce'];
  const body: WritDenial['body'] = { error: error.code, error_description: error.description };
  if (extra.stepUpId !== undefined) body.step_up_id = extra.stepUpId;
  return { allow: false, status: error.status, error: error.code, error_description: error.description, headers, body };
}

/** A refusal made here, before the verifier is asked; resource errors carry their DPoP challenge. */
function refuse(error: InvalidToken | InvalidDpopProof | InvalidRequest): WritDenial {
  return denial(error, error.wwwAuthenticate());
}

const UNAVAILABLE = 'The verifier could not decide on this request; it is refused. Try again later.';

/** Every value of one header, in order, whatever shape the headers come in. */
function headerValues(headers: RequestHeaders, name: string): string[] {
  if (headers instanceof Headers) {
    const value = headers.get(name);
    return value === null ? [] : [value];
  }
  const values: string[] = [];
  if (Array.isArray(headers)) {
    const raw = headers as readonly string[];
    for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
    return values;
  }
  for (const [key, value] of Object.entries(headers as Readonly<Record<string, string | readonly string[] | undefined>>)) {
    if (key.toLowerCase() !== name || value === undefined) continue;
    if (typeof value === 'string') values.push(value);
    else values.push(...value);
  }
  return values;
}

/**
 * Splits a header that may appear once into its values. Neither a token68 nor a JWS holds a
 * comma, so a comma means the header was sent several times and joined (RFC 9110 §5.3).
 */
function singleValues(headers: RequestHeaders, name: string): string[] {
  return headerValues(headers, name).flatMap((value) => value.split(','));
}

type Credentials = { token: string; dpop: string } | WritDenial;

/** The token and proof of the request, or the refusal RFC 6750 §3.1 and RFC 9449 §7 call for. */
function readCredentials(headers: RequestHeaders): Credentials {
  // Not split on commas: other schemes' auth-params hold commas, and a DPoP or Bearer value
  // joined from two headers (a Fetch Headers) is refused below as malformed.
  const authorizations = headerValues(headers, 'authorization');
  if (authorizations.length > 1) return refuse(new InvalidRequest('the request has more than one Authorization header'));
  const txnTokens = singleValues(headers, 'txn-token');
  if (txnTokens.length > 1) return refuse(new InvalidRequest('the request has more than one Txn-Token header'));

  let authorizationToken: string | undefined;
  if (authorizations.length === 1) {
    const match = CREDENTIALS.exec(authorizations[0]!.trim());
    if (!match) return refuse(new InvalidRequest('the Authorization header is malformed'));
    const scheme = match[1]!.toLowerCase();
    const credentials = match[2]?.trim() ?? '';
    // RFC 9449 §7.2: every Writ token is DPoP-bound, so the Bearer scheme is never acceptable.
    if (scheme === 'bearer') return refuse(new InvalidToken('the token is DPoP-bound: send it with the DPoP scheme, not Bearer'));
    if (scheme === 'dpop') {
      if (!TOKEN68.test(credentials)) return refuse(new InvalidRequest('the Authorization header is malformed: expected DPoP <token>'));
      authorizationToken = credentials;
    }
    // Another scheme carries no Writ token; the Txn-Token header may still carry one.
  }

  let txnToken: string | undefined;
  if (txnTokens.length === 1) {
    txnToken = txnTokens[0]!.trim();
    if (!TOKEN68.test(txnToken)) return refuse(new InvalidRequest('the Txn-Token header is malformed'));
  }
  if (authorizationToken !== undefined && txnToken !== undefined && authorizationToken !== txnToken) {
    return refuse(new InvalidRequest('the Authorization and Txn-Token headers carry different tokens'));
  }
  const token = authorizationToken ?? txnToken;
  // RFC 6750 §3.1: a request with no credentials gets a challenge without an error code.
  if (token === undefined) return denial(new InvalidToken('the request carries no transaction token'), BARE_CHALLENGE);

  const proofs = singleValues(headers, 'dpop')
    .map((value) => value.trim())
    .filter((value) => value !== '');
  // RFC 9449 §4.3, check 1: exactly one DPoP header.
  if (proofs.length > 1) return refuse(new InvalidDpopProof('the request has more than one DPoP header'));
  if (proofs.length === 0) return refuse(new InvalidDpopProof('the request has no DPoP proof'));
  return { token, dpop: proofs[0]! };
}

/** RFC 7617 Basic, with RFC 6749 §2.3.1 form-encoding of the id and credential first. */
function basicAuthorization(serviceId: string, credential: string): string {
  const bytes = new TextEncoder().encode(`${encodeURIComponent(serviceId)}:${encodeURIComponent(credential)}`);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `Basic ${btoa(binary)}`;
}

function verifyEndpoint(verifierUrl: string): string {
  let url: URL;
  try {
    url = new URL(verifierUrl);
  } catch {
    throw new TypeError('verifierUrl must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('verifierUrl must be an absolute http(s) URL');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}/v1/verify`;
}

/** Throws on options no request could ever succeed with: a configuration error, found early. */
function checkOptions(options: VerifierOptions): string {
  const endpoint = verifyEndpoint(options.verifierUrl);
  if (options.serviceId === '' || options.credential === '') throw new TypeError('serviceId and credential are required');
  if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) throw new TypeError('timeoutMs must be positive');
  return endpoint;
}

function checkInput(input: VerifyRequestInput): void {
  if (input.action === '') throw new TypeError('action is required');
  if ((input.amount === undefined) !== (input.currency === undefined)) throw new TypeError('amount and currency go together');
  if (!URL.canParse(input.url)) throw new TypeError('url must be the absolute URL the agent called');
  if (input.bind !== undefined) {
    const names = Object.keys(input.bind);
    if (names.length > MAX_BOUND_FIELDS) throw new TypeError(`bind names at most ${MAX_BOUND_FIELDS} fields`);
    const bad = names.find((name) => !BOUND_FIELD_NAME.test(name));
    if (bad !== undefined) throw new TypeError(`bind field name '${bad}' is not a token of letters, digits and _ . -`);
    // The agent's request may supply the value; a non-string (a number, an object) must not slip through as "[object Object]".
    if (!Object.values(input.bind).every((value) => typeof value === 'string')) throw new TypeError('bind values are strings');
    const long = names.find((name) => input.bind![name]!.length > 512);
    if (long !== undefined) throw new TypeError(`bind field '${long}' is longer than 512 characters`);
  }
}

/**
 * A field the verifier would refuse and no audit chain can hold (a NUL, another C0 control or DEL,
 * a lone surrogate: `textProblem` of @writ/core), or a resource a server could read as another
 * place (`pathStepProblem`: `bookings/%2e%2e/admin`, ADR 0002), refused here without asking the
 * verifier, in the verifier's words (issue 16, 4; issue 17, 5). `resource` and `currency` often
 * come from the agent's request (a payee, an id in the path), so this is the agent's error:
 * 400 invalid_request.
 */
function unfitText(input: VerifyRequestInput): InvalidRequest | undefined {
  for (const field of ['url', 'action', 'resource', 'currency'] as const) {
    const value = input[field];
    const problem = value === undefined ? undefined : textProblem(value);
    if (problem) return new InvalidRequest(`${field}: ${problem.message}`);
  }
  const steps = input.resource === undefined ? undefined : pathStepProblem(input.resource);
  if (steps !== undefined) return new InvalidRequest(`resource: ${steps}`);
  // Bound values are shown to the person who approves the step-up: no control or format character.
  for (const [name, value] of Object.entries(input.bind ?? {})) {
    const problem = textProblem(value, 'human');
    if (problem) return new InvalidRequest(`bind.fields.${name}: ${problem.message}`);
  }
  return undefined;
}

const consoleLogger: WritLogger = { warn: (details, message) => console.warn(`@writ/sdk: ${message}`, details) };

/** Why the verifier could not be asked: for the log, never for the agent. */
async function unavailable(logger: WritLogger, token: string, details: Record<string, unknown>, message: string): Promise<WritDenial> {
  logger.warn({ ...details, token_hash: await tokenHash(token) }, message);
  return denial(new TemporarilyUnavailable(UNAVAILABLE), undefined);
}

/**
 * Asks the verifier whether one agent request may proceed, and returns either the claims it acts
 * under or the exact response to send back. Requests without a usable token or proof are refused
 * here without calling the verifier (RFC 6750 §3.1, RFC 9449 §7). The verifier being unreachable,
 * slow, failing or answering something unreadable denies the request with
 * `503 temporarily_unavailable`; so does a `401` from it, which means this service's own
 * credential is wrong (logged, without the credential).
 *
 * Throws `TypeError` only for programming errors: bad options, a relative `url`, an `amount`
 * without a `currency`.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { verifyRequest } from '@writ/sdk';
 *
 * createServer(async (req, res) => {
 *   const result = await verifyRequest(
 *     { method: req.method!, url: `https://hotels.example${req.url}`, headers: req.rawHeaders, action: 'search' },
 *     { verifierUrl: 'https://verifier.writ.example', serviceId: 'svc_hotels', credential: process.env.WRIT_CREDENTIAL! },
 *   );
 *   if (!result.allow) {
 *     res.writeHead(result.status, { ...result.headers, 'Content-Type': 'application/json' }).end(JSON.stringify(result.body));
 *     return;
 *   }
 *   res.end(`searching for ${result.claims.sub}`);
 * }).listen(8080);
 * ```
 */
export async function verifyRequest(input: VerifyRequestInput, options: VerifierOptions): Promise<VerifyResult> {
  const endpoint = checkOptions(options);
  checkInput(input);
  const credentials = readCredentials(input.headers);
  if ('allow' in credentials) return credentials;
  const unfit = unfitText(input);
  if (unfit) return refuse(unfit);

  const body = JSON.stringify({
    token: credentials.token,
    dpop: credentials.dpop,
    method: input.method,
    url: input.url,
    action: input.action,
    resource: input.resource,
    amount: input.amount,
    currency: input.currency,
    bind: input.bind === undefined ? undefined : { fields: input.bind },
  });
  if (new TextEncoder().encode(body).byteLength > MAX_VERIFY_BODY_BYTES) {
    return refuse(new InvalidRequest('the token, DPoP proof and URL are too large together'));
  }

  const logger = options.logger ?? consoleLogger;
  const fetchFn = options.fetch ?? fetch;
  let status: number;
  let text: string;
  try {
    const response = await fetchFn(endpoint, {
      method: 'POST',
      headers: { Authorization: basicAuthorization(options.serviceId, options.credential), 'Content-Type': 'application/json', Accept: 'application/json' },
      body,
      // The credential goes to the configured verifier only, never to wherever it redirects.
      redirect: 'error',
      signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
    status = response.status;
    text = await response.text();
  } catch (error) {
    const timedOut = error instanceof Error && error.name === 'TimeoutError';
    return unavailable(
      logger,
      credentials.token,
      { verifier: endpoint, reason: timedOut ? 'timeout' : 'unreachable', cause: error instanceof Error ? error.message : String(error) },
      timedOut ? 'the verifier did not answer in time; request denied' : 'the verifier cannot be reached; request denied',
    );
  }

  if (status === 401) {
    return unavailable(logger, credentials.token, { verifier: endpoint, reason: 'invalid_client', status, service_id: options.serviceId }, 'the verifier refused this service credential; every request is denied until it is fixed');
  }
  if (status !== 200) {
    return unavailable(logger, credentials.token, { verifier: endpoint, reason: 'status', status }, `the verifier answered ${status}; request denied`);
  }
  let answer: z.infer<typeof VerifyAnswerSchema>;
  try {
    answer = VerifyAnswerSchema.parse(JSON.parse(text));
  } catch {
    return unavailable(logger, credentials.token, { verifier: endpoint, reason: 'unreadable_answer', status }, 'the verifier answer is not a verify answer; request denied');
  }

  if (answer.allow) {
    const claims: WritClaims = {
      sub: answer.sub,
      act: answer.act,
      txn: answer.txn,
      grant_id: answer.grant_id,
      jti: answer.jti,
      scope: answer.scope,
      remaining: answer.remaining,
    };
    if (answer.step_up_id !== undefined) claims.step_up_id = answer.step_up_id;
    return { allow: true, claims };
  }
  const error = new VerifierDenial(answer.error, answer.status, answer.error_description);
  return denial(error, answer.www_authenticate ?? error.wwwAuthenticate(), {
    ...(answer.retry_after !== undefined && { 'Retry-After': String(Math.ceil(answer.retry_after)) }),
    ...(answer.dpop_nonce !== undefined && { 'DPoP-Nonce': answer.dpop_nonce }),
    ...(answer.step_up_id !== undefined && { stepUpId: answer.step_up_id }),
  });
}

/**
 * Options of the {@link writVerifier} Fastify plugin: how to reach the verifier, and the public
 * base URL agents call when the service sits behind a proxy.
 *
 * @example
 * ```ts
 * const options: WritVerifierOptions = {
 *   verifierUrl: 'https://verifier.writ.example',
 *   serviceId: 'svc_hotels',
 *   credential: process.env.WRIT_CREDENTIAL!,
 *   publicUrl: 'https://api.hotels.example/v2',
 * };
 * ```
 */
export interface WritVerifierOptions extends VerifierOptions {
  /**
   * The base URL agents call (scheme, host, and any path prefix a proxy strips), to which the
   * request's path and query are appended. Without it the URL is rebuilt from the request's
   * protocol and host (Fastify's `trustProxy` makes those follow `X-Forwarded-*`). Set it in
   * production: it keeps the URL checked against the DPoP proof independent of the Host header.
   */
  publicUrl?: string;
}

/**
 * What a route requires: the action, and how to read the resource and the money from the request.
 * Both functions run after the body is parsed, and may be async (a price looked up).
 *
 * @example
 * ```ts
 * const requirement: WritRequirement = {
 *   action: 'book',
 *   resource: (request) => `room:${(request.params as { id: string }).id}`,
 *   amount: (request) => ({ amount: (request.body as { price: number }).price, currency: 'EUR' }),
 * };
 * ```
 */
export interface WritRequirement {
  action: string;
  resource?: (request: FastifyRequest) => string | undefined | Promise<string | undefined>;
  amount?: (request: FastifyRequest) => WritAmount | undefined | Promise<WritAmount | undefined>;
  /**
   * The request fields a step-up approval must hold to ({@link VerifyRequestInput.bind}): bind
   * whatever decides where the money goes (a payee, an account). The URL's query is always bound.
   */
  bind?: (request: FastifyRequest) => Record<string, string> | undefined | Promise<Record<string, string> | undefined>;
}

/**
 * Money a request moves, in currency units.
 *
 * @example
 * ```ts
 * const amount: WritAmount = { amount: 180, currency: 'EUR' };
 * ```
 */
export interface WritAmount {
  amount: number;
  currency: string;
}

/**
 * What the {@link writVerifier} plugin adds to the Fastify instance as `fastify.writ`.
 *
 * @example
 * ```ts
 * app.post('/rooms/:id/book', { preHandler: app.writ.require({ action: 'book' }) }, async (request) => request.writ!.sub);
 * ```
 */
export interface WritFastify {
  /**
   * A `preHandler` that asks the verifier about each request to the route: a denial is answered
   * with its status, headers and body; an allow puts the claims on `request.writ`.
   */
  require(requirement: WritRequirement): preHandlerAsyncHookHandler;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Added by the `writVerifier` plugin of `@writ/sdk`. */
    writ: WritFastify;
  }
  interface FastifyRequest {
    /** The verifier's claims, on routes guarded by `fastify.writ.require`; `null` elsewhere. */
    writ: WritClaims | null;
  }
}

/** The absolute URL the agent called: the public base (or protocol and host) plus path and query. */
function requestUrl(request: FastifyRequest, publicUrl: string | undefined): string {
  const base = publicUrl !== undefined ? publicUrl.replace(/\/+$/, '') : `${request.protocol}://${request.host}`;
  return `${base}${request.url}`;
}

function checkPublicUrl(publicUrl: string | undefined): void {
  if (publicUrl === undefined) return;
  const base = URL.canParse(publicUrl) ? new URL(publicUrl) : undefined;
  if (base === undefined || (base.protocol !== 'http:' && base.protocol !== 'https:') || base.search !== '' || base.hash !== '') {
    throw new TypeError('publicUrl must be an absolute http(s) URL without query or fragment');
  }
}

function writVerifierPlugin(fastify: FastifyInstance, options: WritVerifierOptions, done: (error?: Error) => void): void {
  try {
    checkOptions(options);
    checkPublicUrl(options.publicUrl);
  } catch (error) {
    done(error as TypeError);
    return;
  }
  const { publicUrl, ...verifierOptions } = options;

  fastify.decorateRequest('writ', null);
  fastify.decorate('writ', {
    require(requirement: WritRequirement): preHandlerAsyncHookHandler {
      if (requirement.action === '') throw new TypeError('action is required');
      return async function writPreHandler(request, reply) {
        const resource = await requirement.resource?.(request);
        const money = await requirement.amount?.(request);
        const bind = await requirement.bind?.(request);
        const result = await verifyRequest(
          {
            method: request.method,
            url: requestUrl(request, publicUrl),
            // Node keeps only the first of repeated Authorization headers in request.headers.
            headers: request.raw.rawHeaders,
            action: requirement.action,
            ...(resource !== undefined && { resource }),
            ...(money !== undefined && { amount: money.amount, currency: money.currency }),
            ...(bind !== undefined && { bind }),
          },
          { ...verifierOptions, logger: verifierOptions.logger ?? request.log },
        );
        if (!result.allow) return reply.code(result.status).headers(result.headers).send(result.body);
        request.writ = result.claims;
        return undefined;
      };
    },
  } satisfies WritFastify);
  done();
}

/**
 * Fastify 5 plugin: registers the verifier once and adds `fastify.writ.require(...)`, a
 * `preHandler` for each protected route. Denied requests are answered for you (status,
 * `WWW-Authenticate`, `Retry-After`, `DPoP-Nonce`, `Cache-Control: no-store`, JSON body); allowed
 * ones reach the handler with `request.writ` set. Requests carrying neither token nor proof never
 * reach the verifier.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { writVerifier } from '@writ/sdk';
 *
 * const app = Fastify({ trustProxy: true });
 * await app.register(writVerifier, {
 *   verifierUrl: 'https://verifier.writ.example',
 *   serviceId: 'svc_hotels',
 *   credential: process.env.WRIT_CREDENTIAL!,
 *   publicUrl: 'https://hotels.example',
 * });
 * app.post<{ Params: { id: string }; Body: { price: number } }>(
 *   '/rooms/:id/book',
 *   {
 *     preHandler: app.writ.require({
 *       action: 'book',
 *       resource: (request) => `room:${(request.params as { id: string }).id}`,
 *       amount: (request) => ({ amount: (request.body as { price: number }).price, currency: 'EUR' }),
 *     }),
 *   },
 *   async (request) => ({ booked_for: request.writ!.sub }),
 * );
 * ```
 */
export const writVerifier = fp(writVerifierPlugin, { name: '@writ/sdk/writ-verifier', fastify: '5.x' });
