import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatVerifierKey } from '@writ/core';
import { checkPrivateFile, DataDirError, openPrivateDir, writeFileAtomically } from './data-dir.js';

/** tlog-cosignature §Format: an Ed25519 cosigner's vkey has signature type 0x04. */
const COSIGNATURE_V1 = 0x04;

/** The key file in the data folder: PKCS #8 PEM, 0600. */
export const KEY_FILE = 'witness-key.pem';

/** The witness's signing identity: its key name, its private key and the vkey others trust. */
export interface WitnessKey {
  name: string;
  privateKey: KeyObject;
  /** `<name>+<hex key id>+<base64(0x04 || public key)>`, what a log or a monitor is configured with. */
  vkey: string;
}

/**
 * The witness's Ed25519 key from `<dataDir>/witness-key.pem`, made there on first start (0600 in
 * a 0700 folder, written atomically so a crash never leaves half a key). An existing key file that
 * another account can reach, or that is not an Ed25519 private key, stops start-up: a witness with
 * a leaked key vouches for nothing.
 *
 * @throws {DataDirError}
 */
export async function openWitnessKey(options: { dataDir: string; name: string }): Promise<WitnessKey> {
  openPrivateDir(options.dataDir);
  const file = join(options.dataDir, KEY_FILE);
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    await writeFileAtomically(file, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  }
  checkPrivateFile(file);
  const privateKey = readKey(file);
  return { name: options.name, privateKey, vkey: vkeyOf({ name: options.name, privateKey }) };
}

function readKey(file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(file));
  } catch {
    throw new DataDirError(`${file} is not a PEM private key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new DataDirError(`${file} is not an Ed25519 key (${key.asymmetricKeyType ?? 'unknown type'})`);
  return key;
}

/** The cosigner vkey (type 0x04, tlog-cosignature §Format) of an Ed25519 private key under `name`. */
export function vkeyOf(options: { name: string; privateKey: KeyObject }): string {
  const { x } = createPublicKey(options.privateKey).export({ format: 'jwk' });
  if (typeof x !== 'string') throw new Error('an Ed25519 public key has an x coordinate');
  return formatVerifierKey({ name: options.name, publicKey: new Uint8Array(Buffer.from(x, 'base64url')), type: COSIGNATURE_V1 });
}
