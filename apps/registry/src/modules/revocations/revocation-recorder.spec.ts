import { describe, expect, it } from 'vitest';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import type { GrantEntity } from '../grants/grant.entity.js';

const NOW = Date.UTC(2026, 0, 1, 12);
const nowS = NOW / 1000;

/** A registry in memory with two token trees in the chain and one live grant of agent agt_a. */
async function recorderFixture() {
  const registry = await inMemoryRegistry(NOW);
  const { audit, store } = registry;
  await audit.append({ type: 'token.issued', actor: 'agt_a', grant_id: 'g_1', txn: 'txn_1', data: { jti: 'jti_1', exp: nowS + 60 } });
  await audit.append({ type: 'token.delegated', actor: 'agt_b', grant_id: 'g_1', txn: 'txn_1', data: { jti: 'jti_2', actor: 'agt_a', exp: nowS + 60 } });
  await audit.append({ type: 'token.issued', actor: 'agt_a', grant_id: 'g_2', txn: 'txn_2', data: { jti: 'jti_3', exp: nowS - 10 } });
  await audit.append({ type: 'grant.approved', actor: 'alice', grant_id: 'g_4', txn: 'txn_1', data: {} });
  store.table<string, Partial<GrantEntity>>('grants').set('g_3', { id: 'g_3', agent_id: 'agt_a', status: 'pending' });
  store.table<string, Partial<GrantEntity>>('grants').set('g_5', { id: 'g_5', agent_id: 'agt_a', status: 'denied' });
  return registry;
}

describe('RevocationRecorder (in memory)', () => {
  it('finds the grants a revocation affects, from the token events only', async () => {
    const { recorder } = await recorderFixture();
    expect(await recorder.affectedGrants('grant', 'g_9')).toEqual(['g_9']);
    expect(await recorder.affectedGrants('txn', 'txn_1')).toEqual(['g_1']);
    expect(await recorder.affectedGrants('token', 'jti_3')).toEqual(['g_2']);
    expect(await recorder.affectedGrants('token', 'jti_none')).toEqual([]);
  });

  it("for an agent: its live grants and the grants of its unexpired tokens, held or handed on (within the clock skew)", async () => {
    const { recorder } = await recorderFixture();
    expect(await recorder.affectedGrants('agent', 'agt_a')).toEqual(['g_1', 'g_3']);
    expect(await recorder.affectedGrants('agent', 'agt_a', NOW - 12_000)).toEqual(['g_1', 'g_2', 'g_3']);
    expect(await recorder.affectedGrants('agent', 'agt_b')).toEqual(['g_1']);
  });

  it('records the row and its audit event in the transaction, and announces only when asked, after commit', async () => {
    const { recorder, repositories, announced } = await recorderFixture();
    const event = await recorder.transaction((tx) => recorder.record(tx, { kind: 'txn', value: 'txn_1', by: 'alice', reason: 'lost laptop', subject: 'alice' }));
    expect(event).toEqual({ kind: 'txn', value: 'txn_1', grantIds: ['g_1'], expiresAt: new Date(NOW + 305_000) });
    expect(announced).toEqual([]);
    recorder.announce(event);
    expect(announced).toEqual([event]);
    expect(repositories.audit.events.at(-1)).toMatchObject({
      type: 'revocation.txn',
      actor: 'alice',
      subject: 'alice',
      txn: 'txn_1',
      data: { kind: 'txn', value: 'txn_1', reason: 'lost laptop', expires_at: new Date(NOW + 305_000).toISOString() },
    });
  });

  it('keeps the later expiry when the same thing is revoked again', async () => {
    const { recorder } = await recorderFixture();
    const later = new Date(NOW + 3_600_000);
    await recorder.transaction((tx) => recorder.record(tx, { kind: 'token', value: 'jti_1', by: null, reason: null, expiresAt: later }));
    const again = await recorder.transaction((tx) => recorder.record(tx, { kind: 'token', value: 'jti_1', by: null, reason: null }));
    expect(again.expiresAt).toEqual(later);
  });

  it('writes nothing when the transaction it joined rolls back', async () => {
    const { recorder, repositories } = await recorderFixture();
    const before = repositories.audit.events.length;
    await expect(
      recorder.transaction(async (tx) => {
        await recorder.record(tx, { kind: 'agent', value: 'agt_a', by: 'alice', reason: null });
        throw new Error('the status could not be saved');
      }),
    ).rejects.toThrow('the status could not be saved');
    expect(repositories.audit.events).toHaveLength(before);
    expect(await repositories.revocations.anyRevoked([['agent', 'agt_a']])).toBe(false);
  });

  it("a grant's revocation lasts until the grant ends, when that comes before its tokens' end", async () => {
    const { recorder, announced } = await recorderFixture();
    const grant = { expires_at: new Date(NOW + 60_000), owner: 'alice' } as GrantEntity;
    const announce = await recorder.transaction((tx) => recorder.recordGrant(tx, { grantId: 'g_1', grant, by: 'alice', reason: null, now: NOW, expiresAt: undefined, transition: null }));
    announce();
    expect(announced).toEqual([{ kind: 'grant', value: 'g_1', grantIds: ['g_1'], expiresAt: new Date(NOW + 65_000) }]);
  });

  it('announces every unexpired revocation again at start-up', async () => {
    const { recorder, clock, announced } = await recorderFixture();
    await recorder.transaction((tx) => recorder.record(tx, { kind: 'token', value: 'jti_1', by: null, reason: null, expiresAt: new Date(NOW + 1000) }));
    await recorder.transaction((tx) => recorder.record(tx, { kind: 'txn', value: 'txn_1', by: null, reason: null, expiresAt: new Date(NOW + 60_000) }));
    clock.advance(2000);
    expect(await recorder.resync()).toBe(1);
    expect(announced).toEqual([{ kind: 'txn', value: 'txn_1', grantIds: ['g_1'], expiresAt: new Date(NOW + 60_000) }]);
  });
});
