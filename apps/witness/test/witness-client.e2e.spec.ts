import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { latestWitnessed, submitCheckpoint } from '@writ/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type RunningWitness, startWitness } from './support/witness-fixture.js';
import { TestLog } from './support/test-log.js';

const NOW = 1_767_000_000_000;

let log: TestLog;
let running: RunningWitness;

beforeEach(async () => {
  log = new TestLog({ origin: 'registry.test/audit' });
  running = await startWitness({ logs: [{ origin: log.origin, vkeys: [log.vkey] }], now: () => NOW });
});

afterEach(async () => {
  await running.remove();
});

/** A stand-in witness that answers with `handler`, for answers a real witness never gives. */
async function fakeWitness(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

describe('submitCheckpoint', () => {
  it('gets a cosignature, checked against the witness vkey, with its time', async () => {
    log.append(6);
    const result = await submitCheckpoint({ url: running.url, note: await log.checkpoint(), oldSize: 0, proof: [], vkey: running.witness.vkey });
    expect(result).toEqual({ ok: true, cosignature: expect.stringMatching(/^\u2014 witness\.test\/w1 \S+\n$/), time: NOW / 1000 });
  });

  it('learns the size the witness holds from a 409 and succeeds from there with a real consistency proof', async () => {
    log.append(4);
    await submitCheckpoint({ url: running.url, note: await log.checkpoint(), oldSize: 0, proof: [] });
    log.append(9);
    const stale = await submitCheckpoint({ url: running.url, note: await log.checkpoint(), oldSize: 0, proof: [] });
    expect(stale).toEqual({ ok: false, status: 409, reason: 'conflict', witnessSize: 4 });
    const retried = await submitCheckpoint({ url: running.url, note: await log.checkpoint(), oldSize: 4, proof: await log.proof(4), vkey: running.witness.vkey });
    expect(retried.ok).toBe(true);
  });

  it("returns the witness's status and first line on a refusal", async () => {
    log.append(4);
    await submitCheckpoint({ url: running.url, note: await log.checkpoint(), oldSize: 0, proof: [] });
    log.append(2);
    const wrongProof = await log.proof(4);
    wrongProof[0] = new Uint8Array(32);
    expect(await submitCheckpoint({ url: running.url, note: await log.checkpoint(), oldSize: 4, proof: wrongProof })).toEqual({ ok: false, status: 422, reason: 'the consistency proof does not verify' });
    const stranger = new TestLog({ origin: 'elsewhere.test/log' }).append(1);
    expect(await submitCheckpoint({ url: running.url, note: await stranger.checkpoint(), oldSize: 0, proof: [] })).toEqual({ ok: false, status: 404, reason: 'this witness does not witness that origin' });
  });

  it('refuses a cosignature that does not verify with the vkey it was given', async () => {
    log.append(2);
    const other = await startWitness({ logs: [{ origin: log.origin, vkeys: [log.vkey] }] });
    try {
      expect(await submitCheckpoint({ url: running.url, note: await log.checkpoint(), oldSize: 0, proof: [], vkey: other.witness.vkey })).toEqual({
        ok: false,
        status: 200,
        reason: 'bad_cosignature: no line verifies with the witness key',
      });
    } finally {
      await other.remove();
    }
  });

  it('refuses bad input before sending anything', async () => {
    const note = await log.append(1).checkpoint();
    const cases: [Parameters<typeof submitCheckpoint>[0], string][] = [
      [{ url: 'ftp://witness.test', note, oldSize: 0, proof: [] }, 'url must be an http(s) URL without a trailing /'],
      [{ url: `${running.url}/`, note, oldSize: 0, proof: [] }, 'url must be an http(s) URL without a trailing /'],
      [{ url: running.url, note, oldSize: -1, proof: [] }, 'oldSize must be a whole number, at least 0'],
      [{ url: running.url, note, oldSize: 1.5, proof: [] }, 'oldSize must be a whole number, at least 0'],
      [{ url: running.url, note, oldSize: 1, proof: Array.from({ length: 64 }, () => new Uint8Array(32)) }, 'proof must hold at most 63 hashes'],
      [{ url: running.url, note, oldSize: 1, proof: [new Uint8Array(31)] }, 'every proof hash must be 32 bytes'],
      [{ url: running.url, note: note.trimEnd(), oldSize: 0, proof: [] }, 'note must be a signed note ending in a newline, at most 32 KiB'],
    ];
    for (const [options, reason] of cases) expect(await submitCheckpoint(options)).toEqual({ ok: false, status: 0, reason: `invalid_request: ${reason}` });
  });

  it('answers status 0 when the witness is unreachable, too slow or the caller aborts; never throws', async () => {
    const note = await log.append(1).checkpoint();
    const closed = await fakeWitness(() => undefined);
    await closeServer(closed.server);
    expect(await submitCheckpoint({ url: closed.url, note, oldSize: 0, proof: [] })).toEqual({ ok: false, status: 0, reason: 'unreachable' });

    const silent = await fakeWitness(() => undefined);
    try {
      expect(await submitCheckpoint({ url: silent.url, note, oldSize: 0, proof: [], timeoutMs: 200 })).toEqual({ ok: false, status: 0, reason: 'timeout' });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      expect(await submitCheckpoint({ url: silent.url, note, oldSize: 0, proof: [], signal: controller.signal })).toEqual({ ok: false, status: 0, reason: 'aborted' });
    } finally {
      await closeServer(silent.server);
    }
  });

  it('stops reading an answer larger than a cosignature, and refuses answers that are not signature lines', async () => {
    const note = await log.append(1).checkpoint();
    const huge = await fakeWitness((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = `\u2014 w ${'A'.repeat(1000)}\n`;
      for (let i = 0; i < 100; i += 1) response.write(chunk);
      response.end();
    });
    const garbled = await fakeWitness((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('<html>not a cosignature</html>\n');
    });
    const badSize = await fakeWitness((_request, response) => {
      response.writeHead(409, { 'content-type': 'text/x.tlog.size' });
      response.end('012\n');
    });
    try {
      expect(await submitCheckpoint({ url: huge.url, note, oldSize: 0, proof: [] })).toEqual({ ok: false, status: 200, reason: 'response_too_large: over 16384 bytes' });
      expect(await submitCheckpoint({ url: garbled.url, note, oldSize: 0, proof: [] })).toEqual({
        ok: false,
        status: 200,
        reason: 'bad_response: a cosignature answer is note signature lines, each ending in a newline',
      });
      expect(await submitCheckpoint({ url: badSize.url, note, oldSize: 0, proof: [] })).toEqual({
        ok: false,
        status: 409,
        reason: 'bad_response: a 409 text/x.tlog.size body is one decimal size and a newline',
      });
    } finally {
      await Promise.all([huge, garbled, badSize].map(({ server }) => closeServer(server)));
    }
  });
});

describe('latestWitnessed', () => {
  it('reads the latest cosigned checkpoint, its body, and the verified time of the cosignature', async () => {
    log.append(7);
    const note = await log.checkpoint();
    await submitCheckpoint({ url: running.url, note, oldSize: 0, proof: [] });
    const result = await latestWitnessed({ url: running.url, origin: log.origin, vkey: running.witness.vkey });
    expect(result).toEqual({ ok: true, note: expect.stringContaining(note), checkpoint: { origin: log.origin, size: 7, root: await log.root() }, cosignedAt: NOW / 1000 });
  });

  it('refuses a checkpoint without a valid cosignature by the given vkey, and passes on 404s', async () => {
    log.append(2);
    await submitCheckpoint({ url: running.url, note: await log.checkpoint(), oldSize: 0, proof: [] });
    const other = new TestLog({ origin: 'other.test/x' });
    expect(await latestWitnessed({ url: running.url, origin: log.origin, vkey: other.vkey })).toEqual({ ok: false, status: 200, reason: 'bad_cosignature: no line verifies with the witness key' });
    expect(await latestWitnessed({ url: running.url, origin: 'elsewhere.test/log' })).toEqual({ ok: false, status: 404, reason: 'this witness does not witness that origin' });
  });

  it('refuses the checkpoint of another origin than the one asked', async () => {
    const liar = await fakeWitness((_request, response) => {
      void log.append(1).checkpoint().then((note) => {
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end(note);
      });
    });
    try {
      expect(await latestWitnessed({ url: liar.url, origin: 'another.test/log' })).toEqual({ ok: false, status: 200, reason: 'bad_response: the checkpoint of another origin' });
    } finally {
      await closeServer(liar.server);
    }
  });
});
