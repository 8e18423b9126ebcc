import type { CryptoKey } from 'jose';
import { base64url } from 'jose';
import { toHex, utf8 } from '../encoding.js';
import { decodeBase64, encodeBase64 } from './base64.js';
import { MERKLE_HASH_BYTES, type MerkleHash } from './merkle.js';
import { sha256 } from '@noble/hashes/sha2.js';

/**
 * C2SP signed notes (c2sp.org/signed-note), transparency-log checkpoints (c2sp.org/tlog-checkpoint)
 * and witness cosignatures (c2sp.org/tlog-cosignature, cosignature/v1), with Ed25519 only, through
 * Web Crypto so that the same code runs in a browser, in Node and in the witness.
 *
 * Parsing is strict and bounded: a note is at most 1 MiB of valid UTF-8 without ASCII control
 * characters other than newline, with at most 100 signature lines; anything else is refused with a
 * {@link NoteError} whose `code` says why.
 */

/**
 * Why a note, key, checkpoint or cosignature was refused.
 *
 * - `note_too_large`: more than 1 MiB of UTF-8.
 * - `too_many_signatures`: more than 100 signature lines.
 * - `malformed_note`: not valid UTF-8, a control character, no blank line before the signatures,
 *   or a text that does not end in a newline.
 * - `malformed_signature`: a signature line that is not `— <name> <base64>` with at least 5 bytes.
 * - `malformed_key_name`: an empty key name, or one with a space, a `+` or a control character.
 * - `malformed_verifier_key`: a vkey that is not `<name>+<8 hex key id>+<base64(type || key)>`,
 *   of an unsupported type, or whose key id does not match its key.
 * - `unknown_key`: no signature of the note is by a key the caller trusts.
 * - `bad_signature`: a signature by a trusted key does not verify.
 * - `unusable_key`: a signing key that is not an Ed25519 private key, or whose public key cannot be known.
 * - `malformed_checkpoint`: a note text that is not a checkpoint (origin, size, root, extensions).
 * - `malformed_cosignature`: a cosignature that is not key id, 8-byte time and 64-byte signature,
 *   or a time past 2^53 - 1.
 */
export type NoteErrorCode =
  | 'note_too_large'
  | 'too_many_signatures'
  | 'malformed_note'
  | 'malformed_signature'
  | 'malformed_key_name'
  | 'malformed_verifier_key'
  | 'unknown_key'
  | 'bad_signature'
  | 'unusable_key'
  | 'malformed_checkpoint'
  | 'malformed_cosignature';

/**
 * The one error of this module; switch on `code`, the message is for people and may change. It
 * never carries a whole signature or key.
 *
 * @example
 * ```ts
 * try {
 *   await openNote({ note, verifiers: [logKey] });
 * } catch (e) {
 *   if (e instanceof NoteError && e.code === 'bad_signature') alarm();
 * }
 * ```
 */
export class NoteError extends Error {
  constructor(
    readonly code: NoteErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'NoteError';
  }
}

/** Signature type 0x01: Ed25519 over the note text (signed-note §Ed25519 signatures). */
export const NOTE_TYPE_ED25519 = 0x01;
/** Signature type 0x04: timestamped Ed25519 witness cosignatures (tlog-cosignature). */
export const NOTE_TYPE_COSIGNATURE = 0x04;

/**
 * A verifier key, parsed.
 *
 * @example
 * ```ts
 * const { name, keyId, type, publicKey }: NoteKey = parseVerifierKey(vkey);
 * ```
 */
