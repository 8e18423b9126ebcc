import { type AuditEvent, linkAuditEvent } from '@writ/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { databaseTransactions, type TransactionRunner } from '../src/infra/transaction.js';
import { type AuditCheckpoint, type AuditRepository, TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import type { AgentEntity } from '../src/modules/agents/agent.entity.js';
import { type AgentsRepository, DuplicateAgentKey, TypeOrmAgentsRepository } from '../src/modules/agents/agents.repository.js';
import type { GrantEntity } from '../src/modules/grants/grant.entity.js';
import { type GrantsRepository, TypeOrmGrantsRepository } from '../src/modules/grants/grants.repository.js';
import { type RevocationsRepository, TypeOrmRevocationsRepository } from '../src/modules/revocations/revocations.repository.js';
import type { HumanEntity, PasskeyEntity } from '../src/modules/humans/human.entities.js';
import { DatabaseHumanViewsRepository, type HumanViewsRepository } from '../src/modules/humans/human-views.repository.js';
import { type HumansRepository, TypeOrmHumansRepository } from '../src/modules/humans/humans.repository.js';
import type { ServiceEntity } from '../src/modules/services/service.entity.js';
import { type RequestedStepUp, type StepUpsRepository, TypeOrmStepUpsRepository } from '../src/modules/step-ups/step-ups.repository.js';
import { type ServicesRepository, TypeOrmServicesRepository } from '../src/modules/services/services.repository.js';
import { DatabaseGrantStateRepository, type GrantStateRepository } from '../src/modules/verifier-state/grant-state.repository.js';
import { InMemoryAgentsRepository } from '../src/testing/in-memory-agents.js';
import { InMemoryAuditRepository } from '../src/testing/in-memory-audit.js';
import { InMemoryGrantsRepository } from '../src/testing/in-memory-grants.js';
import { InMemoryRevocationsRepository } from '../src/testing/in-memory-revocations.js';
import { InMemoryServicesRepository } from '../src/testing/in-memory-services.js';
import { InMemoryStepUpsRepository } from '../src/testing/in-memory-step-ups.js';
import { InMemoryGrantStateRepository } from '../src/testing/in-memory-grant-state.js';
import { InMemoryHumanViewsRepository } from '../src/testing/in-memory-human-views.js';
import { InMemoryHumansRepository } from '../src/testing/in-memory-humans.js';
import { InMemoryStore } from '../src/testing/in-memory-store.js';
import { storages } from './support/databases.js';

/** Every repository of the registry on one storage, with the transactions they join. */
interface Repositories {
  transaction: TransactionRunner;
  audit: AuditRepository;
  services: ServicesRepository;
  agents: AgentsRepository;
  revocations: RevocationsRepository;
  grants: GrantsRepository;
  stepUps: StepUpsRepository;
  grantState: GrantStateRepository;
  humans: HumansRepository;
  humanViews: HumanViewsRepository;
}

function inMemoryRepositories(store: InMemoryStore): Repositories {
  return {
    transaction: store.transaction,
    audit: new InMemoryAuditRepository(store),
    services: new InMemoryServicesRepository(store),
    agents: new InMemoryAgentsRepository(store),
    revocations: new InMemoryRevocationsRepository(store),
    grants: new InMemoryGrantsRepository(store),
    stepUps: new InMemoryStepUpsRepository(store),
    grantState: new InMemoryGrantStateRepository(store),
    humans: new InMemoryHumansRepository(store),
    humanViews: new InMemoryHumanViewsRepository(store),
  };
}

function databaseRepositories(db: Database): Repositories {
  return {
    transaction: databaseTransactions(db),
    audit: new TypeOrmAuditRepository(db),
    services: new TypeOrmServicesRepository(db),
    agents: new TypeOrmAgentsRepository(db),
    revocations: new TypeOrmRevocationsRepository(db),
    grants: new TypeOrmGrantsRepository(db),
    stepUps: new TypeOrmStepUpsRepository(db),
    grantState: new DatabaseGrantStateRepository(db),
    humans: new TypeOrmHumansRepository(db),
    humanViews: new DatabaseHumanViewsRepository(db),
  };
}

/**
 * One contract per repository, run on the database storages (PGlite, and PostgreSQL when
 * DATABASE_URL is set) and on the in-memory twins the services' unit tests use, so that a unit
 * test's storage behaves as the real one does.
 */
const backends: { name: string; open: () => Promise<{ repositories: Repositories; close: () => Promise<void> }> }[] = [
  {
    name: 'in memory',
    open: () => Promise.resolve({ repositories: inMemoryRepositories(new InMemoryStore()), close: () => Promise.resolve() }),
  },
  ...storages.map(({ name, create }) => ({
    name,
    open: async () => {
      const testDb = await create();
      const db = new Database(await openDatabase(testDb.target), 'pgliteDir' in testDb.target);
      return {
        repositories: databaseRepositories(db),
        close: async () => {
          await db.close();
          await testDb.drop();
        },
      };
    },
  })),
];

type EventFields = Partial<Pick<AuditEvent, 'id' | 'type' | 'actor' | 'subject' | 'grant_id' | 'txn' | 'data'>>;

/** Events linked after `head` (a type, or the fields that differ from the defaults), with the JSON array text they were hashed as. */
async function linked(head: Pick<AuditEvent, 'seq' | 'hash'> | null, drafts: (string | EventFields)[]): Promise<{ events: AuditEvent[]; eventTexts: string[] }> {
  const events: AuditEvent[] = [];
  const texts: string[] = [];
  let previous = head;
  for (const draft of drafts) {
    const fields = typeof draft === 'string' ? { type: draft } : draft;
    const type = fields.type ?? 'test.event';
    const { event, json } = await linkAuditEvent(previous, {
      id: `evt_${type}`,
      at: '2026-01-01T00:00:00.000Z',
      type,
      actor: 'agent:a',
      subject: null,
      grant_id: 'g_1',
      txn: null,
      parent_id: null,
      data: { type },
      ...fields,
    });
    events.push(event);
    texts.push(json);
    previous = event;
  }
  return { events, eventTexts: texts };
}

function checkpointOf(event: Pick<AuditEvent, 'seq' | 'hash'>): AuditCheckpoint {
  return { seq: event.seq, hash: event.hash, at: '2026-01-01T00:00:00.000Z', kid: 'k1', jws: `jws-${event.seq}` };
}

describe.each(backends)('repositories on $name', ({ open }) => {
  let repositories: Repositories;
  let close: () => Promise<void>;
  beforeAll(async () => ({ repositories, close } = await open()));
  afterAll(() => close());

  describe('AuditRepository', () => {
    it('extends an empty chain from a null head, then from the last event written', async () => {
      const { audit } = repositories;
      const heads: unknown[] = [];
      const first = await audit.extend([], async (head) => {
        heads.push(head);
        return { ...(await linked(head, ['a1', 'a2'])), checkpoints: [], result: 'first' };
      });
      expect(first).toBe('first');
      await audit.extend([], async (head) => {
        heads.push(head);
        const next = await linked(head, ['a3']);
        return { ...next, checkpoints: [checkpointOf(next.events[0]!)], result: undefined };
      });
      const events = await audit.eventsAfter(0, 10);
      expect(heads).toEqual([null, { seq: 2, hash: events[1]!.hash }]);
      expect(events.map((e) => [e.seq, e.type, e.prev_hash === events[e.seq - 2]?.hash || e.seq === 1])).toEqual([[1, 'a1', true], [2, 'a2', true], [3, 'a3', true]]);
      expect(events[0]).toEqual((await linked(null, ['a1'])).events[0]);
      expect(await audit.checkpoints()).toEqual([checkpointOf(events[2]!)]);
    });

    it('never appends an id already in the chain: what is written was linked knowing the events with the ids asked for', async () => {
      const { audit } = repositories;
      // A linker that appends what it does not know: the event of id evt_a2 again, unless told of it.
      // A repository may first link without looking ids up and let the store refuse a known one.
      const known = await audit.extend(['evt_a2', 'evt_none'], async (head, found) => ({
        ...(await linked(head, found.has('evt_a2') ? [] : ['a2'])),
        checkpoints: [],
        result: found,
      }));
      expect([...known.keys()]).toEqual(['evt_a2']);
      expect(known.get('evt_a2')).toMatchObject({ seq: 2, type: 'a2' });
      expect((await audit.eventsAfter(0, 10)).map((e) => e.id)).toEqual(['evt_a1', 'evt_a2', 'evt_a3']);
    });

    it("writes with the caller's transaction, and nothing when it rolls back", async () => {
      const { audit, transaction } = repositories;
      await expect(
        transaction(async (tx) => {
          await audit.extend([], async (head) => ({ ...(await linked(head, ['rolled-back'])), checkpoints: [], result: undefined }), tx);
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      expect((await audit.eventsAfter(0, 10)).map((e) => e.type)).toEqual(['a1', 'a2', 'a3']);
      await transaction((tx) => audit.extend([], async (head) => ({ ...(await linked(head, ['a4'])), checkpoints: [], result: undefined }), tx));
      expect((await audit.eventsAfter(2, 1)).map((e) => e.type)).toEqual(['a3']);
      expect((await audit.eventsAfter(3, 10)).map((e) => e.type)).toEqual(['a4']);
    });

    it('signs a checkpoint of the head only when it has none', async () => {
      const { audit } = repositories;
      const signed: number[] = [];
      const sign = (head: Pick<AuditEvent, 'seq' | 'hash'>) => {
        signed.push(head.seq);
        return Promise.resolve(checkpointOf(head));
      };
      const [head] = await audit.eventsAfter(3, 1);
      expect(await audit.checkpointHead(sign)).toEqual(checkpointOf(head!));
      expect(await audit.checkpointHead(sign)).toMatchObject({ seq: 4, jws: 'jws-4' });
      expect(signed).toEqual([4]);
      expect((await audit.checkpoints()).map((c) => c.seq)).toEqual([3, 4]);
    });
  });

  describe('ServicesRepository', () => {
    const service = (id: string, uri: string): ServiceEntity => ({
      id,
      uri,
      display_name: `Service ${id}`,
      catalogue: [{ type: 'payment', actions: ['charge', 'refund'] }],
      credential_hash: 'ab'.repeat(32),
      created_at: new Date('2026-01-01T00:00:00.000Z'),
    });

    it('stores a service and finds it by id, by URI and among ids', async () => {
      const { services, transaction } = repositories;
      await transaction(async (tx) => {
        await services.lockRegistrations(tx);
        await services.insert(service('svc_a', 'https://a.example'), tx);
      });
      await services.insert(service('svc_b', 'https://b.example'));
      expect(await services.findById('svc_a')).toEqual(service('svc_a', 'https://a.example'));
      expect(await services.findByUri('https://b.example')).toEqual(service('svc_b', 'https://b.example'));
      expect(await services.findById('svc_none')).toBeNull();
      expect(await services.findByUri('https://none.example')).toBeNull();
      expect((await services.findByIds(['svc_b', 'svc_none', 'svc_a'])).map((s) => s.id).sort()).toEqual(['svc_a', 'svc_b']);
      expect(await services.findByIds([])).toEqual([]);
      expect((await services.registeredUris()).sort((x, y) => x.id.localeCompare(y.id))).toEqual([
        { id: 'svc_a', uri: 'https://a.example' },
        { id: 'svc_b', uri: 'https://b.example' },
      ]);
    });

    it('refuses a second service at the same URI, and keeps nothing of a rolled-back registration', async () => {
      const { services, transaction } = repositories;
      await expect(services.insert(service('svc_c', 'https://a.example'))).rejects.toThrow();
      await expect(
        transaction(async (tx) => {
          await services.insert(service('svc_d', 'https://d.example'), tx);
          expect((await services.registeredUris(tx)).map((s) => s.id)).toContain('svc_d');
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      expect(await services.findById('svc_d')).toBeNull();
      expect(await services.findById('svc_c')).toBeNull();
    });
  });

  describe('AgentsRepository', () => {
    const agent = (clientId: string, jkt: string, createdAt: number): AgentEntity => ({
      client_id: clientId,
      client_name: `Agent ${clientId}`,
      owner: 'alice',
      jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: jkt, alg: 'ES256', use: 'sig' }] },
      jkt,
      status: 'active',
      created_at: new Date(createdAt),
      disabled_at: null,
    });
    const T = Date.UTC(2026, 0, 1);

    it('keeps an initial access token, locks it for a registration and marks it used', async () => {
      const { agents, transaction } = repositories;
      await agents.insertInitialAccessToken({ token_hash: 'h1', owner: 'alice', expires_at: new Date(T + 600_000), used_at: null });
      await transaction(async (tx) => {
        expect(await agents.lockInitialAccessToken('h1', tx)).toEqual({ token_hash: 'h1', owner: 'alice', expires_at: new Date(T + 600_000), used_at: null });
        expect(await agents.lockInitialAccessToken('unknown', tx)).toBeNull();
        await agents.markInitialAccessTokenUsed('h1', new Date(T + 1000), tx);
      });
      expect(await transaction((tx) => agents.lockInitialAccessToken('h1', tx))).toMatchObject({ used_at: new Date(T + 1000) });
    });

    it('stores agents, refuses a second agent with the same key, and lists an owner\'s newest first', async () => {
      const { agents } = repositories;
      await agents.insert(agent('agt_1', 'jkt_1', T));
      await agents.insert(agent('agt_2', 'jkt_2', T + 1000));
      await expect(agents.insert(agent('agt_3', 'jkt_1', T + 2000))).rejects.toBeInstanceOf(DuplicateAgentKey);
      expect(await agents.keyRegistered('jkt_1')).toBe(true);
      expect(await agents.keyRegistered('jkt_3')).toBe(false);
      expect(await agents.find('agt_1')).toEqual(agent('agt_1', 'jkt_1', T));
      expect(await agents.find('agt_3')).toBeNull();
      expect((await agents.findByIds(['agt_2', 'agt_x', 'agt_1'])).map((a) => a.client_id).sort()).toEqual(['agt_1', 'agt_2']);
      expect(await agents.findByIds([])).toEqual([]);
      expect((await agents.listByOwner('alice')).map((a) => a.client_id)).toEqual(['agt_2', 'agt_1']);
      expect((await agents.listByOwner('alice', 1)).map((a) => a.client_id)).toEqual(['agt_2']);
      expect(await agents.listByOwner('bob')).toEqual([]);
    });

    it('disables an agent it holds locked', async () => {
      const { agents, transaction } = repositories;
      await transaction(async (tx) => {
        expect(await agents.lock('agt_1', tx)).toMatchObject({ status: 'active' });
        await agents.markDisabled('agt_1', new Date(T + 5000), tx);
      });
      expect(await agents.find('agt_1')).toMatchObject({ status: 'disabled', disabled_at: new Date(T + 5000) });
      expect(await transaction((tx) => agents.lock('agt_none', tx))).toBeNull();
    });
  });

  describe('RevocationsRepository', () => {
    const T = Date.UTC(2026, 0, 1);
    const TOKEN_EVENTS = ['token.issued', 'token.delegated'];

    it('writes a revocation once; a second keeps the later expiry', async () => {
      const { revocations, transaction } = repositories;
      const first = { kind: 'txn' as const, value: 'txn_r', revokedAt: new Date(T), expiresAt: new Date(T + 60_000), reason: 'lost' };
      expect(await transaction((tx) => revocations.upsert(first, tx))).toEqual(new Date(T + 60_000));
      expect(await revocations.upsert({ ...first, expiresAt: new Date(T + 1000) })).toEqual(new Date(T + 60_000));
      expect(await revocations.upsert({ ...first, expiresAt: new Date(T + 120_000) })).toEqual(new Date(T + 120_000));
      await revocations.upsert({ kind: 'token', value: 'jti_old', revokedAt: new Date(T - 1000), expiresAt: new Date(T + 10), reason: null });
      expect(await revocations.unexpired(new Date(T + 100))).toEqual([{ kind: 'txn', value: 'txn_r', expiresAt: new Date(T + 120_000) }]);
      expect((await revocations.unexpired(new Date(T))).map((r) => r.value)).toEqual(['jti_old', 'txn_r']);
      expect(await revocations.anyRevoked([['token', 'jti_x'], ['txn', 'txn_r']])).toBe(true);
      expect(await revocations.anyRevoked([['token', 'txn_r'], ['agent', 'agt_x']])).toBe(false);
    });

    it('finds the grants of a transaction, a token and an agent from the token events', async () => {
      const { audit, revocations } = repositories;
      const nowS = T / 1000;
      await audit.extend([], async (head) => ({
        ...(await linked(head, [
          { id: 'evt_r1', type: 'token.issued', actor: 'agt_r', grant_id: 'g_r1', txn: 'txn_r1', data: { jti: 'jti_r1', exp: nowS + 60 } },
          { id: 'evt_r2', type: 'token.delegated', actor: 'agt_s', grant_id: 'g_r1', txn: 'txn_r1', data: { jti: 'jti_r2', actor: 'agt_r', exp: nowS + 60 } },
          { id: 'evt_r3', type: 'token.issued', actor: 'agt_r', grant_id: 'g_r2', txn: 'txn_r2', data: { jti: 'jti_r3', exp: nowS - 10 } },
          { id: 'evt_r4', type: 'grant.approved', actor: 'alice', grant_id: 'g_r3', txn: 'txn_r1', data: { jti: 'jti_r1' } },
        ])),
        checkpoints: [],
        result: undefined,
      }));
      expect(await revocations.grantsOfTxn('txn_r1', TOKEN_EVENTS)).toEqual(['g_r1']);
      expect(await revocations.grantsOfToken('jti_r1', TOKEN_EVENTS)).toEqual(['g_r1']);
      expect(await revocations.grantsOfToken('jti_none', TOKEN_EVENTS)).toEqual([]);
      expect(await revocations.grantsOfAgent('agt_r', TOKEN_EVENTS, nowS, 5)).toEqual(['g_r1']);
      expect((await revocations.grantsOfAgent('agt_r', TOKEN_EVENTS, nowS - 12, 5)).sort()).toEqual(['g_r1', 'g_r2']);
      expect(await revocations.grantsOfAgent('agt_s', TOKEN_EVENTS, nowS, 5)).toEqual(['g_r1']);
    });
  });

  describe('GrantsRepository', () => {
    const T = Date.UTC(2026, 0, 1);
    const grant = (id: string, agentId: string, status: GrantEntity['status'], expiresAt: number): GrantEntity => ({
      id,
      agent_id: agentId,
      owner: 'alice',
      service_id: 'svc_a',
      authorization_details: [{ type: 'payment', locations: ['https://a.example/pay'], actions: ['charge'] }],
      envelope: { rate: { limit: 10, window_s: 60 } },
      purpose: 'Pay the rent',
      duration_s: 3600,
      status,
      version: 1,
      delegation: { max_depth: 1, allowed_agents: ['agt_other'] },
      requested_at: new Date(T),
      decided_at: null,
      expires_at: new Date(expiresAt),
      revoked_at: null,
      approval: null,
    });

    it('stores a grant and reads it back whole, plainly or locked', async () => {
      const { grants, transaction } = repositories;
      await transaction(async (tx) => {
        await grants.lockAgentRequests('agt_g', tx);
        await grants.insert(grant('grt_1', 'agt_g', 'pending', T + 60_000), tx);
      });
      expect(await grants.find('grt_1')).toEqual(grant('grt_1', 'agt_g', 'pending', T + 60_000));
      expect(await transaction((tx) => grants.lock('grt_1', tx))).toEqual(grant('grt_1', 'agt_g', 'pending', T + 60_000));
      expect(await grants.find('grt_none')).toBeNull();
      expect(await transaction((tx) => grants.lock('grt_none', tx))).toBeNull();
    });

    it("counts an agent's pending requests not yet lapsed", async () => {
      const { grants } = repositories;
      await grants.insert(grant('grt_2', 'agt_g', 'pending', T + 1000));
      await grants.insert(grant('grt_3', 'agt_g', 'approved', T + 60_000));
      await grants.insert(grant('grt_4', 'agt_h', 'pending', T + 60_000));
      expect(await grants.countPending('agt_g', new Date(T))).toBe(2);
      expect(await grants.countPending('agt_g', new Date(T + 1000))).toBe(1);
      expect(await grants.countPending('agt_none', new Date(T))).toBe(0);
    });

    it('writes a changed grant', async () => {
      const { grants, transaction } = repositories;
      await transaction(async (tx) => {
        const row = (await grants.lock('grt_3', tx))!;
        Object.assign(row, { status: 'revoked', version: 2, revoked_at: new Date(T + 5), decided_at: new Date(T + 5), approval: 'receipt' });
        await grants.update(row, tx);
      });
      expect(await grants.find('grt_3')).toMatchObject({ status: 'revoked', version: 2, revoked_at: new Date(T + 5), approval: 'receipt', delegation: { max_depth: 1 } });
    });

    it('locks the live grants due at a time, soonest first, at most a batch', async () => {
      const { grants, transaction } = repositories;
      const due = (limit: number, at: number) => transaction((tx) => grants.lockDue(['pending', 'approved'], new Date(at), limit, tx));
      expect((await due(10, T + 60_000)).map((g) => g.id)).toEqual(['grt_2', 'grt_1', 'grt_4']);
      expect((await due(1, T + 60_000)).map((g) => g.id)).toEqual(['grt_2']);
      expect(await due(10, T)).toEqual([]);
    });

    it("counts an agent's live grants among those its revocation affects", async () => {
      const { revocations } = repositories;
      expect((await revocations.grantsOfAgent('agt_g', ['token.issued'], T / 1000, 5)).sort()).toEqual(['grt_1', 'grt_2']);
      expect(await revocations.grantsOfAgent('agt_h', ['token.issued'], T / 1000, 5)).toEqual(['grt_4']);
    });
  });

  describe('StepUpsRepository', () => {
    const T = Date.UTC(2026, 0, 1);
    const requested = (id: string, minutes: number, overrides: Partial<RequestedStepUp> = {}): RequestedStepUp => ({
      id,
      grantId: 'grt_1',
      agentId: 'agt_g',
      txn: 'txn_s',
      serviceId: 'svc_a',
      method: 'POST',
      url: 'https://a.example/pay?to=bob',
      action: 'charge',
      resource: null,
      amount: 150.125,
      currency: 'EUR',
      bound: { query: 'to=bob', fields: { payee: 'bob' } },
      eventId: `evt_${id}`,
      requestedAt: new Date(T + minutes * 60_000),
      expiresAt: new Date(T + (minutes + 10) * 60_000),
      ...overrides,
    });

    it("records a requested step-up once, owned by its grant's human, and none for an unknown grant", async () => {
      const { stepUps } = repositories;
      expect(await stepUps.insertRequested(requested('su_1', 0))).toEqual({ owner: 'alice' });
      expect(await stepUps.insertRequested(requested('su_1', 1))).toBeNull();
      expect(await stepUps.insertRequested(requested('su_x', 0, { grantId: 'grt_none' }))).toBeNull();
      expect(await stepUps.find('su_x')).toBeNull();
      expect(await stepUps.find('su_1')).toEqual({
        id: 'su_1',
        grant_id: 'grt_1',
        owner: 'alice',
        agent_id: 'agt_g',
        txn: 'txn_s',
        service_id: 'svc_a',
        method: 'POST',
        url: 'https://a.example/pay?to=bob',
        action: 'charge',
        resource: null,
        amount: 150.125,
        currency: 'EUR',
        bound: { query: 'to=bob', fields: { payee: 'bob' } },
        status: 'pending',
        event_id: 'evt_su_1',
        requested_at: new Date(T),
        expires_at: new Date(T + 600_000),
        decided_at: null,
        credential_id: null,
        receipt: null,
        receipt_hash: null,
      });
    });

    it('writes a decision on a step-up it holds locked', async () => {
      const { stepUps, transaction } = repositories;
      await stepUps.insertRequested(requested('su_2', 1, { bound: null }));
      await transaction(async (tx) => {
        const row = (await stepUps.lock('su_2', tx))!;
        Object.assign(row, { status: 'denied', decided_at: new Date(T + 90_000), receipt_hash: 'hash' });
        await stepUps.update(row, tx);
      });
      expect(await stepUps.find('su_2')).toMatchObject({ status: 'denied', decided_at: new Date(T + 90_000), receipt_hash: 'hash', bound: null });
      expect(await transaction((tx) => stepUps.lock('su_none', tx))).toBeNull();
    });

    it("lists an owner's step-ups newest first, by status as the human sees it", async () => {
      const { stepUps } = repositories;
      await stepUps.insertRequested(requested('su_3', 2));
      const list = async (status: Parameters<StepUpsRepository['listForOwner']>[1], at = T + 11 * 60_000, limit = 10) =>
        (await stepUps.listForOwner('alice', status, new Date(at), limit)).map((s) => s.id);
      expect(await list(undefined)).toEqual(['su_3', 'su_2', 'su_1']);
      expect(await list(undefined, T, 2)).toEqual(['su_3', 'su_2']);
      expect(await list('pending')).toEqual(['su_3']);
      expect(await list('expired')).toEqual(['su_1']);
      expect(await list('denied')).toEqual(['su_2']);
      expect(await list('approved')).toEqual([]);
      expect(await stepUps.listForOwner('bob', undefined, new Date(T), 10)).toEqual([]);
    });
  });

  describe('GrantStateRepository', () => {
    const T = Date.UTC(2026, 0, 1);
    const DECISIONS = ['verification.allowed', 'verification.denied', 'verification.unrecordable'];
    const TOKENS = ['token.issued', 'token.delegated'];

    beforeAll(async () => {
      const { audit, grants, revocations } = repositories;
      await grants.insert({ ...(await grants.find('grt_1'))!, id: 'grt_gs', agent_id: 'agt_gs', status: 'approved', expires_at: new Date(T + 3_600_000) });
      await audit.extend([], async (head) => ({
        ...(await linked(head, [
          { id: 'gs_1', type: 'verification.allowed', grant_id: 'grt_gs', data: { outcome: 'allow', at_ms: T - 10, proof_jti: 'p1', proof_jkt: 'k', charged_minor: 2_500 } },
          { id: 'gs_2', type: 'verification.allowed', grant_id: 'grt_gs', data: { outcome: 'allow', amount: 0.25 } },
          { id: 'gs_3', type: 'verification.denied', grant_id: 'grt_gs', data: { outcome: 'rate_limited', at_ms: T - 5 } },
          { id: 'gs_4', type: 'verification.unrecordable', grant_id: 'grt_gs', data: { outcome: 'allow', queue_id: 'q_dead', charged_minor: 300 } },
          { id: 'gs_5', type: 'verification.unrecordable', grant_id: 'grt_gs', data: { outcome: 'deny', queue_id: 'q_denied' } },
          { id: 'gs_6', type: 'verification.allowed', grant_id: 'grt_other', data: { outcome: 'allow', charged_minor: 9 } },
          { id: 'gs_7', type: 'token.issued', actor: 'agt_holder', grant_id: 'grt_gs', txn: 'txn_gs', data: { jti: 'jti_gs' } },
          { id: 'gs_8', type: 'token.delegated', actor: 'agt_next', grant_id: 'grt_gs', txn: 'txn_gs', data: { jti: 'jti_gs2', actor: 'agt_hop' } },
        ])),
        checkpoints: [],
        result: undefined,
      }));
      const revoke = (kind: 'grant' | 'txn' | 'token' | 'agent', value: string, minutes: number, expiresAt = T + 3_600_000) =>
        revocations.upsert({ kind, value, revokedAt: new Date(T + minutes * 60_000), expiresAt: new Date(expiresAt), reason: null });
      await revoke('agent', 'agt_hop', 1);
      await revoke('token', 'jti_gs', 2);
      await revoke('agent', 'agt_gs', 3);
      await revoke('txn', 'txn_gs', 4, T);
      await revoke('agent', 'agt_stranger', 5);
      await revoke('grant', 'grt_gs', 6);
      await revoke('agent', 'agt_holder', 7);
    });

    it('knows the grants, and lists the approved ones not expired', async () => {
      const { grantState } = repositories;
      expect(await grantState.grantExists('grt_gs')).toBe(true);
      expect(await grantState.grantExists('grt_none')).toBe(false);
      expect(await grantState.liveGrants(new Date(T))).toEqual(['grt_gs']);
    });

    it("totals the grant's allows, an unrecordable allow included, charged or by amount", async () => {
      const { grantState } = repositories;
      expect(await grantState.allowedTotals('grt_gs')).toEqual({ uses: 3, spentMinor: 3_050 });
      expect(await grantState.allowedTotals('grt_none')).toEqual({ uses: 0, spentMinor: 0 });
    });

    it('reads the decisions appended since a time, with what the fold needs of each', async () => {
      const { grantState } = repositories;
      const decisions = await grantState.decisionsSince('grt_gs', DECISIONS, new Date('2026-01-01T00:00:00.000Z'));
      expect(decisions.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
        { id: 'gs_1', allowed: true, at: '2026-01-01T00:00:00.000Z', data: { at_ms: T - 10, proof_jti: 'p1', proof_jkt: 'k' } },
        { id: 'gs_2', allowed: true, at: '2026-01-01T00:00:00.000Z', data: { at_ms: null, proof_jti: null, proof_jkt: null } },
        { id: 'gs_3', allowed: false, at: '2026-01-01T00:00:00.000Z', data: { at_ms: T - 5, proof_jti: null, proof_jkt: null } },
        { id: 'gs_4', allowed: true, at: '2026-01-01T00:00:00.000Z', data: { at_ms: null, proof_jti: null, proof_jkt: null } },
        { id: 'gs_5', allowed: false, at: '2026-01-01T00:00:00.000Z', data: { at_ms: null, proof_jti: null, proof_jkt: null } },
      ]);
      expect(await grantState.decisionsSince('grt_gs', DECISIONS, new Date('2026-01-01T00:00:00.001Z'))).toEqual([]);
    });

    it('finds queue ids in the chain, as event ids or named by a dead letter', async () => {
      const { grantState } = repositories;
      expect([...(await grantState.idsInChain(['gs_1', 'q_dead', 'q_denied', 'q_waiting']))].sort()).toEqual(['gs_1', 'q_dead', 'q_denied']);
      expect(await grantState.idsInChain([])).toEqual(new Set());
    });

    it("names the unexpired revocations of the grant, its txns, tokens and agents, oldest first", async () => {
      const { grantState } = repositories;
      expect(await grantState.revocationsFor('grt_gs', TOKENS, new Date(T))).toEqual([
        { kind: 'agent', value: 'agt_hop', expiresAtMs: T + 3_600_000 },
        { kind: 'token', value: 'jti_gs', expiresAtMs: T + 3_600_000 },
        { kind: 'agent', value: 'agt_gs', expiresAtMs: T + 3_600_000 },
        { kind: 'grant', value: 'grt_gs', expiresAtMs: T + 3_600_000 },
        { kind: 'agent', value: 'agt_holder', expiresAtMs: T + 3_600_000 },
      ]);
    });
  });

  describe('HumansRepository', () => {
    const T = Date.UTC(2026, 0, 1);
    const human = (id: string, name: string, createdAt: number): HumanEntity => ({ id, name, webauthn_user_id: `wu_${id}`, created_at: new Date(createdAt), passkey_notice_at: new Date(createdAt) });
    const passkey = (id: string, humanId: string, createdAt: number): PasskeyEntity => ({
      id,
      human_id: humanId,
      public_key: `pk_${id}`,
      jwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' },
      counter: 0,
      transports: ['internal'],
      backed_up: false,
      label: `passkey ${id}`,
      created_at: new Date(createdAt),
      last_used_at: null,
      removed_at: null,
      added_in_session: null,
    });

    it('stores humans and their passkeys, current and removed', async () => {
      const { humans, transaction } = repositories;
      await transaction(async (tx) => {
        await humans.insertHuman(human('usr_a', 'Alice', T), tx);
        await humans.insertPasskey(passkey('cred_a1', 'usr_a', T), tx);
      });
      await humans.insertHuman(human('usr_b', 'Bob', T + 1000));
      await humans.insertPasskey(passkey('cred_a2', 'usr_a', T + 2000));
      await humans.insertPasskey(passkey('cred_b1', 'usr_b', T + 1000));
      await expect(humans.insertPasskey(passkey('cred_a1', 'usr_b', T))).rejects.toThrow();
      expect(await humans.findHuman('usr_a')).toEqual(human('usr_a', 'Alice', T));
      expect(await humans.findHuman('usr_none')).toBeNull();
      expect((await humans.listHumans(10)).map((h) => h.id)).toEqual(['usr_b', 'usr_a']);
      expect((await humans.listHumans(1)).map((h) => h.id)).toEqual(['usr_b']);
      expect(await humans.findPasskey('cred_a1')).toEqual(passkey('cred_a1', 'usr_a', T));
      await transaction(async (tx) => {
        expect((await humans.lockCurrentPasskeys('usr_a', tx)).map((p) => p.id).sort()).toEqual(['cred_a1', 'cred_a2']);
        expect(await humans.lockPasskey('cred_a2', tx)).toMatchObject({ human_id: 'usr_a' });
        await humans.updatePasskey('cred_a2', { removed_at: new Date(T + 5000), label: 'old' }, tx);
        await humans.updatePasskey('cred_a1', { counter: 7, last_used_at: new Date(T + 5000) }, tx);
      });
      expect((await humans.currentPasskeys('usr_a')).map((p) => [p.id, p.counter])).toEqual([['cred_a1', 7]]);
      expect((await humans.allPasskeys('usr_a')).map((p) => p.id).sort()).toEqual(['cred_a1', 'cred_a2']);
      expect(await humans.ownsCurrentPasskey('usr_a', 'cred_a1')).toBe(true);
      expect(await humans.ownsCurrentPasskey('usr_a', 'cred_a2')).toBe(false);
      expect(await humans.ownsCurrentPasskey('usr_b', 'cred_a1')).toBe(false);
      expect(await humans.passkeyExists('cred_a2')).toBe(true);
      expect(await humans.passkeyExists('cred_none')).toBe(false);
      await humans.setPasskeyNoticeAt('usr_a', new Date(T + 9000));
      expect((await humans.findHuman('usr_a'))?.passkey_notice_at).toEqual(new Date(T + 9000));
    });

    it('keeps sessions by token hash, read with their human, ended one or all at once', async () => {
      const { humans, transaction } = repositories;
      const session = (hash: string) => ({ token_hash: hash, human_id: 'usr_a', created_at: new Date(T), expires_at: new Date(T + 3_600_000), ended_at: null });
      await humans.insertSession(session('s1'));
      await transaction((tx) => humans.insertSession(session('s2'), tx));
      await humans.insertSession(session('s3'));
      expect(await humans.sessionOfHuman('s1')).toEqual({ human: { ...human('usr_a', 'Alice', T), passkey_notice_at: new Date(T + 9000) }, expiresAt: new Date(T + 3_600_000), endedAt: null });
      expect(await humans.sessionOfHuman('s_none')).toBeNull();
      await humans.endSession('s1', new Date(T + 10));
      await humans.endSession('s1', new Date(T + 20));
      expect((await humans.sessionOfHuman('s1'))?.endedAt).toEqual(new Date(T + 10));
      expect(await transaction((tx) => humans.endAllSessions('usr_a', new Date(T + 30), tx))).toBe(2);
      expect((await humans.sessionOfHuman('s3'))?.endedAt).toEqual(new Date(T + 30));
    });

    it('keeps single-use ceremonies: locked, spent, deleted, swept once expired', async () => {
      const { humans, transaction } = repositories;
      const ceremony = (id: string, expiresAt: number) => ({ id, kind: 'login' as const, challenge: `ch_${id}`, human_id: null, grant_id: null, document: null, data: { purpose: 'x' }, expires_at: new Date(expiresAt), used_at: null });
      await humans.insertCeremony(ceremony('cer_old', T));
      await humans.insertCeremony(ceremony('cer_new', T + 600_000));
      await humans.insertCeremony(ceremony('cer_gone', T + 600_000));
      await transaction(async (tx) => {
        expect(await humans.lockCeremony('cer_new', tx)).toEqual(ceremony('cer_new', T + 600_000));
        await humans.markCeremonyUsed('cer_new', new Date(T + 1), tx);
        await humans.deleteCeremony('cer_gone', tx);
      });
      await humans.deleteCeremoniesExpiredBefore(new Date(T + 1));
      await transaction(async (tx) => {
        expect(await humans.lockCeremony('cer_old', tx)).toBeNull();
        expect(await humans.lockCeremony('cer_gone', tx)).toBeNull();
        expect(await humans.lockCeremony('cer_new', tx)).toMatchObject({ used_at: new Date(T + 1) });
      });
    });

    it("keeps a grant's approval receipt for its human", async () => {
      const { humans, transaction } = repositories;
      const receipt = { grant_id: 'grt_1', human_id: 'usr_a', credential_id: 'cred_a2', decision: 'approve' as const, receipt: { document: '{}', credential_id: 'cred_a2', authenticator_data: 'a', client_data_json: 'c', signature: 's', user_handle: null }, hash: 'h1', created_at: new Date(T) };
      await transaction((tx) => humans.insertApprovalReceipt(receipt, tx));
      expect(await humans.findApprovalReceipt('grt_1', 'usr_a')).toEqual(receipt);
      expect(await humans.findApprovalReceipt('grt_1', 'usr_b')).toBeNull();
    });
  });

  describe('HumanViewsRepository', () => {
    const T = Date.UTC(2026, 0, 1);

    it("reads the owner's grants, newest request first, with the names they are shown by", async () => {
      const { humanViews } = repositories;
      const grants = await humanViews.grantsOfOwner('alice', undefined, 50);
      expect(grants.map((g) => g.grant.id).sort()).toEqual(['grt_1', 'grt_2', 'grt_3', 'grt_4', 'grt_gs']);
      const first = grants.find((g) => g.grant.id === 'grt_1')!;
      expect(first).toEqual({ grant: await repositories.grants.find('grt_1'), agent: null, service: { uri: 'https://a.example', name: 'Service svc_a' } });
      expect((await humanViews.grantsOfOwner('alice', 'revoked', 50)).map((g) => g.grant.id)).toEqual(['grt_3']);
      expect(await humanViews.grantsOfOwner('alice', undefined, 2)).toHaveLength(2);
      expect(await humanViews.grantsOfOwner('bob', undefined, 50)).toEqual([]);
    });

    it("names the agent of a grant, and lists the names of an owner's agents", async () => {
      const { humanViews, grants } = repositories;
      await grants.insert({ ...(await grants.find('grt_1'))!, id: 'grt_hv', agent_id: 'agt_2', requested_at: new Date(T + 1000) });
      const [newest] = await humanViews.grantsOfOwner('alice', undefined, 1);
      expect(newest).toMatchObject({ grant: { id: 'grt_hv' }, agent: { name: 'Agent agt_2', createdAt: new Date(T + 1000) } });
      expect((await humanViews.agentNamesOf('alice')).sort()).toEqual(['Agent agt_1', 'Agent agt_2']);
      expect(await humanViews.agentNamesOf('nobody')).toEqual([]);
    });

    it('names the passkey that signed a grant’s decision', async () => {
      const { humanViews } = repositories;
      expect(await humanViews.approvalSigner('grt_1')).toEqual({ id: 'cred_a2', label: 'old', removedAt: new Date(T + 5000) });
      expect(await humanViews.approvalSigner('grt_2')).toBeNull();
    });

    it('sums up and reads back the transactions whose root token names the person', async () => {
      const { humanViews, audit } = repositories;
      await audit.extend([], async (head) => ({
        ...(await linked(head, [
          { id: 'hv_1', type: 'token.issued', actor: 'agt_x', subject: 'carol', grant_id: 'grt_1', txn: 'txn_hv1', data: { jti: 'j1' } },
          { id: 'hv_2', type: 'token.delegated', actor: 'agt_x', subject: 'carol', grant_id: 'grt_1', txn: 'txn_hv1', data: { jti: 'j2', actor: 'agt_y' } },
          { id: 'hv_3', type: 'verification.allowed', actor: 'agt_y', grant_id: 'grt_1', txn: 'txn_hv1', data: { jti: 'j2' } },
          { id: 'hv_4', type: 'token.issued', actor: 'agt_x', subject: 'carol', grant_id: 'grt_2', txn: 'txn_hv2', data: { jti: 'j3' } },
          { id: 'hv_5', type: 'token.issued', actor: 'agt_z', subject: 'dave', grant_id: 'grt_3', txn: 'txn_hv3', data: { jti: 'j4' } },
        ])),
        checkpoints: [],
        result: undefined,
      }));
      const at = '2026-01-01T00:00:00.000Z';
      expect(await humanViews.transactionsOf('carol', undefined, 10)).toEqual([
        { txn: 'txn_hv2', grant_id: 'grt_2', started_at: at, hops: 1, decisions: 0 },
        { txn: 'txn_hv1', grant_id: 'grt_1', started_at: at, hops: 2, decisions: 1 },
      ]);
      expect((await humanViews.transactionsOf('carol', 'grt_1', 10)).map((t) => t.txn)).toEqual(['txn_hv1']);
      expect((await humanViews.transactionsOf('carol', undefined, 1)).map((t) => t.txn)).toEqual(['txn_hv2']);
      expect(await humanViews.rootNames('txn_hv1', 'carol')).toBe(true);
      expect(await humanViews.rootNames('txn_hv3', 'carol')).toBe(false);
      const events = await humanViews.eventsOf('txn_hv1');
      expect(events.map((e) => [e.type, e.actor, e.data.jti])).toEqual([
        ['token.issued', 'agt_x', 'j1'],
        ['token.delegated', 'agt_x', 'j2'],
        ['verification.allowed', 'agt_y', 'j2'],
      ]);
      expect(events[1]!.seq).toBe(events[0]!.seq + 1);
      expect(await humanViews.subjectAt(events[0]!.seq)).toBe('carol');
      expect(await humanViews.subjectAt(events[2]!.seq)).toBeNull();
    });
  });
});
