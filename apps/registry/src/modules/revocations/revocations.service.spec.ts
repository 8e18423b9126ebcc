import { TXN_TOKEN_TYPE } from '@writ/core';
import { beforeEach, describe, expect, it } from 'vitest';
import { InMemoryClientAuthRepository } from '../../testing/in-memory-client-auth.js';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import { agentJwt, type TestAgent, testAgent } from '../../testing/test-agents.js';
import { inMemoryKeys } from '../../testing/test-keys.js';
import { ClientAuthService, JWT_BEARER_ASSERTION_TYPE } from '../agents/client-auth.service.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import { verifyIssuedTxnToken } from '../tokens/issued-tokens.js';
import { mintTxnToken } from '../tokens/mint-txn-token.js';
import { RevocationsService } from './revocations.service.js';

const ISSUER = 'https://registry.writ.test';
const config = { issuer: ISSUER, trustDomain: 'writ.test' };

describe('RevocationsService (in memory)', () => {
  let registry: Awaited<ReturnType<typeof inMemoryRegistry>>;
  let keys: Awaited<ReturnType<typeof inMemoryKeys>>;
  let grants: Map<string, Pick<GrantEntity, 'status'>>;
  let revocations: RevocationsService;
  let alice: TestAgent;
  let carol: TestAgent;
  let mallory: TestAgent;

  /** A Txn-Token held by `holder` (delegated to it by `from` when given), on grant `grt_1`. */
  async function token(holder: TestAgent, from?: TestAgent): Promise<{ token: string; jti: string; exp: number }> {
    const act = from ? { sub: holder.entity.client_id, act: { sub: from.entity.client_id } } : { sub: holder.entity.client_id };
    const minted = await mintTxnToken(
      {
        iss: ISSUER,
        aud: 'writ.test',
        txn: 'txn_1',
        sub: 'alice',
        requester: (from ?? holder).entity.client_id,
        act,
        jkt: holder.entity.jkt,
        tctx: {
          grant_id: 'grt_1',
          service: 'svc_flights',
          authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }],
          envelope: { max_uses: 3 },
          purpose: 'Book my trip',
          approval: 'A'.repeat(43),
          ...(from ? { parent: 'trt_parent' } : {}),
          depth: from ? 1 : 0,
        },
        notAfter: [],
        expired: 'grant is expired',
      },
      { keys, tokenTtlSeconds: 300, now: registry.clock.now(), ip: undefined },
    );
    return { token: minted.token, jti: minted.claims.jti, exp: minted.claims.exp };
  }

  /** The form of an introspection or revocation request by `caller` about `subject`. */
  async function form(caller: TestAgent, subject: string): Promise<Record<string, string>> {
    return {
      token: subject,
      client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
      client_assertion: await agentJwt(caller, { audience: ISSUER, now: registry.clock.now() }),
    };
  }

  beforeEach(async () => {
    registry = await inMemoryRegistry();
    keys = await inMemoryKeys();
    const clientAuthRepository = new InMemoryClientAuthRepository();
    [alice, carol, mallory] = await Promise.all([testAgent('agt_alice', 'alice'), testAgent('agt_carol', 'alice'), testAgent('agt_mallory', 'mallory')]);
    for (const agent of [alice, carol, mallory]) clientAuthRepository.agents.set(agent.entity.client_id, agent.entity);
    grants = new Map([['grt_1', { status: 'approved' }]]);
    revocations = new RevocationsService({
      repository: registry.repositories.revocations,
      clientAuth: new ClientAuthService({ repository: clientAuthRepository, issuer: ISSUER }),
      grants: {
        get: (id) => Promise.resolve((grants.get(id) as GrantEntity | undefined) ?? null),
        revokeRecorded: () => Promise.reject(new Error('not called by these tests')),
      },
      keys,
      recorder: registry.recorder,
      clock: registry.clock,
      config,
    });
  });

  it("answers the holder's introspection with the token's claims (RFC 7662 §2.2)", async () => {
    const { token: held, jti, exp } = await token(alice);
    expect(await revocations.introspect(await form(alice, held))).toEqual({
      active: true,
      iss: ISSUER,
      sub: 'alice',
      aud: 'writ.test',
      exp,
      iat: registry.clock.now() / 1000,
      jti,
      txn: 'txn_1',
      scope: 'flight_booking:read',
      client_id: 'agt_alice',
      cnf: { jkt: alice.entity.jkt },
      act: { sub: 'agt_alice' },
      token_type: TXN_TOKEN_TYPE,
      grant_id: 'grt_1',
    });
  });

  it('answers an agent the token came through, and no one else (RFC 7662 §4)', async () => {
    const { token: child } = await token(carol, alice);
    expect(await revocations.introspect(await form(alice, child))).toMatchObject({ active: true, act: { sub: 'agt_carol', act: { sub: 'agt_alice' } } });
    expect(await revocations.introspect(await form(mallory, child))).toEqual({ active: false });
  });

  it('answers inactive for no token, a token it did not issue, and a grant no longer approved', async () => {
    expect(await revocations.introspect(await form(alice, ''))).toEqual({ active: false });
    expect(await revocations.introspect(await form(alice, 'not.a.token'))).toEqual({ active: false });
    const { token: held } = await token(alice);
    grants.set('grt_1', { status: 'revoked' });
    expect(await revocations.introspect(await form(alice, held))).toEqual({ active: false });
  });

  it('authenticates the client before it looks at the token', async () => {
    const params = { ...(await form(alice, 'not.a.token')), client_assertion: await agentJwt(alice, { audience: 'https://elsewhere.example', now: registry.clock.now() }) };
    await expect(revocations.introspect(params)).rejects.toMatchObject({ code: 'invalid_client', description: 'client assertion audience is not this issuer' });
    await expect(revocations.revokeToken(params)).rejects.toMatchObject({ code: 'invalid_client' });
  });

  it('revokes a token its holder sends (RFC 7009 §2.1) until it would have expired, announces it, and introspection then answers inactive', async () => {
    const { token: held, jti, exp } = await token(alice);
    await revocations.revokeToken(await form(alice, held));
    expect(registry.repositories.revocations.rows.get(`token:${jti}`)).toMatchObject({ kind: 'token', value: jti, reason: 'revoked by client', expiresAt: new Date((exp + 5) * 1000) });
    expect(registry.announced).toEqual([expect.objectContaining({ kind: 'token', value: jti })]);
    expect(await revocations.introspect(await form(alice, held))).toEqual({ active: false });
  });

  it("ignores, silently (RFC 7009 §2.2), a revocation of someone else's token or of no token", async () => {
    const { token: held } = await token(alice);
    await revocations.revokeToken(await form(mallory, held));
    await revocations.revokeToken(await form(mallory, 'not.a.token'));
    expect(registry.repositories.revocations.rows.size).toBe(0);
    expect(await revocations.introspect(await form(alice, held))).toMatchObject({ active: true });
  });

  it('finds a token revoked through any agent in its chain, and introspection then answers inactive', async () => {
    const { token: child } = await token(carol, alice);
    const claims = await verifyIssuedTxnToken(child, keys, config, registry.clock);
    expect(await revocations.isRevoked(claims)).toBe(false);
    await revocations.revoke('agent', 'agt_alice', 'alice');
    expect(await revocations.isRevoked(claims)).toBe(true);
    expect(await revocations.introspect(await form(carol, child))).toEqual({ active: false });
  });
});
