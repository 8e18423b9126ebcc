import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createWitnessServer } from '../src/server.js';
import { addCheckpoint, get, startWitness, temporaryFolder } from './support/witness-fixture.js';
import { TestLog } from './support/test-log.js';

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function dataDir(): string {
  const parent = temporaryFolder();
  folders.push(parent);
  return join(parent, 'witness');
}

const mode = (path: string) => statSync(path).mode & 0o777;

describe('the witness data folder', () => {
  it('makes its key on first start: 0600 in a 0700 folder, its checkpoints 0600 in a 0700 folder', async () => {
    const log = new TestLog({ origin: 'registry.test/audit' }).append(3);
    const dir = dataDir();
    const running = await startWitness({ dataDir: dir, logs: [{ origin: log.origin, vkeys: [log.vkey] }] });
    try {
      expect((await addCheckpoint(running.url, await log.body(0))).status).toBe(200);
      expect(mode(dir)).toBe(0o700);
      expect(mode(join(dir, 'witness-key.pem'))).toBe(0o600);
      expect(readFileSync(join(dir, 'witness-key.pem'), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(mode(join(dir, 'checkpoints'))).toBe(0o700);
      const [file] = readdirSync(join(dir, 'checkpoints'));
      expect(mode(join(dir, 'checkpoints', file!))).toBe(0o600);
      expect(running.witness.vkey).toMatch(/^witness\.test\/w1\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$/);
    } finally {
      await running.close();
    }
  });

  it('keeps its key and the state of every log across a restart: no rollback after it, and the same vkey', async () => {
    const log = new TestLog({ origin: 'registry.test/audit' }).append(9);
    const dir = dataDir();
    const logs = [{ origin: log.origin, vkeys: [log.vkey] }];
    const first = await startWitness({ dataDir: dir, logs });
    expect((await addCheckpoint(first.url, await log.body(0))).status).toBe(200);
    const before = await get(first.url, `/checkpoint/${log.origin}`);
    await first.close();

    const second = await startWitness({ dataDir: dir, logs });
    try {
      expect(second.witness.vkey).toBe(first.witness.vkey);
      expect(await get(second.url, `/checkpoint/${log.origin}`)).toEqual(before);
      // A log that starts again from nothing is told the size it must prove from.
      expect(await addCheckpoint(second.url, await log.body(0))).toEqual({ status: 409, type: 'text/x.tlog.size', body: '9\n' });
      log.append(4);
      expect((await addCheckpoint(second.url, await log.body(9))).status).toBe(200);
    } finally {
      await second.close();
    }
  });

  it('cosigns nothing when the checkpoint cannot be written: 500 server_error, the old state kept, no temporary file left', async () => {
    const log = new TestLog({ origin: 'registry.test/audit' }).append(3);
    const dir = dataDir();
    const running = await startWitness({ dataDir: dir, logs: [{ origin: log.origin, vkeys: [log.vkey] }] });
    try {
      // A non-empty folder where the log's record goes: the rename over it fails.
      const blocked = join(dir, 'checkpoints', `${createHash('sha256').update(log.origin).digest('hex')}.json`);
      mkdirSync(join(blocked, 'in-the-way'), { recursive: true });
      expect(await addCheckpoint(running.url, await log.body(0))).toEqual({ status: 500, type: 'text/plain; charset=utf-8', body: 'server_error\n' });
      expect(running.warnings).toHaveLength(1);
      expect(running.warnings[0]).toMatch(/^unexpected error on POST \/add-checkpoint: /);
      expect(await get(running.url, `/checkpoint/${log.origin}`)).toMatchObject({ status: 404, body: 'this witness has cosigned no checkpoint of that log yet\n' });
      expect(readdirSync(join(dir, 'checkpoints')).filter((name) => name.endsWith('.tmp'))).toEqual([]);
      // Once the disk is writable again, the same submission passes.
      rmSync(blocked, { recursive: true });
      expect((await addCheckpoint(running.url, await log.body(0))).status).toBe(200);
    } finally {
      await running.close();
    }
  });

  it('refuses to start on a data folder other accounts can reach, naming the fix', async () => {
    const dir = dataDir();
    const log = new TestLog({ origin: 'registry.test/audit' });
    await (await startWitness({ dataDir: dir, logs: [{ origin: log.origin, vkeys: [log.vkey] }] })).close();
    chmodSync(dir, 0o755);
    const config = { dataDir: dir, host: '127.0.0.1', port: 0, name: 'witness.test/w1', logs: [{ origin: log.origin, vkeys: [log.vkey] }] };
    await expect(createWitnessServer({ config })).rejects.toThrow(`${dir} is open to other accounts (mode 755); check that nobody changed it, then: chmod 700 '${dir}'`);
    chmodSync(dir, 0o700);
    chmodSync(join(dir, 'witness-key.pem'), 0o644);
    await expect(createWitnessServer({ config })).rejects.toThrow(`${join(dir, 'witness-key.pem')} is open to other accounts (mode 644)`);
  });

  it('refuses to start when a log record is unreadable, rather than forget the log (which would allow a rollback)', async () => {
    const log = new TestLog({ origin: 'registry.test/audit' }).append(2);
    const dir = dataDir();
    const logs = [{ origin: log.origin, vkeys: [log.vkey] }];
    const running = await startWitness({ dataDir: dir, logs });
    await addCheckpoint(running.url, await log.body(0));
    await running.close();
    const [name] = readdirSync(join(dir, 'checkpoints'));
    const file = join(dir, 'checkpoints', name!);
    const config = { dataDir: dir, host: '127.0.0.1', port: 0, name: 'witness.test/w1', logs };

    writeFileSync(file, '{"origin":', { mode: 0o600 });
    await expect(createWitnessServer({ config })).rejects.toThrow(`${file} is not JSON: restore it from a backup; the witness does not start without its record of a log`);
    writeFileSync(file, JSON.stringify({ origin: log.origin, size: -1 }), { mode: 0o600 });
    await expect(createWitnessServer({ config })).rejects.toThrow(`${file} is not a cosigned checkpoint record: restore it from a backup`);
  });

  it('refuses a record filed under another origin (a record copied over another log)', async () => {
    const a = new TestLog({ origin: 'a.test/log' }).append(2);
    const b = new TestLog({ origin: 'b.test/log' }).append(5);
    const dir = dataDir();
    const logs = [a, b].map((log) => ({ origin: log.origin, vkeys: [log.vkey] }));
    const running = await startWitness({ dataDir: dir, logs });
    await addCheckpoint(running.url, await a.body(0));
    await addCheckpoint(running.url, await b.body(0));
    await running.close();
    const folder = join(dir, 'checkpoints');
    const [first, second] = readdirSync(folder).sort();
    writeFileSync(join(folder, first!), readFileSync(join(folder, second!)), { mode: 0o600 });
    await expect(createWitnessServer({ config: { dataDir: dir, host: '127.0.0.1', port: 0, name: 'witness.test/w1', logs } })).rejects.toThrow(/holds the checkpoint of another origin/);
  });
});
