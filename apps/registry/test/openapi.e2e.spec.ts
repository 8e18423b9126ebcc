import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Validator } from '@seriousme/openapi-schema-validator';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { e2eStorage } from './support/databases.js';
import { humanApi, type HumanBrowser, RP_ID, UI_ORIGIN } from './support/human-browser.js';
import { SoftPasskey } from './support/soft-passkey.js';
import { type Agent, createTokenFixture, grantRequest, type Response } from './support/token-fixture.js';

interface MediaType {
  schema?: Record<string, unknown>;
}
interface Operation {
  summary?: string;
  security?: Record<string, string[]>[];
  requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown>; required?: string[] } }> };
  responses: Record<string, { description?: string; content?: Record<string, MediaType> }>;
}
interface OpenApi {
  openapi: string;
  servers: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, { type: string; scheme?: string; in?: string; name?: string }> };
}

/** An answer the registry sent while the scenario ran, as Fastify had it just before sending. */
interface SentAnswer {
  /** `METHOD /path/{param}`, as the document names the operation. */
  operation: string;
  status: number;
  contentType: string | undefined;
  body: string;
}

const OPERATOR_TOKEN = 'o'.repeat(40);
/** Its own path of the answer a route gives, as the document writes it. */
const documented = (url: string): string => url.replace(/:(\w+)/g, '{$1}');

