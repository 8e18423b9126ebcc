import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  appendAuditEvent,
  AuditChainVerifier,
  type AuditEvent,
  CHECKPOINT_TYP,
  checkpointPayload,
  GENESIS_HASH,
  hashAuditEvent,
  linkAuditEvent,
  signCheckpoint,
  verifyAuditChain,
  verifyCheckpoint,
} from './audit.js';
import { canonicalJson, fromHex, sha256, toHex } from './encoding.js';

/** Any unhashed event of the stored shape: odd strings, nulls, JSON data. */
const eventText = fc.string({ unit: 'binary', maxLength: 24 });
const eventNullable = fc.option(eventText, { nil: null });
const eventArbitrary = fc.record({
  seq: fc.maxSafeNat(),
  id: eventText,
  at: eventText,
  type: eventText,
  actor: eventNullable,
  subject: eventNullable,
  grant_id: eventNullable,
  txn: eventNullable,
  parent_id: eventNullable,
  data: fc.dictionary(eventText, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }),
  prev_hash: fc.constantFrom(GENESIS_HASH, 'ab'.repeat(32), 'F0'.repeat(32)),
});

function draft(i: number): Omit<AuditEvent, 'seq' | 'prev_hash' | 'hash'> {
  return {
    id: `evt_${i}`,
    at: new Date(Date.UTC(2026, 10, 24, 9, 0, i)).toISOString(),
    type: i % 2 ? 'token.issued' : 'grant.approved',
    actor: 'agent:planner',
    subject: 'user:alice',
    grant_id: 'g_1',
    txn: i > 2 ? 'txn_1' : null,
    parent_id: i > 3 ? `evt_${i - 1}` : null,
    data: { i, amount: i * 1.5, note: 'é€' },
  };
}

async function chain(n: number): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  for (let i = 1; i <= n; i++) events.push(await appendAuditEvent(events.at(-1) ?? null, draft(i)));
  return events;
}

