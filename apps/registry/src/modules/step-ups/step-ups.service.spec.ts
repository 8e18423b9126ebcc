import { humanError } from '@writ/contracts';
import { InvalidRequest } from '@writ/core';
import { describe, expect, it, vi } from 'vitest';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import type { AuditDraft } from '../audit/audit.service.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import type { HumansService } from '../humans/humans.service.js';
import { type StepUpEntity, stepUpStatus } from './step-up.entity.js';
import type { StepUpChange } from './step-ups.service.js';
import { StepUpsService } from './step-ups.service.js';

const T0 = Date.UTC(2026, 5, 1, 10);

/** What a verifier's `approval_required` decision event says, as ingestion hands it over. */
function asked(id: string, overrides: Partial<AuditDraft> = {}, data: Record<string, unknown> = {}): AuditDraft {
  return {
    id: `evt_${id}`,
    type: 'verification.denied',
    actor: 'agt_a',
    grant_id: 'grt_1',
    txn: 'txn_1',
    data: {
      outcome: 'approval_required',
      step_up_id: id,
      service: 'svc_pay',
      method: 'POST',
      url: 'https://pay.example/charge?to=bob',
      action: 'charge',
      resource: 'invoices/7',
      amount: 150,
      currency: 'EUR',
      bound: { query: 'to=bob', fields: { payee: 'bob' } },
      step_up_expires_at: new Date(T0 + 600_000).toISOString(),
      ...data,
    },
    ...overrides,
  };
}

/** `realTime`: the service's clock runs from T0 with real time, for the long-poll's timeouts. */
async function stepUpsFixture({ realTime = false } = {}) {
  const registry = await inMemoryRegistry(T0);
  const { store, repositories, audit, clock } = registry;
  store.table<string, Partial<GrantEntity>>('grants').set('grt_1', { id: 'grt_1', owner: 'alice', agent_id: 'agt_a' });
  await repositories.services.insert({ id: 'svc_pay', uri: 'https://pay.example/', display_name: 'Pay', catalogue: [], credential_hash: '0'.repeat(64), created_at: new Date(T0) });
  await repositories.agents.insert({ client_id: 'agt_a', client_name: 'Shopper', owner: 'alice', jwks: { keys: [] }, jkt: 'jkt_a', status: 'active', created_at: new Date(T0), disabled_at: null });
  const signed: string[] = [];
  // Only the signing step of HumansService is reached before a passkey signs: stand in for it.
  const humans = {
    beginSigning: (_kind: string, _humanId: string, documentText: string) => {
      signed.push(documentText);
      return Promise.resolve({ ceremony: 'cer_1', options: {} });
    },
  } as unknown as HumansService;
  const warnings: string[] = [];
  const started = Date.now();
  const stepUps = new StepUpsService({
    repository: repositories.stepUps,
    agents: repositories.agents,
    services: repositories.services,
    audit,
    humans,
    clock: realTime ? { now: () => T0 + (Date.now() - started) } : clock,
    config: { rp: { id: 'writ.test', name: 'Writ' }, uiOrigins: ['https://writ.test'] },
    logger: { warn: (message) => warnings.push(message) },
  });
  return { ...registry, stepUps, signed, warnings };
}

