import { randomBytes } from 'node:crypto';
import { formatVerifierKey, openNote, parseCheckpoint, verifyConsistency } from '@writ/core';
import type { SubmitCheckpointOptions, SubmitCheckpointResult } from '@writ/server';
import { describe, expect, it } from 'vitest';
import { InMemoryAuditRepository } from '../../testing/in-memory-audit.js';
import { InMemoryStore } from '../../testing/in-memory-store.js';
import { inMemoryKeys } from '../../testing/test-keys.js';
import { ephemeralAuditLogSigner } from './audit-log-key.js';
import { AuditCheckpointTimer } from './audit.module-hooks.js';
import { AuditService } from './audit.service.js';
import { CheckpointPublisher } from './checkpoint-publisher.js';

const WITNESS = { url: 'https://witness.test', vkey: formatVerifierKey({ name: 'witness.test/w1', publicKey: randomBytes(32), type: 0x04 }) };
const LINE = '\u2014 witness.test/w1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n';

type Answer = (call: SubmitCheckpointOptions) => SubmitCheckpointResult | Promise<SubmitCheckpointResult>;

async function setUp(answer: Answer) {
  const store = new InMemoryStore();
  const repository = new InMemoryAuditRepository(store);
  const log = ephemeralAuditLogSigner('registry.test/audit');
  const audit = new AuditService({ repository, keys: await inMemoryKeys(), clock: { now: () => 0 }, checkpointEvery: 2, log });
  const calls: SubmitCheckpointOptions[] = [];
  const warnings: string[] = [];
  const publisher = new CheckpointPublisher({
    audit,
    repository,
    witnesses: [WITNESS],
    logger: { warn: (message) => warnings.push(message) },
    now: () => Date.UTC(2026, 0, 1),
    submit: async (call) => {
      calls.push(call);
      return answer(call);
    },
  });
  return { audit, repository, publisher, calls, warnings, log };
}

const sizeOf = async (note: string, vkey: string) => parseCheckpoint((await openNote({ note, verifiers: [vkey] })).text);

describe('CheckpointPublisher', () => {
  it('pushes each new checkpoint from the size the witness last cosigned, with a consistency proof that verifies, and keeps the cosignature', async () => {
    const { audit, repository, publisher, calls, log } = await setUp(() => ({ ok: true, cosignature: LINE }));
    for (let i = 0; i < 2; i++) await audit.append({ type: 't' });
    await publisher.idle();
    expect(calls.map((c) => [c.oldSize, c.proof.length])).toEqual([[0, 0]]);
    expect(await repository.cosignatures(2)).toEqual([{ seq: 2, witness: 'witness.test/w1', line: LINE.trimEnd(), at: '2026-01-01T00:00:00.000Z' }]);
    expect(await audit.publishedCheckpoint()).toBe(`${calls[0]!.note}${LINE}`);
    for (let i = 0; i < 3; i++) await audit.append({ type: 't' });
    await publisher.idle();
    expect(calls).toHaveLength(2);
    const second = calls[1]!;
    const [oldBody, newBody] = [await sizeOf(calls[0]!.note, log.vkey), await sizeOf(second.note, log.vkey)];
    expect([second.oldSize, newBody.size]).toEqual([2, 4]);
    expect(verifyConsistency({ oldSize: 2, newSize: 4, oldRoot: oldBody.root, newRoot: newBody.root, proof: second.proof })).toBe(true);
    // Nothing new: nothing pushed.
    await publisher.publish();
    expect(calls).toHaveLength(2);
  });

  it('retries once from the size a 409 names', async () => {
    const { audit, repository, publisher, calls, warnings } = await setUp((call) => (call.oldSize === 1 ? { ok: true, cosignature: LINE } : { ok: false, status: 409, reason: 'conflict', witnessSize: 1 }));
    for (let i = 0; i < 2; i++) await audit.append({ type: 't' });
    await publisher.idle();
    expect(calls.map((c) => [c.oldSize, c.proof.length])).toEqual([[0, 0], [1, 1]]);
    expect(warnings).toEqual([]);
    expect(await repository.cosignatures(2)).toHaveLength(1);
  });

  it('logs a refusal with the status and reason only, and pushes again with the next checkpoint', async () => {
    let refuse = true;
    const { audit, publisher, calls, warnings, log } = await setUp(() => (refuse ? { ok: false, status: 0, reason: 'unreachable' } : { ok: true, cosignature: LINE }));
    for (let i = 0; i < 2; i++) await audit.append({ type: 't' });
    await publisher.idle();
    expect(warnings).toEqual(['audit checkpoint 2 to witness witness.test/w1 (https://witness.test): 0 unreachable; retried with the next checkpoint']);
    const signature = calls[0]!.note.split('\n').at(-2)!.split(' ').at(-1)!;
    expect(warnings.join('\n')).not.toContain(signature);
    refuse = false;
    for (let i = 0; i < 2; i++) await audit.append({ type: 't' });
    await publisher.idle();
    expect(calls.map((c) => c.oldSize)).toEqual([0, 0]);
    expect((await sizeOf(calls[1]!.note, log.vkey)).size).toBe(4);
  });

  it('gives up after the second 409: a witness ahead of the log is reported as a truncation', async () => {
    const { audit, publisher, calls, warnings } = await setUp(() => ({ ok: false, status: 409, reason: 'conflict', witnessSize: 7 }));
    for (let i = 0; i < 2; i++) await audit.append({ type: 't' });
    await publisher.idle();
    expect(calls).toHaveLength(1);
    expect(warnings).toEqual(['audit checkpoint 2: witness witness.test/w1 holds size 7, beyond the log: the log was truncated']);
  });

  it('never holds up appends: a witness that does not answer leaves the appends and checkpoints going', async () => {
    const { audit, calls } = await setUp(() => new Promise<SubmitCheckpointResult>(() => undefined));
    for (let i = 0; i < 6; i++) await audit.append({ type: 't' });
    expect((await audit.latestCheckpoint())?.seq).toBe(6);
    expect(calls.length).toBeGreaterThanOrEqual(1);
  });

  it('is pushed by the checkpoint timer, which signs nothing when no event arrived', async () => {
    const { audit, repository, publisher, calls } = await setUp(() => ({ ok: true, cosignature: LINE }));
    const timer = new AuditCheckpointTimer({ audit, publisher, seconds: 5, logger: { warn: () => undefined } });
    await audit.append({ type: 't' });
    await timer.tick();
    expect((await repository.checkpoints()).map((c) => c.seq)).toEqual([1]);
    expect(calls.map((c) => c.oldSize)).toEqual([0]);
    await timer.tick();
    expect((await repository.checkpoints()).map((c) => c.seq)).toEqual([1]);
    expect(calls).toHaveLength(1);
  });
});
