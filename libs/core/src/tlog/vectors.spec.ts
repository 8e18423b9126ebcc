import { createHash, createPrivateKey, createPublicKey, verify as ed25519Verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { auditVectorsText, VECTORS_PATH } from '../../../../tools/audit-vectors.js';

// docs/audit-vectors/vectors.json, checked two ways: the committed file is what the generator
// writes today, and every vector holds when recomputed from docs/audit.md with node:crypto alone
// (nothing below but the drift check imports Writ's code).

interface Vectors {
  events: (Record<string, unknown> & { seq: number; prev_hash: string; hash: string })[];
  leaf_hashes: string[];
  roots: { size: number; hex: string; base64: string }[];
  inclusion: { seq: number; leaf_index: number; tree_size: number; leaf_hash: string; root: string; proof: string[] };
  consistency: { old_size: number; new_size: number; old_root: string; new_root: string; proof: string[] };
  log: { origin: string; ed25519_seed_hex: string; public_key_hex: string; vkey: string; checkpoint_text: string; checkpoint_note: string };
  witness: { name: string; ed25519_seed_hex: string; public_key_hex: string; vkey: string; time: number; cosignature_line: string; cosigned_note: string };
}

const text = readFileSync(VECTORS_PATH, 'utf8');
const vectors = JSON.parse(text) as Vectors;

const sha256 = (...parts: (Buffer | string)[]): Buffer => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
};
const hex = (bytes: Buffer): string => bytes.toString('hex');
const b64 = (value: string): Buffer => Buffer.from(value, 'base64');

/** RFC 8785 for the values these events hold (ASCII strings, integers, booleans, null, objects). */
function jcs(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(jcs).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${jcs(item)}`).join(',')}}`;
}

const leafHash = (data: Buffer): Buffer => sha256(Buffer.of(0), data);
const nodeHash = (left: Buffer, right: Buffer): Buffer => sha256(Buffer.of(1), left, right);
const split = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1);
/** MTH(D[start:end]), RFC 9162 §2.1.1. */
function mth(leaves: Buffer[], start: number, end: number): Buffer {
  const n = end - start;
  if (n === 0) return sha256('');
  if (n === 1) return leaves[start]!;
  return nodeHash(mth(leaves, start, start + split(n)), mth(leaves, start + split(n), end));
}

/** RFC 9162 §2.1.3.2, written again here from the RFC's text. */
function verifyInclusionProof(leaf: Buffer, index: number, size: number, proof: Buffer[], root: Buffer): boolean {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 §2.1.4.2, written again here from the RFC's text. */
function verifyConsistencyProof(first: number, second: number, proof: Buffer[], firstRoot: Buffer, secondRoot: Buffer): boolean {
  if (proof.length === 0) return false;
  const path = Number.isInteger(Math.log2(first)) ? [firstRoot, ...proof] : proof;
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return fr.equals(firstRoot) && sr.equals(secondRoot) && sn === 0;
}

/** Node's public key for a raw 32-byte Ed25519 key. */
const ed25519Public = (raw: Buffer) => createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });

