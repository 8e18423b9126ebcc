import type { AddressInfo } from 'node:net';
import { ACTOR_TOKEN_TYP, CLIENT_ASSERTION_TYP, type Clock, jwkThumbprint, SUBJECT_TOKEN_TYP, type TxnTokenClaims, typMatches, verifyDpopProof } from '@writ/core';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { JWK } from 'jose';
import { verifyJws } from '@writ/server/node-crypto';
import { writVerifier } from '../../src/service-provider.js';

/**
 * Local HTTP servers standing in for the registry, the verifier and a service provider protected
 * by the SDK middleware, so the agent's edge cases can be driven exactly: every request is
 * recorded, and each route's answer can be replaced by a test.
 */

/** One request a stand-in received. */
export interface Received {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /** Resolves when the client closed the connection before the answer (an aborted long-poll). */
  closedEarly: Promise<void>;
}

type Handler = (request: FastifyRequest, reply: FastifyReply, received: Received) => unknown;

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A Txn-Token's text: real claims, a signature nobody checks (the agent trusts its registry). */
export function fakeTxnToken(claims: TxnTokenClaims): string {
  return `${b64({ typ: 'txntoken+jwt', alg: 'ES256', kid: 'k1' })}.${b64(claims)}.${'s'.repeat(86)}`;
}

/** The claims of a root token the stand-in issues. */
export function rootClaims(clientId: string, jkt: string, nowS: number, lifeS = 300, overrides: Partial<TxnTokenClaims> = {}): TxnTokenClaims {
  return {
    iss: 'http://stand-in',
    aud: 'writ.test',
    iat: nowS,
    exp: nowS + lifeS,
    jti: `trt_${Math.random().toString(36).slice(2)}`,
    txn: 'txn_1',
    sub: 'alice',
    scope: 'book read',
    req_wl: clientId,
    act: { sub: clientId },
    cnf: { jkt },
    tctx: {
      grant_id: 'grt_1',
      authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read', 'book'] }],
      envelope: {},
      purpose: 'Book my trip',
      approval: 'a'.repeat(43),
      depth: 0,
    },
    ...overrides,
  };
}

/** Listens on loopback and answers the server's base URL. */
async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

function record(request: FastifyRequest, reply: FastifyReply, log: Received[]): Received {
  const closedEarly = new Promise<void>((resolve) => {
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) resolve();
    });
  });
  const url = new URL(request.url, 'http://x');
  const received: Received = {
    method: request.method,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: request.headers,
    body: request.body,
    closedEarly,
  };
  log.push(received);
  return received;
}

/** A registry stand-in: metadata, registration, grants, step-ups and a token endpoint that checks what it receives. */
export class StandInRegistry {
  readonly app = Fastify();
  url = '';
  readonly received: Received[] = [];
  /** Public keys of the agents it knows, by client_id. */
  readonly agents = new Map<string, JWK>();
  /** Replaces a route's answer: `POST /oauth/token`, `GET /grants/:id`, ... */
  readonly handlers = new Map<string, Handler>();
  /** The issuer the metadata names (default: its own URL). */
  issuer: string | undefined;
  /** RFC 9449 §8: when set, token requests need this nonce. */
  requiredNonce: string | undefined;
  tokenLifeS = 300;

