import { createHash, createPublicKey, verify } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatCheckpoint, parseVerifierKey, verifyCosignature } from '@writ/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addCheckpoint, get, type RunningWitness, startWitness } from './support/witness-fixture.js';
import { TestLog } from './support/test-log.js';

const TEXT = 'text/plain; charset=utf-8';
const NOW = 1_767_000_000_000;
const COSIGNATURE_LINE = /^\u2014 witness\.test\/w1 [A-Za-z0-9+/]+={0,2}\n$/;

let log: TestLog;
let running: RunningWitness;

beforeEach(async () => {
  log = new TestLog({ origin: 'registry.test/audit' });
  running = await startWitness({ logs: [{ origin: log.origin, vkeys: [log.vkey] }], now: () => NOW });
});

afterEach(async () => {
  await running.remove();
});

/**
 * The cosignature checked without the shared library: tlog-cosignature §Format and §Ed25519
 * signed message, by hand, with node:crypto's Ed25519.
 */
function independentlyVerified(options: { line: string; checkpointText: string; vkey: string }): { time: number } {
  const [, name, payload] = /^\u2014 (\S+) (\S+)\n?$/.exec(options.line)!;
  const { publicKey, keyId } = parseVerifierKey(options.vkey);
  const bytes = Buffer.from(payload!, 'base64');
  expect(bytes.length).toBe(4 + 8 + 64);
  const expectedId = createHash('sha256').update(Buffer.concat([Buffer.from(`${name}\n`), Buffer.from([0x04]), Buffer.from(publicKey)])).digest().subarray(0, 4);
  expect(Buffer.from(keyId)).toEqual(expectedId);
  expect(bytes.subarray(0, 4)).toEqual(expectedId);
  const time = Number(bytes.readBigUInt64BE(4));
  const message = Buffer.from(`cosignature/v1\ntime ${time}\n${options.checkpointText}`);
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
  expect(verify(null, message, key, bytes.subarray(12))).toBe(true);
  return { time };
}

describe('POST /add-checkpoint: cosigning', () => {
  it('cosigns a first checkpoint from old size 0 and then one that a consistency proof extends, each verifiable by the library and by hand', async () => {
    log.append(5);
    const first = await addCheckpoint(running.url, await log.body(0));
    expect(first).toMatchObject({ status: 200, type: TEXT });
    expect(first.body).toMatch(COSIGNATURE_LINE);
    const text5 = await log.text(5);
    await expect(verifyCosignature({ checkpointText: text5, line: first.body.trimEnd(), vkey: running.witness.vkey })).resolves.toEqual({ time: NOW / 1000 });
    expect(independentlyVerified({ line: first.body, checkpointText: text5, vkey: running.witness.vkey })).toEqual({ time: NOW / 1000 });

    log.append(7);
    const second = await addCheckpoint(running.url, await log.body(5));
    expect(second.status).toBe(200);
    expect(independentlyVerified({ line: second.body, checkpointText: await log.text(12), vkey: running.witness.vkey })).toEqual({ time: NOW / 1000 });
    // A cosignature over another checkpoint does not verify.
    await expect(verifyCosignature({ checkpointText: text5, line: second.body.trimEnd(), vkey: running.witness.vkey })).rejects.toThrow();
  });

  it('cosigns every growth of a log from 1 to 40 leaves, one leaf at a time and in jumps', async () => {
    let witnessed = 0;
    for (const grow of [1, 1, 2, 3, 1, 8, 5, 16, 3]) {
      log.append(grow);
      const answer = await addCheckpoint(running.url, await log.body(witnessed));
      expect(answer.status, `from ${witnessed} to ${log.size}`).toBe(200);
      witnessed = log.size;
    }
    expect(witnessed).toBe(40);
  });

  it('cosigns the same checkpoint again (old size = size, same root)', async () => {
    log.append(3);
    expect((await addCheckpoint(running.url, await log.body(0))).status).toBe(200);
    expect((await addCheckpoint(running.url, await log.body(3))).status).toBe(200);
  });

  it('accepts a checkpoint that also carries signatures by keys it does not know', async () => {
    log.append(4);
    const other = new TestLog({ origin: log.origin }).append(4);
    const body = await log.body(0);
    const foreign = (await other.checkpoint(4)).split('\n\n')[1]!;
    expect((await addCheckpoint(running.url, `${body}${foreign}`)).status).toBe(200);
  });

  it('persists the checkpoint before answering, in a 0600 file of a 0700 folder, and leaves no temporary file', async () => {
    log.append(6);
    const answer = await addCheckpoint(running.url, await log.body(0));
    expect(answer.status).toBe(200);
    const folder = join(running.dataDir, 'checkpoints');
    const files = readdirSync(folder);
    expect(files).toEqual([`${createHash('sha256').update(log.origin).digest('hex')}.json`]);
    const record = JSON.parse(readFileSync(join(folder, files[0]!), 'utf8')) as Record<string, unknown>;
    expect(record).toMatchObject({ origin: log.origin, size: 6, root: Buffer.from(await log.root(6)).toString('base64'), cosignature: answer.body, time: NOW / 1000 });
  });

  it('never goes back in time: a cosignature is dated no earlier than the last one of that log', async () => {
    let now = NOW;
    await running.remove();
    running = await startWitness({ logs: [{ origin: log.origin, vkeys: [log.vkey] }], now: () => now });
    log.append(2);
    await addCheckpoint(running.url, await log.body(0));
    now = NOW - 60_000;
    log.append(2);
    const answer = await addCheckpoint(running.url, await log.body(2));
    expect(independentlyVerified({ line: answer.body, checkpointText: await log.text(4), vkey: running.witness.vkey }).time).toBe(NOW / 1000);
  });
});

