import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DpopNonces, NONCE_BUCKET_S } from '../src/dpop-nonces.js';

/** The start of a bucket. */
const T0 = Date.parse('2026-11-24T09:00:00Z');
const BUCKET_MS = NONCE_BUCKET_S * 1000;

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'writ-nonce-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('DPoP server nonces', () => {
  let now = T0;
  const clock = { now: () => now };
  const secret = randomBytes(32);
  afterEach(() => {
    now = T0;
  });

  it('issues a 48-character base64url nonce, the same one throughout a bucket', () => {
    const nonces = new DpopNonces(secret, clock);
    const nonce = nonces.issue();
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{48}$/);
    now = T0 + BUCKET_MS - 1;
    expect(nonces.issue()).toBe(nonce);
    now = T0 + BUCKET_MS;
    expect(nonces.issue()).not.toBe(nonce);
  });

  it('accepts a nonce in its own bucket and in the next one', () => {
    const nonces = new DpopNonces(secret, clock);
    const nonce = nonces.issue();
    expect(nonces.accepts(nonce)).toBe(true);
    now = T0 + BUCKET_MS - 1;
    expect(nonces.accepts(nonce)).toBe(true);
    now = T0 + BUCKET_MS;
    expect(nonces.accepts(nonce)).toBe(true);
    now = T0 + 2 * BUCKET_MS - 1;
    expect(nonces.accepts(nonce)).toBe(true);
  });

  it('refuses a nonce once the bucket after its own is over', () => {
    const nonces = new DpopNonces(secret, clock);
    const nonce = nonces.issue();
    now = T0 + 2 * BUCKET_MS;
    expect(nonces.accepts(nonce)).toBe(false);
    now = T0 + 3 * 60_000;
    expect(nonces.accepts(nonce)).toBe(false);
  });

  it('refuses a nonce from a bucket that has not started', () => {
    const nonces = new DpopNonces(secret, clock);
    now = T0 + BUCKET_MS;
    const ahead = nonces.issue();
    now = T0;
    expect(nonces.accepts(ahead)).toBe(false);
  });

  it('accepts a nonce issued by another process holding the same secret', () => {
    const issued = new DpopNonces(Buffer.from(secret), clock).issue();
    expect(new DpopNonces(Buffer.from(secret), clock).accepts(issued)).toBe(true);
  });

  it('refuses a nonce made with another secret', () => {
    const other = new DpopNonces(randomBytes(32), clock).issue();
    expect(new DpopNonces(secret, clock).accepts(other)).toBe(false);
  });

  it('refuses a nonce whose MAC was tampered with', () => {
    const nonces = new DpopNonces(secret, clock);
    const bytes = Buffer.from(nonces.issue(), 'base64url');
    bytes[20]! ^= 0x01;
    expect(nonces.accepts(bytes.toString('base64url'))).toBe(false);
  });

  it('refuses a nonce whose bucket was moved forward to extend its life', () => {
    const nonces = new DpopNonces(secret, clock);
    const bytes = Buffer.from(nonces.issue(), 'base64url');
    bytes.writeUInt32BE(bytes.readUInt32BE(0) + 1);
    now = T0 + BUCKET_MS;
    expect(nonces.accepts(bytes.toString('base64url'))).toBe(false);
  });

  it.each<[string, (nonce: string) => string]>([
    ['empty', () => ''],
    ['short', () => 'abc'],
    ['a valid nonce cut by one character', (nonce) => nonce.slice(0, -1)],
    ['a valid nonce with padding', (nonce) => `${nonce}==`],
    ['a valid nonce with a standard base64 character', (nonce) => `+${nonce.slice(1)}`],
    ['48 zero characters', () => 'A'.repeat(48)],
    ['not base64url at all', () => '!'.repeat(48)],
  ])('refuses garbage: %s', (_name, garble) => {
    const nonces = new DpopNonces(secret, clock);
    expect(nonces.accepts(garble(nonces.issue()))).toBe(false);
  });

  it('refuses a secret that is not 32 bytes', () => {
    expect(() => new DpopNonces(randomBytes(16), clock)).toThrow('the DPoP nonce secret must be 32 bytes');
  });

  describe('secret in the data dir', () => {
    it('creates 32 random bytes next to the signing keys on first run, readable only by its owner', () => {
      const dir = tempDir();
      DpopNonces.open(dir, clock);
      const file = join(dir, 'keys/dpop-nonce-secret');
      expect(readFileSync(file)).toHaveLength(32);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    });

    it('is shared by every process that opens the same data dir', () => {
      const dir = tempDir();
      const first = DpopNonces.open(dir, clock);
      const second = DpopNonces.open(dir, clock);
      expect(second.accepts(first.issue())).toBe(true);
      expect(new DpopNonces(randomBytes(32), clock).accepts(first.issue())).toBe(false);
    });

    it('stops start-up on a secret file of the wrong size', () => {
      const dir = tempDir();
      DpopNonces.open(dir, clock);
      const file = join(dir, 'keys/dpop-nonce-secret');
      writeFileSync(file, 'short');
      expect(() => DpopNonces.open(dir, clock)).toThrow(`${file} must hold 32 bytes; delete it to make a new one`);
    });
  });
});
