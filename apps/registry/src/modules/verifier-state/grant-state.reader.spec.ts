import { PROOF_REPLAY_WINDOW_MS, RATE_HISTORY_MS } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { InMemoryGrantStateRepository } from '../../testing/in-memory-grant-state.js';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import { deadLetterDraft } from '../audit/verifier-events.ingestor.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import { GrantStateReader } from './grant-state.reader.js';

const NOW = Date.UTC(2026, 2, 1, 12);

async function readerFixture() {
  const registry = await inMemoryRegistry(NOW);
  const { store, clock } = registry;
  const grants = store.table<string, Partial<GrantEntity>>('grants');
  grants.set('grt_1', { id: 'grt_1', agent_id: 'agt_a', owner: 'alice', status: 'approved', expires_at: new Date(NOW + 3_600_000) });
  grants.set('grt_2', { id: 'grt_2', agent_id: 'agt_b', owner: 'alice', status: 'approved', expires_at: new Date(NOW - 1) });
  grants.set('grt_3', { id: 'grt_3', agent_id: 'agt_b', owner: 'alice', status: 'revoked', expires_at: new Date(NOW + 3_600_000) });
  const reader = new GrantStateReader({ repository: new InMemoryGrantStateRepository(store), clock });
  return { ...registry, reader };
}

/** A decision of the verifier as the ingestion appends it. */
function decision(grantId: string, id: string, allowed: boolean, data: Record<string, unknown>) {
  return { id, type: allowed ? 'verification.allowed' : 'verification.denied', grant_id: grantId, txn: 'txn_1', actor: 'agt_a', data: { ...data, outcome: allowed ? 'allow' : 'budget_exceeded' } };
}

