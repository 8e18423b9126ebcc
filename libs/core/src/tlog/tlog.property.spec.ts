import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64, encodeBase64 } from './base64.js';
import {
  consistencyProof,
  inclusionProof,
  MerkleFrontier,
  merkleLeafHash,
  merkleNodeHash,
  merkleRootAt,
  parseMerkleProof,
  verifyConsistency,
  verifyInclusion,
  type MerkleHash,
  type MerkleNodeFetch,
} from './merkle.js';
import { NoteError, openNote, parseCheckpoint, parseVerifierKey } from './note.js';

const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';

// A tree whose leaves are all the same has one hash per level, so a tree of 2^45 leaves is
// consistent and costs 45 hashes: enough to check the arithmetic far past 32 bits.
const LEAF = merkleLeafHash(Uint8Array.of(7));
const LEVELS: MerkleHash[] = [LEAF];
for (let level = 1; level <= 53; level++) LEVELS.push(merkleNodeHash(LEVELS[level - 1]!, LEVELS[level - 1]!));
const uniformFetch: MerkleNodeFetch = (ids) => Promise.resolve(ids.map(({ level }) => LEVELS[level]!));

/** The root of a uniform tree of `size` leaves, folded from its perfect subtrees by hand. */
function uniformRoot(size: number): MerkleHash {
  const parts: MerkleHash[] = [];
  for (let level = 53; level >= 0; level--) if (Math.floor(size / 2 ** level) % 2 === 1) parts.push(LEVELS[level]!);
  let root = parts.at(-1)!;
  for (let i = parts.length - 2; i >= 0; i--) root = merkleNodeHash(parts[i]!, root);
  return root;
}

const bigSize = fc.integer({ min: 2, max: 2 ** 45 });

describe('sizes past 2^32 (no 32-bit bitwise arithmetic)', () => {
  it('proves inclusion of any leaf of a huge tree', async () => {
    await fc.assert(
      fc.asyncProperty(bigSize, fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), async (size, at) => {
        const index = Math.floor(at * size);
        const proof = await inclusionProof({ index, size, fetch: uniformFetch });
        const root = await merkleRootAt({ size, fetch: uniformFetch });
        expect(root).toEqual(uniformRoot(size));
        expect(verifyInclusion({ leafHash: LEAF, index, size, proof, root })).toBe(true);
        expect(verifyInclusion({ leafHash: LEAF, index: size, size, proof, root })).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('proves consistency between any two sizes of a huge tree', async () => {
    await fc.assert(
      fc.asyncProperty(bigSize, fc.double({ min: 0, max: 1, noNaN: true }), async (newSize, at) => {
        const oldSize = Math.max(1, Math.floor(at * newSize));
        const proof = await consistencyProof({ oldSize, newSize, fetch: uniformFetch });
        const oldRoot = uniformRoot(oldSize);
        const newRoot = uniformRoot(newSize);
        expect(verifyConsistency({ oldSize, newSize, oldRoot, newRoot, proof })).toBe(true);
        if (proof.length > 0) expect(verifyConsistency({ oldSize, newSize, oldRoot, newRoot, proof: proof.slice(1) })).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('appends to a restored frontier of 2^40 - 1 leaves and closes every level up to 40', () => {
    const size = 2 ** 40 - 1;
    const hashes = Array.from({ length: 40 }, (_, i) => LEVELS[39 - i]!);
    const frontier = new MerkleFrontier({ size, hashes });
    expect(frontier.root()).toEqual(uniformRoot(size));
    const completed = frontier.append(LEAF);
    expect(completed.map(({ level, index }) => [level, index])).toEqual(Array.from({ length: 41 }, (_, level) => [level, (2 ** 40 - 2 ** level) / 2 ** level]));
    expect(frontier.root()).toEqual(LEVELS[40]);
    expect(frontier.state()).toEqual({ size: 2 ** 40, hashes: [LEVELS[40]] });
  });
});

describe('untrusted input never throws anything but a NoteError, and verification never throws', () => {
  const noteText = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.tuple(fc.string({ maxLength: 80 }), fc.string({ maxLength: 80 })).map(([text, sig]) => `${text}\n\n\u2014 PeterNeumann ${sig}\n`),
  );

  it('openNote resolves or rejects with a NoteError on any text', async () => {
    await fc.assert(
      fc.asyncProperty(noteText, async (note) => {
        try {
          await openNote({ note, verifiers: [PETER_VKEY] });
        } catch (error) {
          expect(error).toBeInstanceOf(NoteError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('parseCheckpoint and parseVerifierKey throw only NoteErrors', () => {
    fc.assert(
      fc.property(noteText, (text) => {
        for (const parse of [parseCheckpoint, parseVerifierKey]) {
          try {
            parse(text);
          } catch (error) {
            expect(error).toBeInstanceOf(NoteError);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('verification answers a boolean for any numbers and byte arrays', () => {
    const bytes = fc.uint8Array({ minLength: 0, maxLength: 40 });
    const number = fc.oneof(fc.integer(), fc.double(), fc.constant(2 ** 53), fc.constant(Number.NaN));
    fc.assert(
      fc.property(bytes, bytes, number, number, fc.array(bytes, { maxLength: 70 }), (a, b, m, n, proof) => {
        expect(typeof verifyInclusion({ leafHash: a, index: m, size: n, proof, root: b })).toBe('boolean');
        expect(typeof verifyConsistency({ oldSize: m, newSize: n, oldRoot: a, newRoot: b, proof })).toBe('boolean');
      }),
      { numRuns: 500 },
    );
  });

  it('base64 round-trips every byte string, and parseMerkleProof reads only what encodeBase64 writes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70 }), fc.string({ maxLength: 60 }), (bytes, junk) => {
        expect(decodeBase64(encodeBase64(bytes))).toEqual(bytes);
        const decoded = decodeBase64(junk);
        if (decoded) expect(encodeBase64(decoded)).toBe(junk);
        const proof = parseMerkleProof([junk]);
        if (proof) expect(encodeBase64(proof[0]!)).toBe(junk);
      }),
      { numRuns: 500 },
    );
  });
});
