#!/usr/bin/env node
// An independent verifier of Writ's audit log, written from docs/audit.md alone: plain JavaScript
// and node:crypto (SHA-256, Ed25519), nothing from Writ. Copy this one file and run it with
// Node.js 20 or newer:
//
//   node verify-log.mjs --registry <url> --vkey <log vkey> [--witness <witness vkey>]...
//                       [--since <saved checkpoint>] [--event <event.json>]...
//
// It fetches the registry's latest checkpoint and checks the log's signature (docs/audit.md,
// "Checkpoints"); with --witness, a cosignature by that witness ("Cosignatures"); with --since,
// that the new checkpoint extends the saved one (a consistency proof, RFC 9162 §2.1.4.2); with
// --event, that the event's hash is its content's and that it is included in the new checkpoint
// (an inclusion proof, RFC 9162 §2.1.3.2). Exit status: 0 when every check holds, 1 when one
// fails (the reason on stderr, after "REFUSED: "), 2 when it could not check (bad arguments, a
// file it cannot read, a registry that does not answer 200).

import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** A check that failed: the log, a proof, a checkpoint or an event is not what it should be. */
export class VerifyError extends Error {
  name = 'VerifyError';
}

/** The verifier could not check: bad arguments or input it cannot read, a registry it cannot reach. */
export class UsageError extends Error {
  name = 'UsageError';
}

/** docs/audit.md, "Checkpoints": a note is at most 1 MiB, with at most 100 signature lines. */
const MAX_NOTE_BYTES = 1024 * 1024;
const MAX_SIGNATURES = 100;
/** docs/audit.md, "Proofs": Writ refuses a proof of more than 64 hashes. */
const MAX_PROOF_HASHES = 64;
/** A proof answer of 64 base64 hashes is under 4 KiB; an event file is bounded like a note. */
const MAX_PROOF_BYTES = 64 * 1024;
const MAX_EVENT_BYTES = 1024 * 1024;
/** Sizes and seqs are whole numbers up to 2^53 − 1 (docs/audit.md, "Endpoints"). */
const MAX_SIZE = Number.MAX_SAFE_INTEGER;
const FETCH_TIMEOUT_MS = 15_000;
const KEY_TYPE_ED25519 = 0x01;
const KEY_TYPE_COSIGNATURE = 0x04;

const sha256 = (...parts) => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
};