describe('audit hashing', () => {
  it('hashes SHA-256(prev_hash bytes || JCS(event without hash)), with a 32-zero-byte genesis', async () => {
    const [first] = await chain(1);
    const { hash, ...body } = first!;
    const input = new Uint8Array([...fromHex(GENESIS_HASH), ...new TextEncoder().encode(canonicalJson(body))]);
    expect(fromHex(GENESIS_HASH)).toEqual(new Uint8Array(32));
    expect(hash).toBe(toHex(await sha256(input)));
    expect(await hashAuditEvent(first!)).toBe(hash);
  });

  it('gives the same hash with a native digest plugged in, and uses the digest it is given', async () => {
    const draft = { id: 'e1', at: '2026-11-24T09:00:00.000Z', type: 'verification.allowed', actor: 'agent', subject: 'svc', grant_id: 'g1', txn: 't', parent_id: null, data: { amount: 1.5 } };
    const web = await appendAuditEvent(null, draft);
    let calls = 0;
    const native = await appendAuditEvent(null, draft, (bytes) => {
      calls += 1;
      return createHash('sha256').update(bytes).digest();
    });
    expect(native).toEqual(web);
    expect(calls).toBe(1);
    const wrong = await appendAuditEvent(null, draft, () => new Uint8Array(32));
    expect(wrong.hash).toBe('0'.repeat(64));
  });

  it('hashes exactly the RFC 8785 text of the whole event, whatever its strings, data and shape', async () => {
    // The reference: the general canonicaliser over the whole event, as the design states it.
    const reference = (event: Record<string, unknown>): string =>
      createHash('sha256')
        .update(Buffer.concat([Buffer.from(String(event.prev_hash), 'hex'), Buffer.from(canonicalJson(event), 'utf8')]))
        .digest('hex');
    const native = (bytes: Uint8Array): Uint8Array => createHash('sha256').update(bytes).digest();
    const stored = eventArbitrary;
    await fc.assert(
      fc.asyncProperty(stored, async (event) => {
        expect(await hashAuditEvent(event, native)).toBe(reference(event));
      }),
      { numRuns: 300 },
    );
    // Other shapes (an extra member, a seq that is not a safe integer, a number where a string
    // goes) are canonicalised whole, with the same result as the reference.
    const base = (await chain(1))[0]!;
    const { hash: _hash, ...body } = base;
    for (const odd of [{ ...body, extra: 'x' }, { ...body, seq: 2 ** 60 }, { ...body, actor: 7 }, { ...body, data: [1, 'two'] }]) {
      expect(await hashAuditEvent(odd as never, native)).toBe(reference(odd));
    }
  });

  it('links an event with its JSON text: the text parses to the event, whose hash is the one hashAuditEvent gives', async () => {
    const native = (bytes: Uint8Array): Uint8Array => createHash('sha256').update(bytes).digest();
    // Any draft: the members of the stored shape but seq and the hashes.
    const draft = eventArbitrary.map(({ seq: _seq, prev_hash: _prev, ...rest }) => rest);
    const previous = (await chain(2))[1]!;
    await fc.assert(
      fc.asyncProperty(draft, fc.boolean(), async (d, first) => {
        const before = first ? null : previous;
        const { event, json } = await linkAuditEvent(before, d, native);
        expect(event).toEqual(await appendAuditEvent(before, d, native));
        expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(event)));
        const { hash, ...unhashed } = event;
        expect(hash).toBe(await hashAuditEvent(unhashed, native));
      }),
      { numRuns: 300 },
    );
  });

  it('gives the event the members of the draft spread, in its order, then seq, prev_hash and hash', async () => {
    const native = (bytes: Uint8Array): Uint8Array => createHash('sha256').update(bytes).digest();
    const base = draft(1);
    const tag = Symbol('tag');
    const { id, at, ...rest } = base;
    // The registry's order, the audit vectors' order, an extra member, members the link sets, a symbol.
    const drafts: Record<string | symbol, unknown>[] = [base, { ...rest, id, at }, { ...base, extra: 'x' }, { ...base, seq: 99, prev_hash: 'x', hash: 'y' }, { ...base, [tag]: 1 }];
    for (const d of drafts) {
      const { event } = await linkAuditEvent(null, d as never, native);
      const spread: Record<string | symbol, unknown> = { ...d, seq: 1, prev_hash: GENESIS_HASH };
      expect(Reflect.ownKeys(event)).toEqual(Reflect.ownKeys({ ...spread, hash: '' }));
      expect(JSON.stringify(event)).toBe(JSON.stringify({ ...spread, hash: event.hash }));
    }
  });

  it('hands the digest an array of its own, exactly the bytes hashed', async () => {
    const seen: Uint8Array[] = [];
    const keep = (bytes: Uint8Array): Uint8Array => {
      seen.push(bytes);
      return createHash('sha256').update(bytes).digest();
    };
    const previous = (await chain(1))[0]!;
    for (const note of ['ascii', 'é€', '\ud83d\ude00']) {
      const { json } = await linkAuditEvent(previous, { ...draft(2), data: { note } }, keep);
      const text = `${json.slice(0, json.lastIndexOf(',"hash":'))}}`;
      const bytes = seen.at(-1)!;
      expect(bytes.byteOffset).toBe(0);
      expect(bytes.buffer.byteLength).toBe(bytes.length);
      expect(bytes).toEqual(new Uint8Array([...fromHex(previous.hash), ...new TextEncoder().encode(text)]));
    }
    expect(new Set(seen.map((bytes) => bytes.buffer)).size).toBe(3);
  });

  it('hashes a lone surrogate outside data as its escape, and refuses one in data, as it always has', async () => {
    const native = (bytes: Uint8Array): Uint8Array => createHash('sha256').update(bytes).digest();
    // Outside data, the stored shape's strings are written by JSON.stringify, which escapes it.
    const { event, json } = await linkAuditEvent(null, { ...draft(1), actor: 'agent:\ud800' }, native);
    expect(json).toContain('"actor":"agent:\\ud800"');
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(event)));
    const { hash, ...unhashed } = event;
    expect(await hashAuditEvent(unhashed, native)).toBe(hash);
    // In data, and anywhere in an event of another shape, it is refused.
    await expect(linkAuditEvent(null, { ...draft(1), data: { note: 'x\udc00' } }, native)).rejects.toThrow('Lone surrogate is not allowed');
    await expect(linkAuditEvent(null, { ...draft(1), actor: '\ud800', extra: 1 } as never, native)).rejects.toThrow('Lone surrogate is not allowed');
    // An error in data names its path from data in the stored shape, from the event in another.
    await expect(linkAuditEvent(null, { ...draft(1), data: { amount: Number.NaN } }, native)).rejects.toThrow(/^\$\.amount is not a finite number$/);
    await expect(linkAuditEvent(null, { ...draft(1), data: { amount: Number.NaN }, extra: 1 } as never, native)).rejects.toThrow(/^\$\.data\.amount is not a finite number$/);
  });

  it('links each event to the previous one and numbers them from 1', async () => {
    const events = await chain(3);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(events[0]!.prev_hash).toBe(GENESIS_HASH);
    expect(events[1]!.prev_hash).toBe(events[0]!.hash);
    expect(events[2]!.prev_hash).toBe(events[1]!.hash);
  });
});

