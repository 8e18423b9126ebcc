import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { AgentEntity } from '../src/modules/agents/agent.entity.js';
import { type ClientAuthRepository, TypeOrmClientAuthRepository } from '../src/modules/agents/client-auth.repository.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import { GrantEntity } from '../src/modules/grants/grant.entity.js';
import { ServiceEntity } from '../src/modules/services/service.entity.js';
import { type TokensRepository, TypeOrmTokensRepository } from '../src/modules/tokens/tokens.repository.js';
import { InMemoryClientAuthRepository } from '../src/testing/in-memory-client-auth.js';
import { InMemoryTokensRepository } from '../src/testing/in-memory-tokens.js';
import { inMemoryKeys } from '../src/testing/test-keys.js';
import { storages } from './support/databases.js';

const NOW = Date.UTC(2026, 0, 1, 12);
const LATER = new Date(NOW + 60_000);

/** The token endpoint's and client authentication's repositories on one storage, and how to put rows in it. */
interface Backend {
  clientAuth: ClientAuthRepository;
  tokens: TokensRepository;
  addAgent(agent: AgentEntity): Promise<void>;
  addGrant(grant: GrantEntity): Promise<void>;
  /** Records the event that issued token `jti` of `txn`; answers its id. */
  addTokenEvent(txn: string, jti: string): Promise<string>;
  close(): Promise<void>;
}

function inMemoryBackend(): Backend {
  const clientAuth = new InMemoryClientAuthRepository();
  const tokens = new InMemoryTokensRepository({ agents: clientAuth.agents, agentJwts: clientAuth.agentJwts });
  let events = 0;
  return {
    clientAuth,
    tokens,
    addAgent: (agent) => Promise.resolve(void clientAuth.agents.set(agent.client_id, agent)),
    addGrant: (grant) => Promise.resolve(void tokens.grants.set(grant.id, grant)),
    addTokenEvent: (txn, jti) => {
      const id = `evt_${++events}`;
      tokens.tokenEvents.set(JSON.stringify([txn, jti]), id);
      return Promise.resolve(id);
    },
    close: () => Promise.resolve(),
  };
}

async function databaseBackend(create: (typeof storages)[number]['create']): Promise<Backend> {
  const testDb = await create();
  const db = new Database(await openDatabase(testDb.target), 'pgliteDir' in testDb.target);
  const audit = new AuditService({ repository: new TypeOrmAuditRepository(db), keys: await inMemoryKeys(), clock: { now: () => NOW }, checkpointEvery: 1000 });
  await db.dataSource.getRepository(ServiceEntity).insert({
    id: 'svc_flights',
    uri: 'https://flights.example',
    display_name: 'Flights',
    catalogue: [{ type: 'flight_booking', actions: ['read'] }],
    credential_hash: '0'.repeat(64),
    created_at: new Date(NOW),
  });
  return {
    clientAuth: new TypeOrmClientAuthRepository(db),
    tokens: new TypeOrmTokensRepository(db),
    addAgent: async (agent) => void (await db.dataSource.getRepository(AgentEntity).insert(agent)),
    addGrant: async (grant) => void (await db.dataSource.getRepository(GrantEntity).insert(grant)),
    addTokenEvent: async (txn, jti) => (await audit.append({ type: 'token.issued', txn, data: { jti } })).id,
    close: async () => {
      await db.close();
      await testDb.drop();
    },
  };
}

const backends: { name: string; open: () => Promise<Backend> }[] = [
  { name: 'in memory', open: () => Promise.resolve(inMemoryBackend()) },
  ...storages.map(({ name, create }) => ({ name, open: () => databaseBackend(create) })),
];

function agent(clientId: string): AgentEntity {
  return {
    client_id: clientId,
    client_name: `agent ${clientId}`,
    owner: 'alice',
    jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] },
    jkt: clientId.padEnd(43, 'k'),
    status: 'active',
    created_at: new Date(NOW - 3_600_000),
    disabled_at: null,
  };
}

function grant(id: string, agentId: string): GrantEntity {
  return {
    id,
    agent_id: agentId,
    owner: 'alice',
    service_id: 'svc_flights',
    authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }],
    envelope: { max_uses: 3 },
    purpose: 'Book my trip',
    duration_s: 3600,
    status: 'approved',
    version: 2,
    delegation: { max_depth: 1 },
    requested_at: new Date(NOW - 120_000),
    decided_at: new Date(NOW - 60_000),
    expires_at: new Date(NOW + 3_540_000),
    revoked_at: null,
    approval: 'A'.repeat(43),
  };
}

