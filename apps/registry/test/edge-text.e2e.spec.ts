import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { RegistryConfig } from '../src/config/config.js';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { CONFIG } from '../src/tokens.js';
import { e2eStorage } from './support/databases.js';
import { type Agent, createTokenFixture, grantRequest } from './support/token-fixture.js';

// Issue 16, finding 4: free text and identifiers that PostgreSQL or the audit chain cannot hold
// (a NUL, a lone surrogate) are refused at the registry's edge with 400 naming the field, never a
// 500 from the database or the chain.
describe.each([e2eStorage])('text no chain can hold, at the registry on $name', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-edge-text-', owners: ['alice'] });
  let app: NestFastifyApplication;
  let alice: Agent;

  beforeAll(async () => {
    const started = await fx.start();
    app = started.app;
    alice = started.agents.alice;
  });
  afterAll(() => fx.close());

  it.each([
    ['a NUL in purpose', { purpose: 'Book\u0000 my trip' }, 'purpose: contains a control character (U+0000)'],
    ['a lone surrogate in purpose', { purpose: 'Book my trip \ud800' }, 'purpose: is not well-formed UTF-16 (lone surrogate)'],
    ['a NUL in service', { service: 'https://flights.example\u0000' }, 'service: contains a control character (U+0000)'],
    ['a lone surrogate in allowed_agents', { delegation: { max_depth: 1, allowed_agents: ['agt_\udc00'] } }, 'delegation.allowed_agents[0]: is not well-formed UTF-16 (lone surrogate)'],
  ])('POST /grants refuses %s with 400 invalid_request', async (_name, change, description) => {
    const res = await app.inject({
      method: 'POST',
      url: '/grants',
      payload: { ...grantRequest, ...change, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await fx.selfSigned(alice.clientId, alice.privateKey) },
    });
    fx.expectError(res, 400, 'invalid_request', description);
  });

  it.each([
    ['a NUL', 'my\u0000agent', 'client_name: contains a control character (U+0000)'],
    ['a lone surrogate', 'my agent \ud800', 'client_name: is not well-formed UTF-16 (lone surrogate)'],
  ])('registration refuses a client_name with %s with 400 invalid_client_metadata (RFC 7591 §3.2.2)', async (_name, clientName, description) => {
    const { token } = await app.get(AgentsService).mintInitialAccessToken('alice');
    const jwk = await exportJWK((await generateKeyPair('ES256')).publicKey);
    const res = await app.inject({ method: 'POST', url: '/oauth/register', headers: { authorization: `Bearer ${token}` }, payload: { client_name: clientName, jwks: { keys: [jwk] } } });
    fx.expectError(res, 400, 'invalid_client_metadata', description);
  });

  it('the operator API refuses a service display_name with a NUL with 400 invalid_request', async () => {
    const operator = readFileSync(join(app.get<RegistryConfig>(CONFIG).dataDir, 'keys', 'operator-token'), 'utf8').trim();
    const res = await app.inject({
      method: 'POST',
      url: '/operator/services',
      headers: { authorization: `Bearer ${operator}` },
      payload: { uri: 'http://127.0.0.1:7009', display_name: 'Hotels\u0000', catalogue: [{ type: 'hotel_booking', actions: ['read'] }] },
    });
    fx.expectError(res, 400, 'invalid_request', 'display_name: contains a control character (U+0000)');
  });
});