describe('verifyAuditChain', () => {
  it('accepts an intact chain and reports its head', async () => {
    const events = await chain(20);
    expect(await verifyAuditChain(events)).toEqual({ ok: true, count: 20, lastSeq: 20, lastHash: events[19]!.hash });
  });

  it('accepts an empty chain', async () => {
    expect(await verifyAuditChain([])).toEqual({ ok: true, count: 0, lastSeq: 0, lastHash: GENESIS_HASH });
  });

  it('names the seq of an event whose data was edited', async () => {
    const events = await chain(10);
    events[6] = { ...events[6]!, data: { ...events[6]!.data, amount: 1 } };
    expect(await verifyAuditChain(events)).toEqual({
      ok: false,
      count: 6,
      brokenSeq: 7,
      reason: 'hash does not match the event content',
    });
  });

  it('names the seq of an edited row even when its hash was recomputed, at the next link', async () => {
    const events = await chain(10);
    const edited = { ...events[3]!, type: 'grant.denied' };
    events[3] = { ...edited, hash: await hashAuditEvent(edited) };
    const result = await verifyAuditChain(events);
    expect(result).toMatchObject({ ok: false, brokenSeq: 5, reason: 'prev_hash does not match the previous event' });
  });

  it('names the missing seq when an event is deleted', async () => {
    const events = await chain(5);
    events.splice(2, 1);
    expect(await verifyAuditChain(events)).toMatchObject({ ok: false, brokenSeq: 3, reason: 'expected seq 3, found 4' });
  });

  it('names the seq of a malformed event', async () => {
    const events: unknown[] = await chain(3);
    events[1] = { ...(events[1] as AuditEvent), hash: 'not-hex' };
    expect(await verifyAuditChain(events)).toMatchObject({ ok: false, brokenSeq: 2, reason: expect.stringContaining('event is malformed: hash') as unknown });
    expect(await verifyAuditChain([null])).toMatchObject({ ok: false, brokenSeq: 1, reason: expect.stringContaining('event is malformed') as unknown });
  });

  it('verifies from a checkpoint anchor instead of genesis', async () => {
    const events = await chain(8);
    const anchor = { seq: 5, hash: events[4]!.hash };
    expect(await verifyAuditChain(events.slice(5), anchor)).toEqual({ ok: true, count: 3, lastSeq: 8, lastHash: events[7]!.hash });
    expect(await verifyAuditChain(events.slice(5), { seq: 5, hash: GENESIS_HASH })).toMatchObject({ ok: false, brokenSeq: 6 });
  });

  it('stops at the first break when streaming', async () => {
    const events = await chain(4);
    events[1] = { ...events[1]!, actor: 'agent:mallory' };
    const verifier = new AuditChainVerifier();
    expect(await verifier.push(events[0])).toBe(true);
    expect(await verifier.push(events[1])).toBe(false);
    expect(await verifier.push(events[2])).toBe(false);
    expect(verifier.result()).toMatchObject({ ok: false, count: 1, brokenSeq: 2 });
  });
});

describe('checkpoints', () => {
  const checkpoint = { seq: 42, hash: 'ab'.repeat(32), at: '2026-11-24T09:00:00.000Z' };

  it('signs the canonical JSON of {seq, hash, at}', () => {
    expect(checkpointPayload(checkpoint)).toBe(`{"at":"2026-11-24T09:00:00.000Z","hash":"${'ab'.repeat(32)}","seq":42}`);
    expect(() => checkpointPayload({ ...checkpoint, hash: 'xyz' })).toThrow();
  });

  it('verifies a signed checkpoint with the public key', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jws = await signCheckpoint(checkpoint, { privateKey, kid: 'k1' });
    expect(await verifyCheckpoint(jws, publicKey)).toEqual(checkpoint);
    expect(await verifyCheckpoint(jws, await exportJWK(publicKey))).toEqual(checkpoint);
  });

  it('rejects a checkpoint signed by another key or tampered with', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const other = await generateKeyPair('ES256');
    const jws = await signCheckpoint(checkpoint, { privateKey, kid: 'k1' });
    await expect(verifyCheckpoint(jws, other.publicKey)).rejects.toThrow('checkpoint signature is invalid (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)');
    const [h, , s] = jws.split('.');
    const forged = `${h}.${Buffer.from(checkpointPayload({ ...checkpoint, seq: 41 })).toString('base64url')}.${s}`;
    await expect(verifyCheckpoint(forged, other.publicKey)).rejects.toThrow('checkpoint signature is invalid');
  });

  it('rejects a JWS that is not a checkpoint', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const { CompactSign } = await import('jose');
    const wrongTyp = await new CompactSign(new TextEncoder().encode(checkpointPayload(checkpoint)))
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .sign(privateKey);
    await expect(verifyCheckpoint(wrongTyp, publicKey)).rejects.toThrow(`checkpoint typ must be ${CHECKPOINT_TYP}`);
    const badPayload = await new CompactSign(new TextEncoder().encode('{"seq":-1}'))
      .setProtectedHeader({ alg: 'ES256', typ: CHECKPOINT_TYP })
      .sign(privateKey);
    await expect(verifyCheckpoint(badPayload, publicKey)).rejects.toThrow('checkpoint payload is malformed');
  });
});