/** Canonical standard base64 with padding: decoding and encoding again gives the same text. */
function canonicalBase64(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

// --- Verifier keys -------------------------------------------------------------------------------

/**
 * Parses a verifier key `<name>+<key id, 8 hex>+<base64(type || public key)>` (docs/audit.md,
 * "Checkpoints"; C2SP signed-note) and checks that the key id is
 * `SHA-256(name || 0x0A || type || public key)[:4]`.
 */
export function parseVkey({ vkey, type = KEY_TYPE_ED25519 }) {
  // The name holds no '+'; the base64 key may: split at the first two.
  const match = typeof vkey === 'string' ? /^([^+]*)\+([^+]*)\+(.*)$/s.exec(vkey) : null;
  if (!match) throw new UsageError('the vkey is not <name>+<key id>+<base64 key>');
  const [, name, idHex, keyText] = match;
  if (name === '' || /[\s]/.test(name)) throw new UsageError('the vkey has no name, or a name with spaces');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new UsageError('the vkey\'s key id is not 8 lowercase hex digits');
  const key = canonicalBase64(keyText);
  if (!key || key.length !== 33 || key[0] !== type) throw new UsageError(`the vkey is not a key of type 0x0${type} with a 32-byte Ed25519 public key`);
  const publicKey = key.subarray(1);
  const id = keyId({ name, type, publicKey });
  if (id.toString('hex') !== idHex) throw new UsageError('the vkey\'s key id does not match its name and key');
  return { name, id, type, publicKey };
}

/** The key id of C2SP signed-note: the first 4 bytes of SHA-256(name || 0x0A || type || key). */
function keyId({ name, type, publicKey }) {
  return sha256(Buffer.from(name, 'utf8'), Buffer.from([0x0a, type]), publicKey).subarray(0, 4);
}

/** Ed25519 (RFC 8032) verification of `message` with a raw 32-byte public key. */
function ed25519Verifies({ publicKey, message, signature }) {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
  return verifySignature(null, message, key, signature);
}

// --- Signed notes and checkpoints --------------------------------------------------------------

/**
 * Splits a signed note into its text and signature lines, with the parsing rules docs/audit.md
 * gives ("Checkpoints"): at most 1 MiB, valid UTF-8, no control character but newline, split at
 * the last blank line, at most 100 signature lines, each `— <name> <canonical base64 ≥ 5 bytes>`.
 */
export function splitNote(note) {
  const bytes = typeof note === 'string' ? Buffer.from(note, 'utf8') : Buffer.from(note);
  if (bytes.length > MAX_NOTE_BYTES) throw new VerifyError('the note is over 1 MiB');
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new VerifyError('the note is not valid UTF-8');
  }
  if (typeof note === 'string' && !note.isWellFormed()) throw new VerifyError('the note is not valid UTF-8');
  // eslint-disable-next-line no-control-regex -- the rule is about exactly these characters
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(text)) throw new VerifyError('the note holds a control character other than newline');
  const split = text.lastIndexOf('\n\n');
  if (split < 0 || !text.endsWith('\n')) throw new VerifyError('the note has no blank line before its signatures, or does not end with a newline');
  const body = text.slice(0, split + 1);
  const lines = text.slice(split + 2, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw new VerifyError('the note has more than 100 signature lines');
  const signatures = lines.map((line) => {
    // `— ` is U+2014 EM DASH and a space (C2SP signed-note).
    const match = /^\u2014 ([^ +]+) ([A-Za-z0-9+/=]+)$/u.exec(line);
    const blob = match ? canonicalBase64(match[2]) : undefined;
    if (!match || !blob || blob.length < 5) throw new VerifyError('the note has a malformed signature line');
    return { name: match[1], id: blob.subarray(0, 4), blob };
  });
  return { text: body, signatures };
}

/**
 * Opens a checkpoint note with the log's vkey: the signature line by that key (its name and key
 * id) must be there and verify over the note's text (Ed25519); lines by other keys are ignored.
 * Then reads the C2SP tlog-checkpoint text: origin (the key's name), size, base64 root.
 */
export function openCheckpoint({ note, vkey, label = 'the checkpoint' }) {
  const key = typeof vkey === 'string' ? parseVkey({ vkey }) : vkey;
  const { text, signatures } = splitNote(note);
  const mine = signatures.filter((line) => line.name === key.name && line.id.equals(key.id));
  if (mine.length === 0) throw new VerifyError(`${label} has no signature by the log's key ${key.name}+${key.id.toString('hex')}`);
  for (const line of mine) {
    const signature = line.blob.subarray(4);
    if (signature.length !== 64 || !ed25519Verifies({ publicKey: key.publicKey, message: Buffer.from(text, 'utf8'), signature })) {
      throw new VerifyError(`${label}'s signature by ${key.name} does not verify`);
    }
  }
  const checkpoint = parseCheckpointText(text, label);
  if (checkpoint.origin !== key.name) throw new VerifyError(`${label}'s origin ${checkpoint.origin} is not the log's ${key.name}`);
  return { ...checkpoint, text, signatures, note: typeof note === 'string' ? note : Buffer.from(note).toString('utf8') };
}

/** C2SP tlog-checkpoint: origin, decimal size without leading zeros, base64 32-byte root; extension lines ignored. */
function parseCheckpointText(text, label) {
  const [origin, sizeText, rootText] = text.split('\n');
  const root = canonicalBase64(rootText);
  if (!origin || !/^(0|[1-9][0-9]*)$/.test(sizeText ?? '') || Number(sizeText) > MAX_SIZE || !root || root.length !== 32) {
    throw new VerifyError(`${label} is not a tlog-checkpoint: origin, size, base64 root hash`);
  }
  return { origin, size: Number(sizeText), root };
}

