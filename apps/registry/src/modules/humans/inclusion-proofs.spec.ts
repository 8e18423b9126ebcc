import { inclusionProof, MerkleFrontier, type MerkleHash, type MerkleNodeId, merkleLeafHash, verifyInclusion } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { inclusionProofs } from './inclusion-proofs.js';

/** A tree of `size` leaves (leaf i's data is the byte i) with every complete subtree stored, as the registry stores them. */
function storedTree(size: number) {
  const nodes = new Map<string, MerkleHash>();
  const frontier = new MerkleFrontier({ size: 0, hashes: [] });
  const leaves: MerkleHash[] = [];
  for (let i = 0; i < size; i++) {
    const leaf = merkleLeafHash(new Uint8Array([i]));
    leaves.push(leaf);
    for (const node of frontier.append(leaf)) nodes.set(`${node.level}:${node.index}`, node.hash);
  }
  const calls: MerkleNodeId[][] = [];
  const fetch = (ids: MerkleNodeId[]): Promise<MerkleHash[]> => {
    calls.push(ids);
    return Promise.resolve(ids.map((id) => nodes.get(`${id.level}:${id.index}`)!));
  };
  return { leaves, root: frontier.root(), fetch, calls };
}

describe('inclusionProofs', () => {
  it('gives every leaf the RFC 9162 proof that inclusionProof gives, from one fetch', async () => {
    const tree = storedTree(13);
    const indexes = [0, 4, 5, 12];
    const proofs = await inclusionProofs({ indexes, size: 13, fetch: tree.fetch });
    expect(tree.calls).toHaveLength(1);
    for (const [i, index] of indexes.entries()) {
      expect(proofs[i]).toEqual(await inclusionProof({ index, size: 13, fetch: tree.fetch }));
      expect(verifyInclusion({ leafHash: tree.leaves[index]!, index, size: 13, proof: proofs[i]!, root: tree.root })).toBe(true);
    }
  });

  it('asks each subtree once, however many proofs need it', async () => {
    const tree = storedTree(8);
    await inclusionProofs({ indexes: [0, 1, 2, 3], size: 8, fetch: tree.fetch });
    const keys = tree.calls[0]!.map((id) => `${id.level}:${id.index}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('answers no proofs and fetches nothing for no leaves, and empty proofs in a tree of one', async () => {
    const tree = storedTree(1);
    expect(await inclusionProofs({ indexes: [], size: 1, fetch: tree.fetch })).toEqual([]);
    expect(await inclusionProofs({ indexes: [0], size: 1, fetch: tree.fetch })).toEqual([[]]);
    expect(tree.calls).toHaveLength(0);
  });

  it('fails when storage lacks a subtree, rather than answer a proof that does not verify', async () => {
    const tree = storedTree(6);
    const missing = (ids: MerkleNodeId[]): Promise<MerkleHash[]> => tree.fetch(ids).then((hashes) => hashes.slice(1));
    await expect(inclusionProofs({ indexes: [2], size: 6, fetch: missing })).rejects.toThrow(/answered/);
  });
});