export interface NoteKey {
  name: string;
  /** The 4-byte key id: SHA-256(name || 0x0A || type || public key)[:4]. */
  keyId: Uint8Array;
  type: 0x01 | 0x04;
  /** The 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
}

/**
 * A Node `KeyObject` as this module uses it, described by its shape so that libs/core imports
 * nothing from Node: an Ed25519 private key exported as a JWK.
 */
export interface NodeEd25519KeyObject {
  type: string;
  asymmetricKeyType?: string;
  export(options: { format: 'jwk' }): unknown;
}

/** An Ed25519 private key: a Web Crypto key, or a Node `KeyObject`. */
export type NoteSigningKey = CryptoKey | NodeEd25519KeyObject;

/** The largest note this module reads or writes: 1 MiB of UTF-8. */
export const MAX_NOTE_BYTES = 1024 * 1024;
/** The most signature lines a note may carry (the spec asks for at least 16; Go's note allows 100). */
export const MAX_NOTE_SIGNATURES = 100;

const SIGNATURE_PREFIX = '\u2014 ';
const ED25519_SIGNATURE_BYTES = 64;
const ED25519_PUBLIC_KEY_BYTES = 32;
const KEY_ID_BYTES = 4;
const COSIGNATURE_BYTES = KEY_ID_BYTES + 8 + ED25519_SIGNATURE_BYTES;

/** Any ASCII control character other than newline (signed-note §Format). */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
/** A lone UTF-16 surrogate: a string holding one has no UTF-8 form. */
const LONE_SURROGATE = /\p{Cs}/u;
/** Unicode spaces: no key name and no origin may contain one. */
const SPACE = /\s/u;
/** A tree size: ASCII decimal without leading zeroes. */
const DECIMAL = /^(?:0|[1-9][0-9]{0,15})$/;

/** The bytes of `parts`, one after the other, in a new array. */
function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((length, part) => length + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Byte-wise equality (key ids: public values, no constant time needed). */
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((byte, i) => byte === b[i]);

/** Refuses a key name that is empty or holds a Unicode space, a `+` or a control character (signed-note §Format). */
function assertKeyName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 1024 || SPACE.test(name) || name.includes('+') || CONTROL.test(name) || LONE_SURROGATE.test(name)) {
    throw new NoteError('malformed_key_name', 'a key name is non-empty, at most 1024 characters, without spaces, "+" or control characters');
  }
}

/** Refuses text that is not valid UTF-8, holds a control character other than newline, or is over 1 MiB. */
function assertNoteCharacters(text: string, code: 'malformed_note' | 'malformed_checkpoint'): void {
  if (text.length > MAX_NOTE_BYTES || utf8(text).length > MAX_NOTE_BYTES) throw new NoteError('note_too_large', 'a note is at most 1 MiB');
  if (LONE_SURROGATE.test(text)) throw new NoteError(code, 'a note is valid UTF-8');
  if (CONTROL.test(text)) throw new NoteError(code, 'a note holds no control character other than newline');
}

/**
 * The key id signed-note §Signatures recommends, and tlog-cosignature requires for type 0x04:
 * the first four bytes of SHA-256(name || 0x0A || type || public key).
 *
 * @example
 * ```ts
 * noteKeyId({ name: 'example.com/log', type: 0x01, publicKey }); // Uint8Array(4)
 * ```
 */
export function noteKeyId(options: { name: string; type: 0x01 | 0x04; publicKey: Uint8Array }): Uint8Array {
  const { name, type, publicKey } = options;
  return sha256(concat(utf8(name), Uint8Array.of(0x0a, type), publicKey)).slice(0, KEY_ID_BYTES);
}

/**
 * A verifier key: `<name>+<hex key id>+<base64(type || public key)>`, the text form
 * golang.org/x/mod/sumdb/note and C2SP's witnesses share.
 *
 * @example
 * ```ts
 * formatVerifierKey({ name: 'witness.example/w1', publicKey, type: 0x04 }); // 'witness.example/w1+1a2b3c4d+BL…'
 * ```
 */
export function formatVerifierKey(options: { name: string; publicKey: Uint8Array; type?: 0x01 | 0x04 }): string {
  const { name, publicKey, type = NOTE_TYPE_ED25519 } = options;
  assertKeyName(name);
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_BYTES) {
    throw new NoteError('malformed_verifier_key', 'an Ed25519 public key is 32 bytes');
  }
  if (type !== NOTE_TYPE_ED25519 && type !== NOTE_TYPE_COSIGNATURE) throw new NoteError('malformed_verifier_key', 'a verifier key is of type 0x01 or 0x04');
  return `${name}+${toHex(noteKeyId({ name, type, publicKey }))}+${encodeBase64(concat(Uint8Array.of(type), publicKey))}`;
}