/**
 * Checks one witness cosignature line (C2SP tlog-cosignature, `cosignature/v1`, docs/audit.md
 * "Cosignatures") on a checkpoint's text and answers its time (POSIX seconds).
 */
export function verifyCosignature({ checkpointText, line, vkey }) {
  const key = parseVkey({ vkey, type: KEY_TYPE_COSIGNATURE });
  const { signatures } = splitNote(`x\n\n${line.endsWith('\n') ? line : `${line}\n`}`);
  const [signed] = signatures;
  if (signatures.length !== 1 || signed.name !== key.name || !signed.id.equals(key.id)) {
    throw new VerifyError(`the cosignature is not a line by the witness ${key.name}`);
  }
  return cosignatureTime({ key, blob: signed.blob, checkpointText });
}

/**
 * C2SP tlog-cosignature: `blob` is key id (4) || timestamp (8, big-endian) || Ed25519 signature
 * (64) over `cosignature/v1\ntime <timestamp>\n` and the checkpoint text; answers the timestamp.
 */
function cosignatureTime({ key, blob, checkpointText }) {
  if (blob.length !== 4 + 8 + 64) throw new VerifyError(`the cosignature by ${key.name} does not verify`);
  const time = blob.readBigUInt64BE(4);
  const message = Buffer.from(`cosignature/v1\ntime ${time}\n${checkpointText}`, 'utf8');
  if (!ed25519Verifies({ publicKey: key.publicKey, message, signature: blob.subarray(12) })) {
    throw new VerifyError(`the cosignature by ${key.name} does not verify`);
  }
  return Number(time);
}

/**
 * docs/audit.md, "Verifying from outside", step 2: the checkpoint carries a cosignature by each
 * witness of `witnesses` (vkeys of type 0x04) that verifies. Answers a line per witness.
 */
export function requireCosignatures({ checkpoint, witnesses, label = 'the checkpoint' }) {
  return witnesses.map((vkey) => {
    const key = parseVkey({ vkey, type: KEY_TYPE_COSIGNATURE });
    const lines = checkpoint.signatures.filter((line) => line.name === key.name && line.id.equals(key.id));
    if (lines.length === 0) throw new VerifyError(`${label} has no cosignature by the witness ${key.name}+${key.id.toString('hex')}`);
    const times = lines.map((line) => cosignatureTime({ key, blob: line.blob, checkpointText: checkpoint.text }));
    return `cosigned: by the witness ${key.name} at ${new Date(Math.max(...times) * 1000).toISOString()}`;
  });
}

// --- Events and the hash chain ------------------------------------------------------------------

const EVENT_MEMBERS = ['seq', 'id', 'at', 'type', 'actor', 'subject', 'grant_id', 'txn', 'parent_id', 'data', 'prev_hash', 'hash'];
const NULLABLE_STRINGS = ['actor', 'subject', 'grant_id', 'txn', 'parent_id'];
const HEX_HASH = /^[0-9a-f]{64}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Checks an event has exactly the members of docs/audit.md's table, of their types; answers why not. */
function eventShapeProblem(event) {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return 'it is not a JSON object';
  const members = Object.keys(event);
  const extra = members.find((name) => !EVENT_MEMBERS.includes(name));
  if (extra !== undefined) return `it has a member "${extra}" the format does not have`;
  const missing = EVENT_MEMBERS.find((name) => !Object.hasOwn(event, name));
  if (missing !== undefined) return `it has no "${missing}"`;
  if (!Number.isSafeInteger(event.seq) || event.seq < 1) return 'seq is not a whole number from 1';
  if (typeof event.id !== 'string' || event.id.length < 1 || event.id.length > 128) return 'id is not a string of 1 to 128 characters';
  if (typeof event.at !== 'string' || !RFC3339.test(event.at)) return 'at is not an RFC 3339 date-time';
  if (typeof event.type !== 'string' || event.type.length < 1 || event.type.length > 64) return 'type is not a string of 1 to 64 characters';
  const notNullable = NULLABLE_STRINGS.find((name) => event[name] !== null && typeof event[name] !== 'string');
  if (notNullable !== undefined) return `${notNullable} is neither a string nor null`;
  if (typeof event.data !== 'object' || event.data === null || Array.isArray(event.data)) return 'data is not a JSON object';
  if (typeof event.prev_hash !== 'string' || !HEX_HASH.test(event.prev_hash)) return 'prev_hash is not 64 lowercase hex digits';
  if (typeof event.hash !== 'string' || !HEX_HASH.test(event.hash)) return 'hash is not 64 lowercase hex digits';
  return undefined;
}

