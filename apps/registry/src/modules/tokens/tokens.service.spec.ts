import {
  ACTOR_TOKEN_TYP,
  JWT_TOKEN_TYPE,
  SELF_SIGNED_TOKEN_TYPE,
  SUBJECT_TOKEN_TYP,
  TOKEN_EXCHANGE_GRANT,
  TXN_TOKEN_TYPE,
  type TxnTokenClaims,
} from '@writ/core';
import { sha256Base64urlSync } from '@writ/server/node-crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { InMemoryClientAuthRepository } from '../../testing/in-memory-client-auth.js';
import { InMemoryTokensRepository } from '../../testing/in-memory-tokens.js';
import { agentJwt, agentProof, type TestAgent, testAgent } from '../../testing/test-agents.js';
import { inMemoryKeys } from '../../testing/test-keys.js';
import { ClientAuthService } from '../agents/client-auth.service.js';
import type { AuditDraft } from '../audit/audit.service.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import { verifyIssuedTxnToken } from './issued-tokens.js';
import type { TokenEndpointDeps, TokenRequest } from './token-endpoint.js';
import { TokensService } from './tokens.service.js';

const ISSUER = 'https://registry.writ.test';
const TOKEN_URL = `${ISSUER}/oauth/token`;
const NOW = Date.UTC(2026, 0, 1, 12);
const config = { issuer: ISSUER, trustDomain: 'writ.test', tokenTtlSeconds: 300 };
const clock = { now: () => NOW };
const CAPABILITY = { type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read', 'book'] };

function approvedGrant(agent: TestAgent, overrides: Partial<GrantEntity> = {}): GrantEntity {
  return {
    id: 'grt_1',
    agent_id: agent.entity.client_id,
    owner: agent.entity.owner,
    service_id: 'svc_flights',
    authorization_details: [CAPABILITY],
    envelope: { max_uses: 10 },
    purpose: 'Book my trip',
    duration_s: 3600,
    status: 'approved',
    version: 2,
    delegation: { max_depth: 2 },
    requested_at: new Date(NOW - 60_000),
    decided_at: new Date(NOW - 30_000),
    expires_at: new Date(NOW + 3_600_000),
    revoked_at: null,
    approval: 'A'.repeat(43),
    ...overrides,
  };
}

/** The token endpoint on in-memory storage, a fake audit chain and fake grants: no database. */
async function endpoint() {
  const clientAuthRepository = new InMemoryClientAuthRepository();
  const repository = new InMemoryTokensRepository({ agents: clientAuthRepository.agents, agentJwts: clientAuthRepository.agentJwts });
  const recorded: AuditDraft[] = [];
  const revoked = new Set<string>();
  const keys = await inMemoryKeys();
  const deps: TokenEndpointDeps = {
    repository,
    audit: { append: (draft) => Promise.resolve(recorded.push(draft)) },
    clientAuth: new ClientAuthService({ repository: clientAuthRepository, issuer: ISSUER }),
    grants: { get: (id) => Promise.resolve(repository.grants.get(id) ?? null), settle: (grant) => Promise.resolve(grant) },
    keys,
    clock,
    config,
    revocations: { isRevoked: (claims) => Promise.resolve(revoked.has(claims.jti)) },
  };
  const register = async (clientId: string, owner: string) => {
    const agent = await testAgent(clientId, owner);
    clientAuthRepository.agents.set(clientId, agent.entity);
    return agent;
  };
  return { tokens: new TokensService(deps), repository, recorded, revoked, keys, register };
}

/** A root token request by `agent` for `grantId`: fresh assertion, subject token and proof unless given. */
async function rootRequest(agent: TestAgent, grantId: string, given: { assertionJti?: string; subjectJti?: string; dpop?: string; params?: Record<string, string> } = {}): Promise<TokenRequest> {
  return {
    params: {
      grant_type: TOKEN_EXCHANGE_GRANT,
      requested_token_type: TXN_TOKEN_TYPE,
      subject_token_type: SELF_SIGNED_TOKEN_TYPE,
      subject_token: await agentJwt(agent, { audience: ISSUER, now: NOW, typ: SUBJECT_TOKEN_TYP, ...(given.subjectJti ? { jti: given.subjectJti } : {}) }),
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await agentJwt(agent, { audience: ISSUER, now: NOW, ...(given.assertionJti ? { jti: given.assertionJti } : {}) }),
      request_details: JSON.stringify({ grant_id: grantId }),
      ...given.params,
    },
    dpop: given.dpop ?? (await agentProof(agent, TOKEN_URL, NOW)),
    ip: '203.0.113.7',
  };
}

/** A delegation of `parent` by `holder` to `actor`. */
async function delegationRequest(holder: TestAgent, parent: string, actor: TestAgent, requestDetails?: object): Promise<TokenRequest> {
  return {
    params: {
      grant_type: TOKEN_EXCHANGE_GRANT,
      requested_token_type: TXN_TOKEN_TYPE,
      subject_token_type: TXN_TOKEN_TYPE,
      subject_token: parent,
      actor_token_type: JWT_TOKEN_TYPE,
      actor_token: await agentJwt(actor, { audience: ISSUER, now: NOW, typ: ACTOR_TOKEN_TYP }),
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await agentJwt(holder, { audience: ISSUER, now: NOW }),
      ...(requestDetails ? { request_details: JSON.stringify(requestDetails) } : {}),
    },
    dpop: await agentProof(holder, TOKEN_URL, NOW, parent),
    ip: undefined,
  };
}

describe('TokensService (in memory)', () => {
  let fx: Awaited<ReturnType<typeof endpoint>>;
  let alice: TestAgent;

  beforeEach(async () => {
    fx = await endpoint();
    alice = await fx.register('agt_alice', 'alice');
    fx.repository.grants.set('grt_1', approvedGrant(alice));
  });

  it('issues a root token for an approved grant, bound to the proof key, and records token.issued with its hash before answering', async () => {
    const answer = await fx.tokens.exchange(await rootRequest(alice, 'grt_1'));
    expect(answer).toMatchObject({ token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE, expires_in: 300 });
    const claims = await verifyIssuedTxnToken(answer.access_token, fx.keys, config, clock);
    expect(claims).toMatchObject({
      iss: ISSUER,
      aud: 'writ.test',
      iat: NOW / 1000,
      exp: NOW / 1000 + 300,
      sub: 'alice',
      scope: 'flight_booking:book flight_booking:read',
      req_wl: 'agt_alice',
      act: { sub: 'agt_alice' },
      cnf: { jkt: alice.entity.jkt },
      tctx: { grant_id: 'grt_1', service: 'svc_flights', authorization_details: [CAPABILITY], envelope: { max_uses: 10 }, purpose: 'Book my trip', approval: 'A'.repeat(43), depth: 0 },
      rctx: { req_ip: '203.0.113.7', authn: 'private_key_jwt' },
    });
    expect(claims.tctx.parent).toBeUndefined();
    expect(fx.recorded).toEqual([
      {
        type: 'token.issued',
        grant_id: 'grt_1',
        txn: claims.txn,
        actor: 'agt_alice',
        subject: 'alice',
        data: { jti: claims.jti, token_hash: sha256Base64urlSync(answer.access_token), jkt: alice.entity.jkt, exp: claims.exp, scope: claims.scope },
      },
    ]);
  });

  it('refuses a subject_token_type it has no handler for, before authenticating the client', async () => {
    const request = await rootRequest(alice, 'grt_1', { params: { subject_token_type: 'urn:example:other', client_assertion: '' } });
    await expect(fx.tokens.exchange(request)).rejects.toMatchObject({ code: 'unsupported_token_type', description: `subject_token_type must be ${SELF_SIGNED_TOKEN_TYPE}` });
  });

  it('refuses a DPoP proof whose jti was already used, even with a fresh assertion and subject token', async () => {
    const dpop = await agentProof(alice, TOKEN_URL, NOW);
    await fx.tokens.exchange(await rootRequest(alice, 'grt_1', { dpop }));
    await expect(fx.tokens.exchange(await rootRequest(alice, 'grt_1', { dpop }))).rejects.toMatchObject({ code: 'invalid_dpop_proof', description: 'DPoP proof jti was already used' });
    expect(fx.recorded).toHaveLength(1);
  });

  it('refuses a subject token whose jti is the client assertion jti: one single-use space per agent (ADR 0015)', async () => {
    const request = await rootRequest(alice, 'grt_1', { assertionJti: 'jti-twice', subjectJti: 'jti-twice' });
    await expect(fx.tokens.exchange(request)).rejects.toMatchObject({ code: 'invalid_grant', description: 'subject token jti was already used' });
  });

  it('refuses a client assertion whose jti was already used as a subject token jti', async () => {
    await fx.tokens.exchange(await rootRequest(alice, 'grt_1', { subjectJti: 'jti-once' }));
    await expect(fx.tokens.exchange(await rootRequest(alice, 'grt_1', { assertionJti: 'jti-once' }))).rejects.toMatchObject({
      code: 'invalid_client',
      description: 'client assertion jti was already used',
    });
  });

  it("answers another agent's grant as no grant at all", async () => {
    const bob = await fx.register('agt_bob', 'bob');
    await expect(fx.tokens.exchange(await rootRequest(bob, 'grt_1'))).rejects.toMatchObject({ code: 'invalid_grant', description: 'grant not found' });
  });

  it('never lets a root token outlive its grant, and mints none once the grant has ended', async () => {
    fx.repository.grants.set('grt_soon', approvedGrant(alice, { id: 'grt_soon', expires_at: new Date(NOW + 42_000) }));
    const answer = await fx.tokens.exchange(await rootRequest(alice, 'grt_soon'));
    expect(answer.expires_in).toBe(42);
    fx.repository.grants.set('grt_ended', approvedGrant(alice, { id: 'grt_ended', expires_at: new Date(NOW) }));
    await expect(fx.tokens.exchange(await rootRequest(alice, 'grt_ended'))).rejects.toMatchObject({ code: 'invalid_grant', description: 'grant is expired' });
  });

  it("delegates a narrower child bound to the actor's key, linked to its parent's audit event", async () => {
    const carol = await fx.register('agt_carol', 'alice');
    const parent = (await fx.tokens.exchange(await rootRequest(alice, 'grt_1'))).access_token;
    const parentClaims = await verifyIssuedTxnToken(parent, fx.keys, config, clock);
    fx.repository.tokenEvents.set(JSON.stringify([parentClaims.txn, parentClaims.jti]), 'evt_parent');
    const narrower = [{ ...CAPABILITY, actions: ['read'] }];

    const answer = await fx.tokens.exchange(await delegationRequest(alice, parent, carol, { authorization_details: narrower }));
    const child: TxnTokenClaims = await verifyIssuedTxnToken(answer.access_token, fx.keys, config, clock);
    expect(child).toMatchObject({
      iss: parentClaims.iss,
      aud: parentClaims.aud,
      txn: parentClaims.txn,
      sub: 'alice',
      scope: 'flight_booking:read',
      req_wl: 'agt_alice',
      act: { sub: 'agt_carol', act: { sub: 'agt_alice' } },
      cnf: { jkt: carol.entity.jkt },
      tctx: { grant_id: 'grt_1', service: 'svc_flights', authorization_details: narrower, parent: parentClaims.jti, depth: 1 },
    });
    expect(child.exp).toBeLessThanOrEqual(parentClaims.exp);
    expect(child.rctx).toEqual({ authn: 'private_key_jwt' });
    expect(fx.recorded[1]).toEqual({
      type: 'token.delegated',
      grant_id: 'grt_1',
      txn: parentClaims.txn,
      parent_id: 'evt_parent',
      actor: 'agt_alice',
      subject: 'alice',
      data: { jti: child.jti, parent_jti: parentClaims.jti, actor: 'agt_carol', token_hash: sha256Base64urlSync(answer.access_token), jkt: carol.entity.jkt, exp: child.exp, scope: 'flight_booking:read' },
    });
  });

  it('does not delegate from a revoked parent', async () => {
    const carol = await fx.register('agt_carol', 'alice');
    const parent = (await fx.tokens.exchange(await rootRequest(alice, 'grt_1'))).access_token;
    fx.revoked.add((await verifyIssuedTxnToken(parent, fx.keys, config, clock)).jti);
    await expect(fx.tokens.exchange(await delegationRequest(alice, parent, carol))).rejects.toMatchObject({ code: 'invalid_grant', description: 'subject token is revoked' });
  });

  it("does not hand a delegation to another person's agent that the grant does not name", async () => {
    const mallory = await fx.register('agt_mallory', 'mallory');
    const parent = (await fx.tokens.exchange(await rootRequest(alice, 'grt_1'))).access_token;
    await expect(fx.tokens.exchange(await delegationRequest(alice, parent, mallory))).rejects.toMatchObject({
      code: 'invalid_grant',
      description: "actor belongs to another person than the grant's owner, and the grant's delegation.allowed_agents does not name it",
    });
  });
});
