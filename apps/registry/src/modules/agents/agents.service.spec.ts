import { InvalidClientMetadata, sha256Base64url } from '@writ/core';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import { InitialAccessTokenRejected } from './agents.errors.js';
import { AgentsService } from './agents.service.js';

async function agentsFixture() {
  const registry = await inMemoryRegistry();
  const service = new AgentsService({ repository: registry.repositories.agents, audit: registry.audit, clock: registry.clock, revocations: registry.recorder });
  return { ...registry, agents: service };
}

async function publicJwk(alg: 'ES256' | 'EdDSA' = 'ES256'): Promise<JWK> {
  return exportJWK((await generateKeyPair(alg, { extractable: true })).publicKey);
}

describe('AgentsService (in memory)', () => {
  it('mints a single-use enrolment token whose hash alone is stored, and records it by hash prefix', async () => {
    const { agents, store, repositories } = await agentsFixture();
    const { token, expiresAt } = await agents.mintInitialAccessToken('alice', 600);
    expect(expiresAt.getTime()).toBe(Date.UTC(2026, 0, 1, 12, 10));
    const stored = [...store.table<string, { token_hash: string; owner: string }>('initial_access_tokens').values()];
    expect(stored).toEqual([expect.objectContaining({ token_hash: await sha256Base64url(token), owner: 'alice', used_at: null })]);
    const [event] = repositories.audit.events;
    expect(event).toMatchObject({ type: 'agent.enrollment_token_minted', actor: 'alice', subject: 'alice' });
    expect(JSON.stringify(event)).not.toContain(token);
    expect(event!.data.token_hash_prefix).toBe((await sha256Base64url(token)).slice(0, 12));
  });

  it('refuses an owner or a lifetime out of bounds', async () => {
    const { agents } = await agentsFixture();
    await expect(agents.mintInitialAccessToken(' ', 600)).rejects.toThrow('owner must be 1 to 256 characters');
    await expect(agents.mintInitialAccessToken('alice', 86_401)).rejects.toThrow('ttl must be an integer number of seconds from 1 to 86400');
    await expect(agents.mintInitialAccessToken('alice', 1.5)).rejects.toThrow(RangeError);
  });

  it('registers an agent for the token owner, consuming the token, with the key public members, kid, alg and use', async () => {
    const { agents, repositories } = await agentsFixture();
    const { token } = await agents.mintInitialAccessToken('alice');
    const jwk = await publicJwk();
    const client = await agents.register(token, { client_name: 'Travel agent', jwks: { keys: [jwk] } });
    expect(client).toMatchObject({ client_name: 'Travel agent', token_endpoint_auth_method: 'private_key_jwt', client_id_issued_at: Date.UTC(2026, 0, 1, 12) / 1000 });
    expect(client.jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, alg: 'ES256', use: 'sig' });
    expect(await agents.find(client.client_id)).toMatchObject({ owner: 'alice', status: 'active' });
    expect(repositories.audit.events.at(-1)).toMatchObject({ type: 'agent.registered', actor: 'alice', subject: client.client_id });
    await expect(agents.register(token, { client_name: 'Again', jwks: { keys: [await publicJwk()] } })).rejects.toThrow(
      new InitialAccessTokenRejected('initial access token was already used'),
    );
  });

  it('refuses a missing, unknown or expired token before looking at the metadata', async () => {
    const { agents, clock } = await agentsFixture();
    await expect(agents.register(undefined, {})).rejects.toThrow(new InitialAccessTokenRejected('initial access token is missing'));
    await expect(agents.register('nope', { client_name: 'x' })).rejects.toThrow(new InitialAccessTokenRejected('initial access token is unknown'));
    const { token } = await agents.mintInitialAccessToken('alice', 60);
    clock.advance(60_000);
    await expect(agents.register(token, { client_name: 'x' })).rejects.toThrow(new InitialAccessTokenRejected('initial access token is expired'));
  });

  it('leaves the token unused when the metadata is refused', async () => {
    const { agents } = await agentsFixture();
    const { token } = await agents.mintInitialAccessToken('alice');
    await expect(agents.register(token, { client_name: 'x', jwks: { keys: [] } })).rejects.toThrow(new InvalidClientMetadata('jwks must contain exactly one key'));
    await expect(agents.register(token, { client_name: 'x', jwks_uri: 'https://evil.example/jwks' })).rejects.toThrow(
      'jwks_uri is not supported: register the public key in jwks',
    );
    await expect(agents.register(token, { client_name: 'x', jwks: { keys: [{ ...(await publicJwk()), d: 'secret' }] } })).rejects.toThrow('jwks key contains private key material');
    await expect(agents.register(token, { client_name: 'ok', jwks: { keys: [await publicJwk('EdDSA')] } })).resolves.toMatchObject({ client_name: 'ok' });
  });

  it('refuses a key another agent registered, and the token stays unused', async () => {
    const { agents } = await agentsFixture();
    const jwk = await publicJwk();
    await agents.register((await agents.mintInitialAccessToken('alice')).token, { client_name: 'first', jwks: { keys: [jwk] } });
    const { token } = await agents.mintInitialAccessToken('bob');
    await expect(agents.register(token, { client_name: 'second', jwks: { keys: [jwk] } })).rejects.toThrow(
      new InvalidClientMetadata('jwks key is already registered to another agent'),
    );
    await expect(agents.register(token, { client_name: 'second', jwks: { keys: [await publicJwk()] } })).resolves.toMatchObject({ client_name: 'second' });
  });

  it('disables an agent once: status, agent.disabled, and an agent revocation announced after commit', async () => {
    const { agents, repositories, announced } = await agentsFixture();
    const { client_id } = await agents.register((await agents.mintInitialAccessToken('alice')).token, { client_name: 'a', jwks: { keys: [await publicJwk()] } });
    expect(await agents.disable(client_id, 'alice')).toBe('disabled');
    expect(await agents.find(client_id)).toMatchObject({ status: 'disabled', disabled_at: new Date(Date.UTC(2026, 0, 1, 12)) });
    expect(repositories.audit.events.slice(-2).map((e) => e.type)).toEqual(['agent.disabled', 'revocation.agent']);
    expect(announced).toEqual([{ kind: 'agent', value: client_id, grantIds: [], expiresAt: new Date(Date.UTC(2026, 0, 1, 12) + 305_000) }]);
    expect(await agents.disable(client_id, 'alice')).toBe('already_disabled');
    expect(await agents.disable('agt_unknown', 'alice')).toBe('unknown');
    expect(announced).toHaveLength(1);
  });
});
