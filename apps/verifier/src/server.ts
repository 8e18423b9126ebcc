import { randomBytes } from 'node:crypto';
import { VerifyRequestSchema } from '@writ/contracts';
import { type Clock, InvalidRequest, systemClock } from '@writ/core';
import { DpopNonces } from '@writ/server/dpop-nonces';
import Fastify, { type FastifyInstance } from 'fastify';
import type { VerifierConfig } from './config.js';
import { JwksCache } from './jwks.js';
import { CredentialUnconfirmed, ServiceDirectory } from './services.js';
import type { VerifierStore } from './store/store.js';
import { TokenCache } from './token-cache.js';
import { allowJson, failureAnswer, Verifier } from './verifier.js';

/** The content type Fastify gives the JSON it serialises itself. */
const JSON_TYPE = 'application/json; charset=utf-8';

/** A token may be 64 KiB (libs/core's bound), a proof 8 KiB; the rest is small. */
const BODY_LIMIT = 96 * 1024;

const NOT_A_VERIFY_REQUEST = 'request body must be a JSON verify request';

/**
 * The request's JSON, parsed by plain JSON.parse (see the Fastify options below), or
 * InvalidRequest when it is not `application/json` or not JSON at all.
 */
function jsonBody(contentType: string | undefined, body: unknown): unknown {
  const type = contentType?.split(';', 1)[0]!.trim().toLowerCase();
  if (type !== 'application/json' || typeof body !== 'string') throw new InvalidRequest(NOT_A_VERIFY_REQUEST);
  try {
    return JSON.parse(body);
  } catch {
    throw new InvalidRequest(NOT_A_VERIFY_REQUEST);
  }
}

/** {@link jsonBody}, or undefined when the body is not JSON. */
function jsonBodyOrUndefined(contentType: string | undefined, body: unknown): unknown {
  try {
    return jsonBody(contentType, body);
  } catch {
    return undefined;
  }
}

/**
 * What `/readyz` shows of the store's event queue (issue 16, 4: trouble is visible): the embedded
 * store's waiting events, its bound and the decisions a full queue refused; the Redis store's
 * events waiting in memory for Redis and the denials it counted into summaries once that backlog was
 * full. Read structurally, as the stores differ.
 */
function queueStats(store: VerifierStore): { shown: Record<string, number>; full: boolean } {
  const embedded = store as Partial<{ stats(): { queued: number; queueMax: number; refused: number } }>;
  if (typeof embedded.stats === 'function') {
    const { queued, queueMax, refused } = embedded.stats();
    return { shown: { waiting: queued, max: queueMax, refused }, full: queued >= queueMax };
  }
  const redis = store as Partial<{ backlogSize: number; aggregatedEvents: number }>;
  if (typeof redis.backlogSize === 'number') return { shown: { backlog: redis.backlogSize, aggregated: redis.aggregatedEvents ?? 0 }, full: false };
  return { shown: {}, full: false };
}

export interface CreateVerifierOptions {
  config: VerifierConfig;
  store: VerifierStore;
  clock?: Clock;
  /** How the registry is reached (JWKS, `/services/me`); the global `fetch` by default. */
  fetch?: typeof fetch;
  logger?: boolean;
}

