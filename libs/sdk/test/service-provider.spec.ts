import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type VerifierOptions, type VerifyResult, type WritRequirement, type WritVerifierOptions, verifyRequest, writVerifier, type WritLogger } from '../src/service-provider.js';

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const TOKEN = `${b64({ typ: 'txntoken+jwt', alg: 'ES256', kid: 'k1' })}.${b64({ sub: 'user_1', txn: 'txn_1' })}.${'s'.repeat(86)}`;
const OTHER_TOKEN = `${b64({ typ: 'txntoken+jwt', alg: 'ES256', kid: 'k1' })}.${b64({ sub: 'user_2', txn: 'txn_2' })}.${'t'.repeat(86)}`;
const PROOF = `${b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC' } })}.${b64({ htm: 'POST', jti: 'p1' })}.${'p'.repeat(86)}`;
const SERVICE_ID = 'svc_hotels';
const CREDENTIAL = 'cr3d_8Jk2-secret_value';
const BASIC = `Basic ${Buffer.from(`${SERVICE_ID}:${CREDENTIAL}`).toString('base64')}`;
const HOST = 'hotels.example';
const UNAVAILABLE = 'The verifier could not decide on this request; it is refused. Try again later.';
const ALGS = 'algs="ES256 EdDSA Ed25519"';

const ALLOW = {
  allow: true,
  sub: 'user_1',
  act: { sub: 'agt_b', act: { sub: 'agt_a' } },
  txn: 'txn_1',
  grant_id: 'grt_1',
  jti: 'tok_1',
  scope: 'book search',
  remaining: { uses: 9, amount: 320, rate: 59 },
};
const CLAIMS = { sub: 'user_1', act: { sub: 'agt_b', act: { sub: 'agt_a' } }, txn: 'txn_1', grant_id: 'grt_1', jti: 'tok_1', scope: 'book search', remaining: { uses: 9, amount: 320, rate: 59 } };

/** One request the stand-in verifier received. */
interface Received {
  path: string;
  authorization: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

type Answer = (request: FastifyRequest, reply: FastifyReply) => FastifyReply | Promise<FastifyReply>;

/** A real HTTP server standing in for apps/verifier: it records every request and answers with `answer`. */
let verifier: FastifyInstance;
let verifierUrl: string;
let deadVerifierUrl: string;
let received: Received[] = [];
let answer: Answer;
const answerJson =
  (status: number, body: unknown): Answer =>
  (_request, reply) =>
    reply.code(status).header('cache-control', 'no-store').send(body);

beforeAll(async () => {
  verifier = Fastify();
  verifier.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, JSON.parse(body as string)));
  const record = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    received.push({ path: request.url, authorization: request.headers.authorization, contentType: request.headers['content-type'], body: request.body });
    return answer(request, reply);
  };
  verifier.post('/v1/verify', record);
  verifier.post('/prefix/v1/verify', record);
  verifier.post('/elsewhere', record);
  await verifier.listen({ host: '127.0.0.1', port: 0 });
  verifierUrl = `http://127.0.0.1:${(verifier.server.address() as AddressInfo).port}`;

  const dead = Fastify();
  await dead.listen({ host: '127.0.0.1', port: 0 });
  deadVerifierUrl = `http://127.0.0.1:${(dead.server.address() as AddressInfo).port}`;
  await dead.close();
});

afterAll(async () => {
  await verifier.close();
});

let logs: { details: Record<string, unknown>; message: string }[] = [];
const logger: WritLogger = { warn: (details, message) => logs.push({ details, message }) };
const apps: FastifyInstance[] = [];

afterEach(async () => {
  received = [];
  logs = [];
  answer = answerJson(200, ALLOW);
  await Promise.all(apps.splice(0).map((app) => app.close()));
});
answer = answerJson(200, ALLOW);

/** A service provider's app: two protected routes and one public route. */
async function serviceApp(overrides: Partial<WritVerifierOptions> = {}, fastifyOptions: { trustProxy?: boolean } = {}): Promise<FastifyInstance> {
  const app = Fastify(fastifyOptions);
  apps.push(app);
  await app.register(writVerifier, { verifierUrl, serviceId: SERVICE_ID, credential: CREDENTIAL, logger, ...overrides });
  app.post<{ Params: { id: string }; Body: { price: number } }>(
    '/rooms/:id/book',
    {
      preHandler: app.writ.require({
        action: 'book',
        resource: (request) => `room:${(request.params as { id: string }).id}`,
        amount: (request) => Promise.resolve({ amount: (request.body as { price: number }).price, currency: 'EUR' }),
      }),
    },
    (request, reply) => reply.send({ booked: true, writ: request.writ }),
  );
  app.get('/rooms', { preHandler: app.writ.require({ action: 'search' }) }, (request, reply) => reply.send({ writ: request.writ }));
  app.get('/public', (request, reply) => reply.send({ writ: request.writ }));
  return app;
}

