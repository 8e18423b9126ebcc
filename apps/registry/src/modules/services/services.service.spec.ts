import { InvalidRequest } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { InMemoryAuditRepository } from '../../testing/in-memory-audit.js';
import { InMemoryServicesRepository } from '../../testing/in-memory-services.js';
import { InMemoryStore } from '../../testing/in-memory-store.js';
import { inMemoryKeys } from '../../testing/test-keys.js';
import { AuditService } from '../audit/audit.service.js';
import { ServicesService } from './services.service.js';

const clock = { now: () => Date.UTC(2026, 0, 1) };
const catalogue = [{ type: 'payment', actions: ['charge'] }];

async function servicesService() {
  const store = new InMemoryStore();
  const chain = new InMemoryAuditRepository(store);
  const audit = new AuditService({ repository: chain, keys: await inMemoryKeys(), clock, checkpointEvery: 1000 });
  return { chain, services: new ServicesService({ repository: new InMemoryServicesRepository(store), audit, clock }) };
}

describe('ServicesService (in memory)', () => {
  it('registers a service at its normalised URI, records service.registered, and shows the credential once', async () => {
    const { chain, services } = await servicesService();
    const { service, credential } = await services.register({ uri: 'HTTPS://Pay.Example/api/', display_name: 'Pay', catalogue });
    expect(service).toMatchObject({ id: expect.stringMatching(/^svc_/) as unknown, uri: 'https://pay.example/api', display_name: 'Pay', catalogue });
    expect(service.credential_hash).not.toContain(credential);
    expect(chain.events.map((e) => [e.type, e.actor, e.subject])).toEqual([['service.registered', 'operator', service.id]]);
    expect(await services.find(service.id)).toEqual(service);
    expect(await services.find('https://PAY.example/api')).toEqual(service);
    expect(await services.find('not a uri')).toBeNull();
  });

  it('checks the credential: the right one passes, another or an unknown service does not', async () => {
    const { services } = await servicesService();
    const { service, credential } = await services.register({ uri: 'https://pay.example/', display_name: 'Pay', catalogue });
    expect(await services.verifyCredential(service.id, credential)).toBe(true);
    expect(await services.verifyCredential(service.id, `${credential}x`)).toBe(false);
    expect(await services.verifyCredential('svc_unknown', credential)).toBe(false);
  });

  it('refuses a malformed body and a non-http(s) URI with invalid_request', async () => {
    const { services } = await servicesService();
    await expect(services.register({ uri: 'https://pay.example/', catalogue })).rejects.toThrow(InvalidRequest);
    await expect(services.register({ uri: 'ftp://pay.example/', display_name: 'Pay', catalogue })).rejects.toThrow('uri must be an absolute http(s) URI');
  });

  it('refuses a URI already registered, one under a registered URI and one containing it, writing nothing', async () => {
    const { chain, services } = await servicesService();
    const { service } = await services.register({ uri: 'https://pay.example/api', display_name: 'Pay', catalogue });
    await expect(services.register({ uri: 'https://pay.example/api', display_name: 'Again', catalogue })).rejects.toThrow('a service is already registered at https://pay.example/api');
    await expect(services.register({ uri: 'https://pay.example/api/refunds', display_name: 'Under', catalogue })).rejects.toThrow(
      `https://pay.example/api/refunds is under the URI of registered service ${service.id} (https://pay.example/api): service URIs may not overlap`,
    );
    await expect(services.register({ uri: 'https://pay.example', display_name: 'Over', catalogue })).rejects.toThrow(`contains the URI of registered service ${service.id}`);
    expect(chain.events).toHaveLength(1);
  });
});