export interface VerifierServer {
  app: FastifyInstance;
  verifier: Verifier;
  tokens: TokenCache;
  jwks: JwksCache;
  /** Listens on the configured host and port; answers the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

/**
 * The verifier's HTTP face: `POST /v1/verify` (docs/verifier.md), `GET /healthz` (alive),
 * `GET /readyz` (able to decide). Bare Fastify: it is on every request of every service provider,
 * so nothing sits between the route and the checks.
 */
export async function createVerifierServer(options: CreateVerifierOptions): Promise<VerifierServer> {
  const { config, store } = options;
  const clock = options.clock ?? systemClock;
  const fetchImpl = options.fetch ?? fetch;
  const jwks = new JwksCache(`${config.registryUrl}/.well-known/jwks.json`, fetchImpl, () => clock.now());
  const services = new ServiceDirectory(config.registryUrl, fetchImpl, () => clock.now());
  const tokens = new TokenCache(config.cacheSize);
  const instance = `verifier-${randomBytes(6).toString('base64url')}`;
  const nonces = config.dpopNonceSecret === undefined ? undefined : DpopNonces.fromSecret(config.dpopNonceSecret, clock);
  const verifier = new Verifier({ issuer: config.issuer, trustDomain: config.trustDomain, jwks, store, tokens, clock, instance, ...(nonces ? { nonces } : {}) });
  const stopListening = store.onRevocation((notice) => tokens.dropGrants(notice.grantIds));

  // The body is parsed by plain JSON.parse, without secure-json-parse's scan of the whole text for
  // `__proto__` and `constructor` (about 1 µs of 2.4 with a 1.5 KB token): JSON.parse makes such
  // a key an own property, never the prototype, and VerifyRequestSchema is strict, so a body with
  // either key is refused (400, `Unrecognized key`) before anything reads it.
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: BODY_LIMIT, return503OnClosing: true, onProtoPoisoning: 'ignore', onConstructorPoisoning: 'ignore' });

  // Every answer is for one request only (RFC 9111 §5.2.2.5). Set where each answer is made rather
  // than in an onSend hook: a hook costs a promise and a lookup on every request.
  const NO_STORE = 'no-store';

  app.setErrorHandler((error: { statusCode?: number; message?: string }, request, reply) => {
    // Fastify's own refusals: bad JSON, wrong content type, too large a body.
    const status = error.statusCode ?? 500;
    void reply.header('cache-control', NO_STORE);
    if (status >= 400 && status < 500) {
      void reply.status(status).send({ error: 'invalid_request', error_description: status === 413 ? 'request body is too large' : NOT_A_VERIFY_REQUEST });
      return;
    }
    request.log.error({ err: error }, 'verify failed');
    const failure = failureAnswer(error);
    void reply.status(failure.status).send(failure.body);
  });

  // The body is kept as text until the caller is authenticated: an unauthenticated caller learns
  // nothing about what a body should look like and costs no parse (401 before 400, issue 16, 10).
  // Any content type reaches the route, which refuses all but JSON once the caller is known.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    done(null, body);
  });

  app.post('/v1/verify', async (request, reply) => {
    void reply.header('cache-control', NO_STORE);
    try {
      const service = await services.resolve(request.headers.authorization).catch(async (error: unknown) => {
        // The registry is unreachable but confirmed this caller before: deny (503), and record it.
        if (error instanceof CredentialUnconfirmed) {
          const parsed = VerifyRequestSchema.safeParse(jsonBodyOrUndefined(request.headers['content-type'], request.body));
          if (parsed.success) await verifier.recordUnconfirmed(error.lastKnown, parsed.data, error.description);
        }
        throw error;
      });
      const parsed = VerifyRequestSchema.safeParse(jsonBody(request.headers['content-type'], request.body));
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
        throw new InvalidRequest(`${where}${issue.message}`);
      }
      const answer = await verifier.verify(service, parsed.data);
      // Most answers allow: their JSON is mostly the same for every request on one token.
      if (answer.allow) return reply.type(JSON_TYPE).send(allowJson(answer));
      return answer;
    } catch (error) {
      const failure = failureAnswer(error);
      if (failure.status >= 500) request.log.warn({ err: error }, 'verify denied: cannot decide');
      if (failure.status === 401) void reply.header('www-authenticate', 'Basic realm="writ-verifier"');
      return reply.status(failure.status).send(failure.body);
    }
  });

  // Liveness: the process answers. Readiness: it can decide, so a load balancer or an
  // orchestrator sends it requests only then (every request would be a 503 deny otherwise).
  app.get('/healthz', (_request, reply) => {
    void reply.header('cache-control', NO_STORE);
    return { ok: true };
  });
  app.get('/readyz', (_request, reply) => {
    void reply.header('cache-control', NO_STORE);
    const reasons: string[] = [];
    if (!store.ready()) reasons.push('the verifier store cannot be reached');
    if (!jwks.loaded) {
      reasons.push("the registry's token signing keys have not been fetched");
      jwks.retryIfEmpty();
    }
    const queue = queueStats(store);
    if (queue.full) reasons.push('the audit event queue is full: decisions are refused until the registry has recorded its events');
    if (reasons.length === 0) return { ready: true, queue: queue.shown };
    return reply.status(503).send({ ready: false, reasons, queue: queue.shown });
  });
  app.setNotFoundHandler((_request, reply) => {
    void reply.header('cache-control', NO_STORE).status(404).send({ error: 'not_found', error_description: 'no such endpoint' });
  });

  await app.ready();
  void jwks.warm();

  return {
    app,
    verifier,
    tokens,
    jwks,
    async listen() {
      await app.listen({ host: config.host, port: config.port });
      const address = app.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : config.port;
      return `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    },
    async close() {
      stopListening();
      await app.close();
    },
  };
}
