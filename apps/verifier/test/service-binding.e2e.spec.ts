import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistryConfig } from '../../registry/src/config/config.js';
import { Database } from '../../registry/src/infra/database.service.js';
import { KeyStore } from '../../registry/src/modules/keys/key-store.js';
import { ServiceEntity } from '../../registry/src/modules/services/service.entity.js';
import { CONFIG } from '../../registry/src/tokens.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { e2eStore } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

/**
 * Issue 16, finding 8: with services registered at `https://flights.example/` and under it, the
 * inner service's credential was answered `allow` for a grant the person approved for the outer
 * one (the verifier only checked that the URL was under the caller's URI and that a capability
 * location covered it). A token now names its grant's service (`tctx.service`), the verifier
 * honours it only for that service, and overlapping registrations are refused.
 */
describe.each([e2eStore])('grants bound to their service on the $name store', (storeUnderTest) => {
  const vf = createVerifierFixture(storeUnderTest, ['alice']);
  let verifier: VerifierServer;
  let alice: Agent;
  let helper: Agent;
  let flights: { id: string; credential: string };
  /** A service under flights.example's URI, as a registration from before the overlap rule left it. */
  let inner: { id: string; credential: string };
  let operatorToken: string;

  beforeAll(async () => {
    const started = await vf.start();
    verifier = started.verifier;
    flights = started.service;
    ({ alice } = started.agents as { alice: Agent });
    helper = await vf.fx.enrol('alice');
    operatorToken = readFileSync(join(vf.registry().get<RegistryConfig>(CONFIG).dataDir, 'keys', 'operator-token'), 'utf8').trim();
    const credential = randomBytes(32).toString('base64url');
    inner = { id: 'svc_tenant_inner', credential };
    await vf
      .registry()
      .get(Database)
      .dataSource.getRepository(ServiceEntity)
      .insert({
        id: inner.id,
        uri: API,
        display_name: 'Tenant under flights.example',
        catalogue: [{ type: 'flight_booking', actions: ['read', 'book'] }],
        credential_hash: createHash('sha256').update(credential).digest('hex'),
        created_at: new Date(),
      });
  });
  afterAll(() => vf.close());

  async function request(agent: Agent, token: string, url = `${API}/bookings`) {
    return { token, dpop: await vf.proof(agent, token, url), method: 'POST', url, action: 'book' };
  }

  function registerService(uri: string) {
    return vf
      .registry()
      .inject({
        method: 'POST',
        url: '/operator/services',
        headers: { authorization: `Bearer ${operatorToken}` },
        payload: { uri, display_name: 'Another', catalogue: [{ type: 'flight_booking', actions: ['read'] }] },
      });
  }

  /** The denial body the verifier answers for a grant of another service. */
  function otherService(grantService: string, caller: string) {
    const description = `the token's grant was approved for service ${grantService}, not for this service provider (${caller})`;
    return {
      allow: false,
      error: 'insufficient_scope',
      error_description: description,
      status: 403,
      www_authenticate: expect.stringMatching(new RegExp(`^DPoP error="insufficient_scope", error_description="${description.replace(/[()]/g, '\\$&')}"`)) as string,
    };
  }

  it("refuses a grant approved for the outer service at the inner service's credential, root and delegated tokens alike", async () => {
    const { token } = await vf.tokenFor(alice, { max_uses: 10 });
    const atInner = await vf.verify(verifier, await request(alice, token), vf.basic(inner.id, inner.credential));
    expect(atInner.status).toBe(200);
    expect(atInner.body).toEqual(otherService(flights.id, inner.id));
    expect((await vf.fx.verify(token)).tctx.service).toBe(flights.id);
    // The service it was approved for still honours it.
    expect((await vf.verify(verifier, await request(alice, token))).body).toMatchObject({ allow: true });

    // A hop keeps the grant's service: the child is no more welcome at the inner service.
    const delegated = await vf.fx.delegate(alice, token, helper, { requestDetails: { envelope: { max_uses: 5 } } });
    expect(delegated.statusCode).toBe(200);
    const child = delegated.json<{ access_token: string }>().access_token;
    expect((await vf.fx.verify(child)).tctx.service).toBe(flights.id);
    expect((await vf.verify(verifier, await request(helper, child), vf.basic(inner.id, inner.credential))).body).toEqual(otherService(flights.id, inner.id));
    expect((await vf.verify(verifier, await request(helper, child))).body).toMatchObject({ allow: true });
  });

  it("refuses a grant approved for the inner service at the outer service's credential", async () => {
    const grantId = await vf.fx.approvedGrant(alice, {
      service: inner.id,
      authorization_details: [{ type: 'flight_booking', locations: [`${API}/tenant`], actions: ['book'] }],
      envelope: { max_uses: 10 },
    });
    const token = await vf.fx.rootToken(alice, grantId);
    const url = `${API}/tenant/bookings`;
    expect((await vf.verify(verifier, await request(alice, token, url))).body).toEqual(otherService(inner.id, flights.id));
    expect((await vf.verify(verifier, await request(alice, token, url), vf.basic(inner.id, inner.credential))).body).toMatchObject({ allow: true });
  });

  it('refuses a token that names no service (issued before tokens were bound to their service)', async () => {
    const { token } = await vf.tokenFor(alice, { max_uses: 10 });
    const { tctx, ...claims } = await vf.fx.verify(token);
    const { service: _service, ...unbound } = tctx;
    const signingKey = await vf.registry().get(KeyStore).active();
    const old = await new SignJWT({ ...claims, tctx: unbound }).setProtectedHeader({ alg: 'ES256', typ: 'txntoken+jwt', kid: signingKey.kid }).sign(signingKey.privateKey);
    const res = await vf.verify(verifier, await request(alice, old));
    const description = 'token names no service (tctx.service): it was issued before tokens were bound to their service; request a new one';
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      allow: false,
      error: 'invalid_token',
      error_description: description,
      status: 401,
      www_authenticate: expect.stringMatching(new RegExp(`^DPoP error="invalid_token", error_description="${description.replace(/[()]/g, '\\$&')}"`)) as string,
    });
  });

  it('refuses to register a service whose URI is under, or contains, a registered one', async () => {
    const under = await registerService('https://flights.example/tenant-b');
    vf.fx.expectError(under, 400, 'invalid_request', `https://flights.example/tenant-b is under the URI of registered service ${flights.id} (https://flights.example/): service URIs may not overlap`);
    expect((await registerService('https://shop.example/tenant-a')).statusCode).toBe(201);
    const contains = await registerService('https://SHOP.example:443');
    expect(contains.json<{ error_description: string }>().error_description).toMatch(/^https:\/\/shop\.example\/ contains the URI of registered service svc_\S+ \(https:\/\/shop\.example\/tenant-a\): service URIs may not overlap$/);
    expect(contains.statusCode).toBe(400);
    // Another origin, or a sibling path, does not overlap.
    expect((await registerService('https://shop.example/tenant-ab')).statusCode).toBe(201);
    expect((await registerService('https://flights.example.other.test/')).statusCode).toBe(201);
  });
});
