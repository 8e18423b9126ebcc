import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../encoding.js';
import {
  consistencyProof,
  EMPTY_TREE_ROOT,
  encodeMerkleProof,
  inclusionProof,
  MerkleFrontier,
  merkleLeafHash,
  merkleNodeHash,
  merkleRangeNodes,
  merkleRootAt,
  parseMerkleProof,
  verifyConsistency,
  verifyInclusion,
  type MerkleHash,
  type MerkleNodeFetch,
  type MerkleNodeId,
  type SyncDigest,
} from './merkle.js';

// An independent reference: RFC 9162 §2.1.1-§2.1.4 written as the RFC defines them, recursively,
// with node:crypto's SHA-256, sharing no code with merkle.ts.
const H = (...parts: Uint8Array[]): Uint8Array => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
};
const leafOf = (data: Uint8Array): Uint8Array => H(Uint8Array.of(0), data);
const nodeOf = (left: Uint8Array, right: Uint8Array): Uint8Array => H(Uint8Array.of(1), left, right);
/** The largest power of two strictly below n. */
const kOf = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1);

/** MTH(D[start:end]) of RFC 9162 §2.1.1, memoised by range. */
function reference(leaves: Uint8Array[]) {
  const memo = new Map<string, Uint8Array>();
  const mth = (start: number, end: number): Uint8Array => {
    const key = `${start}:${end}`;
    const known = memo.get(key);
    if (known) return known;
    const n = end - start;
    const value = n === 0 ? H() : n === 1 ? leafOf(leaves[start]!) : nodeOf(mth(start, start + kOf(n)), mth(start + kOf(n), end));
    memo.set(key, value);
    return value;
  };
  /** PATH(m, D[start:end]) of §2.1.3.1. */
  const path = (m: number, start: number, end: number): Uint8Array[] => {
    const n = end - start;
    if (n === 1) return [];
    const k = kOf(n);
    return m < k ? [...path(m, start, start + k), mth(start + k, end)] : [...path(m - k, start + k, end), mth(start, start + k)];
  };
  /** SUBPROOF(m, D[start:end], b) of §2.1.4.1. */
  const subproof = (m: number, start: number, end: number, b: boolean): Uint8Array[] => {
    const n = end - start;
    if (m === n) return b ? [] : [mth(start, end)];
    const k = kOf(n);
    return m <= k
      ? [...subproof(m, start, start + k, b), mth(start + k, end)]
      : [...subproof(m - k, start + k, end, false), mth(start, start + k)];
  };
  return { mth, path: (m: number, n: number) => path(m, 0, n), proof: (m: number, n: number) => subproof(m, 0, n, true) };
}

/** A tree built with MerkleFrontier, its emitted subtrees kept in a map, and a counting fetch. */
function builtTree(count: number, digest?: SyncDigest) {
  const leaves = Array.from({ length: count }, (_, i) => Uint8Array.of(i, i >> 8, 0xab));
  const frontier = new MerkleFrontier({ size: 0, hashes: [], ...(digest ? { digest } : {}) });
  const nodes = new Map<string, MerkleHash>();
  const roots: MerkleHash[] = [frontier.root()];
  for (const leaf of leaves) {
    for (const node of frontier.append(merkleLeafHash(leaf))) nodes.set(`${node.level}/${node.index}`, node.hash);
    roots.push(frontier.root());
  }
  const calls: MerkleNodeId[][] = [];
  const fetch: MerkleNodeFetch = (ids) => {
    calls.push(ids);
    const hashes = ids.map(({ level, index }) => nodes.get(`${level}/${index}`));
    if (hashes.some((hash) => hash === undefined)) return Promise.reject(new Error('asked for a subtree that is not complete'));
    return Promise.resolve(hashes as MerkleHash[]);
  };
  return { leaves, frontier, nodes, roots, fetch, calls };
}

const hex = (hashes: Uint8Array[]): string[] => hashes.map((hash) => toHex(hash));
const flipped = (hash: Uint8Array, bit = 0): Uint8Array => {
  const copy = new Uint8Array(hash);
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
};