const agentHeaders = (extra: Record<string, string | string[]> = {}): Record<string, string | string[]> => ({
  host: HOST,
  authorization: `DPoP ${TOKEN}`,
  dpop: PROOF,
  ...extra,
});

function book(app: FastifyInstance, headers: Record<string, string | string[]>) {
  return app.inject({ method: 'POST', url: '/rooms/42/book?night=2026-12-01', headers, payload: { price: 180 } });
}

function search(app: FastifyInstance, headers: Record<string, string | string[]>) {
  return app.inject({ method: 'GET', url: '/rooms?city=paris', headers });
}

/** Status, challenge and JSON body of a response, with the headers every denial carries. */
function expectDenial(
  response: { statusCode: number; headers: Record<string, unknown>; json: () => unknown },
  status: number,
  body: Record<string, unknown>,
  headers: { 'www-authenticate'?: string; 'retry-after'?: string; 'dpop-nonce'?: string } = {},
): void {
  expect(response.statusCode).toBe(status);
  expect(response.json()).toEqual(body);
  expect(response.headers['cache-control']).toBe('no-store');
  expect(response.headers['www-authenticate']).toBe(headers['www-authenticate']);
  expect(response.headers['retry-after']).toBe(headers['retry-after']);
  expect(response.headers['dpop-nonce']).toBe(headers['dpop-nonce']);
}

describe('writVerifier: allowed requests', () => {
  it('puts the claims on request.writ and sends the verifier the exact request, with the Basic credential', async () => {
    const app = await serviceApp();
    const response = await book(app, agentHeaders());
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ booked: true, writ: CLAIMS });
    expect(received).toEqual([
      {
        path: '/v1/verify',
        authorization: BASIC,
        contentType: 'application/json',
        body: {
          token: TOKEN,
          dpop: PROOF,
          method: 'POST',
          url: `http://${HOST}/rooms/42/book?night=2026-12-01`,
          action: 'book',
          resource: 'room:42',
          amount: 180,
          currency: 'EUR',
        },
      },
    ]);
  });

  it('sends no resource, amount or currency for a route that names none', async () => {
    const app = await serviceApp();
    const response = await search(app, agentHeaders());
    expect(response.statusCode).toBe(200);
    expect(received.map((r) => r.body)).toEqual([{ token: TOKEN, dpop: PROOF, method: 'GET', url: `http://${HOST}/rooms?city=paris`, action: 'search' }]);
  });

  it('leaves request.writ null on routes that do not require Writ, without calling the verifier', async () => {
    const app = await serviceApp();
    const response = await app.inject({ method: 'GET', url: '/public', headers: agentHeaders() });
    expect(response.json()).toEqual({ writ: null });
    expect(received).toEqual([]);
  });

  it('reports the approved step-up the verifier consumed', async () => {
    answer = answerJson(200, { ...ALLOW, step_up_id: 'su_42' });
    const app = await serviceApp();
    const response = await book(app, agentHeaders());
    expect(response.json()).toEqual({ booked: true, writ: { ...CLAIMS, step_up_id: 'su_42' } });
  });

  it('builds the URL from publicUrl, keeping its path prefix, when the service is behind a proxy', async () => {
    const app = await serviceApp({ publicUrl: 'https://api.hotels.example/v2/' });
    await search(app, agentHeaders());
    expect((received[0]?.body as { url: string }).url).toBe('https://api.hotels.example/v2/rooms?city=paris');
  });

  it("follows X-Forwarded-Proto and X-Forwarded-Host when Fastify's trustProxy is on", async () => {
    const app = await serviceApp({}, { trustProxy: true });
    await search(app, agentHeaders({ 'x-forwarded-proto': 'https', 'x-forwarded-host': 'edge.hotels.example' }));
    expect((received[0]?.body as { url: string }).url).toBe('https://edge.hotels.example/rooms?city=paris');
  });

  it('reads the token from a Txn-Token header', async () => {
    const app = await serviceApp();
    const response = await search(app, { host: HOST, 'txn-token': TOKEN, dpop: PROOF });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ writ: CLAIMS });
    expect(received.map((r) => (r.body as { token: string }).token)).toEqual([TOKEN]);
  });

  it('accepts the same token in Authorization and Txn-Token', async () => {
    const app = await serviceApp();
    const response = await search(app, agentHeaders({ 'txn-token': TOKEN }));
    expect(response.statusCode).toBe(200);
    expect(received).toHaveLength(1);
  });

  it('ignores the auth-params of another Authorization scheme, commas included', async () => {
    const app = await serviceApp();
    const response = await search(app, { host: HOST, authorization: 'Digest username="agent", realm="hotels"', 'txn-token': TOKEN, dpop: PROOF });
    expect(response.statusCode).toBe(200);
    expect(received.map((r) => (r.body as { token: string }).token)).toEqual([TOKEN]);
  });

  it('reads the token from Txn-Token when Authorization uses a scheme that is not Writ’s', async () => {
    const app = await serviceApp();
    const response = await search(app, { host: HOST, authorization: 'Basic dXNlcjpwdw==', 'txn-token': TOKEN, dpop: PROOF });
    expect(response.statusCode).toBe(200);
    expect(received.map((r) => (r.body as { token: string }).token)).toEqual([TOKEN]);
  });

  it('calls the verifier under the path of a verifierUrl that has one', async () => {
    const app = await serviceApp({ verifierUrl: `${verifierUrl}/prefix/` });
    await search(app, agentHeaders());
    expect(received.map((r) => r.path)).toEqual(['/prefix/v1/verify']);
  });
});

