import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyStore } from '../src/modules/keys/key-store.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'writ-keys-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('signing key store', () => {
  it('creates one ES256 key on first run, readable only by its owner, with no private member in JWKS', async () => {
    const dir = tempDir();
    const keys = new KeyStore(dir, { now: () => 0 }, 330);
    await keys.init();
    const { keys: jwks } = await keys.jwks();
    expect(jwks).toHaveLength(1);
    expect(jwks[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwks[0]).not.toHaveProperty('d');
    expect(statSync(join(dir, 'keys/signing-keys.json')).mode & 0o777).toBe(0o600);
  });

  it('keeps the same key across restarts', async () => {
    const dir = tempDir();
    const first = new KeyStore(dir, { now: () => 0 }, 330);
    await first.init();
    const again = new KeyStore(dir, { now: () => 0 }, 330);
    await again.init();
    expect((await again.active()).kid).toBe((await first.active()).kid);
  });

  it('serves a retired key until its last token has expired, then drops it', async () => {
    let now = Date.parse('2026-11-24T09:00:00Z');
    const keys = new KeyStore(tempDir(), { now: () => now }, 330);
    await keys.init();
    const old = (await keys.active()).kid;
    const { retired, active } = await keys.rotate();
    expect(retired).toBe(old);
    expect((await keys.active()).kid).toBe(active);
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([old, active]);
    now += 329_000;
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([old, active]);
    now += 2_000;
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([active]);
  });

  it('picks up a rotation made by another process sharing the folder within a second', async () => {
    const dir = tempDir();
    let now = 0;
    const serving = new KeyStore(dir, { now: () => now }, 330);
    await serving.init();
    const before = (await serving.active()).kid;
    const cli = new KeyStore(dir, { now: () => 0 }, 330);
    const { active } = await cli.rotate();
    // The file is looked at again at most once a second: no stat per token.
    now = 999;
    expect((await serving.active()).kid).toBe(before);
    now = 1000;
    expect((await serving.active()).kid).toBe(active);
  });
});