describe('Merkle hashes (RFC 9162 §2.1.1)', () => {
  it('hashes a leaf as SHA-256(0x00 || data) and a node as SHA-256(0x01 || left || right)', () => {
    const a = Uint8Array.of(1, 2, 3);
    expect(toHex(merkleLeafHash(a))).toBe(toHex(leafOf(a)));
    expect(toHex(merkleNodeHash(leafOf(a), leafOf(a)))).toBe(toHex(nodeOf(leafOf(a), leafOf(a))));
  });

  it('gives the empty tree the SHA-256 of the empty string', () => {
    expect(toHex(EMPTY_TREE_ROOT)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(toHex(new MerkleFrontier().root())).toBe(toHex(EMPTY_TREE_ROOT));
  });

  it('keeps verifying against the true empty root when a caller writes into EMPTY_TREE_ROOT', () => {
    const root = builtTree(3).roots[3]!;
    const empty = new Uint8Array(EMPTY_TREE_ROOT);
    EMPTY_TREE_ROOT.fill(0);
    try {
      expect(verifyConsistency({ oldSize: 0, newSize: 3, oldRoot: empty, newRoot: root, proof: [] })).toBe(true);
      expect(toHex(new MerkleFrontier().root())).toBe(toHex(empty));
    } finally {
      EMPTY_TREE_ROOT.set(empty);
    }
  });

  it('gives the same hashes with a plugged-in digest', () => {
    const nodeDigest: SyncDigest = (bytes) => new Uint8Array(createHash('sha256').update(bytes).digest());
    const plugged = builtTree(13, nodeDigest);
    const plain = builtTree(13);
    expect(hex(plugged.roots)).toEqual(hex(plain.roots));
  });
});

// The certificate-transparency reference tests (merkle_tree_test.cc): eight leaves and the root
// of the tree at each size 1 to 8.
const ctLeaves = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
const ctRoots = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

describe('the certificate-transparency test vectors', () => {
  it('reproduces the root of the eight-leaf tree at every size', () => {
    const frontier = new MerkleFrontier();
    const roots = ctLeaves.map((leaf) => {
      frontier.append(merkleLeafHash(fromHex(leaf)));
      return toHex(frontier.root());
    });
    expect(roots).toEqual(ctRoots);
  });

  it('reproduces the roots with the reference MTH too (the vectors check the reference)', () => {
    const { mth } = reference(ctLeaves.map((leaf) => fromHex(leaf)));
    expect(ctRoots.map((_, i) => toHex(mth(0, i + 1)))).toEqual(ctRoots);
  });
});

describe('MerkleFrontier', () => {
  it('emits every complete subtree an append completes, the leaf first', () => {
    const frontier = new MerkleFrontier();
    const leaf = (i: number) => merkleLeafHash(Uint8Array.of(i));
    for (let i = 0; i < 7; i++) frontier.append(leaf(i));
    const completed = frontier.append(leaf(7));
    expect(completed.map(({ level, index }) => ({ level, index }))).toEqual([
      { level: 0, index: 7 },
      { level: 1, index: 3 },
      { level: 2, index: 1 },
      { level: 3, index: 0 },
    ]);
    expect(toHex(completed[3]!.hash)).toBe(toHex(frontier.root()));
  });

  it('restores from its state and carries on with the same roots', () => {
    const whole = builtTree(40);
    const part = builtTree(23);
    const restored = new MerkleFrontier(part.frontier.state());
    for (const leaf of whole.leaves.slice(23)) restored.append(merkleLeafHash(leaf));
    expect(toHex(restored.root())).toBe(toHex(whole.frontier.root()));
    expect(restored.size).toBe(40);
  });

  it('refuses a state whose hash count does not match its size', () => {
    const { hashes } = builtTree(5).frontier.state();
    expect(() => new MerkleFrontier({ size: 7, hashes })).toThrow('a Merkle frontier of size 7 holds 3 hashes');
    expect(() => new MerkleFrontier({ size: -1, hashes: [] })).toThrow('a Merkle frontier size is a whole number from 0 to 2^53 - 1');
    expect(() => new MerkleFrontier({ size: 1, hashes: [new Uint8Array(31)] })).toThrow('every hash of a Merkle frontier is 32 bytes');
  });

  it('refuses a leaf hash that is not 32 bytes', () => {
    expect(() => new MerkleFrontier().append(new Uint8Array(33))).toThrow('a Merkle leaf hash is 32 bytes');
  });

  it('does not let a caller change its state through what it returned', () => {
    const frontier = new MerkleFrontier();
    const completed = frontier.append(merkleLeafHash(Uint8Array.of(1)));
    const root = toHex(frontier.root());
    frontier.state().hashes[0]!.fill(0);
    frontier.root().fill(0);
    completed[0]!.hash.fill(0);
    expect(toHex(frontier.root())).toBe(root);
    const closing = frontier.append(merkleLeafHash(Uint8Array.of(2)));
    const rootOfTwo = toHex(frontier.root());
    closing.at(-1)!.hash.fill(0);
    expect(toHex(frontier.root())).toBe(rootOfTwo);
  });
});

describe('merkleRangeNodes', () => {
  it('covers a right-edge range with aligned perfect subtrees, largest first', () => {
    expect(merkleRangeNodes({ start: 0, end: 7 })).toEqual([
      { level: 2, index: 0 },
      { level: 1, index: 2 },
      { level: 0, index: 6 },
    ]);
    expect(merkleRangeNodes({ start: 8, end: 13 })).toEqual([
      { level: 2, index: 2 },
      { level: 0, index: 12 },
    ]);
    expect(merkleRangeNodes({ start: 3, end: 3 })).toEqual([]);
  });
});

describe('roots and proofs against the RFC 9162 reference, every size 1 to 70', () => {
  const SIZES = 70;
  // Leaves past SIZES let the wrong-size cases below ask the reference about larger trees.
  const tree = builtTree(2 * SIZES + 2);
  const ref = reference(tree.leaves);

  it('answers the reference MTH at every size, from the frontier and from storage', async () => {
    for (let size = 0; size <= SIZES; size++) {
      expect(toHex(tree.roots[size]!)).toBe(toHex(ref.mth(0, size)));
      expect(toHex(await merkleRootAt({ size, fetch: tree.fetch }))).toBe(toHex(ref.mth(0, size)));
    }
  });

  it('builds the reference PATH for every index, in one fetch, and it verifies', async () => {
    for (let size = 1; size <= SIZES; size++) {
      for (let index = 0; index < size; index++) {
        tree.calls.length = 0;
        const proof = await inclusionProof({ index, size, fetch: tree.fetch });
        expect(tree.calls.length).toBeLessThanOrEqual(1);
        expect(hex(proof)).toEqual(hex(ref.path(index, size)));
        const leafHash = merkleLeafHash(tree.leaves[index]!);
        expect(verifyInclusion({ leafHash, index, size, proof, root: tree.roots[size]! })).toBe(true);
      }
    }
  });

  it('builds the reference PROOF for every old size, in one fetch, and it verifies', async () => {
    for (let newSize = 1; newSize <= SIZES; newSize++) {
      for (let oldSize = 0; oldSize <= newSize; oldSize++) {
        tree.calls.length = 0;
        const proof = await consistencyProof({ oldSize, newSize, fetch: tree.fetch });
        expect(tree.calls.length).toBeLessThanOrEqual(1);
        expect(hex(proof)).toEqual(oldSize === 0 ? [] : hex(ref.proof(oldSize, newSize)));
        const ok = verifyConsistency({ oldSize, newSize, oldRoot: tree.roots[oldSize]!, newRoot: tree.roots[newSize]!, proof });
        expect(ok).toBe(true);
      }
    }
  });

  it('rejects every inclusion proof with a flipped bit, a wrong index, size, leaf or root, or a hash too few or too many', async () => {
    for (let size = 1; size <= SIZES; size += 3) {
      for (let index = 0; index < size; index++) {
        const proof = await inclusionProof({ index, size, fetch: tree.fetch });
        const leafHash = merkleLeafHash(tree.leaves[index]!);
        const root = tree.roots[size]!;
        const check = (changes: Partial<Parameters<typeof verifyInclusion>[0]>) => verifyInclusion({ leafHash, index, size, proof, root, ...changes });
        proof.forEach((_, i) => {
          expect(check({ proof: proof.map((p, j) => (i === j ? flipped(p, 77) : p)) })).toBe(false);
        });
        if (size > 1) expect(check({ index: (index + 1) % size })).toBe(false);
        expect(check({ index: size })).toBe(false);
        // The proof binds the size only through the shape of the path (the root is what the signed
        // checkpoint binds to its size): a size whose PATH has another length must fail.
        for (const other of [size - 1, size + 1, 2 * size]) {
          if (other > index && ref.path(index, other).length !== proof.length) expect(check({ size: other })).toBe(false);
        }
        expect(check({ leafHash: flipped(leafHash) })).toBe(false);
        expect(check({ root: flipped(root) })).toBe(false);
        expect(check({ proof: [...proof, root] })).toBe(false);
        if (proof.length > 0) expect(check({ proof: proof.slice(1) })).toBe(false);
      }
    }
  });

  it('rejects every consistency proof with a flipped bit, wrong sizes or roots, or a hash too few or too many', async () => {
    for (let newSize = 2; newSize <= SIZES; newSize += 3) {
      for (let oldSize = 1; oldSize < newSize; oldSize++) {
        const proof = await consistencyProof({ oldSize, newSize, fetch: tree.fetch });
        const oldRoot = tree.roots[oldSize]!;
        const newRoot = tree.roots[newSize]!;
        const check = (changes: Partial<Parameters<typeof verifyConsistency>[0]>) =>
          verifyConsistency({ oldSize, newSize, oldRoot, newRoot, proof, ...changes });
        proof.forEach((_, i) => {
          expect(check({ proof: proof.map((p, j) => (i === j ? flipped(p, 200) : p)) })).toBe(false);
        });
        expect(check({ oldRoot: flipped(oldRoot) })).toBe(false);
        expect(check({ newRoot: flipped(newRoot) })).toBe(false);
        for (const other of [newSize + 1, 2 * newSize]) {
          if (ref.proof(oldSize, other).length !== proof.length) expect(check({ newSize: other })).toBe(false);
        }
        expect(check({ oldSize: oldSize + 1, oldRoot: tree.roots[oldSize + 1]! })).toBe(false);
        expect(check({ proof: [...proof, newRoot] })).toBe(false);
        expect(check({ proof: proof.slice(0, -1) })).toBe(false);
        expect(check({ proof: [] })).toBe(false);
      }
    }
  });
});

describe('verification refuses malformed input without throwing', () => {
  const tree = builtTree(9);
  const root = tree.roots[9]!;
  const leafHash = merkleLeafHash(tree.leaves[4]!);

  it('answers false for an inclusion proof with an index at or past the size, or a bad number or hash', async () => {
    const proof = await inclusionProof({ index: 4, size: 9, fetch: tree.fetch });
    const base = { leafHash, index: 4, size: 9, proof, root };
    expect(verifyInclusion(base)).toBe(true);
    expect(verifyInclusion({ ...base, index: 9 })).toBe(false);
    expect(verifyInclusion({ ...base, index: 12 })).toBe(false);
    expect(verifyInclusion({ ...base, index: -1 })).toBe(false);
    expect(verifyInclusion({ ...base, index: 4.5 })).toBe(false);
    expect(verifyInclusion({ ...base, size: 0 })).toBe(false);
    expect(verifyInclusion({ ...base, size: 2 ** 53 })).toBe(false);
    expect(verifyInclusion({ ...base, size: Number.NaN })).toBe(false);
    expect(verifyInclusion({ ...base, leafHash: leafHash.subarray(1) })).toBe(false);
    expect(verifyInclusion({ ...base, root: new Uint8Array(64) })).toBe(false);
    expect(verifyInclusion({ ...base, proof: [...proof.slice(0, -1), new Uint8Array(31)] })).toBe(false);
    expect(verifyInclusion({ ...base, proof: Array.from({ length: 65 }, () => root) })).toBe(false);
    expect(verifyInclusion({ ...base, proof: null as unknown as MerkleHash[] })).toBe(false);
  });

  it('answers false for a consistency proof whose old size exceeds the new, or a bad number or hash', async () => {
    const proof = await consistencyProof({ oldSize: 5, newSize: 9, fetch: tree.fetch });
    const base = { oldSize: 5, newSize: 9, oldRoot: tree.roots[5]!, newRoot: root, proof };
    expect(verifyConsistency(base)).toBe(true);
    expect(verifyConsistency({ ...base, oldSize: 10 })).toBe(false);
    expect(verifyConsistency({ ...base, oldSize: -5 })).toBe(false);
    expect(verifyConsistency({ ...base, newSize: 2 ** 53 })).toBe(false);
    expect(verifyConsistency({ ...base, oldRoot: new Uint8Array(31) })).toBe(false);
    expect(verifyConsistency({ ...base, proof: [...proof, new Uint8Array(33)] })).toBe(false);
    expect(verifyConsistency({ ...base, proof: Array.from({ length: 65 }, () => root) })).toBe(false);
  });

  it('accepts the same tree with an empty proof and equal roots only', () => {
    expect(verifyConsistency({ oldSize: 9, newSize: 9, oldRoot: root, newRoot: root, proof: [] })).toBe(true);
    expect(verifyConsistency({ oldSize: 9, newSize: 9, oldRoot: root, newRoot: flipped(root), proof: [] })).toBe(false);
    expect(verifyConsistency({ oldSize: 9, newSize: 9, oldRoot: root, newRoot: root, proof: [root] })).toBe(false);
  });

  it('accepts growth from the empty tree with an empty proof and the empty root only', () => {
    expect(verifyConsistency({ oldSize: 0, newSize: 9, oldRoot: EMPTY_TREE_ROOT, newRoot: root, proof: [] })).toBe(true);
    expect(verifyConsistency({ oldSize: 0, newSize: 9, oldRoot: root, newRoot: root, proof: [] })).toBe(false);
    expect(verifyConsistency({ oldSize: 0, newSize: 9, oldRoot: EMPTY_TREE_ROOT, newRoot: root, proof: [root] })).toBe(false);
  });
});

describe('building proofs refuses bad requests and bad storage', () => {
  const tree = builtTree(9);

  it('throws on an index at or past the size, and on an old size past the new', async () => {
    await expect(inclusionProof({ index: 9, size: 9, fetch: tree.fetch })).rejects.toThrow('an inclusion proof needs a leaf index below the tree size');
    await expect(inclusionProof({ index: 0, size: 0, fetch: tree.fetch })).rejects.toThrow('an inclusion proof needs a tree size from 1 to 2^53 - 1');
    await expect(consistencyProof({ oldSize: 10, newSize: 9, fetch: tree.fetch })).rejects.toThrow('a consistency proof needs an old size from 0 to the new size');
    await expect(merkleRootAt({ size: -1, fetch: tree.fetch })).rejects.toThrow('a tree size is a whole number from 0 to 2^53 - 1');
  });

  it('throws when storage answers the wrong number of hashes or a hash of the wrong length', async () => {
    const short: MerkleNodeFetch = (ids) => Promise.resolve(ids.slice(1).map(() => new Uint8Array(32)));
    const long: MerkleNodeFetch = (ids) => Promise.resolve(ids.map(() => new Uint8Array(16)));
    await expect(merkleRootAt({ size: 7, fetch: short })).rejects.toThrow('Merkle node storage answered 2 hashes for 3 subtrees, or one not of 32 bytes');
    await expect(inclusionProof({ index: 2, size: 7, fetch: long })).rejects.toThrow('Merkle node storage answered 4 hashes for 4 subtrees, or one not of 32 bytes');
  });

  it('never asks storage for a subtree that is not complete', async () => {
    for (let size = 1; size <= 9; size++) {
      tree.calls.length = 0;
      await merkleRootAt({ size, fetch: tree.fetch });
      for (let index = 0; index < size; index++) await inclusionProof({ index, size, fetch: tree.fetch });
      for (let oldSize = 1; oldSize <= size; oldSize++) await consistencyProof({ oldSize, newSize: size, fetch: tree.fetch });
      for (const { level, index } of tree.calls.flat()) expect((index + 1) * 2 ** level).toBeLessThanOrEqual(size);
    }
  });
});

describe('proofs on the wire (a JSON array of base64 hashes)', () => {
  const hashes = [merkleLeafHash(Uint8Array.of(1)), merkleLeafHash(Uint8Array.of(2))];

  it('encodes a proof as standard base64 and reads it back', () => {
    const wire = encodeMerkleProof(hashes);
    expect(wire).toEqual(hashes.map((hash) => Buffer.from(hash).toString('base64')));
    expect(hex(parseMerkleProof(JSON.parse(JSON.stringify(wire)))!)).toEqual(hex(hashes));
    expect(parseMerkleProof([])).toEqual([]);
  });

  it.each<[string, unknown]>([
    ['not an array', 'AAAA'],
    ['a number in the array', [1]],
    ['a hash of 31 bytes', [Buffer.alloc(31).toString('base64')]],
    ['a hash of 33 bytes', [Buffer.alloc(33).toString('base64')]],
    ['base64url', [Buffer.alloc(32, 0xff).toString('base64url')]],
    ['base64 without padding', [Buffer.alloc(32).toString('base64').replace(/=+$/, '')]],
    ['65 hashes', Array.from({ length: 65 }, () => Buffer.alloc(32).toString('base64'))],
  ])('refuses a proof that is %s', (_, value) => {
    expect(parseMerkleProof(value)).toBeUndefined();
  });
});