/**
 * Parses a verifier key strictly: the name, an 8-digit lowercase hex key id that must match the
 * key, and the type byte (0x01 or 0x04) with a 32-byte Ed25519 public key. The base64 part may
 * itself contain `+`, so only the first two `+` separate.
 *
 * @example
 * ```ts
 * parseVerifierKey('PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW').name; // 'PeterNeumann'
 * ```
 */
export function parseVerifierKey(vkey: string): NoteKey {
  const bad = (why: string) => new NoteError('malformed_verifier_key', `a verifier key is <name>+<hex key id>+<base64 key>: ${why}`);
  if (typeof vkey !== 'string' || vkey.length > 2048) throw bad('not a string of at most 2048 characters');
  const first = vkey.indexOf('+');
  const second = first < 0 ? -1 : vkey.indexOf('+', first + 1);
  if (first < 0 || second < 0) throw bad('it has fewer than three parts');
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  try {
    assertKeyName(name);
  } catch {
    throw bad('the name is empty or holds a space or a control character');
  }
  if (!/^[0-9a-f]{8}$/.test(hexId)) throw bad('the key id is not 8 lowercase hex digits');
  const material = decodeBase64(vkey.slice(second + 1));
  if (!material || material.length !== 1 + ED25519_PUBLIC_KEY_BYTES) throw bad('the key is not base64 of a type byte and 32 bytes');
  const type = material[0];
  if (type !== NOTE_TYPE_ED25519 && type !== NOTE_TYPE_COSIGNATURE) throw bad('the key type is neither 0x01 nor 0x04');
  const publicKey = material.slice(1);
  const keyId = noteKeyId({ name, type, publicKey });
  if (toHex(keyId) !== hexId) throw bad('the key id does not match the key');
  return { name, keyId, type, publicKey };
}

/** One signature line of a note, parsed. */
interface SignatureLine {
  name: string;
  keyId: Uint8Array;
  /** The bytes after the key id: the signature (type 0x01) or time and signature (type 0x04). */
  payload: Uint8Array;
}

/** Parses `— <name> <base64(key id || signature)>` (without its newline). */
function parseSignatureLine(line: string): SignatureLine {
  const bad = () => new NoteError('malformed_signature', 'a signature line is "\u2014 <name> <base64(key id || signature)>"');
  if (!line.startsWith(SIGNATURE_PREFIX)) throw bad();
  const parts = line.slice(SIGNATURE_PREFIX.length).split(' ');
  if (parts.length !== 2) throw bad();
  const [name, signature] = parts as [string, string];
  try {
    assertKeyName(name);
  } catch {
    throw bad();
  }
  const bytes = decodeBase64(signature);
  if (!bytes || bytes.length <= KEY_ID_BYTES) throw bad();
  return { name, keyId: bytes.slice(0, KEY_ID_BYTES), payload: bytes.slice(KEY_ID_BYTES) };
}

/** Splits a note into its text and signature lines (signed-note §Format), bounded and strict. */
function splitNote(note: string): { text: string; lines: SignatureLine[] } {
  if (typeof note !== 'string') throw new NoteError('malformed_note', 'a note is text');
  assertNoteCharacters(note, 'malformed_note');
  // The text is separated from the signatures by the last empty line, and includes its final newline.
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) throw new NoteError('malformed_note', 'a note is a text, a blank line and signature lines, each ending in a newline');
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2, -1);
  if (block.length === 0) throw new NoteError('malformed_note', 'a note has at least one signature line');
  const raw = block.split('\n');
  if (raw.length > MAX_NOTE_SIGNATURES) throw new NoteError('too_many_signatures', `a note has at most ${MAX_NOTE_SIGNATURES} signature lines`);
  return { text, lines: raw.map(parseSignatureLine) };
}

