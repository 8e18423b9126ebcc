/**
 * Writes docs/audit-vectors/vectors.json: a seven-event audit log and everything docs/audit.md
 * says can be derived from it (leaf hashes, roots, an inclusion and a consistency proof, a signed
 * checkpoint and a witness's cosignature), with keys made from published seeds so that anyone can
 * reproduce every byte. Ed25519 signatures are deterministic (RFC 8032), so the file is too.
 *
 * Run: SWC_NODE_PROJECT=tools/tsconfig.json node --import @swc-node/register/esm-register tools/audit-vectors.ts
 * libs/core/src/tlog/vectors.spec.ts fails when the file and this script disagree.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { linkAuditEvent, type AuditEvent, type UnhashedAuditEvent } from '../libs/core/src/audit.js';
import { fromHex, toHex } from '../libs/core/src/encoding.js';
import {
  consistencyProof,
  cosignCheckpoint,
  encodeBase64,
  formatCheckpoint,
  formatVerifierKey,
  inclusionProof,
  MerkleFrontier,
  merkleLeafHash,
  signNote,
  type MerkleHash,
  type MerkleNodeFetch,
} from '../libs/core/src/tlog/index.js';

/** Where the vectors live, from the workspace root. */
export const VECTORS_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../docs/audit-vectors/vectors.json');

/** The log's origin and key name in the vectors. */
const ORIGIN = 'writ.example/audit';
/** The witness's key name in the vectors. */
const WITNESS = 'witness.example/w1';
/** The cosignature's time: 2026-12-01T00:00:00Z. */
const COSIGNATURE_TIME = 1_796_083_200;

/** A published test seed: SHA-256 of a label, so it is plainly not a secret. */
const seedOf = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(label).digest());

