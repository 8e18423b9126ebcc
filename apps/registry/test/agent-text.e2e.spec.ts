import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { type CryptoKey, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { e2eStorage } from './support/databases.js';
import { humanApi } from './support/human-browser.js';
import { capability, createTokenFixture, grantRequest } from './support/token-fixture.js';

// Issue 17, finding 2: what an agent writes for a person to read (its client_name, a grant's
// purpose, a time window's zone) cannot make the approval screen show something else than what
// the agent asked for. Finding 3: every free-text field answers 400 naming the field for a NUL or
// a lone surrogate, the person's own name at sign-up included.
describe.each([e2eStorage])('agent text a person reads, at the registry on $name', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-agent-text-', owners: [] });
  let app: NestFastifyApplication;
  const api = humanApi(() => app);

  beforeAll(async () => {
    app = (await fx.start()).app;
  });
  afterAll(() => fx.close());

  /** RFC 7591 registration of an agent of `owner` named `clientName`, through HTTP. */
  async function register(owner: string, clientName: string): Promise<Awaited<ReturnType<NestFastifyApplication['inject']>> & { privateKey: CryptoKey }> {
    const { token } = await app.get(AgentsService).mintInitialAccessToken(owner);
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const res = await app.inject({
      method: 'POST',
      url: '/oauth/register',
      headers: { authorization: `Bearer ${token}` },
      payload: { client_name: clientName, jwks: { keys: [await exportJWK(publicKey)] } },
    });
    return Object.assign(res, { privateKey });
  }

  /** POST /grants by a fresh agent of `owner`, with `change` applied to the fixture's request. */
  async function requestGrant(owner: string, change: object, agent?: { clientId: string; privateKey: CryptoKey }) {
    let signer = agent;
    if (!signer) {
      const registered = await register(owner, 'Trip planner');
      expect(registered.statusCode).toBe(201);
      signer = { clientId: registered.json<{ client_id: string }>().client_id, privateKey: registered.privateKey };
    }
    return app.inject({
      method: 'POST',
      url: '/grants',
      payload: {
        ...grantRequest,
        ...change,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await fx.selfSigned(signer.clientId, signer.privateKey),
      },
    });
  }

  it.each([
    ['a bidi override', 'Budget assistant \u202e0005 ot pu', 'client_name: contains a format character (U+202E)'],
    ['a bidi isolate', 'Budget \u2067assistant\u2069', 'client_name: contains a format character (U+2067)'],
    ['a zero-width space', 'Budget\u200bassistant', 'client_name: contains a format character (U+200B)'],
    ['a zero-width joiner', 'Budget\u200dassistant', 'client_name: contains a format character (U+200D)'],
    ['a byte order mark', '\ufeffBudget assistant', 'client_name: contains a format character (U+FEFF)'],
    ['a Hangul filler', 'Budget\u3164assistant', 'client_name: contains an invisible character (U+3164)'],
    ['a leading space', ' Budget assistant', 'client_name: starts or ends with whitespace (U+0020)'],
    ['a trailing no-break space', 'Budget assistant\u00a0', 'client_name: starts or ends with whitespace (U+00A0)'],
    ['a run of no-break spaces', 'Budget\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0assistant', 'client_name: contains consecutive whitespace (U+00A0 U+00A0)'],
    ['a line separator', 'Budget\u2028assistant', 'client_name: contains a line or paragraph separator (U+2028)'],
    ['a C1 control', 'Budget\u0085assistant', 'client_name: contains a control character (U+0085)'],
  ])('RFC 7591 registration refuses a client_name with %s: 400 invalid_client_metadata naming it', async (_name, clientName, description) => {
    fx.expectError(await register('alice', clientName), 400, 'invalid_client_metadata', description);
  });

  it('RFC 7591 registration keeps a plain name in any script as sent', async () => {
    const res = await register('alice', 'Zürich – 東京 planner');
    expect(res.statusCode).toBe(201);
    expect(res.json<{ client_name: string }>().client_name).toBe('Zürich – 東京 planner');
  });

  it.each([
    ['a bidi override', 'Pay invoices up to \u202e0005\u202c EUR', 'purpose: contains a format character (U+202E)'],
    ['a left-to-right mark', 'Pay invoices\u200e', 'purpose: contains a format character (U+200E)'],
    ['a zero-width non-joiner', 'Pay\u200cinvoices', 'purpose: contains a format character (U+200C)'],
    ['a trailing space', 'Pay invoices ', 'purpose: starts or ends with whitespace (U+0020)'],
    ['a run of no-break spaces', 'Pay\u00a0\u00a0\u00a0\u00a0invoices', 'purpose: contains consecutive whitespace (U+00A0 U+00A0)'],
    ['a NUL', 'Pay\u0000invoices', 'purpose: contains a control character (U+0000)'],
    ['a lone surrogate', 'Pay invoices \udbff', 'purpose: is not well-formed UTF-16 (lone surrogate)'],
  ])('POST /grants refuses a purpose with %s: 400 invalid_request naming it', async (_name, purpose, description) => {
    fx.expectError(await requestGrant('alice', { purpose }), 400, 'invalid_request', description);
  });

  it.each([
    ['a bidi override', 'https://flights.example/api/\u202eipa', 'authorization_details[0].locations[0]: location contains a format character (U+202E)'],
    ['a zero-width space', 'https://flights.example/a\u200bpi', 'authorization_details[0].locations[0]: location contains a format character (U+200B)'],
    ['a no-break space', 'https://flights.example/api\u00a0', 'authorization_details[0].locations[0]: location starts or ends with whitespace (U+00A0)'],
  ])('POST /grants refuses a capability location with %s: 400 invalid_authorization_details naming it', async (_name, location, description) => {
    const res = await requestGrant('alice', { authorization_details: [{ ...capability, locations: [location] }] });
    fx.expectError(res, 400, 'invalid_authorization_details', description);
  });

  it.each([
    ['Etc/GMT+5', 'envelope.time_windows[0].tz: Etc/GMT+5 means UTC-05:00; name a city zone (Area/City, such as America/Bogota)'],
    ['Etc/GMT-3', 'envelope.time_windows[0].tz: Etc/GMT-3 means UTC+03:00; name a city zone (Area/City, such as America/Bogota)'],
    ['Europe/Zürich', 'envelope.time_windows[0].tz: tz is not a known IANA time zone'],
    ['EST', 'envelope.time_windows[0].tz: EST is an abbreviation or legacy name, not a place; name a city zone (Area/City, such as America/New_York)'],
  ])('POST /grants refuses the time zone %s, saying what it means', async (tz, description) => {
    const envelope = { max_uses: 10, time_windows: [{ days: ['mon'], start: '09:00', end: '18:00', tz }] };
    fx.expectError(await requestGrant('alice', { envelope }), 400, 'invalid_request', description);
  });

  it('POST /grants stores a time zone in its canonical spelling, and the person reads that one', async () => {
    const person = await api.signUp('Tess');
    const envelope = { max_uses: 10, time_windows: [{ days: ['mon'], start: '09:00', end: '18:00', tz: 'europe/PARIS' }] };
    const res = await requestGrant(person.humanId, { envelope });
    expect(res.statusCode).toBe(201);
    const grantId = res.json<{ grant_id: string }>().grant_id;
    const view = await api.call(person, 'GET', `/me/grants/${grantId}`);
    expect(view.json<{ envelope: unknown }>().envelope).toEqual({ max_uses: 10, time_windows: [{ days: ['mon'], start: '09:00', end: '18:00', tz: 'Europe/Paris' }] });
  });

  it.each([
    ['a NUL', 'Ali\u0000ce', 'name: contains a control character (U+0000)'],
    ['a lone surrogate', 'Alice \ud800', 'name: is not well-formed UTF-16 (lone surrogate)'],
  ])('sign-up refuses a person name with %s: 400 invalid_request naming it', async (_name, name, description) => {
    fx.expectError(await api.call(null, 'POST', '/auth/register/options', { name }), 400, 'invalid_request', description);
  });

  it.each([
    ['a NUL', 'lost\u0000 trust', 'reason: contains a control character (U+0000)'],
    ['a lone surrogate', 'lost trust \udc00', 'reason: is not well-formed UTF-16 (lone surrogate)'],
  ])('a revocation reason with %s answers 400 invalid_request naming it', async (_name, reason, description) => {
    const person = await api.signUp('Rey');
    const grantId = (await requestGrant(person.humanId, {})).json<{ grant_id: string }>().grant_id;
    fx.expectError(await api.call(person, 'POST', `/me/grants/${grantId}/revoke`, { reason }), 400, 'invalid_request', description);
  });

  it('POST /grants answers 400 for a field name no HTTP header can carry, not a 500 from its WWW-Authenticate', async () => {
    const res = await requestGrant('alice', { 東京: 1 });
    fx.expectError(res, 400, 'invalid_request', "unknown field '東京'");
    expect(res.headers['www-authenticate']).toBe('DPoP error="invalid_request", error_description="unknown field \'??\'", algs="ES256 EdDSA Ed25519"');
  });

  it('the inbox tells two agents of one name apart: client id, enrollment date, and a shared-name flag', async () => {
    const person = await api.signUp('Bea');
    const agents: { clientId: string; privateKey: CryptoKey; issuedAt: number }[] = [];
    for (const name of ['Budget assistant', 'budget ASSISTANT', 'Trip planner']) {
      const res = await register(person.humanId, name);
      expect(res.statusCode).toBe(201);
      const body = res.json<{ client_id: string; client_id_issued_at: number }>();
      agents.push({ clientId: body.client_id, privateKey: res.privateKey, issuedAt: body.client_id_issued_at });
    }
    for (const agent of agents) expect((await requestGrant(person.humanId, {}, agent)).statusCode).toBe(201);

    const inbox = await api.call(person, 'GET', '/me/grants?status=pending');
    expect(inbox.statusCode).toBe(200);
    const seen = inbox
      .json<{ grants: { agent: { client_id: string; name: string; enrolled_at: string; name_shared: boolean } }[] }>()
      .grants.map((grant) => grant.agent)
      .sort((a, b) => a.client_id.localeCompare(b.client_id));
    const expected = agents
      .map((agent, i) => ({
        client_id: agent.clientId,
        name: ['Budget assistant', 'budget ASSISTANT', 'Trip planner'][i],
        name_shared: i < 2,
        enrolled_seconds: agent.issuedAt,
      }))
      .sort((a, b) => a.client_id.localeCompare(b.client_id));
    expect(seen.map((a) => ({ client_id: a.client_id, name: a.name, name_shared: a.name_shared, enrolled_seconds: Math.floor(Date.parse(a.enrolled_at) / 1000) }))).toEqual(expected);

    const listed = (await api.call(person, 'GET', '/me/agents')).json<{ agents: { client_id: string; name_shared: boolean }[] }>();
    expect(listed.agents.filter((agent) => agent.name_shared).map((agent) => agent.client_id).sort()).toEqual([agents[0]!.clientId, agents[1]!.clientId].sort());
  });
});
