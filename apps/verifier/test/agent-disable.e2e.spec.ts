import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentsService } from '../../registry/src/modules/agents/agents.service.js';
import { Database } from '../../registry/src/infra/database.service.js';
import type { Agent } from '../../registry/test/support/token-fixture.js';
import type { VerifierServer } from '../src/server.js';
import { e2eStore } from './support/stores.js';
import { API, createVerifierFixture } from './support/verifier-fixture.js';

const REVOKED_AGENT = {
  allow: false,
  error: 'revoked',
  error_description: 'the agent was revoked',
  status: 401,
  www_authenticate: 'DPoP error="invalid_token", error_description="the agent was revoked", algs="ES256 EdDSA Ed25519"',
};

// Issue 16, finding 5: "Disable" must stop the agent's live token and every token delegated from
// it at every verifier, as fast as any other revocation (ADR 0008).
describe.each([e2eStore])('disabling an agent on the $name store', (storeUnderTest) => {
  // bob and carol receive hops of alice's grants, so they are her agents (issue 16, finding 6).
  const vf = createVerifierFixture(storeUnderTest, ['alice', 'bob', 'carol'], undefined, { bob: 'alice', carol: 'alice' });
  let verifier: VerifierServer;
  let agents: Record<string, Agent>;

  beforeAll(async () => {
    const started = await vf.start();
    verifier = started.verifier;
    agents = started.agents;
  });
  afterAll(() => vf.close());

  async function request(token: string, agent: Agent, action = 'read') {
    return { token, dpop: await vf.proof(agent, token), method: 'POST', url: `${API}/bookings`, action };
  }

  it('refuses its live root token and the token it delegated, on every verifier, within the revocation latency', async () => {
    const { alice, bob, carol } = agents as { alice: Agent; bob: Agent; carol: Agent };
    const { token: root } = await vf.tokenFor(alice, { max_uses: 100_000 });
    const delegated = await vf.fx.delegate(alice, root, bob, { requestDetails: { authorization_details: [{ type: 'flight_booking', locations: [API], actions: ['read'], limits: { max_passengers: 2 } }], envelope: { max_uses: 50_000 } } });
    expect(delegated.statusCode).toBe(200);
    const child = delegated.json<{ access_token: string }>().access_token;
    // Another person's agent, untouched by alice's: still allowed afterwards.
    const { token: other } = await vf.tokenFor(carol);
    const replica = await vf.newVerifier();
    for (const server of [verifier, replica]) {
      expect((await vf.verify(server, await request(root, alice))).body.allow).toBe(true);
      expect((await vf.verify(server, await request(child, bob))).body.allow).toBe(true);
    }

    expect(await vf.registry().get(AgentsService).disable(alice.clientId, alice.owner)).toBe('disabled');
    const disabledAt = Date.now();
    for (const server of [verifier, replica]) {
      await expect.poll(async () => (await vf.verify(server, await request(root, alice))).body, { timeout: 2000, interval: 10 }).toEqual(REVOKED_AGENT);
      await expect.poll(async () => (await vf.verify(server, await request(child, bob))).body, { timeout: 2000, interval: 10 }).toEqual(REVOKED_AGENT);
    }
    const latency = Date.now() - disabledAt;
    // The same bound as other revocations, with room for a loaded test machine.
    expect(latency).toBeLessThan(1000);
    expect((await vf.verify(verifier, await request(other, carol))).body.allow).toBe(true);

    // Durable, with its audit event in the same transaction: a restart re-announces it (ADR 0008).
    const rows = await vf.registry().get(Database).query<{ kind: string; value: string; reason: string }[]>('SELECT kind, value, reason FROM revocations WHERE kind = $1 AND value = $2', ['agent', alice.clientId]);
    expect(rows).toEqual([{ kind: 'agent', value: alice.clientId, reason: 'agent disabled' }]);
    const events = await vf.registry().get(Database).query<{ type: string }[]>('SELECT type FROM audit_events WHERE subject = $1 AND type IN ($2, $3) ORDER BY seq', [alice.owner, 'revocation.agent', 'agent.disabled']);
    expect(events.map((e) => e.type)).toContain('revocation.agent');
  });
});
