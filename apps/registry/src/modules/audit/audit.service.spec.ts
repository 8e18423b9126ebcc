import { hash, webcrypto } from 'node:crypto';
import { InvalidRequest, merkleLeafHash, openNote, parseCheckpoint, signCheckpoint, verifyConsistency, verifyInclusion } from '@writ/core';
import { describe, expect, it, vi } from 'vitest';
import { InMemoryAuditRepository } from '../../testing/in-memory-audit.js';
import { InMemoryStore } from '../../testing/in-memory-store.js';
import { inMemoryKeys } from '../../testing/test-keys.js';
import { ephemeralAuditLogSigner } from './audit-log-key.js';
import type { AuditCheckpoint } from './audit.repository.js';
import { AuditService, UnhashableEvent } from './audit.service.js';

const ORIGIN = 'registry.test/audit';

async function chain(checkpointEvery = 1000) {
  const store = new InMemoryStore();
  const repository = new InMemoryAuditRepository(store);
  const keys = await inMemoryKeys();
  const log = ephemeralAuditLogSigner(ORIGIN);
  const audit = new AuditService({ repository, keys, clock: { now: () => Date.UTC(2026, 0, 1) }, checkpointEvery, log });
  return { store, repository, audit, keys, log };
}

/** The body of a stored checkpoint's note, checked with the log's verifier key. */
async function body(checkpoint: AuditCheckpoint | undefined, vkey: string) {
  return parseCheckpoint((await openNote({ note: checkpoint!.note!, verifiers: [vkey] })).text);
}

