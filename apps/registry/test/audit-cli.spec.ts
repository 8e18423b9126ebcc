import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './support/cli.js';

/** `audit verify`'s refusals of what it is given, each with status 2 and its exact message. */
describe('audit verify refuses unusable input', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'writ-audit-cli-'));
    writeFileSync(join(dir, 'large.txt'), 'x'.repeat(64 * 1024 + 1));
    writeFileSync(join(dir, 'latin1.txt'), Buffer.from([0x77, 0x72, 0x69, 0x74, 0xe9, 0x0a]));
    writeFileSync(join(dir, 'note.txt'), 'registry.test/audit\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n');
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const file = (name: string) => join(dir, name);

  it.each([
    [() => ['--registry', 'http://127.0.0.1:9'], () => 'audit verify --registry needs --checkpoint <file>: a checkpoint of that log saved before'],
    [() => ['--checkpoint', file('missing.txt'), '--registry', 'http://127.0.0.1:9', '--vkey', 'k'], () => `audit verify: cannot read --checkpoint ${file('missing.txt')}: no such file`],
    [() => ['--checkpoint', file('large.txt'), '--registry', 'http://127.0.0.1:9', '--vkey', 'k'], () => `audit verify: --checkpoint ${file('large.txt')} is larger than 65536 bytes: not a checkpoint note`],
    [() => ['--checkpoint', file('latin1.txt'), '--registry', 'http://127.0.0.1:9', '--vkey', 'k'], () => `audit verify: --checkpoint ${file('latin1.txt')} is not UTF-8 text`],
    [() => ['--checkpoint', file('note.txt'), '--registry', 'http://127.0.0.1:9'], () => `audit verify: give the log's verifier key with --vkey (there is no audit log key in ${file('data')})`],
  ])('refuses case %#, with status 2', async (args, message) => {
    const { code, stderr } = await cli(['audit', 'verify', ...args()], { WRIT_DATA_DIR: file('data') });
    expect(stderr).toBe(`${message()}\n`);
    expect(code).toBe(2);
  }, 60_000);
});
