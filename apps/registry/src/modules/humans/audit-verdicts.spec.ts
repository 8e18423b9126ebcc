import type { AuditEvent } from '@writ/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import { AuditVerdicts } from './audit-verdicts.js';

/** An in-memory log of `events` events and a verdict keeper over it that never runs by itself. */
async function verdictsFixture(events: number, seconds = 0) {
  const registry = await inMemoryRegistry();
  for (let i = 1; i <= events; i++) await registry.audit.append({ type: 'test.event', data: { i } });
  const warnings: string[] = [];
  const verdicts = new AuditVerdicts({
    audit: registry.audit,
    repository: registry.repositories.audit,
    seconds,
    clock: registry.clock,
    logger: { warn: (message) => warnings.push(message) },
  });
  return { ...registry, verdicts, warnings };
}

describe('AuditVerdicts', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says not verified yet before any verification', async () => {
    const { verdicts } = await verdictsFixture(3);
    expect(await verdicts.current()).toEqual({ status: 'unverified' });
  });

  it('answers the head the last verification found intact, with its root and time, without verifying again', async () => {
    const { verdicts, audit, clock } = await verdictsFixture(3);
    const at = new Date(clock.now()).toISOString();
    expect(await verdicts.refresh()).toEqual({ status: 'verified', size: 3, root: Buffer.from(await audit.rootAt(3)).toString('base64'), at });
    const verify = vi.spyOn(audit, 'verify');
    await audit.append({ type: 'test.event' });
    clock.advance(60_000);
    expect(await verdicts.current()).toMatchObject({ status: 'verified', size: 3, at });
    expect(verify).not.toHaveBeenCalled();
  });

  it('counts a verification the operator or the CLI ran, as stored', async () => {
    const { verdicts, audit } = await verdictsFixture(2);
    await audit.verify();
    expect(await verdicts.current()).toMatchObject({ status: 'verified', size: 2 });
  });

  it('says BROKEN at the first seq found wrong, with the reason and the head last found intact', async () => {
    const { verdicts, audit, store, clock } = await verdictsFixture(3);
    const intact = await verdicts.refresh();
    await audit.append({ type: 'test.event', data: { i: 4 } });
    await audit.append({ type: 'test.event', data: { i: 5 } });
    store.table<number, AuditEvent>('audit_events').get(4)!.data = { i: 999 };
    clock.advance(1000);
    expect(await verdicts.refresh()).toEqual({
      status: 'broken',
      seq: 4,
      reason: 'hash does not match the event content',
      at: new Date(clock.now()).toISOString(),
      verified: { size: 3, at: (intact as { at: string }).at },
    });
    // Still broken when asked later: the stored head is older than what this process found.
    expect(await verdicts.current()).toMatchObject({ status: 'broken', seq: 4 });
  });

  it('says BROKEN at the first missing seq when the log ends before a witnessed checkpoint', async () => {
    const { audit, repositories, store, clock } = await verdictsFixture(3);
    const note = (await audit.checkpoint())!.note!;
    const verdicts = new AuditVerdicts({ audit, repository: repositories.audit, anchors: () => Promise.resolve([{ source: 'witness w', note }]), seconds: 0, clock, logger: { warn: () => undefined } });
    expect(await verdicts.refresh()).toMatchObject({ status: 'verified', size: 3 });
    // A database writer deletes the tail, event and checkpoint, and the verified head: the witness still holds size 3.
    store.table('audit_events').delete(3);
    store.table('audit_checkpoints').delete(3);
    store.table('audit_verified_head').delete(1);
    expect(await verdicts.refresh()).toMatchObject({ status: 'broken', seq: 3, reason: 'witness w: the log ends at seq 2, below this checkpoint of size 3: seq 3 is missing' });
  });

  it('verifies once at start, then at most every `seconds`, one run at a time, and not at all with 0', async () => {
    // Only the interval is faked: a verification itself awaits real crypto.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { verdicts, audit } = await verdictsFixture(2, 30);
    const verify = vi.spyOn(audit, 'verify');
    verdicts.onApplicationBootstrap();
    expect(verify).toHaveBeenCalledTimes(1);
    await vi.waitFor(async () => expect(await verdicts.current()).toMatchObject({ status: 'verified', size: 2 }));
    await vi.advanceTimersByTimeAsync(29_000);
    expect(verify).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(verify).toHaveBeenCalledTimes(2);
    await verdicts.onModuleDestroy();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(verify).toHaveBeenCalledTimes(2);

    const off = await verdictsFixture(2, 0);
    const never = vi.spyOn(off.audit, 'verify');
    off.verdicts.onApplicationBootstrap();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(never).not.toHaveBeenCalled();
  });

  it('logs a background verification that fails, and goes on', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { verdicts, audit, warnings } = await verdictsFixture(1, 10);
    vi.spyOn(audit, 'verify').mockRejectedValueOnce(new Error('database away'));
    verdicts.onApplicationBootstrap();
    await vi.waitFor(() => expect(warnings).toEqual(['audit verification: database away']));
    await vi.advanceTimersByTimeAsync(10_000);
    await vi.waitFor(async () => expect(await verdicts.current()).toMatchObject({ status: 'verified', size: 1 }));
    await verdicts.onModuleDestroy();
  });

  it('does not hold up a shutdown for more than 5 s while a verification runs', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    const { verdicts, audit } = await verdictsFixture(1, 10);
    vi.spyOn(audit, 'verify').mockReturnValue(new Promise(() => undefined));
    verdicts.onApplicationBootstrap();
    let closed = false;
    const closing = verdicts.onModuleDestroy().then(() => (closed = true));
    await vi.advanceTimersByTimeAsync(4999);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await closing;
    expect(closed).toBe(true);
  });
});