describe('POST /add-checkpoint: refusals', () => {
  it('answers 404 for an origin it does not witness', async () => {
    const stranger = new TestLog({ origin: 'elsewhere.test/log' }).append(2);
    expect(await addCheckpoint(running.url, await stranger.body(0))).toEqual({ status: 404, type: TEXT, body: 'this witness does not witness that origin\n' });
  });

  it('answers 403 for a checkpoint of a known origin signed by no key of that log', async () => {
    const impostor = new TestLog({ origin: log.origin }).append(2);
    expect(await addCheckpoint(running.url, await impostor.body(0))).toEqual({ status: 403, type: TEXT, body: 'no valid signature by a key of log registry.test/audit\n' });
  });

  it('answers 403 for a checkpoint whose signature by the log key does not match its text', async () => {
    log.append(3);
    const body = await log.body(0);
    const tampered = body.replace(`\n3\n`, '\n4\n');
    expect(tampered).not.toBe(body);
    expect((await addCheckpoint(running.url, tampered)).status).toBe(403);
  });

  it('answers 409 text/x.tlog.size with the size it holds when the old size is not it', async () => {
    log.append(5);
    await addCheckpoint(running.url, await log.body(0));
    log.append(3);
    expect(await addCheckpoint(running.url, await log.body(3))).toEqual({ status: 409, type: 'text/x.tlog.size', body: '5\n' });
    expect(await addCheckpoint(running.url, await log.body(0))).toEqual({ status: 409, type: 'text/x.tlog.size', body: '5\n' });
  });

  it('refuses a fork: the same size as the cosigned checkpoint with another root is 409', async () => {
    const key = TestLog.keyPair();
    const honest = new TestLog({ origin: 'fork.test/log', key }).append(8);
    const forked = new TestLog({ origin: 'fork.test/log', key, seed: 'rewritten' }).append(8);
    await running.remove();
    running = await startWitness({ logs: [{ origin: honest.origin, vkeys: [honest.vkey] }] });
    expect((await addCheckpoint(running.url, await honest.body(0))).status).toBe(200);
    expect(await addCheckpoint(running.url, await forked.body(8))).toEqual({ status: 409, type: TEXT, body: 'the checkpoint has another root than the one cosigned at that size\n' });
    expect(running.warnings).toEqual(['log fork.test/log: old size 8, new size 8: another root at the size it cosigned (a fork)']);
  });

  it('refuses a fork that grew: a larger checkpoint whose proof does not lead from the cosigned root is 422', async () => {
    const key = TestLog.keyPair();
    const honest = new TestLog({ origin: 'fork.test/log', key }).append(8);
    const forked = new TestLog({ origin: 'fork.test/log', key, seed: 'rewritten' }).append(13);
    await running.remove();
    running = await startWitness({ logs: [{ origin: honest.origin, vkeys: [honest.vkey] }] });
    await addCheckpoint(running.url, await honest.body(0));
    expect(await addCheckpoint(running.url, await forked.body(8))).toEqual({ status: 422, type: TEXT, body: 'the consistency proof does not verify\n' });
    expect(running.warnings).toEqual(['log fork.test/log: old size 8, new size 13: the consistency proof does not verify']);
    // The witness still holds the honest checkpoint.
    expect((await get(running.url, `/checkpoint/${honest.origin}`)).body).toContain(`\n8\n${Buffer.from(await honest.root(8)).toString('base64')}\n`);
  });

  it('refuses a rollback: a checkpoint smaller than the cosigned one (400 with the old size it holds, 409 with its own)', async () => {
    log.append(12);
    await addCheckpoint(running.url, await log.body(0));
    const smaller = await log.checkpoint(8);
    expect(await addCheckpoint(running.url, `old 12\n\n${smaller}`)).toEqual({ status: 400, type: TEXT, body: 'the old size is larger than the checkpoint size\n' });
    expect(await addCheckpoint(running.url, `old 8\n\n${smaller}`)).toEqual({ status: 409, type: 'text/x.tlog.size', body: '12\n' });
  });

  it('answers 422 for a consistency proof that does not verify (a hash changed, one missing, one too many)', async () => {
    log.append(5);
    await addCheckpoint(running.url, await log.body(0));
    log.append(6);
    const proof = await log.proof(5);
    const note = await log.checkpoint();
    const line = (hash: Uint8Array) => `${Buffer.from(hash).toString('base64')}\n`;
    const changed = proof.map((hash, i) => (i === 0 ? hash.map((byte, j) => (j === 0 ? byte ^ 1 : byte)) : hash));
    for (const bad of [changed, proof.slice(1), [...proof, proof[0]!]]) {
      expect(await addCheckpoint(running.url, `old 5\n${bad.map(line).join('')}\n${note}`)).toEqual({ status: 422, type: TEXT, body: 'the consistency proof does not verify\n' });
    }
    expect((await addCheckpoint(running.url, `old 5\n${proof.map(line).join('')}\n${note}`)).status).toBe(200);
  });

  it('answers 422 for a proof between equal sizes, and for a first empty checkpoint whose root is not the empty root', async () => {
    log.append(3);
    await addCheckpoint(running.url, await log.body(0));
    const proofLine = `${Buffer.alloc(32).toString('base64')}\n`;
    expect(await addCheckpoint(running.url, `old 3\n${proofLine}\n${await log.checkpoint(3)}`)).toEqual({ status: 422, type: TEXT, body: 'the consistency proof between equal sizes must be empty\n' });

    const empty = new TestLog({ origin: 'empty.test/log' });
    await running.remove();
    running = await startWitness({ logs: [{ origin: empty.origin, vkeys: [empty.vkey] }] });
    expect((await addCheckpoint(running.url, await empty.body(0))).status).toBe(200);
    // A first checkpoint of size 0 whose root is not SHA-256(""): signed by the log, still refused.
    const bogus = await empty.sign(formatCheckpoint({ origin: empty.origin, size: 0, root: new Uint8Array(32).fill(9) }));
    await running.remove();
    running = await startWitness({ logs: [{ origin: empty.origin, vkeys: [empty.vkey] }] });
    expect(await addCheckpoint(running.url, `old 0\n\n${bogus}`)).toEqual({ status: 422, type: TEXT, body: 'an empty tree has the root SHA-256("")\n' });
  });

  it('answers 400 to a body that is not an add-checkpoint request, saying what is wrong', async () => {
    log.append(2);
    const note = await log.checkpoint();
    const hash = `${Buffer.alloc(32, 7).toString('base64')}\n`;
    const cases: [string | Uint8Array<ArrayBuffer>, string][] = [
      ['', 'the body must be an old size line, consistency proof lines, an empty line and a checkpoint, each line ending in a newline'],
      [`old 0`, 'the body must be an old size line, consistency proof lines, an empty line and a checkpoint, each line ending in a newline'],
      [`old 0\n${note}`, 'a consistency proof line must be one SHA-256 hash in base64'],
      [`old 01\n\n${note}`, 'the first line must be "old <size>", the size in decimal without leading zeroes'],
      [`old -1\n\n${note}`, 'the first line must be "old <size>", the size in decimal without leading zeroes'],
      [`old  1\n\n${note}`, 'the first line must be "old <size>", the size in decimal without leading zeroes'],
      [`Old 0\n\n${note}`, 'the first line must be "old <size>", the size in decimal without leading zeroes'],
      [`old 9007199254740992\n\n${note}`, 'the first line must be "old <size>", the size in decimal without leading zeroes'],
      [`old 1\n${Buffer.alloc(31).toString('base64')}\n\n${note}`, 'a consistency proof line must be one SHA-256 hash in base64'],
      [`old 1\n${Buffer.alloc(32).toString('base64url')}x\n\n${note}`, 'a consistency proof line must be one SHA-256 hash in base64'],
      // The same 32 bytes, but not the canonical spelling (the last character's spare bits set).
      [`old 1\n${Buffer.alloc(32).toString('base64').replace('A=', 'B=')}\n\n${note}`, 'a consistency proof line must be one SHA-256 hash in base64'],
      [`old 1\n${hash.repeat(64)}\n${note}`, 'more than 63 consistency proof lines'],
      ['old 0\n\n', 'no checkpoint after the empty line'],
      [`old 0\n${hash}\n${note}`, 'the consistency proof must be empty when the old size is 0'],
      [`old 3\n\n${note}`, 'the old size is larger than the checkpoint size'],
      [Uint8Array.from([...Buffer.from('old 0\n\n'), 0xff, 0xfe, 0x0a]), 'the body is not UTF-8'],
    ];
    for (const [body, message] of cases) {
      expect(await addCheckpoint(running.url, body), JSON.stringify(body).slice(0, 60)).toEqual({ status: 400, type: TEXT, body: `${message}\n` });
    }
  });

  it('answers 400 to a known origin whose note is not a signed checkpoint', async () => {
    log.append(2);
    const note = await log.checkpoint();
    const unsigned = `${await log.text()}`;
    const answer = await addCheckpoint(running.url, `old 0\n\n${unsigned}`);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatch(/^the checkpoint is not a signed checkpoint note \([a-z_]+\)\n$/);
    expect((await addCheckpoint(running.url, `old 0\n\n${note.replace('\n\n', '\nextra\n\n')}`)).status).toBe(403);
  });

  it('answers 413 to a body over 64 KiB, announced or not, and keeps serving', async () => {
    log.append(2);
    const big = `old 0\n\n${await log.checkpoint()}${'\u2014 x '.padEnd(70_000, 'A')}\n`;
    expect(await addCheckpoint(running.url, big)).toEqual({ status: 413, type: TEXT, body: 'the body is larger than 65536 bytes\n' });
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 20; i += 1) controller.enqueue(new Uint8Array(8 * 1024).fill(0x41));
        controller.close();
      },
    });
    const response = await fetch(`${running.url}/add-checkpoint`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    expect({ status: response.status, body: await response.text() }).toEqual({ status: 413, body: 'the body is larger than 65536 bytes\n' });
    expect((await addCheckpoint(running.url, await log.body(0))).status).toBe(200);
  });

  it('answers 405 with Allow to another method, and 404 to another path', async () => {
    const response = await fetch(`${running.url}/add-checkpoint`);
    expect({ status: response.status, allow: response.headers.get('allow'), body: await response.text() }).toEqual({ status: 405, allow: 'POST', body: 'method not allowed\n' });
    expect(await get(running.url, '/add-checkpoints')).toEqual({ status: 404, type: TEXT, body: 'not found\n' });
  });
});

