import { sha256 } from '@noble/hashes/sha2.js';
import { decodeBase64, encodeBase64 } from './base64.js';

/**
 * The Merkle tree of RFC 9162 §2.1 over the audit log: SHA-256, a leaf hashed as
 * `H(0x00 || data)`, an interior node as `H(0x01 || left || right)`, the tree over `n` leaves split
 * at the largest power of two below `n`. Storage keeps only complete (perfect) subtrees, in the
 * order {@link MerkleFrontier.append} emits them; roots and proofs at any size are folded from
 * those, fetched in one batch per proof.
 *
 * Sizes and indexes are JavaScript numbers up to 2^53 - 1, so all arithmetic here is by division
 * and remainder, never by 32-bit bitwise operators.
 */

/** A SHA-256 hash in the tree: 32 bytes. */
export type MerkleHash = Uint8Array;

/**
 * A synchronous SHA-256. The default is `@noble/hashes` (audited, browser-safe); a server may plug
 * in a native one (Node's one-shot `hash('sha256', bytes, 'buffer')`). The hashes are the same.
 *
 * @example
 * ```ts
 * // On Node, with `hash` from Node's crypto module:
 * const nodeDigest: SyncDigest = (bytes) => hash('sha256', bytes, 'buffer');
 * merkleLeafHash(data, nodeDigest);
 * ```
 */
export type SyncDigest = (bytes: Uint8Array) => Uint8Array;

/** Length in bytes of every hash in the tree. */
export const MERKLE_HASH_BYTES = 32;

/** The deepest level a tree of at most 2^53 - 1 leaves has. */
const MAX_LEVEL = 53;

/** Largest tree size (and proof index) accepted: `Number.MAX_SAFE_INTEGER`. */
const MAX_SIZE = Number.MAX_SAFE_INTEGER;

/** The most hashes a proof over at most 2^53 - 1 leaves can hold (with margin). */
export const MAX_PROOF_HASHES = 64;

const defaultDigest: SyncDigest = (bytes) => sha256(bytes);

/**
 * The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
 *
 * @example
 * ```ts
 * new MerkleFrontier().root(); // equal to EMPTY_TREE_ROOT
 * ```
 */
export const EMPTY_TREE_ROOT: MerkleHash = defaultDigest(new Uint8Array(0));

/** This module's own copy of the empty root: a caller writing into the export changes nothing here. */
const EMPTY_ROOT: MerkleHash = EMPTY_TREE_ROOT.slice();

/**
 * The hash of a leaf: `SHA-256(0x00 || data)` (RFC 9162 §2.1.1).
 *
 * @example
 * ```ts
 * const leaf = merkleLeafHash(fromHex(event.hash)); // the audit log's leaf i is event seq i + 1
 * ```
 */
export function merkleLeafHash(data: Uint8Array, digest: SyncDigest = defaultDigest): MerkleHash {
  const input = new Uint8Array(1 + data.length);
  input[0] = 0x00;
  input.set(data, 1);
  return digest(input);
}

/**
 * The hash of an interior node: `SHA-256(0x01 || left || right)` (RFC 9162 §2.1.1).
 *
 * @example
 * ```ts
 * const root2 = merkleNodeHash(merkleLeafHash(a), merkleLeafHash(b));
 * ```
 */
export function merkleNodeHash(left: MerkleHash, right: MerkleHash, digest: SyncDigest = defaultDigest): MerkleHash {
  const input = new Uint8Array(1 + left.length + right.length);
  input[0] = 0x01;
  input.set(left, 1);
  input.set(right, 1 + left.length);
  return digest(input);
}

/**
 * A complete (perfect) subtree: leaves `[index·2^level, (index+1)·2^level)`. Level 0 is one leaf.
 *
 * @example
 * ```ts
 * const rootOfFirstFour: MerkleNodeId = { level: 2, index: 0 };
 * ```
 */
export interface MerkleNodeId {
  level: number;
  index: number;
}

/**
 * Where proofs read complete subtrees from: answers the hashes of `ids`, in the same order.
 * Storage keeps them as {@link MerkleFrontier.append} emits them. Called once per root or proof.
 *
 * @example
 * ```ts
 * const fetch: MerkleNodeFetch = async (ids) => ids.map(({ level, index }) => nodes.get(`${level}/${index}`)!);
 * ```
 */
