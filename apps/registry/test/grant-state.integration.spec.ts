import { PROOF_REPLAY_WINDOW_MS } from '@writ/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../src/infra/database.service.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { deadLetterDraft } from '../src/modules/audit/verifier-events.ingestor.js';
import { RevocationsService } from '../src/modules/revocations/revocations.service.js';
import { GrantStateReader } from '../src/modules/verifier-state/grant-state.reader.js';
import { DatabaseGrantStateRepository } from '../src/modules/verifier-state/grant-state.repository.js';
import { VerifierStateKeeper } from '../src/modules/verifier-state/verifier-state.keeper.js';
import { storages } from './support/databases.js';
import { type Agent, createTokenFixture } from './support/token-fixture.js';

/**
 * ADR 0017: what the registry rebuilds a grant's verifier state from. The audit chain's decisions
 * of the grant, plus those still queued (counted once when they are in both), and every unexpired
 * revocation that can stop one of its tokens.
 */
describe.each(storages)('a grant state rebuilt from the durable record ($name)', (storage) => {
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-grant-state-', owners: ['alice'] });
  let app: NestFastifyApplication;
  let alice: Agent;
  let reader: GrantStateReader;

  beforeAll(async () => {
    ({ app, agents: { alice } } = await fx.start());
    reader = new GrantStateReader({ repository: new DatabaseGrantStateRepository(app.get(Database)), clock: fx.clock });
  });
  afterAll(() => fx.close());

  /** A decision of the verifier as the ingestion appends it. */
  function decision(grantId: string, id: string, allowed: boolean, data: Record<string, unknown>) {
    return { id, type: allowed ? 'verification.allowed' : 'verification.denied', grant_id: grantId, txn: 'txn_1', actor: alice.clientId, subject: 'svc_1', data: { ...data, outcome: allowed ? 'allow' : 'budget_exceeded' } };
  }

  it('counts every allow and what it charged, keeps recent allows for the rate and recent proofs, and names the revocations', async () => {
    const grantId = await fx.approvedGrant(alice);
    const now = fx.clock.now();
    const audit = app.get(AuditService);
    await audit.append(decision(grantId, 'vd_1', true, { at_ms: now - 90 * 3600_000, proof_jkt: 'k', proof_jti: 'p1', charged_minor: 2_500 }));
    await audit.append(decision(grantId, 'vd_2', true, { at_ms: now - 1_000, proof_jkt: 'k', proof_jti: 'p2', charged_minor: 1_000 }));
    // From before charged_minor was recorded: its amount, in thousandths.
    await audit.append(decision(grantId, 'vd_3', true, { at_ms: now - 500, proof_jkt: 'k', proof_jti: 'p3', amount: 0.25 }));
    await audit.append(decision(grantId, 'vd_4', false, { at_ms: now - 200, proof_jkt: 'k', proof_jti: 'p4' }));
    // Another grant's decision is not this grant's.
    const other = await fx.approvedGrant(alice);
    await audit.append(decision(other, 'vd_5', true, { at_ms: now - 100, proof_jkt: 'k', proof_jti: 'p5', charged_minor: 7 }));
    await app.get(RevocationsService).revoke('grant', grantId, alice.owner);

    const snapshot = await reader.snapshot(grantId);
    expect(snapshot).toMatchObject({ grantId, uses: 3, spentMinor: 3_750 });
    // The allow of 90 hours ago is older than any rate window (and was appended just now: its
    // decision time, not its append time, decides).
    expect(snapshot.rate.map((r) => r.atMs)).toEqual([now - 1_000, now - 500]);
    expect(snapshot.proofs.map((p) => p.jti).sort()).toEqual(['p2', 'p3', 'p4']);
    expect(snapshot.proofs.find((p) => p.jti === 'p4')!.keepUntilMs).toBe(now - 200 + PROOF_REPLAY_WINDOW_MS);
    expect(snapshot.revocations).toEqual([{ kind: 'grant', value: grantId, expiresAtMs: expect.any(Number) as number }]);
  });

  it('adds the queued decisions that are not in the chain yet, and counts one in both once', async () => {
    const grantId = await fx.approvedGrant(alice);
    const now = fx.clock.now();
    await app.get(AuditService).append(decision(grantId, 'vd_a', true, { at_ms: now - 50, proof_jkt: 'k', proof_jti: 'qa', charged_minor: 100 }));
    const body = (id: string, charged: number) => JSON.stringify({ type: 'verification', actor: alice.clientId, subject: 'svc_1', grant_id: grantId, txn: 'txn_1', data: { at_ms: now - 10, proof_jkt: 'k', proof_jti: id, charged_minor: charged } });
    const pending = [
      // Acked into the chain while the queue was being read: once.
      { id: 'vd_a', body: body('qa', 100), outcome: 'allow' },
      { id: 'vd_b', body: body('qb', 40), outcome: 'allow' },
      { id: 'vd_c', body: body('qc', 0), outcome: 'rate_limited' },
      // Another grant's event in the same queue.
      { id: 'vd_d', body: body('qd', 9).replace(grantId, 'grt_other'), outcome: 'allow' },
    ];
    const snapshot = await reader.snapshot(grantId, pending);
    expect(snapshot).toMatchObject({ uses: 2, spentMinor: 140 });
    expect(snapshot.proofs.map((p) => p.jti).sort()).toEqual(['qa', 'qb', 'qc']);
    expect(snapshot.rate).toHaveLength(2);
  });

  it('counts an allow the chain could not hold (dead-lettered) once, from its dead letter or its queue entry', async () => {
    const grantId = await fx.approvedGrant(alice);
    const now = fx.clock.now();
    const queued = {
      id: 'vd_poison',
      body: JSON.stringify({ type: 'verification', grant_id: grantId, data: { at_ms: now - 5, proof_jkt: 'k', proof_jti: 'qp', charged_minor: 300, resource: 'payee:\ud800' } }),
      outcome: 'allow',
    };
    await app.get(AuditService).append(deadLetterDraft(queued, 'the event cannot be canonicalised'));
    // Before its ack, the same event is still in the queue: counted once.
    const snapshot = await reader.snapshot(grantId, [queued]);
    expect(snapshot).toMatchObject({ uses: 1, spentMinor: 300 });
    expect(snapshot.proofs.map((p) => p.jti)).toEqual(['qp']);
  });

  it('answers null for a grant that does not exist, and lists the live grants', async () => {
    const keeper = app.get(VerifierStateKeeper);
    expect(await keeper.snapshot('grt_nope', [])).toBeNull();
    const grantId = await fx.approvedGrant(alice);
    expect(await reader.liveGrants()).toContain(grantId);
  });
});