describe.each([e2eStorage])('OpenAPI document on $name', (storage) => {
  /** Every route Nest registered in Fastify, as `METHOD /openapi/{path}`. */
  const routes: string[] = [];
  const answers: SentAnswer[] = [];
  const fx = createTokenFixture(storage, {
    dataDirPrefix: 'writ-openapi-',
    owners: [],
    env: { WRIT_OPERATOR_TOKEN: OPERATOR_TOKEN },
    beforeInit: ({ app }) => {
      const fastify = app.getHttpAdapter().getInstance();
      // Routes are added to Fastify during init: record each one as Nest registers it.
      fastify.addHook('onRoute', (route) => {
        for (const method of [route.method].flat()) {
          // Fastify adds a HEAD route to each GET by itself; it is not one of ours.
          if (method !== 'HEAD') routes.push(`${method} ${documented(route.url)}`);
        }
      });
      // Every answer of the scenario below, to check against what the document says of it.
      fastify.addHook('onSend', async (request, reply, payload) => {
        const url = request.routeOptions.url;
        if (url !== undefined && typeof payload === 'string') {
          answers.push({ operation: `${request.method} ${documented(url)}`, status: reply.statusCode, contentType: reply.getHeader('content-type') as string | undefined, body: payload });
        } else if (url !== undefined && reply.statusCode === 204) {
          answers.push({ operation: `${request.method} ${documented(url)}`, status: 204, contentType: undefined, body: '' });
        }
        return payload;
      });
    },
  });
  let document: OpenApi;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    ({ app } = await fx.start());
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    document = res.json<OpenApi>();
  });

  afterAll(() => fx.close());

  it('serves a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(document) as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toBe('3.1.0');
    expect(document.servers).toEqual([{ url: 'https://registry.writ.test' }]);
  });

  it('describes every route Nest registered, and nothing else', () => {
    const described = Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`));
    expect(routes.length).toBeGreaterThan(5);
    expect(described.sort()).toEqual([...new Set(routes)].sort());
    for (const pinned of [
      'POST /oauth/token',
      'POST /oauth/revoke',
      'POST /oauth/introspect',
      'POST /oauth/register',
      'POST /grants',
      'GET /grants/{id}',
      'GET /.well-known/oauth-authorization-server',
      'GET /openapi.json',
    ]) {
      expect(described).toContain(pinned);
    }
  });

  it('gives every operation a summary and a success answer', () => {
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        expect(operation.summary, `${method} ${path}`).toBeTruthy();
        expect(Object.keys(operation.responses).some((status) => status.startsWith('2')), `${method} ${path}`).toBe(true);
      }
    }
  });

  it('gives every answer of every operation a schema, but a 204, which has no body', () => {
    const missing: string[] = [];
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        for (const [status, response] of Object.entries(operation.responses)) {
          const where = `${method.toUpperCase()} ${path} ${status}`;
          if (status === '204') {
            expect(response.content, where).toBeUndefined();
            continue;
          }
          const media = Object.values(response.content ?? {});
          if (media.length === 0 || media.some((m) => m.schema === undefined || Object.keys(m.schema).length === 0)) missing.push(where);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('takes the token request as a form with the RFC 8693 and RFC 7523 fields', () => {
    const content = document.paths['/oauth/token']!.post!.requestBody!.content;
    expect(Object.keys(content)).toEqual(['application/x-www-form-urlencoded']);
    const schema = content['application/x-www-form-urlencoded']!.schema;
    expect(Object.keys(schema.properties ?? {})).toEqual(
      expect.arrayContaining([
        'grant_type',
        'requested_token_type',
        'subject_token',
        'subject_token_type',
        'actor_token',
        'actor_token_type',
        'request_details',
        'client_assertion_type',
        'client_assertion',
      ]),
    );
    expect(schema.required).toEqual(expect.arrayContaining(['grant_type', 'subject_token', 'subject_token_type', 'client_assertion']));
    expect(schema.properties?.grant_type).toEqual({ type: 'string', const: 'urn:ietf:params:oauth:grant-type:token-exchange' });
  });

  it('describes revocation and introspection as form requests', () => {
    for (const path of ['/oauth/revoke', '/oauth/introspect']) {
      const content = document.paths[path]!.post!.requestBody!.content;
      expect(Object.keys(content)).toEqual(['application/x-www-form-urlencoded']);
      expect(content['application/x-www-form-urlencoded']!.schema.required).toEqual(expect.arrayContaining(['token', 'client_assertion']));
    }
  });

  it('takes the grant request body from the zod schema that validates it', () => {
    const schema = document.paths['/grants']!.post!.requestBody!.content['application/json']!.schema;
    expect(schema.required).toEqual(['service', 'authorization_details', 'envelope', 'purpose', 'duration_s']);
    expect(schema).toMatchObject({ additionalProperties: false });
  });

  it('names the private_key_jwt and DPoP security schemes and uses them', () => {
    expect(document.components.securitySchemes).toMatchObject({
      private_key_jwt: { type: 'http', scheme: 'private_key_jwt' },
      DPoP: { type: 'apiKey', in: 'header', name: 'DPoP' },
    });
    expect(document.paths['/oauth/token']!.post!.security).toEqual([{ DPoP: [] }]);
    expect(document.paths['/grants/{id}']!.get!.security).toEqual([{ private_key_jwt: [] }]);
  });

  it('describes OAuth errors as {error, error_description}', () => {
    const response = document.paths['/oauth/token']!.post!.responses['400']!;
    expect(response.content!['application/json']!.schema).toMatchObject({ required: ['error'], properties: { error: { type: 'string' } } });
  });

  it("names the human API's own error codes, by status", () => {
    const forbidden = document.paths['/me/grants/{id}/decision']!.post!.responses['403']!.content!['application/json']!.schema!;
    expect(forbidden).toMatchObject({ required: ['error', 'error_description'], additionalProperties: false });
    expect((forbidden.properties as { error: { enum: string[] } }).error.enum).toEqual(expect.arrayContaining(['csrf_token_missing', 'ceremony_used', 'passkey_unknown']));
    expect((forbidden.properties as { error: { enum: string[] } }).error.enum).not.toContain('access_denied');
  });

  describe('real answers', () => {
    const { call, signUp } = humanApi(() => app);
    let alice: HumanBrowser;
    let agent: Agent;
    let grantId: string;

    /** The answer, checked to have `status`. */
    function expectStatus(res: Response, status: number): Response {
      expect(res.statusCode, `${res.statusCode} ${res.body}`).toBe(status);
      return res;
    }

    async function assertionHeader(who: Agent): Promise<Record<string, string>> {
      return { authorization: `private_key_jwt ${await fx.selfSigned(who.clientId, who.privateKey)}` };
    }

    async function confirmation(who: HumanBrowser, purpose: string): Promise<{ ceremony: string; response: unknown }> {
      const { ceremony, options } = expectStatus(await call(who, 'POST', '/me/confirmation/options', { purpose }), 200).json<{ ceremony: string; options: Parameters<SoftPasskey['assert']>[0] }>();
      return { ceremony, response: who.passkey.assert(options) };
    }

    async function tokenForm(who: Agent, token: string): Promise<Record<string, string>> {
      return {
        token,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await fx.selfSigned(who.clientId, who.privateKey),
      };
    }

    function form(url: string, fields: Record<string, string>): Promise<Response> {
      return app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(fields).toString() });
    }

    beforeAll(async () => {
      answers.length = 0;

      // A person signs up, signs in again and looks around.
      alice = await signUp('Alice');
      expectStatus(await call(alice, 'GET', '/auth/session'), 200);
      const login = expectStatus(await call(null, 'POST', '/auth/login/options', {}), 200).json<{ ceremony: string; options: Parameters<SoftPasskey['assert']>[0] }>();
      expectStatus(await call(null, 'POST', '/auth/login/verify', { ceremony: login.ceremony, response: alice.passkey.assert(login.options) }), 200);

      // They enrol an agent, which registers itself and asks for a grant.
      const enrollment = expectStatus(await call(alice, 'POST', '/me/agents/enrollment-tokens', { confirmation: await confirmation(alice, 'enrollment_token') }), 201).json<{ token: string }>();
      const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
      const publicJwk = await exportJWK(publicKey);
      const registered = await app.inject({
        method: 'POST',
        url: '/oauth/register',
        headers: { authorization: `Bearer ${enrollment.token}` },
        payload: { client_name: 'Trip planner', jwks: { keys: [publicJwk] } },
      });
      agent = { clientId: expectStatus(registered, 201).json<{ client_id: string }>().client_id, owner: alice.humanId, privateKey, publicJwk };
      expectStatus(await app.inject({ method: 'GET', url: '/agents/me', headers: await assertionHeader(agent) }), 200);
      expectStatus(await form('/agents/me', { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await fx.selfSigned(agent.clientId, agent.privateKey) }), 200);
      grantId = expectStatus(await app.inject({ method: 'POST', url: '/grants', headers: await assertionHeader(agent), payload: grantRequest }), 201).json<{ grant_id: string }>().grant_id;
      expectStatus(await app.inject({ method: 'GET', url: `/grants/${grantId}`, headers: await assertionHeader(agent) }), 200);

      // The person approves it with their passkey and reads the receipt.
      expectStatus(await call(alice, 'GET', '/me/grants'), 200);
      expectStatus(await call(alice, 'GET', `/me/grants/${grantId}`), 200);
      const begun = expectStatus(await call(alice, 'POST', `/me/grants/${grantId}/decision/options`, { decision: 'approve' }), 200).json<{ ceremony: string; document: string; options: Parameters<SoftPasskey['assert']>[0] }>();
      expectStatus(await call(alice, 'POST', `/me/grants/${grantId}/decision`, { ceremony: begun.ceremony, document: begun.document, response: alice.passkey.assert(begun.options) }), 200);
      expectStatus(await call(alice, 'GET', `/me/grants/${grantId}/receipt`), 200);

      // The agent gets a token; introspection, the person's transactions, revocations.
      const token = await fx.rootToken(agent, grantId);
      const { txn } = expectStatus(await form('/oauth/introspect', await tokenForm(agent, token)), 200).json<{ txn: string }>();
      expectStatus(await call(alice, 'GET', '/me/transactions'), 200);
      expectStatus(await call(alice, 'GET', `/me/transactions/${txn}`), 200);
      expectStatus(await call(alice, 'POST', `/me/transactions/${txn}/revoke`, { reason: 'done' }), 200);
      expectStatus(await form('/oauth/revoke', await tokenForm(agent, token)), 200);
      expectStatus(await form('/oauth/introspect', await tokenForm(agent, token)), 200);
      expectStatus(await call(alice, 'POST', `/me/grants/${grantId}/revoke`, {}), 200);

      // Passkeys: add a second one, rename it, read the notice, dismiss it.
      const added = expectStatus(await call(alice, 'POST', '/me/passkeys/options', { confirmation: await confirmation(alice, 'add_passkey') }), 200).json<{ ceremony: string; options: Parameters<SoftPasskey['register']>[0] }>();
      const phone = new SoftPasskey(UI_ORIGIN, RP_ID);
      const { id: phoneId } = expectStatus(await call(alice, 'POST', '/me/passkeys/verify', { ceremony: added.ceremony, response: phone.register(added.options), label: 'Phone' }), 200).json<{ id: string }>();
      expectStatus(await call(alice, 'POST', `/me/passkeys/${phoneId}/rename`, { label: 'Old phone', confirmation: await confirmation(alice, 'rename_passkey') }), 200);
      expectStatus(await call(alice, 'GET', '/me/passkeys'), 200);
      expectStatus(await call(alice, 'GET', '/me/passkeys/notice'), 200);
      expectStatus(await call(alice, 'POST', '/me/passkeys/notice/dismiss', {}), 204);
      expectStatus(await call(alice, 'POST', `/me/passkeys/${phoneId}/remove`, { confirmation: await confirmation(alice, 'remove_passkey') }), 204);
      expectStatus(await call(alice, 'GET', '/me/step-ups'), 200);
      expectStatus(await call(alice, 'GET', '/me/agents'), 200);
      expectStatus(await call(alice, 'POST', `/me/agents/${agent.clientId}/disable`, {}), 200);

      // Refusals, each in the shape and with a code its status documents.
      expectStatus(await call(null, 'GET', '/me/grants'), 401);
      expectStatus(await call(alice, 'GET', '/me/grants/grt_unknown'), 404);
      expectStatus(await call(alice, 'POST', `/me/grants/${grantId}/decision/options`, { decision: 'approve' }, { 'x-csrf-token': undefined }), 403);
      expectStatus(await call(alice, 'POST', `/me/grants/${grantId}/decision/options`, { decision: 'approve' }), 400);
      expectStatus(await call(alice, 'POST', '/me/agents/enrollment-tokens', {}), 403);
      expectStatus(await app.inject({ method: 'GET', url: '/grants/grt_unknown', headers: await assertionHeader(agent) }), 401);

      // The operator, a service provider, and what anyone may read.
      const operator = { authorization: `Bearer ${OPERATOR_TOKEN}` };
      expectStatus(await app.inject({ method: 'GET', url: '/operator/humans', headers: operator }), 200);
      expectStatus(await app.inject({ method: 'GET', url: '/audit/verify', headers: operator }), 200);
      expectStatus(await app.inject({ method: 'GET', url: '/audit/verify' }), 401);
      const service = expectStatus(
        await app.inject({ method: 'POST', url: '/operator/services', headers: operator, payload: { uri: 'https://hotels.example', display_name: 'Hotels', catalogue: [{ type: 'hotel_booking', actions: ['book'] }] } }),
        201,
      ).json<{ service_id: string; credential: string }>();
      expectStatus(await app.inject({ method: 'POST', url: '/operator/enrollment-tokens', headers: operator, payload: { owner: alice.humanId } }), 201);
      const basic = Buffer.from(`${service.service_id}:${service.credential}`).toString('base64');
      expectStatus(await app.inject({ method: 'GET', url: '/services/me', headers: { authorization: `Basic ${basic}` } }), 200);
      // The audit log's first checkpoint, as its timer would take it.
      await app.get(AuditService).checkpoint();
      for (const url of ['/.well-known/oauth-authorization-server', '/.well-known/jwks.json', '/audit/checkpoint', '/audit/proof/inclusion?seq=1&size=1', '/audit/proof/consistency?from=1&to=1', '/readyz', '/openapi.json']) {
        expectStatus(await app.inject({ method: 'GET', url }), 200);
      }
      expectStatus(await call(alice, 'POST', '/auth/logout-everywhere', {}), 200);
      expectStatus(await call(await signUp('Bob'), 'POST', '/auth/logout', {}), 204);
    });

    it('answers every route as the document says, in status, media type and schema', () => {
      expect(answers.length).toBeGreaterThan(40);
      const problems: string[] = [];
      for (const answer of answers) {
        const [method, path] = answer.operation.split(' ') as [string, string];
        const response = document.paths[path]?.[method.toLowerCase()]?.responses[String(answer.status)];
        const where = `${answer.operation} ${answer.status}`;
        if (response === undefined) {
          problems.push(`${where}: not in the document`);
          continue;
        }
        if (answer.status === 204) continue;
        const mediaType = answer.contentType?.split(';')[0]?.trim() ?? '';
        const schema = response.content?.[mediaType]?.schema;
        if (schema === undefined) {
          problems.push(`${where}: no schema for ${mediaType} (documented: ${Object.keys(response.content ?? {}).join(', ')})`);
          continue;
        }
        const checked = z.fromJSONSchema(schema).safeParse(mediaType === 'text/plain' ? answer.body : JSON.parse(answer.body));
        if (!checked.success) problems.push(`${where}: ${z.prettifyError(checked.error)}\n${answer.body.slice(0, 500)}`);
      }
      expect(problems).toEqual([]);
    });

    it('saw an answer from every route but the ones that need a verifier or hold the line open', () => {
      const seen = new Set(answers.map((answer) => answer.operation));
      // Step-ups come from a verifier's events (step-ups.e2e.spec.ts); /me/events is a stream.
      const notHere = new Set(['GET /me/events', 'GET /step-ups/{id}', 'GET /me/step-ups/{id}', 'POST /me/step-ups/{id}/decision/options', 'POST /me/step-ups/{id}/decision', 'GET /me/step-ups/{id}/receipt']);
      expect([...new Set(routes)].filter((route) => !seen.has(route) && !notHere.has(route)).sort()).toEqual([]);
    });
  });
});