describe('docs/audit-vectors/vectors.json', () => {
  it('is exactly what tools/audit-vectors.ts writes', async () => {
    expect(text).toBe(await auditVectorsText());
  });

  it('chains the events: seq from 1, prev_hash linking, hash = SHA-256(prev_hash bytes || JCS(event without hash))', () => {
    let previous = '0'.repeat(64);
    vectors.events.forEach((event, i) => {
      const { hash, ...rest } = event;
      expect(event.seq).toBe(i + 1);
      expect(event.prev_hash).toBe(previous);
      expect(hex(sha256(Buffer.from(event.prev_hash, 'hex'), jcs(rest)))).toBe(hash);
      previous = hash;
    });
    expect(vectors.events).toHaveLength(7);
  });

  it('has leaf i = SHA-256(0x00 || raw bytes of event i+1 hash) and the RFC 9162 root at every size', () => {
    const leaves = vectors.events.map((event) => leafHash(Buffer.from(event.hash, 'hex')));
    expect(leaves.map(hex)).toEqual(vectors.leaf_hashes);
    expect(vectors.roots.map(({ size }) => size)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const { size, hex: rootHex, base64 } of vectors.roots) {
      expect(hex(mth(leaves, 0, size))).toBe(rootHex);
      expect(Buffer.from(rootHex, 'hex').toString('base64')).toBe(base64);
    }
  });

  it('has an inclusion proof that verifies, and fails for another leaf', () => {
    const { leaf_hash, leaf_index, tree_size, root, proof, seq } = vectors.inclusion;
    expect(leaf_index).toBe(seq - 1);
    expect(b64(root).toString('hex')).toBe(vectors.roots[tree_size]!.hex);
    expect(verifyInclusionProof(Buffer.from(leaf_hash, 'hex'), leaf_index, tree_size, proof.map(b64), b64(root))).toBe(true);
    expect(verifyInclusionProof(Buffer.from(vectors.leaf_hashes[3]!, 'hex'), leaf_index, tree_size, proof.map(b64), b64(root))).toBe(false);
  });

  it('has a consistency proof that verifies, and fails against another old root', () => {
    const { old_size, new_size, old_root, new_root, proof } = vectors.consistency;
    expect(verifyConsistencyProof(old_size, new_size, proof.map(b64), b64(old_root), b64(new_root))).toBe(true);
    expect(verifyConsistencyProof(old_size, new_size, proof.map(b64), b64(vectors.roots[2]!.base64), b64(new_root))).toBe(false);
  });

  it('has a checkpoint note signed by the published test log key, with the C2SP key id and vkey', () => {
    const { origin, ed25519_seed_hex, public_key_hex, vkey, checkpoint_text, checkpoint_note } = vectors.log;
    const seed = Buffer.from(ed25519_seed_hex, 'hex');
    const privateKey = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
    expect(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex')).toBe(public_key_hex);
    const publicKey = Buffer.from(public_key_hex, 'hex');
    const keyId = sha256(origin, Buffer.of(0x0a, 0x01), publicKey).subarray(0, 4);
    expect(vkey).toBe(`${origin}+${hex(keyId)}+${Buffer.concat([Buffer.of(0x01), publicKey]).toString('base64')}`);
    expect(checkpoint_text).toBe(`${origin}\n7\n${vectors.roots[7]!.base64}\n`);
    const prefix = `${checkpoint_text}\n\u2014 ${origin} `;
    expect(checkpoint_note.startsWith(prefix) && checkpoint_note.endsWith('\n')).toBe(true);
    const signature = b64(checkpoint_note.slice(prefix.length, -1));
    expect(signature.subarray(0, 4).equals(keyId)).toBe(true);
    expect(ed25519Verify(null, Buffer.from(checkpoint_text), ed25519Public(publicKey), signature.subarray(4))).toBe(true);
  });

  it('has a cosignature/v1 by the published test witness key over "cosignature/v1\\ntime T\\n" + the checkpoint', () => {
    const { name, public_key_hex, vkey, time, cosignature_line, cosigned_note } = vectors.witness;
    const publicKey = Buffer.from(public_key_hex, 'hex');
    const keyId = sha256(name, Buffer.of(0x0a, 0x04), publicKey).subarray(0, 4);
    expect(vkey).toBe(`${name}+${hex(keyId)}+${Buffer.concat([Buffer.of(0x04), publicKey]).toString('base64')}`);
    const payload = b64(cosignature_line.slice(`\u2014 ${name} `.length, -1));
    expect(payload).toHaveLength(4 + 8 + 64);
    expect(payload.subarray(0, 4).equals(keyId)).toBe(true);
    expect(Number(payload.readBigUInt64BE(4))).toBe(time);
    const message = Buffer.from(`cosignature/v1\ntime ${time}\n${vectors.log.checkpoint_text}`);
    expect(ed25519Verify(null, message, ed25519Public(publicKey), payload.subarray(12))).toBe(true);
    expect(cosigned_note).toBe(vectors.log.checkpoint_note + cosignature_line);
  });
});
