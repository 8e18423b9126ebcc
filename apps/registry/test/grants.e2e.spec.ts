import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { CLIENT_ASSERTION_TYP } from '@writ/core';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { GrantsService } from '../src/modules/grants/grants.service.js';
import { ServicesService } from '../src/modules/services/services.service.js';
import { createRegistry } from '../src/registry.js';
import { e2eStorage, type TestDatabase } from './support/databases.js';
import { approveGrant } from './support/humans.js';

const ISSUER = 'https://registry.writ.test';

const requestBody = {
  service: 'https://flights.example',
  authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }],
  envelope: { max_uses: 10 },
  purpose: 'Check my bookings',
  duration_s: 600,
};

type Agent = { clientId: string; assertion: () => Promise<string> };

describe.each([e2eStorage])('grants over HTTP on $name', ({ create }) => {
  let app: NestFastifyApplication;
  let testDb: TestDatabase;
  let dataDir: string;
  let grants: GrantsService;
  let agent: Agent;
  let other: Agent;

  /** Registers an agent for `owner` with a fresh ES256 key; each assertion is single-use. */
  async function enrol(owner: string): Promise<Agent> {
    const agents = app.get(AgentsService);
    const { token } = await agents.mintInitialAccessToken(owner);
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const { client_id: clientId } = await agents.register(token, { client_name: `agent of ${owner}`, jwks: { keys: [await exportJWK(publicKey)] } });
    const assertion = () =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', typ: CLIENT_ASSERTION_TYP })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(ISSUER)
        .setIssuedAt()
        .setExpirationTime('60s')
        .setJti(randomUUID())
        .sign(privateKey);
    return { clientId, assertion };
  }

  async function call(who: Agent, method: 'GET' | 'POST', url: string, payload?: object) {
    return app.inject({ method, url, headers: { authorization: `private_key_jwt ${await who.assertion()}` }, ...(payload ? { payload } : {}) });
  }

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-grants-http-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: ISSUER });
    ({ app } = await createRegistry(config, { logger: false, database: testDb.target }));
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    grants = app.get(GrantsService);
    await app.get(ServicesService).register({ uri: 'https://flights.example', display_name: 'Flights', catalogue: [{ type: 'flight_booking', actions: ['read', 'book'] }] });
    agent = await enrol('alice');
    other = await enrol('bob');
  });

  afterAll(async () => {
    await app.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses an unauthenticated request with 401 invalid_client', async () => {
    const res = await app.inject({ method: 'POST', url: '/grants', payload: requestBody });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: 'invalid_client' });
  });

  it('records a request: 201 with grant_id, status pending and expires_at, not cached', async () => {
    const res = await call(agent, 'POST', '/grants', requestBody);
    expect(res.statusCode).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json<{ grant_id: string; status: string; expires_at: string }>();
    expect(Object.keys(body).sort()).toEqual(['expires_at', 'grant_id', 'status']);
    expect(body.status).toBe('pending');
    expect(await grants.get(body.grant_id)).toMatchObject({ agent_id: agent.clientId, owner: 'alice' });
  });

  it('accepts the client assertion in the JSON body as well', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/grants',
      payload: { ...requestBody, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: await agent.assertion() },
    });
    expect(res.statusCode).toBe(201);
  });

  it('refuses an unknown field and a capability outside the catalogue, with their codes', async () => {
    const unknown = await call(agent, 'POST', '/grants', { ...requestBody, colour: 'red' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toEqual({ error: 'invalid_request', error_description: "unknown field 'colour'" });
    const outside = await call(agent, 'POST', '/grants', { ...requestBody, authorization_details: [{ ...requestBody.authorization_details[0], actions: ['delete'] }] });
    expect(outside.statusCode).toBe(400);
    expect(outside.json()).toEqual({
      error: 'invalid_authorization_details',
      error_description: "capability 0 (flight_booking): action 'delete' is not offered by https://flights.example/",
    });
  });

  it("reads its own grant, and answers another agent's grant exactly like an unknown one (404)", async () => {
    const { grant_id } = (await call(agent, 'POST', '/grants', requestBody)).json<{ grant_id: string }>();
    const own = await call(agent, 'GET', `/grants/${grant_id}`);
    expect(own.statusCode).toBe(200);
    expect(own.json()).toMatchObject({ grant_id, status: 'pending', version: 1, purpose: 'Check my bookings' });
    const foreign = await call(other, 'GET', `/grants/${grant_id}`);
    const unknown = await call(other, 'GET', '/grants/grt_doesnotexist');
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json()).toEqual({ error: 'not_found', error_description: 'grant not found' });
    expect(unknown.json()).toEqual(foreign.json());
  });

  it('holds GET ?wait= until the approval, and answers promptly after it', async () => {
    const { grant_id } = (await call(agent, 'POST', '/grants', requestBody)).json<{ grant_id: string }>();
    const waiting = call(agent, 'GET', `/grants/${grant_id}?wait=30`);
    await new Promise((r) => setTimeout(r, 200));
    const approvedAt = await approveGrant(app, grant_id, 'alice').then(() => performance.now());
    const res = await waiting;
    expect(performance.now() - approvedAt).toBeLessThan(100);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ grant_id, status: 'approved', version: 2 });
  });

  it('answers GET ?wait= with the grant still pending when the wait ends', async () => {
    const { grant_id } = (await call(agent, 'POST', '/grants', requestBody)).json<{ grant_id: string }>();
    const started = performance.now();
    const res = await call(agent, 'GET', `/grants/${grant_id}?wait=1`);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(res.json()).toMatchObject({ status: 'pending' });
  });

  it('refuses a wait longer than 60 seconds', async () => {
    const res = await call(agent, 'GET', '/grants/grt_x?wait=61');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'invalid_request', error_description: 'wait must be a whole number of seconds from 0 to 60' });
  });
});
