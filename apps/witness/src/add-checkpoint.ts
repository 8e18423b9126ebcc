import { cosignCheckpoint, EMPTY_TREE_ROOT, type MerkleHash, NoteError, openNote, parseCheckpoint, verifyConsistency, type CheckpointBody } from '@writ/core';
import type { CheckpointStore, CosignedCheckpoint } from './checkpoint-store.js';
import type { TrustedLogs } from './trusted-logs.js';
import type { WitnessKey } from './witness-key.js';

/** What the witness answers: a status, a content type and a text body. */
export interface WitnessAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** tlog-witness §add-checkpoint: the content type of a 409 that names the size the witness holds. */
export const TLOG_SIZE_TYPE = 'text/x.tlog.size';
export const TEXT_TYPE = 'text/plain; charset=utf-8';

/** tlog-witness §add-checkpoint: "The client MUST NOT send more than 63 consistency proof lines." */
const MAX_PROOF_LINES = 63;

/**
 * tlog-witness §add-checkpoint: `old <size>`, an ASCII decimal without leading zeroes. Sixteen
 * digits at most here, then bounded to 2^53 - 1 (the sizes this witness can compare exactly).
 */
const OLD_LINE = /^old (0|[1-9][0-9]{0,15})$/;

/**
 * One SHA-256 hash in canonical standard base64 (RFC 4648 §4): 43 characters and one `=`, the
 * last character before it carrying two zero bits, so one hash has exactly one spelling.
 */
const HASH_LINE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** NoteError codes that mean "no trusted key signed this" (403), not "this is not a note" (400). */
const SIGNATURE_CODES: ReadonlySet<string> = new Set(['unknown_key', 'bad_signature']);

/** A refusal: the answer to send. */
class Refusal extends Error {
  constructor(readonly answer: WitnessAnswer) {
    super(answer.body.trim());
  }
}

const refuse = (status: number, message: string) => new Refusal({ status, contentType: TEXT_TYPE, body: `${message}\n` });

/** What an add-checkpoint request body holds (tlog-witness §add-checkpoint). */
export interface AddCheckpointRequest {
  oldSize: number;
  proof: MerkleHash[];
  /** The signed checkpoint: note text, blank line, signature lines. */
  note: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses an add-checkpoint body (tlog-witness §add-checkpoint): an old size line, at most 63
 * consistency proof lines (one base64 hash each), an empty line, then the signed checkpoint.
 * Every line ends in a newline. Throws a 400 {@link Refusal}.
 */
export function parseAddCheckpoint(body: Uint8Array): AddCheckpointRequest {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw refuse(400, 'the body is not UTF-8');
  }
  let position = 0;
  const nextLine = (): string => {
    const end = text.indexOf('\n', position);
    if (end < 0) throw refuse(400, 'the body must be an old size line, consistency proof lines, an empty line and a checkpoint, each line ending in a newline');
    const line = text.slice(position, end);
    position = end + 1;
    return line;
  };
  const old = OLD_LINE.exec(nextLine());
  const oldSize = old === null ? Number.NaN : Number(old[1]);
  if (!Number.isSafeInteger(oldSize)) throw refuse(400, 'the first line must be "old <size>", the size in decimal without leading zeroes');
  const proof: MerkleHash[] = [];
  for (let line = nextLine(); line !== ''; line = nextLine()) {
    if (proof.length === MAX_PROOF_LINES) throw refuse(400, `more than ${MAX_PROOF_LINES} consistency proof lines`);
    if (!HASH_LINE.test(line)) throw refuse(400, 'a consistency proof line must be one SHA-256 hash in base64');
    proof.push(new Uint8Array(Buffer.from(line, 'base64')));
  }
  const note = text.slice(position);
  if (note === '') throw refuse(400, 'no checkpoint after the empty line');
  return { oldSize, proof, note };
}

/** What add-checkpoint works with. */
export interface AddCheckpointContext {
  logs: TrustedLogs;
  store: CheckpointStore;
  key: WitnessKey;
  /** Milliseconds since the epoch (the cosignature's timestamp is taken from it). */
  now: () => number;
  /** Where evidence of a log's misbehaviour is reported (a fork, a proof that does not verify). */
  warn: (line: string) => void;
}

/**
 * `POST <prefix>/add-checkpoint` (tlog-witness §add-checkpoint): verifies the log's signature on
 * the checkpoint, that the old size is the size it last cosigned for that origin, and that the
 * consistency proof leads from that checkpoint to this one; then persists the checkpoint and
 * answers its cosignature (tlog-cosignature, cosignature/v1). Every refusal is an answer, never a
 * throw; an unexpected error (the disk) is thrown to the server, which answers 500.
 */
export async function addCheckpoint(body: Uint8Array, context: AddCheckpointContext): Promise<WitnessAnswer> {
  try {
    const request = parseAddCheckpoint(body);
    const { origin, text, checkpoint } = await openCheckpoint(request.note, context.logs);
    // tlog-witness: "The old size MUST be equal to or lower than the checkpoint size", else 400.
    if (request.oldSize > checkpoint.size) throw refuse(400, 'the old size is larger than the checkpoint size');
    // tlog-witness: "The proof MUST be empty if the old size is zero."
    if (request.oldSize === 0 && request.proof.length > 0) throw refuse(400, 'the consistency proof must be empty when the old size is 0');
    return await context.store.exclusive(origin, () => cosignIfConsistent({ request, origin, text, checkpoint, context }));
  } catch (error) {
    if (error instanceof Refusal) return error.answer;
    throw error;
  }
}

