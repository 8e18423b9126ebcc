import type { GrantStateSnapshot } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { InMemoryGrantStateRepository } from '../../testing/in-memory-grant-state.js';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import type { QueuedVerifierEvent } from '../audit/redis-verifier-events.js';
import type { GrantChange } from '../grants/grants.service.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import { GrantStateReader } from './grant-state.reader.js';
import { VerifierStateKeeper, type VerifierStateWriter } from './verifier-state.keeper.js';

const NOW = Date.UTC(2026, 2, 1, 12);

/** A verifier store that records what it was given; `held` grants already have their state. */
class RecordingStore implements VerifierStateWriter {
  readonly restored: GrantStateSnapshot[] = [];
  readonly held = new Set<string>();
  pendingReads = 0;

  constructor(private readonly queue: QueuedVerifierEvent[] = []) {}

  restoreGrant(snapshot: GrantStateSnapshot): Promise<boolean> {
    this.restored.push(snapshot);
    this.held.add(snapshot.grantId);
    return Promise.resolve(true);
  }

  pendingEvents(): Promise<QueuedVerifierEvent[]> {
    this.pendingReads += 1;
    return Promise.resolve(this.queue);
  }

  hasState(grantId: string): Promise<boolean> {
    return Promise.resolve(this.held.has(grantId));
  }
}

async function keeperFixture(writer: VerifierStateWriter | null) {
  const registry = await inMemoryRegistry(NOW);
  const { store, clock } = registry;
  const grants = store.table<string, Partial<GrantEntity>>('grants');
  grants.set('grt_1', { id: 'grt_1', agent_id: 'agt_a', status: 'approved', expires_at: new Date(NOW + 3_600_000) });
  grants.set('grt_2', { id: 'grt_2', agent_id: 'agt_a', status: 'approved', expires_at: new Date(NOW + 3_600_000) });
  const listeners: ((change: GrantChange) => void)[] = [];
  const warnings: string[] = [];
  const keeper = new VerifierStateKeeper({
    reader: new GrantStateReader({ repository: new InMemoryGrantStateRepository(store), clock }),
    writer,
    grants: { onChange: (listener) => (listeners.push(listener), () => listeners.splice(listeners.indexOf(listener), 1)) },
    logger: { log: () => undefined, warn: (message) => warnings.push(message) },
  });
  const change = (grantId: string, status: GrantChange['status']) => listeners.forEach((l) => l({ grant_id: grantId, owner: 'alice', status, version: 2 }));
  return { ...registry, keeper, change, listeners, warnings };
}

describe('VerifierStateKeeper (in memory)', () => {
  it('answers no state for a grant that does not exist', async () => {
    const { keeper } = await keeperFixture(new RecordingStore());
    expect(await keeper.snapshot('grt_nope', [])).toBeNull();
    expect(await keeper.snapshot('grt_1', [])).toMatchObject({ grantId: 'grt_1', uses: 0 });
  });

  it("rebuilds a grant's state from the queue and the chain, once for concurrent asks, and not when the store holds it", async () => {
    const queued = { id: 'vd_q', body: JSON.stringify({ grant_id: 'grt_1', data: { at_ms: NOW - 10, charged_minor: 70 } }), outcome: 'allow' };
    const store = new RecordingStore([queued]);
    const { keeper } = await keeperFixture(store);
    expect(await Promise.all([keeper.restore('grt_1'), keeper.restore('grt_1')])).toEqual([true, true]);
    expect(store.restored).toHaveLength(1);
    expect(store.restored[0]).toMatchObject({ grantId: 'grt_1', uses: 1, spentMinor: 70 });
    expect(await keeper.restore('grt_1')).toBe(false);
    expect(await keeper.restore('grt_nope')).toBe(false);
    expect(store.restored).toHaveLength(1);
  });

  it('rebuilds every live grant at once, and nothing without a store', async () => {
    const store = new RecordingStore();
    const { keeper } = await keeperFixture(store);
    expect(await keeper.restoreAll()).toBe(2);
    expect(store.restored.map((s) => s.grantId)).toEqual(['grt_1', 'grt_2']);
    const { keeper: storeless, listeners } = await keeperFixture(null);
    expect(await storeless.restoreAll()).toBe(0);
    await storeless.onApplicationBootstrap();
    expect(listeners).toHaveLength(0);
  });

  it('gives a grant its state as soon as it is approved, until the app stops', async () => {
    const store = new RecordingStore();
    const { keeper, change, listeners } = await keeperFixture(store);
    await keeper.onApplicationBootstrap();
    change('grt_1', 'pending');
    change('grt_1', 'approved');
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(store.restored.map((s) => s.grantId)).toEqual(['grt_1']);
    await keeper.onModuleDestroy();
    expect(listeners).toHaveLength(0);
  });
});
