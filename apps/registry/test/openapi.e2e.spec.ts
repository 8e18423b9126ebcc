import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { createRegistry } from '../src/registry.js';
import { e2eStorage, type TestDatabase } from './support/databases.js';

interface Operation {
  summary?: string;
  security?: Record<string, string[]>[];
  requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown>; required?: string[] } }> };
  responses: Record<string, unknown>;
}
interface OpenApi {
  openapi: string;
  servers: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, { type: string; scheme?: string; in?: string; name?: string }> };
}

describe.each([e2eStorage])('OpenAPI document on $name', ({ create }) => {
  let app: NestFastifyApplication;
  let testDb: TestDatabase;
  let dataDir: string;
  /** Every route Nest registered in Fastify, as `METHOD /openapi/{path}`. */
  const routes: string[] = [];
  let document: OpenApi;

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-openapi-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: 'https://registry.writ.test' });
    ({ app } = await createRegistry(config, { logger: false, database: testDb.target }));
    // Routes are added to Fastify during init: record each one as Nest registers it.
    app
      .getHttpAdapter()
      .getInstance()
      .addHook('onRoute', (route) => {
        for (const method of [route.method].flat()) {
          // Fastify adds a HEAD route to each GET by itself; it is not one of ours.
          if (method !== 'HEAD') routes.push(`${method} ${route.url.replace(/:(\w+)/g, '{$1}')}`);
        }
      });
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    document = res.json<OpenApi>();
  });

  afterAll(async () => {
    await app.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

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
    const response = document.paths['/oauth/token']!.post!.responses['400'] as { content: Record<string, { schema: unknown }> };
    expect(response.content['application/json']!.schema).toMatchObject({ required: ['error'], properties: { error: { type: 'string' } } });
  });
});
