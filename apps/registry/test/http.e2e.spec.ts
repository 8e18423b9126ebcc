import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { createRegistry } from '../src/registry.js';
import { e2eStorage, type TestDatabase } from './support/databases.js';

describe.each([e2eStorage])('registry HTTP on $name', ({ create }) => {
  let app: NestFastifyApplication;
  let testDb: TestDatabase;
  let dataDir: string;

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-http-'));
    // Checkpoints by count only: one the timer took would change the count checked below.
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: 'https://registry.writ.test', WRIT_CHECKPOINT_EVERY: '3', WRIT_AUDIT_CHECKPOINT_SECONDS: '3600' });
    ({ app } = await createRegistry(config, { logger: false, database: testDb.target }));
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
  });

  afterAll(async () => {
    await app.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves RFC 8414 metadata naming the issuer and its JWKS', async () => {
    const res = await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      issuer: 'https://registry.writ.test',
      jwks_uri: 'https://registry.writ.test/.well-known/jwks.json',
      dpop_signing_alg_values_supported: ['ES256', 'EdDSA', 'Ed25519'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
    });
  });

  it('serves the public signing keys only', async () => {
    const res = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/jwk-set+json');
    const { keys } = res.json<{ keys: Record<string, unknown>[] }>();
    expect(keys).toHaveLength(1);
    expect(keys[0]).not.toHaveProperty('d');
  });

  it('verifies the audit chain and its checkpoints over HTTP, for the operator', async () => {
    const audit = app.get(AuditService);
    for (let i = 0; i < 7; i++) await audit.append({ type: 'admin.test', data: { i } });
    const operator = readFileSync(join(dataDir, 'keys', 'operator-token'), 'utf8').trim();
    const res = await app.inject({ method: 'GET', url: '/audit/verify', headers: { authorization: `Bearer ${operator}` } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toMatchObject({ chain: { ok: true, count: 7, lastSeq: 7 }, checkpoints: { verified: 2, failed: [] } });
  });

  it('answers an unknown route with a JSON error and no-store', async () => {
    const res = await app.inject({ method: 'GET', url: '/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({ error: 'not_found', error_description: 'Cannot GET /nope' });
  });
});