  constructor(private readonly clock: Clock) {
    this.app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    const route = (method: 'GET' | 'POST', path: string, fallback: Handler): void => {
      this.app.route({
        method,
        url: path,
        handler: async (request, reply) => {
          const received = record(request, reply, this.received);
          return (this.handlers.get(`${method} ${path}`) ?? fallback)(request, reply, received);
        },
      });
    };
    route('GET', '/.well-known/oauth-authorization-server', () => this.metadata());
    route('POST', '/oauth/register', (request, reply) => {
      const body = request.body as { client_name: string; jwks: { keys: JWK[] } };
      if (request.headers.authorization !== 'Bearer enrol-me_123') return reply.code(401).send({ error: 'invalid_token', error_description: 'initial access token is unknown' });
      this.agents.set('agt_new', body.jwks.keys[0]!);
      return reply.code(201).send({ client_id: 'agt_new', client_name: body.client_name, jwks: body.jwks, token_endpoint_auth_method: 'private_key_jwt' });
    });
    route('POST', '/grants', (_request, reply) => reply.code(201).send({ grant_id: 'grt_1', status: 'pending', expires_at: '2030-01-01T00:00:00.000Z' }));
    route('GET', '/grants/:id', () => grantView('approved'));
    route('GET', '/step-ups/:id', (request) => ({ step_up_id: (request.params as { id: string }).id, status: 'approved' }));
    route('POST', '/oauth/token', (request, reply) => this.exchange(request, reply));
  }

  async start(): Promise<this> {
    this.url = await listen(this.app);
    return this;
  }

  metadata(): Record<string, unknown> {
    return {
      issuer: this.issuer ?? this.url,
      token_endpoint: `${this.url}/oauth/token`,
      registration_endpoint: `${this.url}/oauth/register`,
      dpop_signing_alg_values_supported: ['ES256', 'EdDSA'],
    };
  }

  /** The requests to one path, in order. */
  requests(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  /** Checks a private_key_jwt assertion the way the registry does (typ, signature, iss, sub, aud). */
  checkAssertion(assertion: string): Record<string, unknown> {
    return this.checkAgentJwt(assertion, CLIENT_ASSERTION_TYP);
  }

  /** Checks a JWT an agent signed about itself as the registry does for its kind `typ` (ADR 0015). */
  checkAgentJwt(jwt: string, typ: string): Record<string, unknown> {
    const { header, payload } = verifyJws(jwt, this.agents.get(String((JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { iss: string }).iss))!);
    if (!typMatches(header.typ, typ)) throw new Error(`typ must be ${typ}`);
    if (payload.iss !== payload.sub || payload.aud !== this.url || typeof payload.jti !== 'string') throw new Error('agent JWT claims');
    return payload;
  }

  /** A token exchange, checked like the registry checks it, answered with a fake token. */
  private async exchange(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const form = request.body as Record<string, string>;
    const nonce = this.requiredNonce;
    if (nonce !== undefined) void reply.header('dpop-nonce', nonce);
    const client = this.checkAssertion(form.client_assertion!);
    const delegation = form.subject_token_type === 'urn:ietf:params:oauth:token-type:txn_token';
    if (!delegation) this.checkAgentJwt(form.subject_token!, SUBJECT_TOKEN_TYP);
    let proof;
    try {
      proof = await verifyDpopProof(String(request.headers.dpop), {
        htm: 'POST',
        htu: `${this.url}/oauth/token`,
        clock: this.clock,
        // The registry's check: only the key the parent token is bound to can delegate it.
        ...(delegation && { accessToken: form.subject_token!, expectedJkt: (JSON.parse(Buffer.from(form.subject_token!.split('.')[1]!, 'base64url').toString()) as TxnTokenClaims).cnf.jkt }),
        ...(nonce !== undefined && { nonce }),
      });
    } catch (error) {
      const e = error as { code: string; description: string };
      return reply.code(400).send({ error: e.code, error_description: e.description });
    }
    const nowS = Math.floor(this.clock.now() / 1000);
    const clientId = client.iss as string;
    if (delegation) {
      const actor = this.checkAgentJwt(form.actor_token!, ACTOR_TOKEN_TYP) as { iss: string };
      const actorJwk = this.agents.get(actor.iss)!;
      const claims = rootClaims(actor.iss, await jwkThumbprint(actorJwk), nowS, this.tokenLifeS, {
        act: { sub: actor.iss, act: { sub: clientId } },
        tctx: { ...rootClaims(clientId, proof.jkt, nowS).tctx, parent: 'trt_parent', depth: 1 },
      });
      return { access_token: fakeTxnToken(claims), token_type: 'DPoP', issued_token_type: 'urn:ietf:params:oauth:token-type:txn_token', expires_in: this.tokenLifeS };
    }
    const token = fakeTxnToken(rootClaims(clientId, proof.jkt, nowS, this.tokenLifeS));
    return { access_token: token, token_type: 'DPoP', issued_token_type: 'urn:ietf:params:oauth:token-type:txn_token', expires_in: this.tokenLifeS };
  }

  close(): Promise<void> {
    return this.app.close();
  }
}

/** A grant as `GET /grants/:id` answers it. */
export function grantView(status: string, id = 'grt_1'): Record<string, unknown> {
  return {
    grant_id: id,
    status,
    version: 2,
    service_id: 'svc_flights',
    authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read', 'book'] }],
    envelope: { max_uses: 10 },
    purpose: 'Book my trip',
    duration_s: 3600,
    delegation: { max_depth: 1 },
    requested_at: '2026-11-24T09:00:00.000Z',
    decided_at: status === 'pending' ? null : '2026-11-24T09:01:00.000Z',
    expires_at: '2026-11-24T10:01:00.000Z',
    revoked_at: status === 'revoked' ? '2026-11-24T09:30:00.000Z' : null,
  };
}

/** What the stand-in verifier answers `POST /v1/verify` with (docs/verifier.md). */
export type VerifierAnswer = Record<string, unknown>;

/**
 * A service provider protected by the real SDK middleware (`writVerifier`), in front of a
 * stand-in verifier whose answers the test chooses: so the agent reads exactly what the
 * middleware writes.
 */
export class StandInService {
  readonly verifier = Fastify();
  readonly service = Fastify();
  url = '';
  readonly verified: Received[] = [];
  readonly received: Received[] = [];
  /** The verifier's answers, used in order; the last one repeats. */
  answers: VerifierAnswer[] = [allow()];