/**
 * RFC 8785 (JCS): members sorted by UTF-16 code units, no whitespace, strings and numbers as
 * ECMAScript serialises them (§3.2.2); a lone surrogate or a non-finite number cannot be written.
 */
export function canonicalJson(value) {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new VerifyError('the event holds a number JSON cannot write');
    return JSON.stringify(value);
  }
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new VerifyError('the event holds a string with a lone surrogate');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    // Array.prototype.sort compares strings by UTF-16 code units, as RFC 8785 §3.2.3 asks.
    const names = Object.keys(value).sort();
    return `{${names.map((name) => `${canonicalJson(name)}:${canonicalJson(value[name])}`).join(',')}}`;
  }
  throw new VerifyError('the event holds a value JSON cannot write');
}

/**
 * docs/audit.md, "Events and the hash chain":
 * `hash = SHA-256(bytes(prev_hash) || UTF-8(JCS(event without "hash")))`, as lowercase hex.
 */
export function eventHash(event) {
  const problem = eventShapeProblem(event);
  if (problem !== undefined) throw new VerifyError(`the event is not an audit event: ${problem}`);
  const { hash: _hash, ...body } = event;
  return sha256(Buffer.from(event.prev_hash, 'hex'), Buffer.from(canonicalJson(body), 'utf8')).toString('hex');
}

/** Checks that an event's `hash` is the hash of its content, and answers its leaf hash. */
export function checkEvent(event) {
  const computed = eventHash(event);
  if (computed !== event.hash) throw new VerifyError(`event seq ${event.seq}: its hash does not match its content`);
  return leafHash(event.hash);
}

/**
 * Checks a run of events links up (docs/audit.md: seq one more than the previous, starting at 1;
 * prev_hash the previous hash, zeros first; each hash its content's).
 */
export function checkChain(events) {
  let previous = { seq: 0, hash: '0'.repeat(64) };
  for (const event of events) {
    checkEvent(event);
    if (event.seq !== previous.seq + 1) throw new VerifyError(`event seq ${event.seq} follows seq ${previous.seq}`);
    if (event.prev_hash !== previous.hash) throw new VerifyError(`event seq ${event.seq}: its prev_hash is not the hash of seq ${previous.seq}`);
    previous = event;
  }
}

// --- The Merkle tree (RFC 9162 §2.1) -------------------------------------------------------------

/** RFC 9162 §2.1.1: a leaf hash is SHA-256(0x00 || data); Writ's leaf data is the event hash's 32 bytes. */
export function leafHash(eventHashHex) {
  return sha256(Buffer.from([0x00]), Buffer.from(eventHashHex, 'hex'));
}

const nodeHash = (left, right) => sha256(Buffer.from([0x01]), left, right);

