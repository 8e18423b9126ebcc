import { describe, expect, it } from 'vitest';
import { InMemoryAuditRepository } from '../../testing/in-memory-audit.js';
import { InMemoryStore } from '../../testing/in-memory-store.js';
import { inMemoryKeys } from '../../testing/test-keys.js';
import { AuditService, UnhashableEvent } from './audit.service.js';

async function chain(checkpointEvery = 1000) {
  const store = new InMemoryStore();
  const repository = new InMemoryAuditRepository(store);
  const audit = new AuditService({ repository, keys: await inMemoryKeys(), clock: { now: () => Date.UTC(2026, 0, 1) }, checkpointEvery });
  return { store, repository, audit };
}

describe('AuditService (in memory)', () => {
  it('links each event to the one before it, in arrival order, and verifies the chain', async () => {
    const { repository, audit } = await chain();
    const events = await Promise.all(['a', 'b', 'c'].map((type) => audit.append({ type })));
    expect(events.map((e) => [e.seq, e.type])).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
    expect(events[1]!.prev_hash).toBe(events[0]!.hash);
    expect(repository.events.map((e) => e.hash)).toEqual(events.map((e) => e.hash));
    expect((await audit.verify()).chain).toMatchObject({ ok: true, count: 3, lastSeq: 3 });
  });

  it('does not append an event whose id is already in the chain, and answers the stored one', async () => {
    const { repository, audit } = await chain();
    const first = await audit.append({ id: 'evt_once', type: 'verification.allowed', data: { n: 1 } });
    const again = await audit.append({ id: 'evt_once', type: 'verification.allowed', data: { n: 2 } });
    expect(again).toEqual(first);
    expect(repository.events).toHaveLength(1);
  });

  it('fails only the caller whose event cannot be hashed; the rest of the burst is appended', async () => {
    const { repository, audit } = await chain();
    const outcomes = await Promise.allSettled([
      audit.append({ type: 'ok.1' }),
      audit.append({ type: 'bad', data: { n: 1n } }),
      audit.append({ type: 'ok.2' }),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toBeInstanceOf(UnhashableEvent);
    expect(repository.events.map((e) => e.type)).toEqual(['ok.1', 'ok.2']);
  });

  it("joins the caller's transaction: the event is rolled back with it", async () => {
    const { store, repository, audit } = await chain();
    await expect(
      store.transaction(async (tx) => {
        await audit.append({ type: 'grant.approved' }, tx);
        throw new Error('the grant could not be saved');
      }),
    ).rejects.toThrow('the grant could not be saved');
    expect(repository.events).toEqual([]);
    await store.transaction((tx) => audit.append({ type: 'grant.approved' }, tx));
    expect(repository.events.map((e) => e.seq)).toEqual([1]);
  });

  it('signs a checkpoint every checkpointEvery events, and verify checks each against the chain', async () => {
    const { repository, audit } = await chain(2);
    for (let i = 0; i < 5; i++) await audit.append({ type: 'token.issued', data: { i } });
    expect((await repository.checkpoints()).map((c) => c.seq)).toEqual([2, 4]);
    expect(await audit.verify()).toMatchObject({ chain: { ok: true, count: 5 }, checkpoints: { verified: 2, failed: [] } });
  });

  it('signs a checkpoint of the head on demand, once', async () => {
    const { repository, audit } = await chain();
    expect(await audit.checkpoint()).toBeUndefined();
    await audit.append({ type: 'a' });
    const head = await audit.checkpoint();
    expect(head).toMatchObject({ seq: 1, kid: 'test-key' });
    expect(await audit.checkpoint()).toEqual(head);
    expect(await repository.checkpoints()).toHaveLength(1);
  });

  it('names the first event whose content no longer matches its hash', async () => {
    const { store, audit } = await chain(2);
    for (let i = 0; i < 4; i++) await audit.append({ type: 'token.issued', data: { i } });
    const stored = store.table<number, { data: Record<string, unknown> }>('audit_events');
    stored.get(3)!.data = { i: 999 };
    const { chain: result, checkpoints } = await audit.verify();
    expect(result).toMatchObject({ ok: false, brokenSeq: 3 });
    expect(checkpoints.failed.map((f) => f.seq)).toEqual([4]);
  });

  it('exports every event, oldest first', async () => {
    const { audit } = await chain();
    for (let i = 0; i < 3; i++) await audit.append({ type: `t${i}` });
    const exported = [];
    for await (const event of audit.export()) exported.push(event.type);
    expect(exported).toEqual(['t0', 't1', 't2']);
  });
});
