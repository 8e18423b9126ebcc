import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG } from '../src/tokens.js';
import type { RegistryConfig } from '../src/config/config.js';
import { e2eStorage } from './support/databases.js';
import { humanWithPasskey } from './support/humans.js';
import { createTokenFixture } from './support/token-fixture.js';

describe.each([e2eStorage])('operator API on $name', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-operator-', owners: [] });
  let app: NestFastifyApplication;
  let token: string;

  const call = (method: 'GET' | 'POST', url: string, payload?: object, authorization: string | null = `Bearer ${token}`) =>
    app.inject({ method, url, headers: authorization === null ? {} : { authorization }, ...(payload ? { payload } : {}) });

  beforeAll(async () => {
    ({ app } = await fx.start());
    const file = join(app.get<RegistryConfig>(CONFIG).dataDir, 'keys', 'operator-token');
    token = readFileSync(file, 'utf8').trim();
    // Made on first run, readable by its owner only.
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  afterAll(() => fx.close());

  it('registers a service and shows its credential once', async () => {
    const res = await call('POST', '/operator/services', { uri: 'http://127.0.0.1:7001', display_name: 'Hotels', catalogue: [{ type: 'hotel_booking', actions: ['read', 'book'] }] });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ service_id: expect.stringMatching(/^svc_/), uri: 'http://127.0.0.1:7001/', credential: expect.any(String) });
    fx.expectError(await call('POST', '/operator/services', { uri: 'http://127.0.0.1:7001', display_name: 'Again', catalogue: [{ type: 'hotel_booking', actions: ['read'] }] }), 400, 'invalid_request', 'a service is already registered at http://127.0.0.1:7001/');
  });

  it('lists humans and mints an enrollment token for one of them, which registers an agent once', async () => {
    await humanWithPasskey(app, 'usr_operator_test');
    const { humans } = (await call('GET', '/operator/humans')).json<{ humans: { id: string }[] }>();
    expect(humans.map((h) => h.id)).toContain('usr_operator_test');
    const minted = await call('POST', '/operator/enrollment-tokens', { owner: 'usr_operator_test' });
    expect(minted.statusCode).toBe(201);
    const { token: enrollment } = minted.json<{ token: string }>();
    const jwk = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' };
    const registered = await app.inject({ method: 'POST', url: '/oauth/register', headers: { authorization: `Bearer ${enrollment}` }, payload: { client_name: 'demo agent', jwks: { keys: [jwk] } } });
    expect(registered.json()).toMatchObject({ client_id: expect.stringMatching(/^agt_/), client_name: 'demo agent' });
    fx.expectError(await call('POST', '/operator/enrollment-tokens', { owner: 'usr_nobody' }), 400, 'invalid_request', "owner 'usr_nobody' is not a human who signed up");
  });

  it('refuses a missing or wrong operator token with 401 and a Bearer challenge', async () => {
    const missing = await call('GET', '/operator/humans', undefined, null);
    fx.expectError(missing, 401, 'invalid_token', 'operator token is missing');
    expect(missing.headers['www-authenticate']).toBe('Bearer error="invalid_token", error_description="operator token is missing"');
    fx.expectError(await call('POST', '/operator/services', { uri: 'http://x.example' }, `Bearer ${'x'.repeat(43)}`), 401, 'invalid_token', 'operator token is not valid');
  });
});