const sha256 = (bytes: Uint8Array) => new Uint8Array(hash('sha256', bytes, 'buffer'));

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

  it('stores the Merkle tree over the events: leaf seq - 1 is SHA-256(0x00 || the event hash bytes), its root is the checkpoint\'s', async () => {
    const { repository, audit, log } = await chain(3);
    const events = [];
    for (let i = 0; i < 3; i++) events.push(await audit.append({ type: 'token.issued', data: { i } }));
    const leaves = await repository.nodes([0, 1, 2].map((index) => ({ level: 0, index })));
    expect(leaves).toEqual(events.map((e) => merkleLeafHash(Buffer.from(e.hash, 'hex'), sha256)));
    // RFC 9162 §2.1.1: MTH of three leaves = H(0x01 || H(0x01 || l0 || l1) || l2).
    const node = (l: Uint8Array, r: Uint8Array) => new Uint8Array(sha256(Buffer.concat([Buffer.from([1]), l, r])));
    const root = node(node(leaves[0]!, leaves[1]!), leaves[2]!);
    const checkpoint = await body(await repository.latestCheckpoint(), log.vkey);
    expect(checkpoint).toEqual({ origin: ORIGIN, size: 3, root });
    expect(new Uint8Array(await audit.rootAt(3))).toEqual(root);
  });

  it('imports the log key for signing once, however many checkpoints it signs', async () => {
    const { repository, audit, log } = await chain(2);
    const imports = vi.spyOn(webcrypto.subtle, 'importKey');
    try {
      for (let i = 0; i < 6; i++) await audit.append({ type: 't', data: { i } });
      const signingImports = imports.mock.calls.filter(([, , algorithm, , usages]) => (algorithm as { name?: string }).name === 'Ed25519' && usages.includes('sign'));
      expect(signingImports).toHaveLength(1);
    } finally {
      imports.mockRestore();
    }
    const checkpoints = await repository.checkpoints();
    expect(checkpoints.map((c) => c.seq)).toEqual([2, 4, 6]);
    for (const checkpoint of checkpoints) expect(await body(checkpoint, log.vkey)).toMatchObject({ origin: ORIGIN, size: checkpoint.seq });
  });

  it('signs a checkpoint of the head on demand, once, as a C2SP signed note of the tree at that size', async () => {
    const { repository, audit, log } = await chain();
    expect(await audit.checkpoint()).toBeUndefined();
    await audit.append({ type: 'a' });
    const head = await audit.checkpoint();
    expect(head).toMatchObject({ seq: 1 });
    expect(head?.note).toMatch(/^registry\.test\/audit\n1\n[A-Za-z0-9+/]{43}=\n\n\u2014 registry\.test\/audit [A-Za-z0-9+/]+=*\n$/);
    expect(await body(head, log.vkey)).toEqual({ origin: ORIGIN, size: 1, root: new Uint8Array(await audit.rootAt(1)) });
    expect(await audit.checkpoint()).toEqual(head);
    expect(await repository.checkpoints()).toHaveLength(1);
  });

  it('tells its listeners once per committed checkpoint, by count and on demand', async () => {
    const { audit } = await chain(2);
    let told = 0;
    audit.whenCheckpointed(() => told++);
    await audit.append({ type: 'a' });
    expect(told).toBe(0);
    await audit.append({ type: 'b' });
    expect(told).toBe(1);
    await audit.checkpoint();
    expect(told).toBe(1);
    await audit.append({ type: 'c' });
    await audit.checkpoint();
    expect(told).toBe(2);
  });

  it('answers inclusion proofs of every event and consistency proofs between sizes that RFC 9162 verification accepts', async () => {
    const { audit } = await chain();
    const events = [];
    for (let i = 0; i < 11; i++) events.push(await audit.append({ type: 'token.issued', data: { i } }));
    for (const size of [1, 6, 11]) {
      const root = await audit.rootAt(size);
      for (const event of events.filter((e) => e.seq <= size)) {
        const { leaf, proof } = await audit.inclusionProof({ seq: event.seq, size });
        expect(leaf).toEqual(merkleLeafHash(Buffer.from(event.hash, 'hex'), sha256));
        expect(verifyInclusion({ leafHash: leaf, index: event.seq - 1, size, proof, root })).toBe(true);
      }
    }
    for (const [from, to] of [[1, 11], [4, 7], [6, 11], [11, 11]] as const) {
      const { proof } = await audit.consistencyProof({ from, to });
      expect(verifyConsistency({ oldSize: from, newSize: to, oldRoot: await audit.rootAt(from), newRoot: await audit.rootAt(to), proof })).toBe(true);
    }
  });

  it('refuses a proof beyond the log or with its sizes the wrong way round, saying which bound', async () => {
    const { audit } = await chain();
    for (let i = 0; i < 3; i++) await audit.append({ type: 't' });
    await expect(audit.inclusionProof({ seq: 1, size: 4 })).rejects.toThrow(new InvalidRequest("size must be at most the log's size, 3"));
    await expect(audit.inclusionProof({ seq: 3, size: 2 })).rejects.toThrow(new InvalidRequest('seq must be at most size'));
    await expect(audit.consistencyProof({ from: 1, to: 4 })).rejects.toThrow(new InvalidRequest("to must be at most the log's size, 3"));
    await expect(audit.consistencyProof({ from: 3, to: 2 })).rejects.toThrow(new InvalidRequest('from must be at most to'));
  });

  it('refuses to append onto a tree whose nodes were deleted: the append fails, nothing is written', async () => {
    const { store, repository, audit } = await chain(1000);
    // The first stored node (level 4, STORED_TREE_LEVEL) is complete at 16 events; the ones below are computed from events.
    await Promise.all(Array.from({ length: 16 }, (_, i) => audit.append({ type: 't', data: { i } })));
    expect([...store.table<string, Uint8Array>('audit_merkle_nodes').keys()]).toEqual(['4:0']);
    store.table<string, Uint8Array>('audit_merkle_nodes').delete('4:0');
    await expect(audit.append({ type: 'after' })).rejects.toThrow("the audit log's Merkle tree does not reach its head (seq 16): nodes are missing");
    expect(repository.events).toHaveLength(16);
  });

  it('verifies from the last verified head: the events before it are not re-hashed, a --full verification does', async () => {
    const { store, repository, audit } = await chain(2);
    for (let i = 0; i < 4; i++) await audit.append({ type: 't', data: { i } });
    expect(await audit.verify()).toMatchObject({ from: 0, chain: { ok: true, count: 4 }, tree: { size: 4 } });
    expect(await repository.verifiedHead()).toMatchObject({ size: 4 });
    for (let i = 4; i < 6; i++) await audit.append({ type: 't', data: { i } });
    store.table<number, { data: Record<string, unknown> }>('audit_events').get(2)!.data = { i: 999 };
    expect(await audit.verify()).toMatchObject({ from: 4, chain: { ok: true, count: 2, lastSeq: 6 }, checkpoints: { verified: 1, failed: [] } });
    expect(await audit.verify({ full: true })).toMatchObject({ from: 0, chain: { ok: false, brokenSeq: 2, reason: 'hash does not match the event content' } });
  });

  it('says BROKEN, naming the size and the first missing seq, when the log ends below a checkpoint kept outside', async () => {
    const { store, repository, audit } = await chain(5);
    for (let i = 0; i < 10; i++) await audit.append({ type: 't', data: { i } });
    const kept = (await repository.latestCheckpoint())!.note!;
    for (const seq of [8, 9, 10]) store.table('audit_events').delete(seq);
    const result = await audit.verify({ anchors: [{ source: '--checkpoint kept.txt', note: kept }] });
    expect(result.chain).toEqual({
      ok: false,
      count: 7,
      brokenSeq: 8,
      reason: '--checkpoint kept.txt: the log ends at seq 7, below this checkpoint of size 10: seq 8 is missing',
    });
    expect(result.anchors).toEqual([
      { source: '--checkpoint kept.txt', size: 10, ok: false, missingSeq: 8, reason: 'the log ends at seq 7, below this checkpoint of size 10: seq 8 is missing' },
    ]);
  });

  it('verifies the log up to the head it read first: events and checkpoints appended meanwhile are left for next time', async () => {
    const store = new InMemoryStore();
    let meanwhile: (() => Promise<unknown>) | undefined;
    const repository = new (class extends InMemoryAuditRepository {
      override async head() {
        const head = await super.head();
        const work = meanwhile;
        meanwhile = undefined;
        await work?.();
        return head;
      }
    })(store);
    const audit = new AuditService({ repository, keys: await inMemoryKeys(), clock: { now: () => 0 }, checkpointEvery: 2, log: ephemeralAuditLogSigner(ORIGIN) });
    for (let i = 0; i < 3; i++) await audit.append({ type: 't' });
    meanwhile = async () => {
      for (let i = 0; i < 3; i++) await audit.append({ type: 'meanwhile' });
    };
    expect(await audit.verify()).toMatchObject({ chain: { ok: true, count: 3, lastSeq: 3 }, checkpoints: { verified: 1, failed: [] }, tree: { size: 3 } });
    expect(await audit.verify()).toMatchObject({ from: 3, chain: { ok: true, count: 3, lastSeq: 6 }, checkpoints: { verified: 2, failed: [] } });
  });

  it('says BROKEN when the log ends below its last verified head', async () => {
    const { store, audit } = await chain();
    for (let i = 0; i < 3; i++) await audit.append({ type: 't' });
    await audit.verify();
    store.table('audit_events').delete(3);
    expect((await audit.verify()).chain).toMatchObject({ ok: false, brokenSeq: 3, reason: 'the log ends at seq 2, below the last verified head of size 3' });
  });

  it('refuses an anchor that is not signed by the log key, or is of another origin', async () => {
    const { audit } = await chain(1);
    await audit.append({ type: 't' });
    const stranger = new AuditService({ repository: new InMemoryAuditRepository(new InMemoryStore()), keys: await inMemoryKeys(), clock: { now: () => 0 }, checkpointEvery: 1, log: ephemeralAuditLogSigner(ORIGIN) });
    await stranger.append({ type: 't' });
    const result = await audit.verify({ anchors: [{ source: 'forged', note: (await stranger.latestCheckpoint())!.note! }] });
    expect(result.anchors[0]).toMatchObject({ source: 'forged', ok: false });
    expect(result.anchors[0]!.reason).toMatch(/^not a checkpoint signed by this log's key: /);
  });

  it('finds a stored checkpoint whose root is not the tree of the events', async () => {
    const { store, audit } = await chain(2);
    for (let i = 0; i < 2; i++) await audit.append({ type: 't', data: { i } });
    const other = await chain(2);
    for (let i = 0; i < 2; i++) await other.audit.append({ type: 'u', data: { i } });
    const forged = (await other.repository.latestCheckpoint())!;
    // Signed by another key: the signature check fails first.
    store.table<number, AuditCheckpoint>('audit_checkpoints').set(2, { ...forged, seq: 2 });
    const result = await audit.verify();
    expect(result.checkpoints.failed).toHaveLength(1);
    expect(result.checkpoints.failed[0]!.reason).toMatch(/^checkpoint note does not verify: /);
  });

  it('still verifies the JWS checkpoints taken before the signed notes', async () => {
    const { store, audit, keys } = await chain();
    const first = await audit.append({ type: 't' });
    const key = await keys.active();
    const at = new Date(0).toISOString();
    const jws = await signCheckpoint({ seq: 1, hash: first.hash, at }, { privateKey: key.privateKey, kid: key.kid });
    store.table<number, AuditCheckpoint>('audit_checkpoints').set(1, { seq: 1, hash: first.hash, at, kid: key.kid, jws });
    expect((await audit.verify()).checkpoints).toEqual({ verified: 1, failed: [] });
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
