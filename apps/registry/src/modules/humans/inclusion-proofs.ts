import { inclusionProof, MERKLE_HASH_BYTES, type MerkleHash, type MerkleNodeFetch, type MerkleNodeId, type SyncDigest } from '@writ/core';

const keyOf = (id: MerkleNodeId): string => `${id.level}:${id.index}`;

/**
 * RFC 9162 §2.1.3.1 inclusion proofs of several leaves in the tree of `size` leaves, with one
 * call to `fetch` for all of them (one database round trip, not one per event). Which subtrees a
 * proof needs depends only on the index and the size, never on their hashes: a first pass with
 * placeholder hashes lists them, the nodes are fetched once, and a second pass builds the proofs.
 *
 * @example
 * ```ts
 * const [proof] = await inclusionProofs({ indexes: [2], size: 7, fetch: (ids) => repository.nodes(ids) });
 * ```
 */
export async function inclusionProofs(options: { indexes: number[]; size: number; fetch: MerkleNodeFetch; digest?: SyncDigest }): Promise<MerkleHash[][]> {
  const { indexes, size, fetch, digest } = options;
  const wanted = new Map<string, MerkleNodeId>();
  const record: MerkleNodeFetch = (ids) => {
    for (const id of ids) wanted.set(keyOf(id), id);
    return Promise.resolve(ids.map(() => new Uint8Array(MERKLE_HASH_BYTES)));
  };
  for (const index of indexes) await inclusionProof({ index, size, fetch: record, digest });
  if (wanted.size === 0) return indexes.map(() => []);
  const ids = [...wanted.values()];
  const hashes = await fetch(ids);
  const found = new Map(ids.map((id, i) => [keyOf(id), hashes[i]]));
  const lookup: MerkleNodeFetch = (nodes) => Promise.resolve(nodes.map((id) => found.get(keyOf(id))!));
  return Promise.all(indexes.map((index) => inclusionProof({ index, size, fetch: lookup, digest })));
}
