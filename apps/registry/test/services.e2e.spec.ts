import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicCredentials } from '../src/modules/services/services.controller.js';
import { e2eStorage } from './support/databases.js';
import { createTokenFixture } from './support/token-fixture.js';

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}

describe.each([e2eStorage])('GET /services/me on $name', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-services-', owners: [] });
  let app: NestFastifyApplication;
  let service: { id: string; credential: string };

  beforeAll(async () => ({ app, service } = await fx.start()));
  afterAll(() => fx.close());

  const me = (authorization?: string) => app.inject({ method: 'GET', url: '/services/me', headers: authorization === undefined ? {} : { authorization } });

  it('names the service whose credential is presented', async () => {
    const res = await me(basic(service.id, service.credential));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ id: service.id, uri: 'https://flights.example/', display_name: 'Flights' });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it.each([
    ['no credentials', undefined, 401, { error: 'invalid_client', error_description: 'service credentials are missing: use HTTP Basic with the service id and credential' }],
    ['a wrong credential', 'wrong', 401, { error: 'invalid_client', error_description: 'unknown service or wrong credential' }],
    ['another scheme', 'Bearer abc', 401, { error: 'invalid_client', error_description: 'Authorization must be Basic base64(service_id:credential)' }],
  ])('refuses %s', async (_name, secret, status, body) => {
    const authorization = secret === undefined ? undefined : secret.startsWith('Bearer') ? secret : basic(service.id, secret);
    const res = await me(authorization);
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual(body);
    expect(res.headers['www-authenticate']).toBe('Basic realm="writ"');
  });

  it('refuses an unknown service id with the same answer as a wrong credential', async () => {
    const res = await me(basic('svc_unknown', service.credential));
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: 'invalid_client', error_description: 'unknown service or wrong credential' });
  });
});

describe('basicCredentials', () => {
  it('reads RFC 7617 credentials and undoes RFC 6749 form-encoding', () => {
    expect(basicCredentials(basic('svc_a', 's3cr:et'))).toEqual({ id: 'svc_a', secret: 's3cr:et' });
    expect(basicCredentials(basic('svc%20a', 'x%2By'))).toEqual({ id: 'svc a', secret: 'x+y' });
    expect(basicCredentials('basic ' + Buffer.from('svc_a:x').toString('base64'))).toEqual({ id: 'svc_a', secret: 'x' });
  });

  it.each([['Basic'], ['Basic !!!'], [basic('', 'x')], ['Basic ' + Buffer.from('no-colon').toString('base64')], [basic('%E0%A4%A', 'x')], ['Digest abc']])('rejects %s', (header) => {
    expect(basicCredentials(header)).toBeUndefined();
  });
});