describe.each(backends)('client authentication and token endpoint repositories on $name', ({ open }) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await open();
    await backend.addAgent(agent('agt_a'));
    await backend.addAgent(agent('agt_b'));
    await backend.addGrant(grant('grt_a', 'agt_a'));
  });
  afterAll(() => backend.close());

  describe('ClientAuthRepository', () => {
    it('finds a registered agent as stored, and nothing for an unknown client_id', async () => {
      expect(await backend.clientAuth.findAgent('agt_a')).toEqual(agent('agt_a'));
      expect(await backend.clientAuth.findAgent('agt_nobody')).toBeUndefined();
    });

    it('records each use of an agent JWT once, answering for each whether it was fresh, and records all of them', async () => {
      const first = { clientId: 'agt_a', jti: 'jti-1', expiresAt: LATER };
      const second = { clientId: 'agt_a', jti: 'jti-2', expiresAt: LATER };
      expect(await backend.clientAuth.rememberAgentJwts([first], NOW)).toEqual([true]);
      expect(await backend.clientAuth.rememberAgentJwts([first, second], NOW)).toEqual([false, true]);
      expect(await backend.clientAuth.rememberAgentJwts([second], NOW)).toEqual([false]);
    });

    it('keeps one space per agent', async () => {
      expect(await backend.clientAuth.rememberAgentJwts([{ clientId: 'agt_a', jti: 'jti-per-agent', expiresAt: LATER }], NOW)).toEqual([true]);
      expect(await backend.clientAuth.rememberAgentJwts([{ clientId: 'agt_b', jti: 'jti-per-agent', expiresAt: LATER }], NOW)).toEqual([true]);
    });

    it('takes over a use that has expired', async () => {
      const use = { clientId: 'agt_a', jti: 'jti-expiring', expiresAt: new Date(NOW + 1000) };
      expect(await backend.clientAuth.rememberAgentJwts([use], NOW)).toEqual([true]);
      expect(await backend.clientAuth.rememberAgentJwts([{ ...use, expiresAt: new Date(NOW + 10_000) }], NOW + 1000)).toEqual([true]);
      expect(await backend.clientAuth.rememberAgentJwts([use], NOW + 5000)).toEqual([false]);
    });
  });

  describe('TokensRepository', () => {
    it('reads an agent and a grant together, with the grant as stored', async () => {
      const { agent: found, grant: named } = await backend.tokens.findAgentAndGrant('agt_a', 'grt_a');
      expect(found).toEqual(agent('agt_a'));
      expect(named).toEqual(grant('grt_a', 'agt_a'));
      expect(named?.expires_at).toBeInstanceOf(Date);
    });

    it('answers no agent and no grant for names nobody registered', async () => {
      expect(await backend.tokens.findAgentAndGrant('agt_nobody', 'grt_none')).toEqual({ agent: undefined, grant: null });
      expect(await backend.tokens.findAgentAndGrant('agt_b', 'grt_none')).toEqual({ agent: agent('agt_b'), grant: null });
    });

    it("records a root request's three identifiers, the assertion and subject token in the agent's space that client authentication reads", async () => {
      const uses = {
        assertion: { clientId: 'agt_a', jti: 'root-assertion', expiresAt: LATER },
        proof: { jkt: 'p'.repeat(43), jti: 'root-proof', expiresAt: LATER },
        subject: { clientId: 'agt_a', jti: 'root-subject', expiresAt: LATER },
      };
      expect(await backend.tokens.rememberRootRequest(uses, NOW)).toEqual({ assertion: true, proof: true, subject: true });
      expect(await backend.tokens.rememberRootRequest(uses, NOW)).toEqual({ assertion: false, proof: false, subject: false });
      expect(await backend.clientAuth.rememberAgentJwts([uses.assertion, uses.subject], NOW)).toEqual([false, false]);
      expect(await backend.tokens.rememberProof(uses.proof, NOW)).toBe(false);
    });

    it('records every identifier of a root request even when one of them is a replay', async () => {
      const assertion = { clientId: 'agt_a', jti: 'replayed-assertion', expiresAt: LATER };
      await backend.clientAuth.rememberAgentJwts([assertion], NOW);
      const uses = { assertion, proof: { jkt: 'p'.repeat(43), jti: 'fresh-proof', expiresAt: LATER }, subject: { clientId: 'agt_a', jti: 'fresh-subject', expiresAt: LATER } };
      expect(await backend.tokens.rememberRootRequest(uses, NOW)).toEqual({ assertion: false, proof: true, subject: true });
      expect(await backend.tokens.rememberProof(uses.proof, NOW)).toBe(false);
      expect(await backend.clientAuth.rememberAgentJwts([uses.subject], NOW)).toEqual([false]);
    });

    it('keeps DPoP proof jtis per key, apart from agent JWTs', async () => {
      expect(await backend.tokens.rememberProof({ jkt: 'p'.repeat(43), jti: 'shared-jti', expiresAt: LATER }, NOW)).toBe(true);
      expect(await backend.tokens.rememberProof({ jkt: 'q'.repeat(43), jti: 'shared-jti', expiresAt: LATER }, NOW)).toBe(true);
      expect(await backend.clientAuth.rememberAgentJwts([{ clientId: 'agt_a', jti: 'shared-jti', expiresAt: LATER }], NOW)).toEqual([true]);
      expect(await backend.tokens.rememberProof({ jkt: 'p'.repeat(43), jti: 'shared-jti', expiresAt: LATER }, NOW)).toBe(false);
    });

    it('finds the event that issued a token by its transaction and jti', async () => {
      const id = await backend.addTokenEvent('txn_1', 'trt_1');
      expect(await backend.tokens.tokenEventId('txn_1', 'trt_1')).toBe(id);
      expect(await backend.tokens.tokenEventId('txn_1', 'trt_other')).toBeNull();
      expect(await backend.tokens.tokenEventId('txn_other', 'trt_1')).toBeNull();
    });
  });
});