describe('writVerifier: refusals made without calling the verifier', () => {
  const cases: [string, Record<string, string | string[]>, number, Record<string, unknown>, string][] = [
    [
      'a request without any token: challenge without error code (RFC 6750 §3.1)',
      { host: HOST, dpop: PROOF },
      401,
      { error: 'invalid_token', error_description: 'the request carries no transaction token' },
      `DPoP ${ALGS}`,
    ],
    [
      'a request whose only Authorization uses another scheme, as one without token',
      { host: HOST, authorization: 'Basic dXNlcjpwdw==', dpop: PROOF },
      401,
      { error: 'invalid_token', error_description: 'the request carries no transaction token' },
      `DPoP ${ALGS}`,
    ],
    [
      'a token sent with the Bearer scheme (RFC 9449 §7.2)',
      { host: HOST, authorization: `Bearer ${TOKEN}`, dpop: PROOF },
      401,
      { error: 'invalid_token', error_description: 'the token is DPoP-bound: send it with the DPoP scheme, not Bearer' },
      `DPoP error="invalid_token", error_description="the token is DPoP-bound: send it with the DPoP scheme, not Bearer", ${ALGS}`,
    ],
    [
      'a token without DPoP proof',
      { host: HOST, authorization: `DPoP ${TOKEN}` },
      401,
      { error: 'invalid_dpop_proof', error_description: 'the request has no DPoP proof' },
      `DPoP error="invalid_dpop_proof", error_description="the request has no DPoP proof", ${ALGS}`,
    ],
    [
      'an empty DPoP header, as no proof',
      agentHeaders({ dpop: '' }),
      401,
      { error: 'invalid_dpop_proof', error_description: 'the request has no DPoP proof' },
      `DPoP error="invalid_dpop_proof", error_description="the request has no DPoP proof", ${ALGS}`,
    ],
    [
      'two DPoP headers (RFC 9449 §4.3)',
      agentHeaders({ dpop: [PROOF, PROOF] }),
      401,
      { error: 'invalid_dpop_proof', error_description: 'the request has more than one DPoP header' },
      `DPoP error="invalid_dpop_proof", error_description="the request has more than one DPoP header", ${ALGS}`,
    ],
    [
      'two Authorization headers',
      agentHeaders({ authorization: [`DPoP ${TOKEN}`, `DPoP ${OTHER_TOKEN}`] }),
      400,
      { error: 'invalid_request', error_description: 'the request has more than one Authorization header' },
      `DPoP error="invalid_request", error_description="the request has more than one Authorization header", ${ALGS}`,
    ],
    [
      'two Txn-Token headers',
      { host: HOST, 'txn-token': [TOKEN, TOKEN], dpop: PROOF },
      400,
      { error: 'invalid_request', error_description: 'the request has more than one Txn-Token header' },
      `DPoP error="invalid_request", error_description="the request has more than one Txn-Token header", ${ALGS}`,
    ],
    [
      'different tokens in Authorization and Txn-Token (RFC 6750 §3.1: one method only)',
      agentHeaders({ 'txn-token': OTHER_TOKEN }),
      400,
      { error: 'invalid_request', error_description: 'the Authorization and Txn-Token headers carry different tokens' },
      `DPoP error="invalid_request", error_description="the Authorization and Txn-Token headers carry different tokens", ${ALGS}`,
    ],
    [
      'the DPoP scheme without a token',
      agentHeaders({ authorization: 'DPoP' }),
      400,
      { error: 'invalid_request', error_description: 'the Authorization header is malformed: expected DPoP <token>' },
      `DPoP error="invalid_request", error_description="the Authorization header is malformed: expected DPoP <token>", ${ALGS}`,
    ],
    [
      'the DPoP scheme with two words',
      agentHeaders({ authorization: `DPoP ${TOKEN} ${TOKEN}` }),
      400,
      { error: 'invalid_request', error_description: 'the Authorization header is malformed: expected DPoP <token>' },
      `DPoP error="invalid_request", error_description="the Authorization header is malformed: expected DPoP <token>", ${ALGS}`,
    ],
    [
      'an Authorization header that is no credentials at all',
      agentHeaders({ authorization: '"DPoP"' }),
      400,
      { error: 'invalid_request', error_description: 'the Authorization header is malformed' },
      `DPoP error="invalid_request", error_description="the Authorization header is malformed", ${ALGS}`,
    ],
    [
      'a Txn-Token header that is not a token',
      { host: HOST, 'txn-token': 'not a token', dpop: PROOF },
      400,
      { error: 'invalid_request', error_description: 'the Txn-Token header is malformed' },
      `DPoP error="invalid_request", error_description="the Txn-Token header is malformed", ${ALGS}`,
    ],
    [
      'a token and proof too large for the verifier (96 KiB)',
      agentHeaders({ authorization: `DPoP ${'a'.repeat(97 * 1024)}` }),
      400,
      { error: 'invalid_request', error_description: 'the token, DPoP proof and URL are too large together' },
      `DPoP error="invalid_request", error_description="the token, DPoP proof and URL are too large together", ${ALGS}`,
    ],
  ];

  it.each(cases)('refuses %s', async (_name, headers, status, body, challenge) => {
    const app = await serviceApp();
    const response = await search(app, headers);
    expectDenial(response, status, body, { 'www-authenticate': challenge });
    expect(received).toEqual([]);
    expect(response.body).not.toContain(TOKEN);
  });

  it('refuses two Authorization headers sent over a real socket, which Node folds to the first in request.headers', async () => {
    const app = await serviceApp();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const raw = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          ['GET /rooms HTTP/1.1', `Host: ${HOST}`, `Authorization: DPoP ${TOKEN}`, `Authorization: DPoP ${OTHER_TOKEN}`, `DPoP: ${PROOF}`, 'Connection: close', '', ''].join('\r\n'),
        );
      });
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      socket.on('error', reject);
    });
    const [head = '', body = ''] = raw.split('\r\n\r\n');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(head.toLowerCase()).toContain(
      `www-authenticate: dpop error="invalid_request", error_description="the request has more than one authorization header", ${ALGS.toLowerCase()}`,
    );
    expect(JSON.parse(body)).toEqual({ error: 'invalid_request', error_description: 'the request has more than one Authorization header' });
    expect(received).toEqual([]);
  });
});