describe('GrantStateReader (in memory)', () => {
  it('counts every allow and what it charged, keeps recent allows for the rate and recent proofs', async () => {
    const { reader, audit } = await readerFixture();
    await audit.append(decision('grt_1', 'vd_1', true, { at_ms: NOW - 90 * 3600_000, proof_jkt: 'k', proof_jti: 'p1', charged_minor: 2_500 }));
    await audit.append(decision('grt_1', 'vd_2', true, { at_ms: NOW - 1_000, proof_jkt: 'k', proof_jti: 'p2', charged_minor: 1_000 }));
    // From before charged_minor was recorded: its amount, in thousandths.
    await audit.append(decision('grt_1', 'vd_3', true, { at_ms: NOW - 500, proof_jkt: 'k', proof_jti: 'p3', amount: 0.25 }));
    await audit.append(decision('grt_1', 'vd_4', false, { at_ms: NOW - 200, proof_jkt: 'k', proof_jti: 'p4' }));
    await audit.append(decision('grt_2', 'vd_5', true, { at_ms: NOW - 100, proof_jkt: 'k', proof_jti: 'p5', charged_minor: 7 }));
    const snapshot = await reader.snapshot('grt_1');
    expect(snapshot).toMatchObject({ grantId: 'grt_1', uses: 3, spentMinor: 3_750, revocations: [] });
    // Its decision time, not its append time, decides whether an allow is in the rate window.
    expect(snapshot.rate).toEqual([
      { atMs: NOW - 1_000, member: `${NOW - 1_000}:k:p2` },
      { atMs: NOW - 500, member: `${NOW - 500}:k:p3` },
    ]);
    expect(snapshot.proofs.map((p) => [p.jti, p.keepUntilMs])).toEqual([
      ['p2', NOW - 1_000 + PROOF_REPLAY_WINDOW_MS],
      ['p3', NOW - 500 + PROOF_REPLAY_WINDOW_MS],
      ['p4', NOW - 200 + PROOF_REPLAY_WINDOW_MS],
    ]);
  });

  it('reads back only the decisions appended within the rate history', async () => {
    const { reader, audit, clock } = await readerFixture();
    await audit.append(decision('grt_1', 'vd_old', true, { at_ms: NOW, proof_jkt: 'k', proof_jti: 'p_old', charged_minor: 5 }));
    clock.advance(RATE_HISTORY_MS + 1);
    const snapshot = await reader.snapshot('grt_1');
    expect(snapshot).toMatchObject({ uses: 1, spentMinor: 5, rate: [], proofs: [] });
  });

  it('adds the queued decisions that are not in the chain yet, counting one in both once, and skips another grant', async () => {
    const { reader, audit } = await readerFixture();
    await audit.append(decision('grt_1', 'vd_a', true, { at_ms: NOW - 50, proof_jkt: 'k', proof_jti: 'qa', charged_minor: 100 }));
    const body = (grantId: string, jti: string, charged: number) => JSON.stringify({ type: 'verification', grant_id: grantId, data: { at_ms: NOW - 10, proof_jkt: 'k', proof_jti: jti, charged_minor: charged } });
    const snapshot = await reader.snapshot('grt_1', [
      { id: 'vd_a', body: body('grt_1', 'qa', 100), outcome: 'allow' },
      { id: 'vd_b', body: body('grt_1', 'qb', 40), outcome: 'allow' },
      { id: 'vd_c', body: body('grt_1', 'qc', 0), outcome: 'rate_limited' },
      { id: 'vd_d', body: body('grt_other', 'qd', 9), outcome: 'allow' },
      { id: 'vd_e', body: 'not json', outcome: 'allow' },
    ]);
    expect(snapshot).toMatchObject({ uses: 2, spentMinor: 140 });
    expect(snapshot.proofs.map((p) => p.jti).sort()).toEqual(['qa', 'qb', 'qc']);
    expect(snapshot.rate).toHaveLength(2);
  });

  it('counts a dead-lettered allow once, from its dead letter or its queue entry', async () => {
    const { reader, audit } = await readerFixture();
    const queued = { id: 'vd_poison', body: JSON.stringify({ type: 'verification', grant_id: 'grt_1', data: { at_ms: NOW - 5, proof_jkt: 'k', proof_jti: 'qp', charged_minor: 300 } }), outcome: 'allow' };
    await audit.append(deadLetterDraft(queued, 'the event cannot be canonicalised'));
    expect(await reader.snapshot('grt_1', [queued])).toMatchObject({ uses: 1, spentMinor: 300 });
  });

  it("names the unexpired revocations that can stop one of the grant's tokens", async () => {
    const { reader, audit, recorder, clock } = await readerFixture();
    await audit.append({ type: 'token.issued', actor: 'agt_a', grant_id: 'grt_1', txn: 'txn_1', data: { jti: 'jti_1' } });
    await audit.append({ type: 'token.delegated', actor: 'agt_c', grant_id: 'grt_1', txn: 'txn_1', data: { jti: 'jti_2', actor: 'agt_d' } });
    const revoke = (kind: 'grant' | 'txn' | 'token' | 'agent', value: string, expiresAt = NOW + 60_000) =>
      recorder.transaction((tx) => recorder.record(tx, { kind, value, by: null, reason: null, expiresAt: new Date(expiresAt) }));
    await revoke('token', 'jti_2');
    await revoke('agent', 'agt_d');
    await revoke('agent', 'agt_a', NOW);
    await revoke('txn', 'txn_other');
    clock.advance(1);
    await revoke('txn', 'txn_1');
    await revoke('grant', 'grt_2');
    expect((await reader.snapshot('grt_1')).revocations).toEqual([
      { kind: 'token', value: 'jti_2', expiresAtMs: NOW + 60_000 },
      { kind: 'agent', value: 'agt_d', expiresAtMs: NOW + 60_000 },
      { kind: 'txn', value: 'txn_1', expiresAtMs: NOW + 60_000 },
    ]);
  });

  it('tells whether a grant exists and lists the approved grants not expired', async () => {
    const { reader } = await readerFixture();
    expect(await reader.exists('grt_3')).toBe(true);
    expect(await reader.exists('grt_nope')).toBe(false);
    expect(await reader.liveGrants()).toEqual(['grt_1']);
  });
});