/** RFC 9162 §2.1.1: MTH over leaf hashes (the empty tree's root is SHA-256 of nothing). */
export function merkleRoot(leafHashes) {
  if (leafHashes.length === 0) return sha256();
  if (leafHashes.length === 1) return Buffer.from(leafHashes[0]);
  let k = 1;
  while (k * 2 < leafHashes.length) k *= 2;
  return nodeHash(merkleRoot(leafHashes.slice(0, k)), merkleRoot(leafHashes.slice(k)));
}

/** Shifts fn and sn right together until LSB(fn) is set or fn is 0 (RFC 9162 §2.1.3.2 step 4.b.ii). */
function shiftWhileEven(state) {
  while ((state.fn & 1n) === 0n && state.fn !== 0n) {
    state.fn >>= 1n;
    state.sn >>= 1n;
  }
}

/**
 * RFC 9162 §2.1.3.2: verifies an inclusion proof of the leaf at `index` in the tree of `size`
 * leaves with root `root`. True or false, never throws on a well-typed proof.
 */
export function verifyInclusion({ leafHash: leaf, index, size, proof, root }) {
  if (!(index >= 0 && index < size)) return false;
  const state = { fn: BigInt(index), sn: BigInt(size - 1) };
  let r = Buffer.from(leaf);
  for (const p of proof) {
    if (state.sn === 0n) return false;
    if ((state.fn & 1n) === 1n || state.fn === state.sn) {
      r = nodeHash(p, r);
      shiftWhileEven(state);
    } else {
      r = nodeHash(r, p);
    }
    state.fn >>= 1n;
    state.sn >>= 1n;
  }
  return state.sn === 0n && r.equals(root);
}

/**
 * RFC 9162 §2.1.4.2: verifies that the tree of `newSize` leaves with `newRoot` extends the tree of
 * `oldSize` leaves with `oldRoot`. Equal sizes need an empty proof and equal roots; every tree
 * extends the empty one (docs/audit.md, "Proofs").
 */
export function verifyConsistency({ oldSize, newSize, oldRoot, newRoot, proof }) {
  if (!(oldSize >= 0 && oldSize <= newSize)) return false;
  if (oldSize === 0) return proof.length === 0;
  if (oldSize === newSize) return proof.length === 0 && Buffer.from(oldRoot).equals(newRoot);
  if (proof.length === 0) return false;
  // Step 2: when the old tree is a complete subtree, its root is the path's first node.
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof;
  const state = { fn: BigInt(oldSize - 1), sn: BigInt(newSize - 1) };
  while ((state.fn & 1n) === 1n) {
    state.fn >>= 1n;
    state.sn >>= 1n;
  }
  let fr = Buffer.from(path[0]);
  let sr = Buffer.from(path[0]);
  for (const c of path.slice(1)) {
    if (state.sn === 0n) return false;
    if ((state.fn & 1n) === 1n || state.fn === state.sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      shiftWhileEven(state);
    } else {
      sr = nodeHash(sr, c);
    }
    state.fn >>= 1n;
    state.sn >>= 1n;
  }
  return state.sn === 0n && fr.equals(oldRoot) && sr.equals(newRoot);
}

function isPowerOfTwo(n) {
  const big = BigInt(n);
  return big > 0n && (big & (big - 1n)) === 0n;
}

/** A proof as docs/audit.md writes it: a JSON array of at most 64 canonical base64 32-byte hashes. */
export function parseProof(value) {
  if (!Array.isArray(value) || value.length > MAX_PROOF_HASHES) return undefined;
  const hashes = value.map(canonicalBase64);
  return hashes.every((hash) => hash !== undefined && hash.length === 32) ? hashes : undefined;
}

// --- The registry over HTTP (docs/audit.md, "Endpoints") -----------------------------------------