export type MerkleNodeFetch = (ids: MerkleNodeId[]) => Promise<MerkleHash[]>;

/** A complete subtree with its hash, as {@link MerkleFrontier.append} emits it. */
export type MerkleNode = MerkleNodeId & { hash: MerkleHash };

/** 2^level as a number (exact up to 2^53). */
const pow2 = (level: number): number => 2 ** level;

/** True when `value` is a whole number in [min, MAX_SIZE]. */
const isSize = (value: unknown, min: number): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= MAX_SIZE;

/** True when `hash` is a byte array of exactly 32 bytes. */
const isHash = (hash: unknown): hash is MerkleHash => hash instanceof Uint8Array && hash.length === MERKLE_HASH_BYTES;

/** Number of set bits of a size: the number of perfect subtrees in the compact range [0, size). */
function popcount(size: number): number {
  let count = 0;
  for (let rest = size; rest > 0; rest = Math.floor(rest / 2)) count += rest % 2;
  return count;
}

/**
 * The compact range [0, size): the hashes of the perfect subtrees that cover it, largest (leftmost)
 * first, one per set bit of `size`. Appends a leaf in O(1) amortised and answers the root in
 * O(log n), the way Trillian's compact ranges and Tessera's integration do.
 *
 * @example
 * ```ts
 * const frontier = new MerkleFrontier(saved ?? { size: 0, hashes: [] });
 * const completed = frontier.append(merkleLeafHash(bytes)); // store every completed subtree
 * const root = frontier.root();
 * save(frontier.state());
 * ```
 */
export class MerkleFrontier {
  #size: number;
  readonly #hashes: MerkleHash[];
  readonly #digest: SyncDigest;

  constructor(options: { size: number; hashes: MerkleHash[]; digest?: SyncDigest } = { size: 0, hashes: [] }) {
    const { size, hashes, digest = defaultDigest } = options;
    if (!isSize(size, 0)) throw new RangeError('a Merkle frontier size is a whole number from 0 to 2^53 - 1');
    if (!Array.isArray(hashes) || hashes.length !== popcount(size)) {
      throw new RangeError(`a Merkle frontier of size ${size} holds ${popcount(size)} hashes`);
    }
    if (!hashes.every(isHash)) throw new TypeError('every hash of a Merkle frontier is 32 bytes');
    this.#size = size;
    this.#hashes = hashes.map((hash) => new Uint8Array(hash));
    this.#digest = digest;
  }