/** The Web Crypto key of a trusted public key, for verifying. */
async function verifyingKey(publicKey: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', new Uint8Array(publicKey), { name: 'Ed25519' }, false, ['verify']);
}

/** Ed25519 verification that answers false, never throws, for a key Web Crypto will not import. */
async function ed25519Verify(publicKey: Uint8Array, signature: Uint8Array, message: Uint8Array): Promise<boolean> {
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    return await crypto.subtle.verify({ name: 'Ed25519' }, await verifyingKey(publicKey), new Uint8Array(signature), new Uint8Array(message));
  } catch {
    return false;
  }
}

/** True when `key` looks like a Node KeyObject (described by shape, not imported). */
function isNodeKeyObject(key: NoteSigningKey): key is NodeEd25519KeyObject {
  return typeof (key as Partial<NodeEd25519KeyObject>).export === 'function';
}

/**
 * A Web Crypto signing key and its 32-byte public key from a Web Crypto or Node private key. The
 * public key comes from `publicKey` when given, else from the private key's JWK (`x`), which a
 * Node KeyObject always gives and a Web Crypto key gives when it is extractable.
 */
async function signingKey(privateKey: NoteSigningKey, publicKey?: Uint8Array): Promise<{ key: CryptoKey; publicKey: Uint8Array }> {
  if (publicKey !== undefined && (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_BYTES)) {
    throw unusableKey('the public key given is not 32 bytes');
  }
  if (isNodeKeyObject(privateKey)) {
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') throw unusableKey('this KeyObject is not an Ed25519 private key');
    let imported = importedKeys.get(privateKey);
    if (!imported) {
      const importing = importKeyObject(privateKey);
      importedKeys.set(privateKey, importing);
      // A failed import is not kept: the next signature tries again.
      importing.catch(() => {
        if (importedKeys.get(privateKey) === importing) importedKeys.delete(privateKey);
      });
      imported = importing;
    }
    const { key, publicKey: own } = await imported;
    return { key, publicKey: publicKey ?? own };
  }
  if (privateKey.type !== 'private' || privateKey.algorithm.name !== 'Ed25519' || !privateKey.usages.includes('sign')) {
    throw unusableKey('this CryptoKey is not an Ed25519 private key that may sign');
  }
  if (publicKey) return { key: privateKey, publicKey };
  if (!privateKey.extractable) throw unusableKey('the CryptoKey is not extractable, so give its publicKey too');
  const jwk = await crypto.subtle.exportKey('jwk', privateKey);
  if (typeof jwk.x !== 'string') throw unusableKey('the CryptoKey exported no public key');
  return { key: privateKey, publicKey: base64url.decode(jwk.x) };
}

const unusableKey = (why: string) => new NoteError('unusable_key', `a note is signed with an Ed25519 private key: ${why}`);

/**
 * The Web Crypto keys made from Node KeyObjects so far, by KeyObject: one never changes, and
 * making its Web Crypto key (a JWK export and an importKey) costs more than a signature, every
 * checkpoint. The promise is kept, so that signatures made together with one key import it once.
 */
const importedKeys = new WeakMap<NodeEd25519KeyObject, Promise<{ key: CryptoKey; publicKey: Uint8Array }>>();

/** The Web Crypto signing key and the public key of a Node Ed25519 private KeyObject. */
async function importKeyObject(privateKey: NodeEd25519KeyObject): Promise<{ key: CryptoKey; publicKey: Uint8Array }> {
  const jwk = privateKey.export({ format: 'jwk' }) as { d?: unknown; x?: unknown };
  if (typeof jwk.d !== 'string' || typeof jwk.x !== 'string') throw unusableKey('the KeyObject exported no Ed25519 JWK');
  const key = await crypto.subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', d: jwk.d, x: jwk.x }, { name: 'Ed25519' }, false, ['sign']);
  return { key, publicKey: base64url.decode(jwk.x) };
}

async function ed25519Sign(key: CryptoKey, message: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, key, new Uint8Array(message)));
}

