import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import {
  consistencyProof,
  formatCheckpoint,
  formatVerifierKey,
  MerkleFrontier,
  type MerkleHash,
  merkleLeafHash,
  type MerkleNodeFetch,
  merkleRootAt,
  signNote,
} from '@writ/core';

/** An Ed25519 key pair and its raw public key. */
export function ed25519(): { privateKey: KeyObject; publicKey: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const { x } = publicKey.export({ format: 'jwk' });
  return { privateKey, publicKey: new Uint8Array(Buffer.from(x!, 'base64url')) };
}

/**
 * A transparency log for the tests, built with the shared library: leaves appended to a
 * MerkleFrontier whose complete subtrees are kept in a map (as the registry keeps them in its
 * table), checkpoints signed as C2SP notes with the log's own Ed25519 key, and real RFC 9162
 * consistency proofs. Two logs made with the same origin and key but another `seed` fork.
 */
export class TestLog {
  readonly origin: string;
  readonly vkey: string;
  private readonly privateKey: KeyObject;
  private readonly seed: string;
  private readonly nodes = new Map<string, MerkleHash>();
  private readonly frontier = new MerkleFrontier();

  constructor(options: { origin: string; key?: { privateKey: KeyObject; publicKey: Uint8Array }; seed?: string }) {
    const key = options.key ?? ed25519();
    this.origin = options.origin;
    this.privateKey = key.privateKey;
    this.vkey = formatVerifierKey({ name: options.origin, publicKey: key.publicKey, type: 0x01 });
    this.seed = options.seed ?? 'event';
  }

  /** The key pair, to make a fork of this log (same origin, same key, other leaves). */
  static keyPair = ed25519;

  get size(): number {
    return this.frontier.size;
  }

  /** Appends `count` leaves, and `seed`-dependent data in each. */
  append(count: number): this {
    for (let i = 0; i < count; i += 1) {
      const leaf = merkleLeafHash(new TextEncoder().encode(`${this.seed} ${this.frontier.size + 1}`));
      for (const node of this.frontier.append(leaf)) this.nodes.set(`${node.level}:${node.index}`, node.hash);
    }
    return this;
  }

  readonly fetch: MerkleNodeFetch = (ids) =>
    Promise.resolve(
      ids.map((id) => {
        const hash = this.nodes.get(`${id.level}:${id.index}`);
        if (hash === undefined) throw new Error(`no node ${id.level}:${id.index}`);
        return hash;
      }),
    );

  async root(size = this.size): Promise<MerkleHash> {
    return size === this.size ? this.frontier.root() : merkleRootAt({ size, fetch: this.fetch });
  }

  /** The checkpoint note text at `size`. */
  async text(size = this.size): Promise<string> {
    return formatCheckpoint({ origin: this.origin, size, root: await this.root(size) });
  }

  /** The signed checkpoint at `size`, signed by this log's key (or `privateKey`). */
  async checkpoint(size = this.size, privateKey: KeyObject = this.privateKey): Promise<string> {
    return this.sign(await this.text(size), privateKey);
  }

  /** Any note text signed as this log (to make checkpoints an honest log would not). */
  sign(text: string, privateKey: KeyObject = this.privateKey): Promise<string> {
    return signNote({ text, name: this.origin, privateKey });
  }

  async proof(oldSize: number, newSize = this.size): Promise<MerkleHash[]> {
    return oldSize === 0 || oldSize === newSize ? [] : consistencyProof({ oldSize, newSize, fetch: this.fetch });
  }

  /** An add-checkpoint body (tlog-witness) from `oldSize` to `newSize`. */
  async body(oldSize: number, newSize = this.size): Promise<string> {
    const proof = (await this.proof(oldSize, newSize)).map((hash) => `${Buffer.from(hash).toString('base64')}\n`).join('');
    return `old ${oldSize}\n${proof}\n${await this.checkpoint(newSize)}`;
  }
}