/**
 * The checkpoint's origin (its first line), its note text and its parsed body, once a trusted key
 * of that origin's log has signed it (signed-note: signatures by unknown keys are ignored).
 * 404 for an origin it does not witness, 403 when no trusted key signed it, 400 when malformed.
 */
async function openCheckpoint(note: string, logs: TrustedLogs): Promise<{ origin: string; text: string; checkpoint: CheckpointBody }> {
  const firstLine = note.indexOf('\n');
  const origin = firstLine < 0 ? note : note.slice(0, firstLine);
  const vkeys = logs.keysOf(origin);
  if (vkeys === undefined) throw refuse(404, 'this witness does not witness that origin');
  let opened: { text: string; verifiedBy: string[] };
  let checkpoint: CheckpointBody;
  try {
    opened = await openNote({ note, verifiers: [...vkeys] });
    checkpoint = parseCheckpoint(opened.text);
  } catch (error) {
    if (!(error instanceof NoteError)) throw error;
    if (SIGNATURE_CODES.has(error.code)) throw refuse(403, `no valid signature by a key of log ${origin}`);
    throw refuse(400, `the checkpoint is not a signed checkpoint note (${error.code})`);
  }
  if (opened.verifiedBy.length === 0) throw refuse(403, `no valid signature by a key of log ${origin}`);
  if (checkpoint.origin !== origin) throw refuse(400, 'the checkpoint is not a signed checkpoint note (malformed_checkpoint)');
  return { origin, text: opened.text, checkpoint };
}

/** The checks against the stored checkpoint, the cosignature and the write: under the origin's lock. */
async function cosignIfConsistent(options: {
  request: AddCheckpointRequest;
  origin: string;
  text: string;
  checkpoint: CheckpointBody;
  context: AddCheckpointContext;
}): Promise<WitnessAnswer> {
  const { request, origin, text, checkpoint, context } = options;
  const latest = context.store.latest(origin);
  const storedSize = latest?.size ?? 0;
  // tlog-witness: the old size must be the size of the latest cosigned checkpoint (0 if none);
  // else 409 naming that size, so the log can retry with a proof from it.
  if (request.oldSize !== storedSize) return { status: 409, contentType: TLOG_SIZE_TYPE, body: `${storedSize}\n` };
  checkConsistency({ request, checkpoint, latest, warn: context.warn });
  const time = Math.max(Math.floor(context.now() / 1000), latest?.time ?? 0);
  const line = await cosignCheckpoint({ checkpointText: text, name: context.key.name, privateKey: context.key.privateKey, time });
  const cosignature = line.endsWith('\n') ? line : `${line}\n`;
  // tlog-witness: "The witness MUST persist the new checkpoint before responding."
  await context.store.save({ origin, size: checkpoint.size, root: checkpoint.root, note: request.note, cosignature, time });
  return { status: 200, contentType: TEXT_TYPE, body: cosignature };
}

/**
 * Throws the refusal when the checkpoint is not an append-only extension of `latest`: the same
 * size with another root is a fork (409); a proof that does not verify is 422 (RFC 9162 §2.1.4.2).
 * With nothing cosigned yet, any checkpoint is the first (an empty tree must have the empty root).
 */
function checkConsistency(options: { request: AddCheckpointRequest; checkpoint: CheckpointBody; latest: CosignedCheckpoint | undefined; warn: (line: string) => void }): void {
  const { request, checkpoint, latest, warn } = options;
  const evidence = `log ${checkpoint.origin}: old size ${request.oldSize}, new size ${checkpoint.size}`;
  if (latest === undefined) {
    if (checkpoint.size === 0 && !equal(checkpoint.root, EMPTY_TREE_ROOT)) throw refuse(422, 'an empty tree has the root SHA-256("")');
    return;
  }
  if (checkpoint.size === latest.size) {
    // tlog-witness: "If the old size matches the checkpoint size, the witness MUST check that the
    // root hashes are also identical. If they don't match, ... 409 Conflict."
    if (!equal(checkpoint.root, latest.root)) {
      warn(`${evidence}: another root at the size it cosigned (a fork)`);
      throw refuse(409, 'the checkpoint has another root than the one cosigned at that size');
    }
    if (request.proof.length > 0) throw refuse(422, 'the consistency proof between equal sizes must be empty');
    return;
  }
  // The empty tree is a prefix of every tree: nothing to prove (and the proof is empty, above).
  if (latest.size === 0) return;
  if (!verifyConsistency({ oldSize: latest.size, newSize: checkpoint.size, oldRoot: latest.root, newRoot: checkpoint.root, proof: request.proof })) {
    warn(`${evidence}: the consistency proof does not verify`);
    throw refuse(422, 'the consistency proof does not verify');
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index]);
}