/** Refuses note text that a note could not carry: not newline-terminated, or that breaks the format. */
function assertNoteText(text: unknown): asserts text is string {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw new NoteError('malformed_note', 'a note text ends in a newline');
  assertNoteCharacters(text, 'malformed_note');
}

/**
 * Signs `text` (which must end in a newline) as a note with an Ed25519 private key: the text, a
 * blank line and `— <name> base64(key id || signature)` (signed-note §Format). The key id is that
 * of type 0x01 for `name` and the key's public key.
 *
 * @example
 * ```ts
 * const note = await signNote({ text: formatCheckpoint(body), name: 'writ.example/audit', privateKey });
 * ```
 */
export async function signNote(options: { text: string; name: string; privateKey: NoteSigningKey; publicKey?: Uint8Array }): Promise<string> {
  const { text, name, privateKey } = options;
  assertNoteText(text);
  assertKeyName(name);
  const { key, publicKey } = await signingKey(privateKey, options.publicKey);
  const keyId = noteKeyId({ name, type: NOTE_TYPE_ED25519, publicKey });
  const signature = await ed25519Sign(key, utf8(text));
  const note = `${text}\n${SIGNATURE_PREFIX}${name} ${encodeBase64(concat(keyId, signature))}\n`;
  assertNoteCharacters(note, 'malformed_note');
  return note;
}

/** The message a cosignature/v1 signs: header, time line, then the checkpoint text (tlog-cosignature §Ed25519 signed message). */
function cosignedMessage(checkpointText: string, time: number): Uint8Array {
  return utf8(`cosignature/v1\ntime ${time}\n${checkpointText}`);
}

/** True when `time` is a POSIX time this module can carry exactly: a whole number in [0, 2^53 - 1]. */
const isTime = (time: unknown): time is number => typeof time === 'number' && Number.isSafeInteger(time) && time >= 0;

/** The 8-byte big-endian form of a time up to 2^53 - 1. */
function timeBytes(time: number): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, Math.floor(time / 2 ** 32));
  view.setUint32(4, time % 2 ** 32);
  return bytes;
}

/** The time of 8 big-endian bytes, or undefined past 2^53 - 1. */
function readTime(bytes: Uint8Array): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const high = view.getUint32(0);
  if (high >= 2 ** 21) return undefined;
  return high * 2 ** 32 + view.getUint32(4);
}

/** Checks one signature line by a trusted key; true when it verifies. */
async function verifyLine(text: string, line: SignatureLine, key: NoteKey): Promise<boolean> {
  if (key.type === NOTE_TYPE_ED25519) return ed25519Verify(key.publicKey, line.payload, utf8(text));
  if (line.payload.length !== COSIGNATURE_BYTES - KEY_ID_BYTES) return false;
  const time = readTime(line.payload.subarray(0, 8));
  if (time === undefined) return false;
  return ed25519Verify(key.publicKey, line.payload.subarray(8), cosignedMessage(text, time));
}

/**
 * Opens a note: its text, and which of `verifiers` (vkeys, of type 0x01 or 0x04) signed it.
 * Signatures by keys not in `verifiers` are ignored (signed-note §Signatures: same name or same
 * id, but not both, is another key). A signature by a trusted key that fails rejects the whole
 * note (`bad_signature`); no signature by a trusted key rejects it too (`unknown_key`).
 *
 * @example
 * ```ts
 * const { text, verifiedBy } = await openNote({ note, verifiers: [logVkey, witnessVkey] });
 * const checkpoint = parseCheckpoint(text);
 * ```
 */