/** Node's Ed25519 private key from a 32-byte seed (PKCS #8 wrapping of RFC 8410). */
function keyFromSeed(seed: Uint8Array): KeyObject {
  const prefix = fromHex('302e020100300506032b657004220420');
  return createPrivateKey({ key: Buffer.concat([prefix, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw 32-byte public key of an Ed25519 private key. */
const publicKeyOf = (key: KeyObject): Uint8Array => new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32));

/** The seven events, before they are chained: one grant's life, two hops and two decisions. */
const DRAFTS: Omit<UnhashedAuditEvent, 'seq' | 'prev_hash'>[] = [
  { type: 'agent.registered', actor: 'user:alice', subject: 'agent:planner', grant_id: null, txn: null, parent_id: null, data: { name: 'Trip planner' } },
  { type: 'grant.requested', actor: 'agent:planner', subject: 'user:alice', grant_id: 'grt_1', txn: null, parent_id: null, data: { capabilities: 2 } },
  { type: 'grant.approved', actor: 'user:alice', subject: 'agent:planner', grant_id: 'grt_1', txn: 'txn_1', parent_id: null, data: { passkey: true } },
  { type: 'token.issued', actor: 'agent:planner', subject: 'user:alice', grant_id: 'grt_1', txn: 'txn_1', parent_id: null, data: { jti: 'tok_1' } },
  { type: 'token.delegated', actor: 'agent:planner', subject: 'agent:payments', grant_id: 'grt_1', txn: 'txn_1', parent_id: 'evt_4', data: { jti: 'tok_2', parent_jti: 'tok_1' } },
  { type: 'verification.allowed', actor: 'agent:payments', subject: 'svc:payments', grant_id: 'grt_1', txn: 'txn_1', parent_id: null, data: { amount: 120, currency: 'EUR' } },
  { type: 'verification.denied', actor: 'agent:payments', subject: 'svc:payments', grant_id: 'grt_1', txn: 'txn_1', parent_id: null, data: { reason: 'budget_exceeded' } },
].map((draft, i) => ({ ...draft, id: `evt_${i + 1}`, at: `2026-12-01T09:00:0${i}.000Z` }));

/** The chained events, as stored: the members in RFC 8785 order, then `hash`. */
async function chainedEvents(): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  for (const draft of DRAFTS) {
    const { json } = await linkAuditEvent(events.at(-1) ?? null, draft);
    events.push(JSON.parse(json) as AuditEvent);
  }
  return events;
}

const b64 = (hashes: MerkleHash[]): string[] => hashes.map((hash) => encodeBase64(hash));

/**
 * Every vector, computed with Writ's code. The spec checks them against node:crypto alone.
 *
 * @example
 * ```ts
 * const vectors = await auditVectors();
 * ```
 */
export async function auditVectors() {
  const events = await chainedEvents();
  const leafHashes = events.map((event) => merkleLeafHash(fromHex(event.hash)));
  const frontier = new MerkleFrontier();
  const nodes = new Map<string, MerkleHash>();
  const roots = [frontier.root()];
  for (const leaf of leafHashes) {
    for (const node of frontier.append(leaf)) nodes.set(`${node.level}/${node.index}`, node.hash);
    roots.push(frontier.root());
  }
  const fetch: MerkleNodeFetch = (ids) => Promise.resolve(ids.map(({ level, index }) => nodes.get(`${level}/${index}`)!));

  const logKey = keyFromSeed(seedOf('writ audit test vectors: log key'));
  const witnessKey = keyFromSeed(seedOf('writ audit test vectors: witness key'));
  const checkpointText = formatCheckpoint({ origin: ORIGIN, size: 7, root: roots[7]! });
  const checkpointNote = await signNote({ text: checkpointText, name: ORIGIN, privateKey: logKey });
  const cosignature = await cosignCheckpoint({ checkpointText, name: WITNESS, privateKey: witnessKey, time: COSIGNATURE_TIME });

  return {
    description:
      'Writ audit log test vectors (docs/audit.md). Keys are TEST keys made from published seeds; never use them for anything else. ' +
      'Hashes are lowercase hex unless the field says base64; proofs are JSON arrays of standard base64.',
    events,
    leaf_hashes: leafHashes.map((hash) => toHex(hash)),
    roots: roots.map((root, size) => ({ size, hex: toHex(root), base64: encodeBase64(root) })),
    inclusion: {
      seq: 3,
      leaf_index: 2,
      tree_size: 7,
      leaf_hash: toHex(leafHashes[2]!),
      root: encodeBase64(roots[7]!),
      proof: b64(await inclusionProof({ index: 2, size: 7, fetch })),
    },
    consistency: {
      old_size: 3,
      new_size: 7,
      old_root: encodeBase64(roots[3]!),
      new_root: encodeBase64(roots[7]!),
      proof: b64(await consistencyProof({ oldSize: 3, newSize: 7, fetch })),
    },
    log: {
      origin: ORIGIN,
      ed25519_seed_hex: toHex(seedOf('writ audit test vectors: log key')),
      public_key_hex: toHex(publicKeyOf(logKey)),
      vkey: formatVerifierKey({ name: ORIGIN, publicKey: publicKeyOf(logKey) }),
      checkpoint_text: checkpointText,
      checkpoint_note: checkpointNote,
    },
    witness: {
      name: WITNESS,
      ed25519_seed_hex: toHex(seedOf('writ audit test vectors: witness key')),
      public_key_hex: toHex(publicKeyOf(witnessKey)),
      vkey: formatVerifierKey({ name: WITNESS, publicKey: publicKeyOf(witnessKey), type: 0x04 }),
      time: COSIGNATURE_TIME,
      cosignature_line: cosignature,
      cosigned_note: checkpointNote + cosignature,
    },
  };
}

/** The file's text: the vectors as two-space-indented JSON and a final newline. */
export async function auditVectorsText(): Promise<string> {
  return `${JSON.stringify(await auditVectors(), null, 2)}\n`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  mkdirSync(dirname(VECTORS_PATH), { recursive: true });
  writeFileSync(VECTORS_PATH, await auditVectorsText());
  console.log(`wrote ${VECTORS_PATH}`);
}
