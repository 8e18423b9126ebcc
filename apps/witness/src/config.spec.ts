import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatVerifierKey } from '@writ/core';
import { afterAll, describe, expect, it } from 'vitest';
import { loadWitnessConfig } from './config.js';
import { TrustedLogs } from './trusted-logs.js';

function vkey(name: string, type: 0x01 | 0x04 = 0x01): string {
  const { x } = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
  return formatVerifierKey({ name, publicKey: new Uint8Array(Buffer.from(x!, 'base64url')), type });
}

const a1 = vkey('a.test/log');
const a2 = vkey('a.test/log');
const b1 = vkey('b.test/log');
const folder = mkdtempSync(join(tmpdir(), 'writ-witness-config-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

describe('loadWitnessConfig', () => {
  it('has defaults for everything but the logs, which the caller may add itself', () => {
    expect(loadWitnessConfig({})).toEqual({ dataDir: resolve('.data/witness'), host: '127.0.0.1', port: 4200, name: 'writ.local/witness', logs: [] });
  });

  it('reads "<origin> <vkey>" pairs separated by ; or newlines; an origin named twice gets both keys', () => {
    const config = loadWitnessConfig({ WRIT_WITNESS_LOGS: `a.test/log ${a1}; b.test/log  ${b1}\n\n a.test/log ${a2} ;`, WRIT_WITNESS_PORT: '0', WRIT_WITNESS_NAME: 'w.example/1' });
    expect(config.logs).toEqual([
      { origin: 'a.test/log', vkeys: [a1, a2] },
      { origin: 'b.test/log', vkeys: [b1] },
    ]);
    expect({ port: config.port, name: config.name }).toEqual({ port: 0, name: 'w.example/1' });
  });

  it('reads a JSON logs file', () => {
    const file = join(folder, 'logs.json');
    writeFileSync(file, JSON.stringify([{ origin: 'a.test/log', vkeys: [a1, a2] }]));
    expect(loadWitnessConfig({ WRIT_WITNESS_LOGS: file }).logs).toEqual([{ origin: 'a.test/log', vkeys: [a1, a2] }]);
  });

  it.each([
    [`a.test/log`, 'entry 1 is not "<origin> <vkey>"'],
    [`a.test/log ${a1} extra`, 'entry 1 is not "<origin> <vkey>"'],
    [`b.test/log ${b1}; a.test/log`, 'entry 2 is not "<origin> <vkey>"'],
    [' ; ', 'names no log'],
    ['a.test/log not-a-vkey', 'the key of log a.test/log is not a signed-note verifier key (name+hex key id+base64)'],
    [`a.test/log ${vkey('a.test/log', 0x04)}`, 'the key of log a.test/log is not an Ed25519 (type 0x01) verifier key'],
    [`a\u0007.test ${a1}`, 'origin "a\\u0007.test" must be 1 to 255 characters without whitespace or control characters'],
    [`${'o'.repeat(256)} ${a1}`, `origin "${'o'.repeat(64)}" must be 1 to 255 characters without whitespace or control characters`],
    [Array.from({ length: 9 }, () => `a.test/log ${vkey('a.test/log')}`).join(';'), 'log a.test/log has more than 8 keys'],
    [join(folder, 'missing.json'), `cannot read ${join(folder, 'missing.json')}: ENOENT`],
  ])('refuses WRIT_WITNESS_LOGS=%j: %s', (value, message) => {
    expect(() => loadWitnessConfig({ WRIT_WITNESS_LOGS: value })).toThrow(`invalid witness configuration:\n  WRIT_WITNESS_LOGS: ${message}`);
  });

  it('refuses a logs file that is not JSON or not a list of logs', () => {
    const notJson = join(folder, 'not.json');
    writeFileSync(notJson, '[{');
    expect(() => loadWitnessConfig({ WRIT_WITNESS_LOGS: notJson })).toThrow(`WRIT_WITNESS_LOGS: ${notJson} is not JSON`);
    const wrong = join(folder, 'wrong.json');
    for (const content of [{ origin: 'a.test/log', vkeys: [a1] }, [], [{ origin: 'a.test/log', vkey: a1 }], [{ origin: 'a.test/log', vkeys: [] }]]) {
      writeFileSync(wrong, JSON.stringify(content));
      expect(() => loadWitnessConfig({ WRIT_WITNESS_LOGS: wrong })).toThrow(
        'WRIT_WITNESS_LOGS: the file must hold [{ "origin": "…", "vkeys": ["…"] }] (1 to 1000 logs, 1 to 8 keys each)',
      );
    }
  });

  it('refuses a key name with a space or a +, and a port out of range, naming each', () => {
    expect(() => loadWitnessConfig({ WRIT_WITNESS_NAME: 'my witness', WRIT_WITNESS_PORT: '70000' })).toThrow(
      /^invalid witness configuration:\n {2}WRIT_WITNESS_PORT: .*\n {2}WRIT_WITNESS_NAME: must be 1 to 255 characters without spaces or \+$/,
    );
    expect(() => loadWitnessConfig({ WRIT_WITNESS_NAME: 'a+b' })).toThrow('WRIT_WITNESS_NAME: must be 1 to 255 characters without spaces or +');
  });
});

describe('TrustedLogs', () => {
  it('answers the keys of a configured origin only, and takes a log added later (npm start adds its registry)', () => {
    const logs = new TrustedLogs([{ origin: 'a.test/log', vkeys: [a1] }]);
    expect(logs.keysOf('a.test/log')).toEqual([a1]);
    expect(logs.keysOf('b.test/log')).toBeUndefined();
    logs.add({ origin: 'b.test/log', vkeys: [b1] });
    expect(logs.keysOf('b.test/log')).toEqual([b1]);
    expect(() => logs.add({ origin: 'c.test/log', vkeys: ['nope'] })).toThrow('the key of log c.test/log is not a signed-note verifier key');
    expect(logs.size).toBe(2);
  });
});