export async function openNote(options: { note: string; verifiers: string[] }): Promise<{ text: string; verifiedBy: string[] }> {
  const { note, verifiers } = options;
  if (!Array.isArray(verifiers) || verifiers.length > MAX_NOTE_SIGNATURES) {
    throw new NoteError('malformed_verifier_key', `a note is opened with at most ${MAX_NOTE_SIGNATURES} verifier keys`);
  }
  const keys = verifiers.map((vkey) => ({ vkey, key: parseVerifierKey(vkey) }));
  const { text, lines } = splitNote(note);
  const verified = new Set<string>();
  for (const line of lines) {
    const trusted = keys.find(({ key }) => key.name === line.name && sameBytes(key.keyId, line.keyId));
    if (!trusted) continue;
    if (!(await verifyLine(text, line, trusted.key))) {
      throw new NoteError('bad_signature', `the signature of ${line.name} (key id ${toHex(line.keyId)}) does not verify`);
    }
    verified.add(trusted.vkey);
  }
  if (verified.size === 0) throw new NoteError('unknown_key', 'no signature of the note is by a trusted key');
  return { text, verifiedBy: verifiers.filter((vkey) => verified.has(vkey)) };
}

/**
 * A checkpoint's body (tlog-checkpoint §Note text): the origin, the tree size, the root hash and
 * optional extension lines.
 *
 * @example
 * ```ts
 * const body: CheckpointBody = { origin: 'writ.example/audit', size: 7, root };
 * ```
 */
export interface CheckpointBody {
  origin: string;
  size: number;
  root: MerkleHash;
  extensions?: string[];
}

/** Refuses an origin that is empty or holds a Unicode space or a control character. */
function assertOrigin(origin: unknown): asserts origin is string {
  if (typeof origin !== 'string' || origin.length === 0 || origin.length > 1024 || SPACE.test(origin) || CONTROL.test(origin) || LONE_SURROGATE.test(origin)) {
    throw new NoteError('malformed_checkpoint', 'a checkpoint origin is non-empty, at most 1024 characters, without spaces or control characters');
  }
}

/** Refuses an extension line that is empty or holds a newline or a control character. */
function assertExtension(line: unknown): asserts line is string {
  if (typeof line !== 'string' || line.length === 0 || line.includes('\n') || CONTROL.test(line) || LONE_SURROGATE.test(line)) {
    throw new NoteError('malformed_checkpoint', 'a checkpoint extension line is non-empty text without control characters');
  }
}

/**
 * The note text of a checkpoint: origin, size in decimal, base64 root, then any extension lines,
 * each ending in a newline (tlog-checkpoint §Note text).
 *
 * @example
 * ```ts
 * formatCheckpoint({ origin: 'writ.example/audit', size: 7, root }); // 'writ.example/audit\n7\n<base64>\n'
 * ```
 */
export function formatCheckpoint(body: CheckpointBody): string {
  const { origin, size, root, extensions = [] } = body;
  assertOrigin(origin);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new NoteError('malformed_checkpoint', 'a checkpoint size is a whole number from 0 to 2^53 - 1');
  }
  if (!(root instanceof Uint8Array) || root.length !== MERKLE_HASH_BYTES) throw new NoteError('malformed_checkpoint', 'a checkpoint root hash is 32 bytes');
  if (!Array.isArray(extensions)) throw new NoteError('malformed_checkpoint', 'checkpoint extensions are a list of lines');
  extensions.forEach(assertExtension);
  const text = [origin, String(size), encodeBase64(root), ...extensions].join('\n') + '\n';
  assertNoteCharacters(text, 'malformed_checkpoint');
  return text;
}

/**
 * Parses a checkpoint's note text strictly: at least three lines, each ending in a newline; a
 * non-empty origin without spaces; a decimal size without leading zeroes, at most 2^53 - 1; a root
 * of exactly 32 bytes in canonical standard base64; non-empty extension lines.
 *
 * @example
 * ```ts
 * const { origin, size, root } = parseCheckpoint((await openNote({ note, verifiers })).text);
 * ```
 */