describe('GET /checkpoint/<origin> and /healthz', () => {
  it('answers the latest cosigned checkpoint with the log signature and the cosignature, by plain or encoded origin', async () => {
    log.append(4);
    const note = await log.checkpoint();
    const cosignature = (await addCheckpoint(running.url, `old 0\n\n${note}`)).body;
    for (const path of [`/checkpoint/${log.origin}`, `/checkpoint/${encodeURIComponent(log.origin)}`]) {
      expect(await get(running.url, path)).toEqual({ status: 200, type: TEXT, body: `${note}${cosignature}` });
    }
  });

  it('answers 404 for an origin it does not witness or has cosigned nothing of, 400 for a bad encoding', async () => {
    expect(await get(running.url, '/checkpoint/elsewhere.test%2Flog')).toEqual({ status: 404, type: TEXT, body: 'this witness does not witness that origin\n' });
    expect(await get(running.url, `/checkpoint/${log.origin}`)).toEqual({ status: 404, type: TEXT, body: 'this witness has cosigned no checkpoint of that log yet\n' });
    expect(await get(running.url, '/checkpoint/%E0%A4%A')).toEqual({ status: 400, type: TEXT, body: 'the origin is not URL-encoded text\n' });
  });

  it('answers /healthz', async () => {
    expect(await get(running.url, '/healthz')).toEqual({ status: 200, type: TEXT, body: 'ok\n' });
  });
});

describe('concurrent submissions', () => {
  it('lets exactly one of several submissions from the same old size pass; the others learn the new size', async () => {
    log.append(5);
    await addCheckpoint(running.url, await log.body(0));
    const bodies: string[] = [];
    for (let i = 0; i < 8; i += 1) {
      log.append(1 + i);
      bodies.push(await log.body(5));
    }
    const answers = await Promise.all(bodies.map((body) => addCheckpoint(running.url, body)));
    const passed = answers.filter((answer) => answer.status === 200);
    expect(passed).toHaveLength(1);
    const winner = bodies[answers.indexOf(passed[0]!)]!;
    const winnerSize = Number(winner.split('\n\n')[1]!.split('\n')[1]);
    for (const answer of answers.filter((a) => a.status !== 200)) expect(answer).toEqual({ status: 409, type: 'text/x.tlog.size', body: `${winnerSize}\n` });
    expect((await get(running.url, `/checkpoint/${log.origin}`)).body).toContain(`\n${winnerSize}\n`);
  });
});