  async start(): Promise<this> {
    this.verifier.post('/v1/verify', async (request, reply) => {
      record(request, reply, this.verified);
      return this.answers.length > 1 ? this.answers.shift() : this.answers[0];
    });
    const verifierUrl = await listen(this.verifier);
    this.service.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
    await this.service.register(writVerifier, { verifierUrl, serviceId: 'svc_flights', credential: 'secret', publicUrl: 'https://flights.example', logger: { warn: () => undefined } });
    this.service.addHook('preValidation', async (request, reply) => {
      record(request, reply, this.received);
    });
    const handler = (request: FastifyRequest) => ({ ok: true, jti: request.writ!.jti, body: request.body ?? null });
    this.service.get('/api/flights', { preHandler: this.service.writ.require({ action: 'read' }) }, handler);
    this.service.post('/api/bookings', { preHandler: this.service.writ.require({ action: 'book' }) }, handler);
    this.service.get('/api/moved', (_request, reply) => reply.redirect('/api/flights', 302));
    this.service.post('/api/own-error', (_request, reply) => reply.code(400).send({ error: 'invalid_request', error_description: 'the flight number is missing' }));
    const url = await listen(this.service);
    this.url = url;
    return this;
  }

  close(): Promise<void> {
    return Promise.all([this.service.close(), this.verifier.close()]).then(() => undefined);
  }
}

/** The verifier's allow answer. */
export function allow(jti = 'trt_1'): VerifierAnswer {
  return { allow: true, sub: 'alice', act: { sub: 'agt_1' }, txn: 'txn_1', grant_id: 'grt_1', jti, scope: 'book read', remaining: {} };
}

/** A `fetch` that sends `https://flights.example/...` to the stand-in service, everything else as is. */
export function routeFlights(service: StandInService): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    if (url.origin === 'https://flights.example') return fetch(`${service.url}${url.pathname}${url.search}`, init);
    return fetch(input, init);
  };
}
