import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatVerifierKey } from '@writ/core';

/**
 * What signs the audit log's checkpoints: an Ed25519 key named by the log's origin (C2SP
 * tlog-checkpoint: the checkpoint's signer name is its origin), and the note verifier key that
 * checks its signatures, published at `GET /audit/checkpoint`'s side in docs and `audit verify`.
 */
export interface AuditLogSigner {
  /** The log's origin: the checkpoint's first line and the signature's key name. */
  origin: string;
  privateKey: KeyObject;
  /** C2SP signed-note verifier key: `<origin>+<key id>+<base64(0x01 || public key)>`. */
  vkey: string;
}

/** The key file under `<dataDir>/keys/`: PKCS #8 PEM, mode 0600. */
export const AUDIT_LOG_KEY_FILE = 'audit-log-ed25519.pem';

/**
 * The registry's checkpoint-signing key, made on first run in `<dataDir>/keys/audit-log-ed25519.pem`
 * (0600, in a 0700 folder, like the JWT signing keys) and read back on every later one: every
 * process sharing the data folder signs with the same key, so the vkey stays the same.
 */
export function auditLogSigner(options: { dataDir: string; origin: string }): AuditLogSigner {
  const dir = join(options.dataDir, 'keys');
  const file = join(dir, AUDIT_LOG_KEY_FILE);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' });
    try {
      // `wx`: when another process made it first, its key is the one read below.
      writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  chmodSync(file, 0o600);
  const privateKey = createPrivateKey(readFileSync(file));
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError(`${file} is not an Ed25519 private key`);
  return signerOf({ origin: options.origin, privateKey });
}

/**
 * A signer whose key lives only in this process: for tests and tools whose checkpoints are not
 * kept (the registry and its CLI always use {@link auditLogSigner}).
 */
export function ephemeralAuditLogSigner(origin = 'writ.invalid/audit'): AuditLogSigner {
  return signerOf({ origin, privateKey: generateKeyPairSync('ed25519').privateKey });
}

function signerOf(options: { origin: string; privateKey: KeyObject }): AuditLogSigner {
  const { x } = createPublicKey(options.privateKey).export({ format: 'jwk' });
  if (typeof x !== 'string') throw new TypeError('the audit log key has no public part');
  const vkey = formatVerifierKey({ name: options.origin, publicKey: new Uint8Array(Buffer.from(x, 'base64url')) });
  return { origin: options.origin, privateKey: options.privateKey, vkey };
}
