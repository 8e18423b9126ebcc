import { SUBJECT_TOKEN_TYP } from '@writ/core';
import { beforeEach, describe, expect, it } from 'vitest';
import { InMemoryClientAuthRepository } from '../../testing/in-memory-client-auth.js';
import { agentJwt, type TestAgent, testAgent } from '../../testing/test-agents.js';
import { ClientAuthService, JWT_BEARER_ASSERTION_TYPE } from './client-auth.service.js';

const ISSUER = 'https://registry.writ.test';
const NOW = Date.UTC(2026, 0, 1, 12);

describe('ClientAuthService (in memory)', () => {
  let repository: InMemoryClientAuthRepository;
  let clientAuth: ClientAuthService;
  let alice: TestAgent;

  /** The `private_key_jwt` parameters of a form, with the rest of an endpoint's parameters beside them. */
  async function form(agent: TestAgent, jti?: string): Promise<Record<string, string>> {
    return {
      token: 'whatever the endpoint reads',
      client_id: agent.entity.client_id,
      client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
      client_assertion: await agentJwt(agent, { audience: ISSUER, now: NOW, ...(jti ? { jti } : {}) }),
    };
  }

  beforeEach(async () => {
    repository = new InMemoryClientAuthRepository();
    clientAuth = new ClientAuthService({ repository, issuer: ISSUER });
    alice = await testAgent('agt_alice', 'alice');
    repository.agents.set('agt_alice', alice.entity);
  });

  it("authenticates a form's client assertion as the registered agent", async () => {
    await expect(clientAuth.authenticateForm(await form(alice), NOW)).resolves.toEqual(alice.entity);
  });

  it('refuses the same assertion twice', async () => {
    const params = await form(alice);
    await clientAuth.authenticateForm(params, NOW);
    await expect(clientAuth.authenticateForm(params, NOW)).rejects.toMatchObject({ code: 'invalid_client', description: 'client assertion jti was already used' });
  });

  it('accepts a jti again once its first use has expired', async () => {
    await clientAuth.authenticateForm(await form(alice, 'jti-1'), NOW);
    const later = NOW + 120_000;
    const params = { ...(await form(alice)), client_assertion: await agentJwt(alice, { audience: ISSUER, now: later, jti: 'jti-1' }) };
    await expect(clientAuth.authenticateForm(params, later)).resolves.toEqual(alice.entity);
  });

  it('shares one single-use space between every kind of JWT the agent signs (ADR 0015)', async () => {
    expect(await clientAuth.rememberAgentJwt(clientAuth.agentJwtUse('agt_alice', 'jti-shared', NOW / 1000 + 60), NOW)).toBe(true);
    await expect(clientAuth.authenticateForm(await form(alice, 'jti-shared'), NOW)).rejects.toMatchObject({ code: 'invalid_client', description: 'client assertion jti was already used' });
    expect(await clientAuth.rememberAgentJwt(clientAuth.agentJwtUse('agt_alice', 'jti-shared', NOW / 1000 + 60), NOW)).toBe(false);
  });

  it('keeps separate spaces for separate agents', async () => {
    const bob = await testAgent('agt_bob', 'bob');
    repository.agents.set('agt_bob', bob.entity);
    await clientAuth.authenticateForm(await form(alice, 'jti-same'), NOW);
    await expect(clientAuth.authenticateForm(await form(bob, 'jti-same'), NOW)).resolves.toEqual(bob.entity);
  });

  it('does not record the jti when the deferring variant is used: the caller records it', async () => {
    const { agent, replay } = await clientAuth.authenticateDeferringReplay({ ...(await form(alice, 'jti-later')) }, NOW);
    expect(agent).toEqual(alice.entity);
    expect(replay).toEqual({ clientId: 'agt_alice', jti: 'jti-later', expiresAt: new Date((NOW / 1000 + 60 + 5) * 1000) });
    expect(await clientAuth.rememberAgentJwt(replay, NOW)).toBe(true);
  });

  it('refuses an unknown client, a disabled one, and another kind of JWT the agent signed', async () => {
    const stranger = await testAgent('agt_stranger', 'nobody');
    await expect(clientAuth.authenticateForm(await form(stranger), NOW)).rejects.toMatchObject({ code: 'invalid_client', description: 'unknown client' });
    const subjectToken = await agentJwt(alice, { audience: ISSUER, now: NOW, typ: SUBJECT_TOKEN_TYP });
    await expect(clientAuth.authenticateForm({ ...(await form(alice)), client_assertion: subjectToken }, NOW)).rejects.toMatchObject({ code: 'invalid_client' });
    repository.agents.set('agt_alice', { ...alice.entity, status: 'disabled' });
    await expect(clientAuth.authenticateForm(await form(alice), NOW)).rejects.toMatchObject({ code: 'invalid_client', description: 'client is disabled' });
  });
});