describe('writVerifier: denials from the verifier', () => {
  const deny = (error: string, error_description: string, status: number, extra: Record<string, unknown> = {}) => ({
    allow: false,
    error,
    error_description,
    status,
    ...extra,
  });
  const cases: [string, Record<string, unknown>, number, Record<string, unknown>, { 'www-authenticate'?: string; 'retry-after'?: string; 'dpop-nonce'?: string }][] = [
    [
      'invalid_token',
      deny('invalid_token', 'token expired', 401, { www_authenticate: `DPoP error="invalid_token", error_description="token expired", ${ALGS}` }),
      401,
      { error: 'invalid_token', error_description: 'token expired' },
      { 'www-authenticate': `DPoP error="invalid_token", error_description="token expired", ${ALGS}` },
    ],
    [
      'invalid_dpop_proof',
      deny('invalid_dpop_proof', 'DPoP proof htu does not match the request URL', 401, {
        www_authenticate: `DPoP error="invalid_dpop_proof", error_description="DPoP proof htu does not match the request URL", ${ALGS}`,
      }),
      401,
      { error: 'invalid_dpop_proof', error_description: 'DPoP proof htu does not match the request URL' },
      { 'www-authenticate': `DPoP error="invalid_dpop_proof", error_description="DPoP proof htu does not match the request URL", ${ALGS}` },
    ],
    [
      'use_dpop_nonce, with the nonce in DPoP-Nonce',
      deny('use_dpop_nonce', 'DPoP proof nonce is required', 401, {
        www_authenticate: `DPoP error="use_dpop_nonce", error_description="DPoP proof nonce is required", ${ALGS}`,
        dpop_nonce: 'eyJ7S_zG.9qx-nonce',
      }),
      401,
      { error: 'use_dpop_nonce', error_description: 'DPoP proof nonce is required' },
      { 'www-authenticate': `DPoP error="use_dpop_nonce", error_description="DPoP proof nonce is required", ${ALGS}`, 'dpop-nonce': 'eyJ7S_zG.9qx-nonce' },
    ],
    [
      'insufficient_scope as 403',
      deny('insufficient_scope', "no capability allows 'book' at https://hotels.example/rooms/42/book", 403, {
        www_authenticate: `DPoP error="insufficient_scope", error_description="no capability allows 'book' at https://hotels.example/rooms/42/book", ${ALGS}`,
      }),
      403,
      { error: 'insufficient_scope', error_description: "no capability allows 'book' at https://hotels.example/rooms/42/book" },
      { 'www-authenticate': `DPoP error="insufficient_scope", error_description="no capability allows 'book' at https://hotels.example/rooms/42/book", ${ALGS}` },
    ],
    [
      'rate_limited as 429 with Retry-After',
      deny('rate_limited', '60 requests per minute reached', 429, { retry_after: 12 }),
      429,
      { error: 'rate_limited', error_description: '60 requests per minute reached' },
      { 'retry-after': '12' },
    ],
    [
      'rate_limited with a fractional retry_after, rounded up',
      deny('rate_limited', '60 requests per minute reached', 429, { retry_after: 0.2 }),
      429,
      { error: 'rate_limited', error_description: '60 requests per minute reached' },
      { 'retry-after': '1' },
    ],
    [
      'budget_exceeded as 403',
      deny('budget_exceeded', 'amount exceeds the remaining budget', 403),
      403,
      { error: 'budget_exceeded', error_description: 'amount exceeds the remaining budget' },
      {},
    ],
    [
      'outside_time_window as 403',
      deny('outside_time_window', 'outside Monday to Friday, 09:00-18:00 (Europe/Paris)', 403),
      403,
      { error: 'outside_time_window', error_description: 'outside Monday to Friday, 09:00-18:00 (Europe/Paris)' },
      {},
    ],
    [
      'approval_required as 403 with the step-up id',
      deny('approval_required', 'payment above 150 EUR needs your approval', 403, { step_up_id: 'su_42' }),
      403,
      { error: 'approval_required', error_description: 'payment above 150 EUR needs your approval', step_up_id: 'su_42' },
      {},
    ],
    [
      'revoked as 401 with an invalid_token challenge, rendered when the verifier sends none',
      deny('revoked', 'grant was revoked', 401),
      401,
      { error: 'revoked', error_description: 'grant was revoked' },
      { 'www-authenticate': `DPoP error="invalid_token", error_description="grant was revoked", ${ALGS}` },
    ],
    [
      'revoked with the challenge the verifier sends',
      deny('revoked', 'grant was revoked', 401, { www_authenticate: `DPoP error="invalid_token", error_description="grant was revoked", ${ALGS}` }),
      401,
      { error: 'revoked', error_description: 'grant was revoked' },
      { 'www-authenticate': `DPoP error="invalid_token", error_description="grant was revoked", ${ALGS}` },
    ],
    [
      'invalid_request as 400',
      deny('invalid_request', 'amount and currency go together', 400, { www_authenticate: `DPoP error="invalid_request", error_description="amount and currency go together", ${ALGS}` }),
      400,
      { error: 'invalid_request', error_description: 'amount and currency go together' },
      { 'www-authenticate': `DPoP error="invalid_request", error_description="amount and currency go together", ${ALGS}` },
    ],
  ];

  it.each(cases)('answers %s', async (_name, verdict, status, body, headers) => {
    answer = answerJson(200, verdict);
    const app = await serviceApp();
    const response = await book(app, agentHeaders());
    expectDenial(response, status, body, headers);
    expect(received).toHaveLength(1);
    expect(logs).toEqual([]);
  });
});