export function parseCheckpoint(text: string): CheckpointBody {
  const bad = (why: string) => new NoteError('malformed_checkpoint', `not a checkpoint: ${why}`);
  if (typeof text !== 'string') throw bad('not text');
  if (text.length > MAX_NOTE_BYTES) throw new NoteError('note_too_large', 'a note is at most 1 MiB');
  if (CONTROL.test(text) || LONE_SURROGATE.test(text)) throw bad('a control character or invalid UTF-8');
  if (!text.endsWith('\n')) throw bad('the text does not end in a newline');
  const [origin, sizeLine, rootLine, ...extensions] = text.slice(0, -1).split('\n');
  if (sizeLine === undefined || rootLine === undefined) throw bad('fewer than three lines');
  assertOrigin(origin);
  if (!DECIMAL.test(sizeLine) || !Number.isSafeInteger(Number(sizeLine))) throw bad('the size is not a decimal without leading zeroes up to 2^53 - 1');
  const root = decodeBase64(rootLine);
  if (!root || root.length !== MERKLE_HASH_BYTES) throw bad('the root hash is not base64 of 32 bytes');
  extensions.forEach(assertExtension);
  return { origin, size: Number(sizeLine), root, ...(extensions.length > 0 ? { extensions } : {}) };
}

/**
 * A witness's cosignature/v1 of a checkpoint (tlog-cosignature): the signature line
 * `— <name> base64(key id || 8-byte big-endian time || Ed25519 signature)` and its newline, where
 * the key id is of type 0x04 and the signature covers `cosignature/v1\ntime <time>\n` followed by
 * the checkpoint text. Append the line to the checkpoint's note.
 *
 * @example
 * ```ts
 * const line = await cosignCheckpoint({ checkpointText, name: 'witness.example/w1', privateKey, time: Math.floor(Date.now() / 1000) });
 * const cosigned = note + line;
 * ```
 */
export async function cosignCheckpoint(options: {
  checkpointText: string;
  name: string;
  privateKey: NoteSigningKey;
  publicKey?: Uint8Array;
  time: number;
}): Promise<string> {
  const { checkpointText, name, privateKey, time } = options;
  parseCheckpoint(checkpointText);
  assertKeyName(name);
  if (!isTime(time)) throw new NoteError('malformed_cosignature', 'a cosignature time is a whole number of seconds from 0 to 2^53 - 1');
  const { key, publicKey } = await signingKey(privateKey, options.publicKey);
  const keyId = noteKeyId({ name, type: NOTE_TYPE_COSIGNATURE, publicKey });
  const signature = await ed25519Sign(key, cosignedMessage(checkpointText, time));
  return `${SIGNATURE_PREFIX}${name} ${encodeBase64(concat(keyId, timeBytes(time), signature))}\n`;
}

/**
 * Checks one cosignature line (with or without its newline) against a witness's vkey of type
 * 0x04 and the checkpoint text it cosigns; answers the time it carries.
 *
 * @example
 * ```ts
 * const { time } = await verifyCosignature({ checkpointText, line, vkey: witnessVkey });
 * ```
 */
export async function verifyCosignature(options: { checkpointText: string; line: string; vkey: string }): Promise<{ time: number }> {
  const { checkpointText, line, vkey } = options;
  const key = parseVerifierKey(vkey);
  if (key.type !== NOTE_TYPE_COSIGNATURE) throw new NoteError('malformed_verifier_key', 'a witness verifier key is of type 0x04');
  parseCheckpoint(checkpointText);
  if (typeof line !== 'string' || line.length > 4096) throw new NoteError('malformed_signature', 'a cosignature line is at most 4096 characters');
  const body = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (body.includes('\n')) throw new NoteError('malformed_signature', 'a cosignature is one line');
  const parsed = parseSignatureLine(body);
  if (parsed.name !== key.name || !sameBytes(parsed.keyId, key.keyId)) throw new NoteError('unknown_key', 'the cosignature is not by this witness key');
  if (parsed.payload.length !== COSIGNATURE_BYTES - KEY_ID_BYTES) throw new NoteError('malformed_cosignature', 'a cosignature is a key id, an 8-byte time and a 64-byte signature');
  const time = readTime(parsed.payload.subarray(0, 8));
  if (time === undefined) throw new NoteError('malformed_cosignature', 'a cosignature time is at most 2^53 - 1');
  const ok = await ed25519Verify(key.publicKey, parsed.payload.subarray(8), cosignedMessage(checkpointText, time));
  if (!ok) throw new NoteError('bad_signature', `the cosignature of ${key.name} does not verify`);
  return { time };
}
