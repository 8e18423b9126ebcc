import { createPrivateKey, type JsonWebKey, randomUUID, sign } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Clock } from '@writ/core';

/** One signing key as kept on disk. */
interface StoredKey {
  kid: string;
  alg: 'ES256';
  createdAt: string;
  /** Set when the key was replaced; it still verifies until `servedUntil`. */
  retiredAt?: string;
  /** A retired key stays in JWKS until the last token it signed has expired. */
  servedUntil?: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

interface KeyFile {
  keys: StoredKey[];
}

/** How long a process trusts its cached key file before looking at the file's mtime again. */
const STAT_EVERY_MS = 1000;

/** The key tokens and checkpoints are signed with now. */
export interface ActiveKey {
  kid: string;
  alg: 'ES256';
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** ES256 over `input` with node:crypto (R || S, RFC 7518 §3.4): the fast path for token signing. */
  sign: (input: Uint8Array) => Uint8Array;
}

/**
 * The registry's signing keys, kept in `<dataDir>/keys/signing-keys.json` (mode 0600, git-ignored):
 * created on first run, rotated by a command. Several registry processes may share the folder:
 * the file is re-read when it changes, and written atomically (write then rename).
 */
export class KeyStore {
  private readonly file: string;
  private cache: { mtimeMs: number; keys: StoredKey[]; active: ActiveKey } | undefined;
  private statAt = Number.NEGATIVE_INFINITY;

  constructor(
    dataDir: string,
    private readonly clock: Clock,
    /** Longest life of anything signed (token TTL plus clock skew), in seconds. */
    private readonly maxSignedLifeSeconds: number,
  ) {
    const dir = join(dataDir, 'keys');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = join(dir, 'signing-keys.json');
  }

  /** Loads the keys, creating the first one if there is none. */
  async init(): Promise<void> {
    if (!existsSync(this.file)) this.write({ keys: [await this.newKey()] });
    await this.load();
  }

  /** The current signing key. */
  async active(): Promise<ActiveKey> {
    return (await this.load()).active;
  }

  /** The public JWK Set: the active key and every retired key still within its serving time. */
  async jwks(): Promise<{ keys: JWK[] }> {
    const { keys } = await this.load();
    const now = this.clock.now();
    return {
      keys: keys
        .filter((k) => k.servedUntil === undefined || Date.parse(k.servedUntil) > now)
        .map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' })),
    };
  }

  /**
   * Replaces the active key. The old one leaves JWKS only after every token it signed has expired;
   * keys whose serving time is over are dropped from the file.
   */
  async rotate(): Promise<{ retired: string; active: string }> {
    const { keys } = await this.load();
    const now = this.clock.now();
    const current = keys.find((k) => k.retiredAt === undefined);
    const fresh = await this.newKey();
    const kept = keys
      .filter((k) => k.servedUntil === undefined || Date.parse(k.servedUntil) > now)
      .map((k) =>
        k.retiredAt === undefined
          ? { ...k, retiredAt: new Date(now).toISOString(), servedUntil: new Date(now + this.maxSignedLifeSeconds * 1000).toISOString() }
          : k,
      );
    this.write({ keys: [...kept, fresh] });
    await this.load();
    return { retired: current?.kid ?? '', active: fresh.kid };
  }

  private async newKey(): Promise<StoredKey> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    return {
      kid: `${new Date(this.clock.now()).toISOString().slice(0, 10)}-${randomUUID().slice(0, 8)}`,
      alg: 'ES256',
      createdAt: new Date(this.clock.now()).toISOString(),
      privateJwk: await exportJWK(privateKey),
      publicJwk: await exportJWK(publicKey),
    };
  }

  private write(content: KeyFile): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(content, null, 2), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.file);
    this.cache = undefined;
  }

  private async load(): Promise<{ keys: StoredKey[]; active: ActiveKey }> {
    // Another process may rotate the file: look at it at most every STAT_EVERY_MS (a stat per token
    // is a system call on the hot path); a rotation here clears the cache at once.
    const checkedAt = this.clock.now();
    if (this.cache && checkedAt - this.statAt < STAT_EVERY_MS) return this.cache;
    const { mtimeMs } = statSync(this.file);
    this.statAt = checkedAt;
    if (this.cache && this.cache.mtimeMs === mtimeMs) return this.cache;
    const content = JSON.parse(readFileSync(this.file, 'utf8')) as KeyFile;
    const current = content.keys.find((k) => k.retiredAt === undefined);
    if (!current) throw new Error(`no active signing key in ${this.file}`);
    const active: ActiveKey = {
      kid: current.kid,
      alg: current.alg,
      privateKey: (await importJWK(current.privateJwk, current.alg)) as CryptoKey,
      publicJwk: current.publicJwk,
      sign: signerFor(current.privateJwk),
    };
    this.cache = { mtimeMs, keys: content.keys, active };
    return this.cache;
  }
}

function signerFor(privateJwk: JWK): (input: Uint8Array) => Uint8Array {
  const key = createPrivateKey({ key: privateJwk as JsonWebKey, format: 'jwk' });
  return (input) => sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' });
}
