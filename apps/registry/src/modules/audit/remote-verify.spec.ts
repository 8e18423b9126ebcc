import { formatCheckpoint, signNote } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { InMemoryAuditRepository } from '../../testing/in-memory-audit.js';
import { InMemoryStore } from '../../testing/in-memory-store.js';
import { inMemoryKeys } from '../../testing/test-keys.js';
import { ephemeralAuditLogSigner } from './audit-log-key.js';
import { AuditService } from './audit.service.js';
import { verifyRemoteLog } from './remote-verify.js';

const ORIGIN = 'registry.remote.test/audit';
const REGISTRY = 'https://registry.remote.test';

/** A log of `size` events with a checkpoint at each size, and a `fetch` that answers as the registry. */
async function registry() {
  const log = ephemeralAuditLogSigner(ORIGIN);
  const audit = new AuditService({ repository: new InMemoryAuditRepository(new InMemoryStore()), keys: await inMemoryKeys(), clock: { now: () => 0 }, checkpointEvery: 1, log });
  const notes: string[] = [];
  const grow = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await audit.append({ type: 't' });
      notes.push((await audit.latestCheckpoint())!.note!);
    }
  };
  let served: { checkpoint?: string; proof?: string } = {};
  const fetch = (async (input: string | URL | Request) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    if (url.pathname === '/audit/checkpoint') return new Response(served.checkpoint ?? notes.at(-1)!, { status: 200 });
    if (url.pathname === '/audit/proof/consistency') {
      if (served.proof !== undefined) return new Response(served.proof, { status: 200 });
      const from = Number(url.searchParams.get('from'));
      const to = Number(url.searchParams.get('to'));
      const { proof } = await audit.consistencyProof({ from, to });
      return Response.json({ from, to, proof: proof.map((h) => Buffer.from(h).toString('base64')) });
    }
    return new Response('not found', { status: 404 });
  }) as typeof globalThis.fetch;
  return { log, grow, notes, fetch, serve: (s: typeof served) => (served = s) };
}

describe('verifyRemoteLog', () => {
  it('finds a log that grew from the saved checkpoint intact', async () => {
    const r = await registry();
    await r.grow(6);
    expect(await verifyRemoteLog({ checkpoint: r.notes[3]!, registry: REGISTRY, vkey: r.log.vkey, fetch: r.fetch })).toEqual({
      status: 0,
      lines: [`log intact: the registry's checkpoint of size 6 extends the saved checkpoint of size 4 (origin ${ORIGIN})`],
    });
  });

  it('says BROKEN when the registry serves a checkpoint its key did not sign', async () => {
    const r = await registry();
    const other = await registry();
    await r.grow(2);
    await other.grow(3);
    r.serve({ checkpoint: other.notes[2]! });
    const result = await verifyRemoteLog({ checkpoint: r.notes[1]!, registry: REGISTRY, vkey: r.log.vkey, fetch: r.fetch });
    expect(result.status).toBe(1);
    expect(result.lines[0]).toMatch(new RegExp(`^BROKEN: the registry's checkpoint is not signed by ${ORIGIN.replaceAll('.', '\\.')}: `));
  });

  it('says BROKEN when the registry signs a checkpoint of another origin', async () => {
    const r = await registry();
    await r.grow(2);
    const text = formatCheckpoint({ origin: 'elsewhere.test/audit', size: 3, root: new Uint8Array(32) });
    r.serve({ checkpoint: await signNote({ text, name: ORIGIN, privateKey: r.log.privateKey }) });
    expect(await verifyRemoteLog({ checkpoint: r.notes[1]!, registry: REGISTRY, vkey: r.log.vkey, fetch: r.fetch })).toEqual({
      status: 1,
      lines: [`BROKEN: the registry's checkpoint is of origin elsewhere.test/audit, the saved one of ${ORIGIN}`],
    });
  });

  it('says BROKEN for equal sizes with different roots, and for a malformed proof', async () => {
    const r = await registry();
    await r.grow(3);
    const text = formatCheckpoint({ origin: ORIGIN, size: 3, root: new Uint8Array(32) });
    r.serve({ checkpoint: await signNote({ text, name: ORIGIN, privateKey: r.log.privateKey }) });
    expect((await verifyRemoteLog({ checkpoint: r.notes[2]!, registry: REGISTRY, vkey: r.log.vkey, fetch: r.fetch })).lines).toEqual([
      "BROKEN: the registry's checkpoint of size 3 does not extend the saved checkpoint of size 3: the roots of the same size differ",
    ]);
    r.serve({ proof: '{"from":1,"to":3,"proof":["not base64"]}' });
    expect(await verifyRemoteLog({ checkpoint: r.notes[0]!, registry: REGISTRY, vkey: r.log.vkey, fetch: r.fetch })).toEqual({
      status: 1,
      lines: ["BROKEN: the registry's checkpoint of size 3 does not extend the saved checkpoint of size 1: the consistency proof is malformed"],
    });
  });

  it('cannot check a registry that does not answer, and says so (status 1)', async () => {
    const r = await registry();
    await r.grow(1);
    const down = (() => Promise.reject(new TypeError('fetch failed'))) as typeof globalThis.fetch;
    expect(await verifyRemoteLog({ checkpoint: r.notes[0]!, registry: `${REGISTRY}/`, vkey: r.log.vkey, fetch: down })).toEqual({
      status: 1,
      lines: [`cannot check: ${REGISTRY}/audit/checkpoint: unreachable`],
    });
  });
});