  /** The number of leaves appended so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends a leaf hash; returns every complete subtree this append completed, the leaf itself
   * first, then each larger subtree it closed, up to the largest.
   */
  append(leafHash: MerkleHash): MerkleNode[] {
    if (!isHash(leafHash)) throw new TypeError('a Merkle leaf hash is 32 bytes');
    if (this.#size >= MAX_SIZE) throw new RangeError('a Merkle tree holds at most 2^53 - 1 leaves');
    const position = this.#size;
    let hash: MerkleHash = new Uint8Array(leafHash);
    const completed: MerkleNode[] = [{ level: 0, index: position, hash }];
    // The leaf at `position` closes the subtree at level L + 1 whenever bit L of `position` is
    // set: the left sibling of that level is the last hash of the compact range.
    for (let level = 0; Math.floor(position / pow2(level)) % 2 === 1; level++) {
      const left = this.#hashes.pop()!;
      hash = merkleNodeHash(left, hash, this.#digest);
      completed.push({ level: level + 1, index: Math.floor(position / pow2(level + 1)), hash });
    }
    // The frontier keeps its own copy: what it returned is the caller's to keep or change.
    this.#hashes.push(hash.slice());
    this.#size = position + 1;
    return completed;
  }

  /** The root of the tree of the leaves appended so far (RFC 9162 §2.1.1 MTH). */
  root(): MerkleHash {
    return foldRight(this.#hashes, this.#digest);
  }

  /** To persist and restore: the size and the hashes of the compact range, left to right. */
  state(): { size: number; hashes: MerkleHash[] } {
    return { size: this.#size, hashes: this.#hashes.map((hash) => new Uint8Array(hash)) };
  }
}

/** The root of adjacent subtrees, largest first: folded from the right (RFC 9162 §2.1.1 MTH). A new array, never one of `hashes`. */
function foldRight(hashes: MerkleHash[], digest: SyncDigest): MerkleHash {
  if (hashes.length === 0) return EMPTY_ROOT.slice();
  if (hashes.length === 1) return hashes[0]!.slice();
  let root = hashes[hashes.length - 1]!;
  for (let i = hashes.length - 2; i >= 0; i--) root = merkleNodeHash(hashes[i]!, root, digest);
  return root;
}

/**
 * The perfect subtrees that cover the leaves [start, end), largest first. Every range a proof
 * needs starts at a multiple of a power of two at least as large as the range, so these are the
 * same subtrees RFC 9162's recursive split reaches, and their right fold is that range's MTH.
 *
 * @example
 * ```ts
 * merkleRangeNodes({ start: 0, end: 7 }); // [{ level: 2, index: 0 }, { level: 1, index: 2 }, { level: 0, index: 6 }]
 * ```
 */
export function merkleRangeNodes(options: { start: number; end: number }): MerkleNodeId[] {
  const { start, end } = options;
  const ids: MerkleNodeId[] = [];
  let at = start;
  while (at < end) {
    let level = 0;
    while (level < MAX_LEVEL && at % pow2(level + 1) === 0 && at + pow2(level + 1) <= end) level++;
    ids.push({ level, index: at / pow2(level) });
    at += pow2(level);
  }
  return ids;
}

/** A range of leaves [start, end) whose MTH a proof carries. */
interface LeafRange {
  start: number;
  end: number;
}

/** The largest power of two strictly below `n` (n ≥ 2): RFC 9162 §2.1.1's split point `k`. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * Fetches, in one call, every complete subtree the ranges need, and answers each range's MTH.
 * Fails if storage answers a different number of hashes or one that is not 32 bytes.
 */
async function rangeHashes(ranges: LeafRange[], fetch: MerkleNodeFetch, digest: SyncDigest): Promise<MerkleHash[]> {
  const perRange = ranges.map((range) => merkleRangeNodes(range));
  const ids = perRange.flat();
  if (ids.length === 0) return ranges.map(() => EMPTY_ROOT.slice());
  const hashes = await fetch(ids);
  if (!Array.isArray(hashes) || hashes.length !== ids.length || !hashes.every(isHash)) {
    throw new Error(`Merkle node storage answered ${Array.isArray(hashes) ? hashes.length : 'no'} hashes for ${ids.length} subtrees, or one not of 32 bytes`);
  }
  let offset = 0;
  return perRange.map((nodes) => {
    const slice = hashes.slice(offset, offset + nodes.length);
    offset += nodes.length;
    return foldRight(slice, digest);
  });
}

/**
 * The root of the tree at `size` (RFC 9162 §2.1.1 MTH), folded from the complete subtrees of the
 * compact range [0, size), fetched in one call.
 *
 * @example
 * ```ts
 * const root = await merkleRootAt({ size: 7, fetch });
 * ```
 */
export async function merkleRootAt(options: { size: number; fetch: MerkleNodeFetch; digest?: SyncDigest }): Promise<MerkleHash> {
  const { size, fetch, digest = defaultDigest } = options;
  if (!isSize(size, 0)) throw new RangeError('a tree size is a whole number from 0 to 2^53 - 1');
  const [root] = await rangeHashes([{ start: 0, end: size }], fetch, digest);
  return root!;
}

/**
 * The inclusion proof of leaf `index` in the tree at `size`: RFC 9162 §2.1.3.1 PATH(m, D[n]),
 * the sibling hashes from the leaf up to the root, each folded from complete subtrees fetched in
 * one call.
 *
 * @example
 * ```ts
 * const proof = await inclusionProof({ index: 3, size: 7, fetch });
 * verifyInclusion({ leafHash, index: 3, size: 7, proof, root }); // true
 * ```
 */
export async function inclusionProof(options: { index: number; size: number; fetch: MerkleNodeFetch; digest?: SyncDigest }): Promise<MerkleHash[]> {
  const { index, size, fetch, digest = defaultDigest } = options;
  if (!isSize(size, 1)) throw new RangeError('an inclusion proof needs a tree size from 1 to 2^53 - 1');
  if (!isSize(index, 0) || index >= size) throw new RangeError('an inclusion proof needs a leaf index below the tree size');
  // PATH(m, D[lo:hi]) = PATH(m, D[lo:lo+k]) : MTH(D[lo+k:hi]) when m < k, else
  // PATH(m - k, D[lo+k:hi]) : MTH(D[lo:lo+k]); siblings are found top-down, listed bottom-up.
  const siblings: LeafRange[] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      siblings.push({ start: lo + k, end: hi });
      hi = lo + k;
    } else {
      siblings.push({ start: lo, end: lo + k });
      lo += k;
    }
  }
  return rangeHashes(siblings.reverse(), fetch, digest);
}

/**
 * The consistency proof from the tree at `oldSize` to the tree at `newSize`: RFC 9162 §2.1.4.1
 * PROOF(m, D[n]) = SUBPROOF(m, D[n], true), each hash folded from complete subtrees fetched in
 * one call. Empty when `oldSize` is 0 or equals `newSize` (every tree is consistent with the empty
 * tree and with itself).
 *
 * @example
 * ```ts
 * const proof = await consistencyProof({ oldSize: 3, newSize: 7, fetch });
 * verifyConsistency({ oldSize: 3, newSize: 7, oldRoot, newRoot, proof }); // true
 * ```
 */
export async function consistencyProof(options: { oldSize: number; newSize: number; fetch: MerkleNodeFetch; digest?: SyncDigest }): Promise<MerkleHash[]> {
  const { oldSize, newSize, fetch, digest = defaultDigest } = options;
  if (!isSize(newSize, 0)) throw new RangeError('a consistency proof needs a new size from 0 to 2^53 - 1');
  if (!isSize(oldSize, 0) || oldSize > newSize) throw new RangeError('a consistency proof needs an old size from 0 to the new size');
  if (oldSize === 0 || oldSize === newSize) return [];
  // SUBPROOF(m, D[lo:hi], b): when m = hi - lo, [MTH(D[lo:hi])] unless b; else with k the split,
  // m ≤ k: SUBPROOF(m, D[lo:lo+k], b) : MTH(D[lo+k:hi]);
  // m > k: SUBPROOF(m - k, D[lo+k:hi], false) : MTH(D[lo:lo+k]).
  const appended: LeafRange[] = [];
  let terminal: LeafRange | undefined;
  let lo = 0;
  let hi = newSize;
  let m = oldSize;
  let complete = true;
  for (;;) {
    if (m === hi - lo) {
      if (!complete) terminal = { start: lo, end: hi };
      break;
    }
    const k = splitPoint(hi - lo);
    if (m <= k) {
      appended.push({ start: lo + k, end: hi });
      hi = lo + k;
    } else {
      appended.push({ start: lo, end: lo + k });
      lo += k;
      m -= k;
      complete = false;
    }
  }
  const ranges = terminal === undefined ? appended.reverse() : [terminal, ...appended.reverse()];
  return rangeHashes(ranges, fetch, digest);
}

/** Byte-wise equality of two hashes (public values: no constant time needed). */
function sameHash(a: MerkleHash, b: MerkleHash): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A proof is a list of at most 64 hashes of 32 bytes each: longer cannot be right for 2^53 leaves. */
const isProof = (proof: unknown): proof is MerkleHash[] => Array.isArray(proof) && proof.length <= MAX_PROOF_HASHES && proof.every(isHash);

/** `value` shifted right by one bit, for values up to 2^53 - 1. */
const half = (value: number): number => Math.floor(value / 2);

/** True when the least significant bit of `value` is set. */
const odd = (value: number): boolean => value % 2 === 1;

/**
 * Verifies an inclusion proof exactly as RFC 9162 §2.1.3.2 does. Never throws: any malformed
 * input (index ≥ size, a hash not of 32 bytes, too long or too short a proof) answers false.
 *
 * @example
 * ```ts
 * verifyInclusion({ leafHash, index: 3, size: 7, proof, root }); // true
 * ```
 */
export function verifyInclusion(options: { leafHash: MerkleHash; index: number; size: number; proof: MerkleHash[]; root: MerkleHash; digest?: SyncDigest }): boolean {
  try {
    const { leafHash, index, size, proof, root, digest = defaultDigest } = options;
    if (!isSize(size, 1) || !isSize(index, 0) || !isHash(leafHash) || !isHash(root) || !isProof(proof)) return false;
    // Step 1: a leaf index at or past the tree size fails.
    if (index >= size) return false;
    // Steps 2-3.
    let fn = index;
    let sn = size - 1;
    let r = leafHash;
    // Step 4.
    for (const p of proof) {
      if (sn === 0) return false;
      if (odd(fn) || fn === sn) {
        r = merkleNodeHash(p, r, digest);
        if (!odd(fn)) {
          while (!odd(fn) && fn !== 0) {
            fn = half(fn);
            sn = half(sn);
          }
        }
      } else {
        r = merkleNodeHash(r, p, digest);
      }
      fn = half(fn);
      sn = half(sn);
    }
    // Step 5.
    return sn === 0 && sameHash(r, root);
  } catch {
    return false;
  }
}

/**
 * Verifies a consistency proof exactly as RFC 9162 §2.1.4.2 does for 0 < oldSize < newSize. For
 * the cases that algorithm leaves out: equal sizes verify with an empty proof and equal roots; an
 * old size of 0 with an empty proof and the empty tree's root. Never throws: any malformed input
 * (oldSize > newSize, a hash not of 32 bytes, a proof too long or too short) answers false.
 *
 * @example
 * ```ts
 * verifyConsistency({ oldSize: 3, newSize: 7, oldRoot, newRoot, proof }); // true
 * ```
 */
export function verifyConsistency(options: {
  oldSize: number;
  newSize: number;
  oldRoot: MerkleHash;
  newRoot: MerkleHash;
  proof: MerkleHash[];
  digest?: SyncDigest;
}): boolean {
  try {
    const { oldSize, newSize, oldRoot, newRoot, proof, digest = defaultDigest } = options;
    if (!isSize(oldSize, 0) || !isSize(newSize, 0) || !isHash(oldRoot) || !isHash(newRoot) || !isProof(proof)) return false;
    if (oldSize > newSize) return false;
    if (oldSize === 0) return proof.length === 0 && sameHash(oldRoot, EMPTY_ROOT);
    if (oldSize === newSize) return proof.length === 0 && sameHash(oldRoot, newRoot);
    // Step 1.
    if (proof.length === 0) return false;
    // Step 2: when the old tree is a perfect subtree, its root is the path's first node.
    const path = popcount(oldSize) === 1 ? [oldRoot, ...proof] : proof;
    // Steps 3-4.
    let fn = oldSize - 1;
    let sn = newSize - 1;
    while (odd(fn)) {
      fn = half(fn);
      sn = half(sn);
    }
    // Step 5.
    let fr = path[0]!;
    let sr = path[0]!;
    // Step 6.
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (odd(fn) || fn === sn) {
        fr = merkleNodeHash(c, fr, digest);
        sr = merkleNodeHash(c, sr, digest);
        if (!odd(fn)) {
          while (!odd(fn) && fn !== 0) {
            fn = half(fn);
            sn = half(sn);
          }
        }
      } else {
        sr = merkleNodeHash(sr, c, digest);
      }
      fn = half(fn);
      sn = half(sn);
    }
    // Step 7.
    return sameHash(fr, oldRoot) && sameHash(sr, newRoot) && sn === 0;
  } catch {
    return false;
  }
}

/**
 * A proof as it travels (docs/audit.md, "Proofs"): a JSON array of its hashes in standard base64.
 *
 * @example
 * ```ts
 * reply.send({ proof: encodeMerkleProof(await inclusionProof({ index, size, fetch })) });
 * ```
 */
export function encodeMerkleProof(proof: MerkleHash[]): string[] {
  return proof.map((hash) => encodeBase64(hash));
}

/**
 * Reads a proof that crossed a trust boundary: an array of at most 64 strings, each canonical
 * standard base64 of exactly 32 bytes. Anything else answers undefined.
 *
 * @example
 * ```ts
 * const proof = parseMerkleProof(body.proof);
 * if (!proof || !verifyInclusion({ leafHash, index, size, proof, root })) throw new Error('not included');
 * ```
 */
export function parseMerkleProof(value: unknown): MerkleHash[] | undefined {
  if (!Array.isArray(value) || value.length > MAX_PROOF_HASHES) return undefined;
  const proof: MerkleHash[] = [];
  for (const item of value) {
    const hash = typeof item === 'string' ? decodeBase64(item) : undefined;
    if (!hash || hash.length !== MERKLE_HASH_BYTES) return undefined;
    proof.push(hash);
  }
  return proof;
}