describe('writVerifier: fails closed when the verifier cannot decide', () => {
  const cases: [string, () => Answer, string][] = [
    ['the verifier answers 503', () => answerJson(503, { allow: false, error: 'temporarily_unavailable', error_description: 'store unreachable' }), 'status'],
    ['the verifier answers 500, even with an allow body', () => answerJson(500, ALLOW), 'status'],
    ['the verifier refuses the credential (401 invalid_client)', () => answerJson(401, { error: 'invalid_client' }), 'invalid_client'],
    ['the verifier refuses the request as malformed (400)', () => answerJson(400, { error: 'invalid_request' }), 'status'],
    ['the verifier answers something that is not JSON', () => (_request, reply) => reply.code(200).type('application/json').send('<html>oops'), 'unreadable_answer'],
    ['an allow without a jti', () => answerJson(200, { ...ALLOW, jti: undefined }), 'unreadable_answer'],
    ['an allow with allow as the string "true"', () => answerJson(200, { ...ALLOW, allow: 'true' }), 'unreadable_answer'],
    ['a denial with an unknown error code', () => answerJson(200, { allow: false, error: 'nope', error_description: 'x', status: 403 }), 'unreadable_answer'],
    ['a denial with a 200 status', () => answerJson(200, { allow: false, error: 'invalid_token', error_description: 'x', status: 200 }), 'unreadable_answer'],
    [
      'a denial whose challenge would inject a header',
      () => answerJson(200, { allow: false, error: 'invalid_token', error_description: 'x', status: 401, www_authenticate: 'DPoP\r\nSet-Cookie: a=b' }),
      'unreadable_answer',
    ],
    ['a redirect elsewhere, without following it', () => (_request, reply) => reply.code(307).header('location', `${verifierUrl}/elsewhere`).send(), 'unreachable'],
  ];

  it.each(cases)('denies with 503 when %s', async (_name, makeAnswer, reason) => {
    answer = makeAnswer();
    const app = await serviceApp();
    const response = await book(app, agentHeaders());
    expectDenial(response, 503, { error: 'temporarily_unavailable', error_description: UNAVAILABLE });
    expect(received.map((r) => r.path)).toEqual(['/v1/verify']);
    expect(logs.map((log) => log.details.reason)).toEqual([reason]);
    const logged = JSON.stringify(logs);
    expect(logged).not.toContain(CREDENTIAL);
    expect(logged).not.toContain(Buffer.from(`${SERVICE_ID}:${CREDENTIAL}`).toString('base64'));
    expect(logged).not.toContain(TOKEN);
    expect(logged).not.toContain(PROOF);
  });

  it('denies with 503 when the verifier cannot be reached', async () => {
    const app = await serviceApp({ verifierUrl: deadVerifierUrl });
    const response = await book(app, agentHeaders());
    expectDenial(response, 503, { error: 'temporarily_unavailable', error_description: UNAVAILABLE });
    expect(logs.map((log) => log.details.reason)).toEqual(['unreachable']);
  });

  it('denies with 503 when the verifier does not answer within timeoutMs', async () => {
    answer = async (_request, reply) => {
      await new Promise((resolve) => setTimeout(resolve, 600));
      return reply.send(ALLOW);
    };
    const app = await serviceApp({ timeoutMs: 100 });
    const started = performance.now();
    const response = await book(app, agentHeaders());
    expect(performance.now() - started).toBeLessThan(500);
    expectDenial(response, 503, { error: 'temporarily_unavailable', error_description: UNAVAILABLE });
    expect(logs.map((log) => log.details.reason)).toEqual(['timeout']);
    expect(received).toHaveLength(1);
  });

  it('names the service but not its credential when the verifier refuses the credential', async () => {
    answer = answerJson(401, { error: 'invalid_client' });
    const app = await serviceApp();
    await book(app, agentHeaders());
    expect(logs).toHaveLength(1);
    expect(logs[0]!.details).toMatchObject({ reason: 'invalid_client', status: 401, service_id: SERVICE_ID, token_hash: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
  });
});

describe('verifyRequest without a framework', () => {
  const options = (): VerifierOptions => ({ verifierUrl, serviceId: SERVICE_ID, credential: CREDENTIAL, logger });
  const input = { method: 'GET', url: `https://${HOST}/rooms`, action: 'search' };

  it('reads a Fetch Headers object', async () => {
    const result = await verifyRequest({ ...input, headers: new Headers({ Authorization: `DPoP ${TOKEN}`, DPoP: PROOF }) }, options());
    expect(result).toEqual({ allow: true, claims: CLAIMS });
    expect(received.map((r) => r.body)).toEqual([{ token: TOKEN, dpop: PROOF, ...input }]);
  });

  it('refuses two Authorization values appended to a Headers object, which joins them into one malformed value', async () => {
    const headers = new Headers({ DPoP: PROOF });
    headers.append('Authorization', `DPoP ${TOKEN}`);
    headers.append('Authorization', `DPoP ${OTHER_TOKEN}`);
    const result = await verifyRequest({ ...input, headers }, options());
    expect(result).toMatchObject({ allow: false, status: 400, error: 'invalid_request', error_description: 'the Authorization header is malformed: expected DPoP <token>' });
    expect(received).toEqual([]);
  });

  it('reads a plain object whatever the letter case of its keys', async () => {
    const result = await verifyRequest({ ...input, headers: { Authorization: `DPoP ${TOKEN}`, Dpop: PROOF } }, options());
    expect(result.allow).toBe(true);
  });

  it("counts a plain object's Authorization keys of different case as two headers", async () => {
    const result = await verifyRequest({ ...input, headers: { Authorization: `DPoP ${TOKEN}`, authorization: `DPoP ${TOKEN}`, dpop: PROOF } }, options());
    expect(result).toMatchObject({ allow: false, status: 400, error: 'invalid_request' });
  });

  it("reads Node's flat rawHeaders list", async () => {
    const result = await verifyRequest({ ...input, headers: ['Host', HOST, 'Txn-Token', TOKEN, 'DPoP', PROOF] }, options());
    expect(result).toEqual({ allow: true, claims: CLAIMS });
  });

  it('returns the complete denial a service provider sends', async () => {
    answer = answerJson(200, { allow: false, error: 'approval_required', error_description: 'payment above 150 EUR needs your approval', status: 403, step_up_id: 'su_42' });
    const result: VerifyResult = await verifyRequest({ ...input, headers: { authorization: `DPoP ${TOKEN}`, dpop: PROOF } }, options());
    expect(result).toEqual({
      allow: false,
      status: 403,
      error: 'approval_required',
      error_description: 'payment above 150 EUR needs your approval',
      headers: { 'Cache-Control': 'no-store' },
      body: { error: 'approval_required', error_description: 'payment above 150 EUR needs your approval', step_up_id: 'su_42' },
    });
  });

  it('calls the verifier through the fetch it is given', async () => {
    const calls: string[] = [];
    const countingFetch: typeof fetch = (resource, init) => {
      calls.push(resource instanceof Request ? resource.url : resource.toString());
      return fetch(resource, init);
    };
    const result = await verifyRequest({ ...input, headers: { authorization: `DPoP ${TOKEN}`, dpop: PROOF } }, { ...options(), fetch: countingFetch });
    expect(result.allow).toBe(true);
    expect(calls).toEqual([`${verifierUrl}/v1/verify`]);
  });

  it('throws on programming errors instead of asking the verifier', async () => {
    const headers = { authorization: `DPoP ${TOKEN}`, dpop: PROOF };
    await expect(verifyRequest({ ...input, headers, amount: 10 }, options())).rejects.toThrow(new TypeError('amount and currency go together'));
    await expect(verifyRequest({ ...input, headers, url: '/rooms' }, options())).rejects.toThrow(new TypeError('url must be the absolute URL the agent called'));
    await expect(verifyRequest({ ...input, headers }, { ...options(), verifierUrl: 'verifier:8080' })).rejects.toThrow(new TypeError('verifierUrl must be an absolute http(s) URL'));
    await expect(verifyRequest({ ...input, headers }, { ...options(), credential: '' })).rejects.toThrow(new TypeError('serviceId and credential are required'));
    expect(received).toEqual([]);
  });

  it('refuses to register the plugin with a publicUrl that is not a base URL', async () => {
    const app = Fastify();
    apps.push(app);
    await expect(app.register(writVerifier, { verifierUrl, serviceId: SERVICE_ID, credential: CREDENTIAL, publicUrl: 'https://hotels.example/?x=1' })).rejects.toThrow(
      new TypeError('publicUrl must be an absolute http(s) URL without query or fragment'),
    );
  });
});

// Issue 16, finding 4: text no audit chain can hold never reaches the verifier.
describe('writVerifier: text no audit chain can hold', () => {
  async function payApp(extra: Pick<WritRequirement, 'bind'> = {}): Promise<FastifyInstance> {
    const app = Fastify();
    apps.push(app);
    await app.register(writVerifier, { verifierUrl, serviceId: SERVICE_ID, credential: CREDENTIAL, logger });
    app.post<{ Body: { payee: string; amount: number; currency: string } }>(
      '/pay',
      {
        preHandler: app.writ.require({
          action: 'pay',
          resource: (request) => `payee:${(request.body as { payee: string }).payee}`,
          amount: (request) => ({ amount: (request.body as { amount: number }).amount, currency: (request.body as { currency: string }).currency }),
          ...extra,
        }),
      },
      (_request, reply) => reply.send({ paid: true }),
    );
    return app;
  }

  it.each([
    ['a NUL in the payee', { payee: 'acme\u0000evil', amount: 5, currency: 'EUR' }, 'resource: contains a control character (U+0000)'],
    ['a lone surrogate in the payee', { payee: 'acme\ud800', amount: 5, currency: 'EUR' }, 'resource: is not well-formed UTF-16 (lone surrogate)'],
    ['a NUL in the currency', { payee: 'acme', amount: 5, currency: 'EU\u0000' }, 'currency: contains a control character (U+0000)'],
    // Issue 17, finding 5: a resource a server could read as another place (ADR 0002).
    ['an encoded dot segment in the payee', { payee: 'x%2F..%2F..%2Fadmin', amount: 5, currency: 'EUR' }, 'resource: has a percent-encoded dot, slash or backslash'],
  ])('refuses %s with 400 invalid_request, without asking the verifier', async (_name, body, description) => {
    const app = await payApp();
    const res = await app.inject({ method: 'POST', url: '/pay', headers: { ...agentHeaders(), 'content-type': 'application/json' }, payload: JSON.stringify(body) });
    expectDenial(res, 400, { error: 'invalid_request', error_description: description }, { 'www-authenticate': `DPoP error="invalid_request", error_description="${description}", ${ALGS}` });
    expect(received).toEqual([]);
  });

  // Issue 17, finding 6: a bound field is shown to the person who approves the step-up.
  it('refuses a bound payee with a bidi override with 400 invalid_request naming the field, without asking the verifier', async () => {
    const app = await payApp({ bind: (request) => ({ payee: (request.body as { payee: string }).payee }) });
    const res = await app.inject({ method: 'POST', url: '/pay', headers: { ...agentHeaders(), 'content-type': 'application/json' }, payload: JSON.stringify({ payee: 'acme\u202eyellam', amount: 5, currency: 'EUR' }) });
    const description = 'bind.fields.payee: contains a format character (U+202E)';
    expectDenial(res, 400, { error: 'invalid_request', error_description: description }, { 'www-authenticate': `DPoP error="invalid_request", error_description="${description}", ${ALGS}` });
    expect(received).toEqual([]);
  });

  it('sends the fields a route binds to the verifier, so that a step-up holds to them', async () => {
    const app = await payApp({ bind: (request) => ({ payee: (request.body as { payee: string }).payee }) });
    const res = await app.inject({ method: 'POST', url: '/pay?to=acme', headers: { ...agentHeaders(), 'content-type': 'application/json' }, payload: JSON.stringify({ payee: 'Acme GmbH', amount: 5, currency: 'EUR' }) });
    expect(res.statusCode).toBe(200);
    expect(received).toHaveLength(1);
    expect(received[0]!.body).toMatchObject({ url: `http://${HOST}/pay?to=acme`, resource: 'payee:Acme GmbH', bind: { fields: { payee: 'Acme GmbH' } } });
  });

  it('passes well-formed text in any script on to the verifier', async () => {
    const app = await payApp();
    const res = await app.inject({ method: 'POST', url: '/pay', headers: { ...agentHeaders(), 'content-type': 'application/json' }, payload: JSON.stringify({ payee: 'Zürich 東京 💶', amount: 5, currency: 'EUR' }) });
    expect(res.statusCode).toBe(200);
    expect(received).toHaveLength(1);
  });
});