/** Reads a response body, refusing more than `max` bytes without reading them all. */
async function readBounded(response, max, what) {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > max) throw new VerifyError(`${what} is over ${max} bytes`);
  const chunks = [];
  let total = 0;
  for await (const chunk of response.body ?? []) {
    total += chunk.length;
    if (total > max) throw new VerifyError(`${what} is over ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** GET `path` on the registry; a status other than 200 means it could not be checked. */
async function get({ registry, path, fetch: fetchImpl, max, what }) {
  const url = new URL(path, registry.endsWith('/') ? registry : `${registry}/`);
  let response;
  try {
    response = await fetchImpl(url, { redirect: 'error', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch (error) {
    throw new UsageError(`cannot reach the registry for ${what}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (response.status !== 200) throw new UsageError(`the registry answered ${response.status} for ${what}`);
  return readBounded(response, max, what);
}

/** A JSON object of a proof answer, echoing the parameters asked, with a well-formed proof. */
async function getProof({ registry, fetch: fetchImpl, path, echo, what }) {
  let answer;
  try {
    answer = JSON.parse((await get({ registry, path, fetch: fetchImpl, max: MAX_PROOF_BYTES, what })).toString('utf8'));
  } catch (error) {
    if (error instanceof UsageError || error instanceof VerifyError) throw error;
    throw new VerifyError(`${what} is not JSON`);
  }
  const asked = Object.entries(echo).find(([name, value]) => answer?.[name] !== value);
  if (asked) throw new VerifyError(`${what} answers ${asked[0]} ${JSON.stringify(answer?.[asked[0]])}, not ${asked[1]}`);
  const proof = parseProof(answer.proof);
  if (!proof) throw new VerifyError(`${what} is not a JSON array of at most 64 base64 SHA-256 hashes`);
  return proof;
}

/** Fetches `GET /audit/checkpoint` and opens it with the log's vkey. */
export async function fetchCheckpoint({ registry, vkey, fetch: fetchImpl = globalThis.fetch }) {
  const note = await get({ registry, path: 'audit/checkpoint', fetch: fetchImpl, max: MAX_NOTE_BYTES, what: "the registry's checkpoint" });
  return openCheckpoint({ note, vkey, label: "the registry's checkpoint" });
}

/**
 * docs/audit.md, "Verifying from outside", step 3: the checkpoint `latest` extends the saved
 * checkpoint `since` (same origin, not smaller, a consistency proof from its size that verifies).
 */
export async function checkExtends({ registry, since, latest, fetch: fetchImpl = globalThis.fetch }) {
  // Both were opened with the log's vkey, whose name is their origin: one log.
  if (latest.size < since.size) {
    throw new VerifyError(`the registry's checkpoint has size ${latest.size}, below the saved checkpoint of size ${since.size}: seq ${latest.size + 1} is missing`);
  }
  const proof =
    since.size === 0 || since.size === latest.size
      ? []
      : await getProof({ registry, fetch: fetchImpl, path: `audit/proof/consistency?from=${since.size}&to=${latest.size}`, echo: { from: since.size, to: latest.size }, what: `the consistency proof from ${since.size} to ${latest.size}` });
  if (!verifyConsistency({ oldSize: since.size, newSize: latest.size, oldRoot: since.root, newRoot: latest.root, proof })) {
    throw new VerifyError(`the registry's checkpoint of size ${latest.size} does not extend the saved checkpoint of size ${since.size}: the consistency proof does not verify`);
  }
  return `consistent: the checkpoint of size ${latest.size} extends the saved checkpoint of size ${since.size}`;
}

/**
 * docs/audit.md, "Verifying from outside", step 4: recompute the event's hash from its JSON, its
 * leaf hash, and check its inclusion proof against the checkpoint's root.
 */
export async function checkIncluded({ registry, event, checkpoint, fetch: fetchImpl = globalThis.fetch }) {
  const leaf = checkEvent(event);
  if (event.seq > checkpoint.size) throw new VerifyError(`event seq ${event.seq} is past the checkpoint of size ${checkpoint.size}`);
  const proof = await getProof({
    registry,
    fetch: fetchImpl,
    path: `audit/proof/inclusion?seq=${event.seq}&size=${checkpoint.size}`,
    echo: { seq: event.seq, size: checkpoint.size },
    what: `the inclusion proof of seq ${event.seq} in size ${checkpoint.size}`,
  });
  if (!verifyInclusion({ leafHash: leaf, index: event.seq - 1, size: checkpoint.size, proof, root: checkpoint.root })) {
    throw new VerifyError(`event seq ${event.seq} is not included in the checkpoint of size ${checkpoint.size}: the inclusion proof does not verify`);
  }
  return `included: event seq ${event.seq} (hash ${event.hash}) is in the checkpoint of size ${checkpoint.size}`;
}

/**
 * Every check, in the order of docs/audit.md's "Verifying from outside": the latest checkpoint's
 * signature, that it extends the saved note `since` (when given), and each event's inclusion.
 * Answers the lines to print and the checkpoint; throws VerifyError at the first check that fails.
 */
export async function verifyLog({ registry, vkey, witnesses = [], since, events = [], fetch: fetchImpl = globalThis.fetch }) {
  const key = parseVkey({ vkey });
  const saved = since === undefined ? undefined : openCheckpoint({ note: since, vkey: key, label: 'the saved checkpoint' });
  const latest = await fetchCheckpoint({ registry, vkey: key, fetch: fetchImpl });
  const lines = [`checkpoint: ${latest.origin} size ${latest.size} root ${latest.root.toString('base64')}, signed by the log's key`];
  lines.push(...requireCosignatures({ checkpoint: latest, witnesses, label: "the registry's checkpoint" }));
  if (saved) lines.push(await checkExtends({ registry, since: saved, latest, fetch: fetchImpl }));
  for (const event of events) lines.push(await checkIncluded({ registry, event, checkpoint: latest, fetch: fetchImpl }));
  return { lines, checkpoint: latest };
}

// --- The command line ----------------------------------------------------------------------------

/** Reads a file given on the command line, refusing one over `max` bytes. */
function readInput(path, max, what) {
  try {
    if (statSync(path).size > max) throw new UsageError(`${what} ${path} is over ${max} bytes`);
    return readFileSync(path);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read ${what} ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function readEvent(path) {
  try {
    return JSON.parse(readInput(path, MAX_EVENT_BYTES, 'the event file').toString('utf8'));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`the event file ${path} is not JSON`);
  }
}

const USAGE = 'usage: verify-log.mjs --registry <url> --vkey <log vkey> [--witness <witness vkey>]... [--since <saved checkpoint file>] [--event <event json file>]...';

/** Parses the arguments, runs verifyLog, prints; answers the exit status (0 holds, 1 refused, 2 could not check). */
export async function main({ argv, stdout = process.stdout, stderr = process.stderr, fetch: fetchImpl = globalThis.fetch }) {
  try {
    let values;
    try {
      ({ values } = parseArgs({ args: argv, options: { registry: { type: 'string' }, vkey: { type: 'string' }, witness: { type: 'string', multiple: true }, since: { type: 'string' }, event: { type: 'string', multiple: true } }, strict: true }));
    } catch (error) {
      throw new UsageError(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    }
    if (!values.registry || !values.vkey) throw new UsageError(USAGE);
    if (!/^https?:\/\//.test(values.registry)) throw new UsageError('--registry is not an http(s) URL');
    const since = values.since === undefined ? undefined : readInput(values.since, MAX_NOTE_BYTES, 'the saved checkpoint');
    const events = (values.event ?? []).map(readEvent);
    const { lines } = await verifyLog({ registry: values.registry, vkey: values.vkey, witnesses: values.witness ?? [], since, events, fetch: fetchImpl });
    for (const line of lines) stdout.write(`${line}\n`);
    return 0;
  } catch (error) {
    if (error instanceof VerifyError) {
      stderr.write(`REFUSED: ${error.message}\n`);
      return 1;
    }
    stderr.write(`verify-log: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main({ argv: process.argv.slice(2) });
}