describe('StepUpsService (in memory)', () => {
  it('records the step-up an event asks for once, owned by the grant human, and tells the listeners', async () => {
    const { stepUps } = await stepUpsFixture();
    const changes: StepUpChange[] = [];
    stepUps.onChange((change) => changes.push(change));
    await stepUps.recordRequested([asked('su_1'), asked('su_1'), { type: 'verification.allowed', data: {} }]);
    expect(changes).toEqual([{ step_up_id: 'su_1', owner: 'alice', status: 'pending' }]);
    const [view] = await stepUps.listForHuman('alice', undefined);
    expect(view).toMatchObject({
      step_up_id: 'su_1',
      status: 'pending',
      agent: { client_id: 'agt_a', name: 'Shopper' },
      service: { id: 'svc_pay', uri: 'https://pay.example/', name: 'Pay' },
      amount: 150,
      bound: { query: 'to=bob', fields: { payee: 'bob' } },
      expires_at: new Date(T0 + 600_000).toISOString(),
    });
  });

  it('ignores, with a warning, an event that does not describe its step-up, and adds nothing for an unknown grant', async () => {
    const { stepUps, warnings } = await stepUpsFixture();
    await stepUps.recordRequested([
      asked('su_2', {}, { amount: -1 }),
      asked('su_3', {}, { bound: { query: 1, fields: {} } }),
      asked('su_4', { grant_id: 'grt_unknown' }),
    ]);
    expect(warnings).toEqual([
      'verification event evt_su_2 asks for a step-up it does not describe: ignored',
      'verification event evt_su_3 asks for a step-up it does not describe: ignored',
    ]);
    expect(await stepUps.listForHuman('alice', undefined)).toEqual([]);
  });

  it('lists by status as the human sees it: a pending step-up past its expiry is expired', async () => {
    const { stepUps, clock } = await stepUpsFixture();
    await stepUps.recordRequested([asked('su_old', {}, { step_up_expires_at: new Date(T0 + 1000).toISOString() }), asked('su_new')]);
    clock.advance(1000);
    expect((await stepUps.listForHuman('alice', 'pending')).map((s) => s.step_up_id)).toEqual(['su_new']);
    expect((await stepUps.listForHuman('alice', 'expired')).map((s) => s.step_up_id)).toEqual(['su_old']);
    expect(await stepUps.listForHuman('bob', undefined)).toEqual([]);
    await expect(stepUps.listForHuman('alice', 'lost')).rejects.toThrow(new InvalidRequest('status must be one of pending, approved, denied, expired'));
  });

  it("shows a step-up only to its human and to the agent that made the request", async () => {
    const { stepUps } = await stepUpsFixture();
    await stepUps.recordRequested([asked('su_1')]);
    expect(await stepUps.getForHuman('alice', 'su_1')).toMatchObject({ step_up_id: 'su_1' });
    expect(await stepUps.getForHuman('mallory', 'su_1')).toBeNull();
    const row = await stepUps.getForAgent('su_1', 'agt_a');
    expect(row && stepUps.agentView(row)).toEqual({ step_up_id: 'su_1', status: 'pending', grant_id: 'grt_1', txn: 'txn_1', amount: 150, currency: 'EUR' });
    expect(await stepUps.getForAgent('su_1', 'agt_b')).toBeNull();
    expect(await stepUps.getForAgent('x'.repeat(129), 'agt_a')).toBeNull();
    expect(await stepUps.receipt('alice', 'su_1')).toBeNull();
  });

  it('has the human sign a document naming exactly the request, the agent and the service', async () => {
    const { stepUps, signed } = await stepUpsFixture();
    await stepUps.recordRequested([asked('su_1')]);
    const { ceremony, document } = await stepUps.beginDecision('alice', 'su_1', { decision: 'approve' });
    expect(ceremony).toBe('cer_1');
    expect(signed).toEqual([document]);
    expect(JSON.parse(document)).toMatchObject({
      decision: 'approve',
      kind: 'step_up',
      step_up_id: 'su_1',
      subject: 'alice',
      agent: { client_id: 'agt_a', name: 'Shopper' },
      service: { id: 'svc_pay', uri: 'https://pay.example/' },
      method: 'POST',
      url: 'https://pay.example/charge?to=bob',
      bound: { query: 'to=bob', fields: { payee: 'bob' } },
    });
  });

  it('refuses to begin a decision on another human’s step-up, an expired one, or one whose parties are gone', async () => {
    const { stepUps, clock, store } = await stepUpsFixture();
    await stepUps.recordRequested([asked('su_1'), asked('su_gone', {}, { service: 'svc_gone' })]);
    await expect(stepUps.beginDecision('mallory', 'su_1', { decision: 'approve' })).rejects.toThrow(humanError('step_up_not_found'));
    await expect(stepUps.beginDecision('alice', 'su_gone', { decision: 'deny' })).rejects.toThrow(humanError('parties_gone', { subject: 'step-up' }));
    clock.advance(600_000);
    await expect(stepUps.beginDecision('alice', 'su_1', { decision: 'approve' })).rejects.toThrow(humanError('step_up_wrong_status', { status: 'expired' }));
    expect(store.table('step_ups').size).toBe(2);
  });

  it('answers a waiting agent at the timeout with the pending step-up, and null for an unknown or another agent’s', async () => {
    const { stepUps } = await stepUpsFixture({ realTime: true });
    await stepUps.recordRequested([asked('su_1')]);
    await expect(stepUps.waitForDecision('su_1', 'agt_a', 5)).resolves.toMatchObject({ id: 'su_1', status: 'pending' });
    await expect(stepUps.waitForDecision('su_1', 'agt_b', 5)).resolves.toBeNull();
    await expect(stepUps.waitForDecision('su_none', 'agt_a', 5)).resolves.toBeNull();
  });

  it('wakes an agent waiting for a step-up not recorded yet when its event is ingested, and ends the wait at its expiry', async () => {
    // Timers and the clock are the test's: the wait (a minute) would outlast the step-up (a second)
    // only if recording it did not wake the waiter to read its expiry.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const { stepUps } = await stepUpsFixture({ realTime: true });
      let answer: StepUpEntity | null | undefined;
      const waiting = stepUps.waitForDecision('su_late', 'agt_a', 60_000).then((row) => (answer = row));
      await stepUps.recordRequested([asked('su_late', {}, { step_up_expires_at: new Date(T0 + 1_000).toISOString() })]);
      await vi.advanceTimersByTimeAsync(1_500);
      expect(answer).toMatchObject({ id: 'su_late' });
      expect(stepUpStatus(answer!, T0 + 1_500)).toBe('expired');
      await waiting;
    } finally {
      vi.useRealTimers();
    }
  });
});
