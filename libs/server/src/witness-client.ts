import { type CheckpointBody, type MerkleHash, parseCheckpoint, verifyCosignature } from '@writ/core';

/**
 * A log's side of C2SP tlog-witness: push a signed checkpoint with a consistency proof to a
 * witness (`POST <url>/add-checkpoint`) and read the latest checkpoint it cosigned
 * (`GET <url>/checkpoint/<origin>`, Writ's witness's monitoring endpoint). Both answer a result,
 * never throw: a witness that is down, slow, lying or huge is a refusal with a reason, and the
 * caller (the registry's checkpoint publisher) retries on its next checkpoint.
 */

/** How long one call may take in all, by default. */
const DEFAULT_TIMEOUT_MS = 5_000;
/** tlog-witness §add-checkpoint: at most 63 consistency proof lines. */
const MAX_PROOF_HASHES = 63;
/** The witness's bound on an add-checkpoint body (apps/witness). */
const MAX_REQUEST_BYTES = 64 * 1024;
/** A cosignature answer is a few signature lines. */
const MAX_COSIGNATURE_BYTES = 16 * 1024;
/** A stored checkpoint with its signatures and cosignature. */
const MAX_CHECKPOINT_BYTES = 96 * 1024;
/** A refusal's message is kept to its first line, this long at most. */
const MAX_REASON_CHARS = 200;

/** tlog-witness §add-checkpoint: a 409's body when the old size is not the witness's. */
const TLOG_SIZE_TYPE = 'text/x.tlog.size';
const SIZE_BODY = /^(0|[1-9][0-9]{0,15})\n$/;
/** signed-note §Signatures: `— <name> <base64>`, one line. */
const SIGNATURE_LINE = /^\u2014 [^\s+]+ [A-Za-z0-9+/]+={0,2}$/;

export interface WitnessCallOptions {
  /** The witness's URL prefix (tlog-witness: its submission and monitoring prefix), no trailing `/`. */
  url: string;
  signal?: AbortSignal;
  /** The whole call's bound in milliseconds; 5 s by default. */
  timeoutMs?: number;
  /** The global `fetch` by default. */
  fetch?: typeof fetch;
}

export interface SubmitCheckpointOptions extends WitnessCallOptions {
  /** The signed checkpoint note (tlog-checkpoint), text and signature lines. */
  note: string;
  /** The size of the checkpoint the witness last cosigned for this log (0 when it never did). */
  oldSize: number;
  /** The consistency proof from `oldSize` to the checkpoint's size (RFC 9162 §2.1.4), empty from 0. */
  proof: MerkleHash[];
  /**
   * The witness's vkey (type 0x04). Given, the answer counts only if it holds a cosignature by that
   * key on this checkpoint, which is then the one returned; otherwise its lines are returned unchecked.
   */
  vkey?: string;
}

/**
 * `ok`: the witness cosigned; `cosignature` is its signature line(s), newline-terminated, to add to
 * the note. Otherwise `status` is the witness's HTTP status (0: no answer: `reason` says why),
 * and `witnessSize` the size it holds when it answered 409 `text/x.tlog.size`: submit again from there.
 */
export type SubmitCheckpointResult =
  | { ok: true; cosignature: string; time?: number }
  | { ok: false; status: number; reason: string; witnessSize?: number };

/** Pushes a checkpoint to a witness (tlog-witness §add-checkpoint). Never throws. */
export async function submitCheckpoint(options: SubmitCheckpointOptions): Promise<SubmitCheckpointResult> {
  const invalid = invalidSubmission(options);
  if (invalid !== undefined) return { ok: false, status: 0, reason: `invalid_request: ${invalid}` };
  const body = [`old ${options.oldSize}`, ...options.proof.map((hash) => Buffer.from(hash).toString('base64')), '', options.note].join('\n');
  const answer = await call(options, { path: '/add-checkpoint', init: { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, body }, maxBytes: MAX_COSIGNATURE_BYTES });
  if (!answer.ok) return answer;
  const { status, contentType, text } = answer;
  if (status === 409 && contentType === TLOG_SIZE_TYPE) {
    const size = SIZE_BODY.exec(text);
    if (size !== null && Number.isSafeInteger(Number(size[1]))) return { ok: false, status, reason: 'conflict', witnessSize: Number(size[1]) };
    return { ok: false, status, reason: 'bad_response: a 409 text/x.tlog.size body is one decimal size and a newline' };
  }
  if (status !== 200) return { ok: false, status, reason: reasonOf(text) };
  const lines = signatureLines(text);
  if (lines === undefined) return { ok: false, status, reason: 'bad_response: a cosignature answer is note signature lines, each ending in a newline' };
  if (options.vkey === undefined) return { ok: true, cosignature: text };
  const verified = await firstVerified({ checkpointText: noteText(options.note), lines, vkey: options.vkey });
  if (verified === undefined) return { ok: false, status, reason: 'bad_cosignature: no line verifies with the witness key' };
  return { ok: true, cosignature: `${verified.line}\n`, time: verified.time };
}

export interface LatestWitnessedOptions extends WitnessCallOptions {
  /** The log's origin line. */
  origin: string;
  /** The witness's vkey: given, the checkpoint counts only with a valid cosignature by it. */
  vkey?: string;
}

/**
 * `ok`: the latest checkpoint the witness cosigned for the log (`note`, with the log's signatures
 * and the witness's cosignature, and its parsed body); `cosignedAt` when `vkey` was given and
 * verified. The log's own signature is the caller's to check (it knows the log's key).
 */
export type LatestWitnessedResult = { ok: true; note: string; checkpoint: CheckpointBody; cosignedAt?: number } | { ok: false; status: number; reason: string };

/** Reads the latest checkpoint a witness cosigned for `origin`. Never throws. */
export async function latestWitnessed(options: LatestWitnessedOptions): Promise<LatestWitnessedResult> {
  if (typeof options.origin !== 'string' || options.origin === '' || options.origin.length > 255) return { ok: false, status: 0, reason: 'invalid_request: origin' };
  const answer = await call(options, { path: `/checkpoint/${encodeURIComponent(options.origin)}`, init: { method: 'GET' }, maxBytes: MAX_CHECKPOINT_BYTES });
  if (!answer.ok) return answer;
  const { status, text } = answer;
  if (status !== 200) return { ok: false, status, reason: reasonOf(text) };
  let checkpoint: CheckpointBody;
  try {
    checkpoint = parseCheckpoint(noteText(text));
  } catch {
    return { ok: false, status, reason: 'bad_response: not a checkpoint note' };
  }
  if (checkpoint.origin !== options.origin) return { ok: false, status, reason: 'bad_response: the checkpoint of another origin' };
  if (options.vkey === undefined) return { ok: true, note: text, checkpoint };
  const lines = signatureLines(text.slice(noteText(text).length + 1)) ?? [];
  const verified = await firstVerified({ checkpointText: noteText(text), lines, vkey: options.vkey });
  if (verified === undefined) return { ok: false, status, reason: 'bad_cosignature: no line verifies with the witness key' };
  return { ok: true, note: text, checkpoint, cosignedAt: verified.time };
}

/** What was wrong with a submission before anything was sent, or undefined. */
function invalidSubmission(options: SubmitCheckpointOptions): string | undefined {
  if (!isHttpUrl(options.url)) return 'url must be an http(s) URL without a trailing /';
  if (!Number.isSafeInteger(options.oldSize) || options.oldSize < 0) return 'oldSize must be a whole number, at least 0';
  if (!Array.isArray(options.proof) || options.proof.length > MAX_PROOF_HASHES) return `proof must hold at most ${MAX_PROOF_HASHES} hashes`;
  if (options.proof.some((hash) => !(hash instanceof Uint8Array) || hash.length !== 32)) return 'every proof hash must be 32 bytes';
  if (typeof options.note !== 'string' || !options.note.endsWith('\n') || Buffer.byteLength(options.note) > MAX_REQUEST_BYTES / 2) return 'note must be a signed note ending in a newline, at most 32 KiB';
  return undefined;
}

function isHttpUrl(value: unknown): boolean {
  if (typeof value !== 'string' || value.endsWith('/')) return false;
  try {
    return /^https?:$/.test(new URL(value).protocol);
  } catch {
    return false;
  }
}

type CallAnswer = { ok: true; status: number; contentType: string; text: string } | { ok: false; status: number; reason: string };

/**
 * One HTTP call to the witness, bounded in time (the caller's signal and `timeoutMs`) and in the
 * size of what is read back. Network failures become a `status: 0` answer with a reason.
 */
async function call(options: WitnessCallOptions, request: { path: string; init: RequestInit; maxBytes: number }): Promise<CallAnswer> {
  if (!isHttpUrl(options.url)) return { ok: false, status: 0, reason: 'invalid_request: url must be an http(s) URL without a trailing /' };
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
  try {
    const response = await (options.fetch ?? fetch)(`${options.url}${request.path}`, { ...request.init, signal, redirect: 'error' });
    const text = await boundedText(response, request.maxBytes);
    if (text === undefined) return { ok: false, status: response.status, reason: `response_too_large: over ${request.maxBytes} bytes` };
    const contentType = (response.headers.get('content-type') ?? '').split(';', 1)[0]!.trim().toLowerCase();
    return { ok: true, status: response.status, contentType, text };
  } catch {
    if (options.signal?.aborted) return { ok: false, status: 0, reason: 'aborted' };
    if (timeout.aborted) return { ok: false, status: 0, reason: 'timeout' };
    return { ok: false, status: 0, reason: 'unreachable' };
  }
}

/** The response body as UTF-8 text, or undefined (and the rest cancelled) once it exceeds `maxBytes`. */
async function boundedText(response: Response, maxBytes: number): Promise<string | undefined> {
  if (Number(response.headers.get('content-length') ?? 0) > maxBytes) {
    await response.body?.cancel();
    return undefined;
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(Buffer.concat(chunks, length));
}

/** A refusal's text as a reason: its first line, printable, bounded. */
function reasonOf(text: string): string {
  const line = (text.split('\n', 1)[0] ?? '').replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_REASON_CHARS);
  return line === '' ? 'refused' : line;
}

/** The signature lines of a cosignature answer (each `— name base64`, newline-terminated), or undefined. */
function signatureLines(text: string): string[] | undefined {
  if (text === '' || !text.endsWith('\n')) return undefined;
  const lines = text.slice(0, -1).split('\n');
  return lines.every((line) => SIGNATURE_LINE.test(line)) ? lines : undefined;
}

/**
 * signed-note §Format: a note is its text (ending in a newline), a blank line, then signature
 * lines; the last blank line ends the text.
 */
function noteText(note: string): string {
  const end = note.lastIndexOf('\n\n');
  return end < 0 ? note : note.slice(0, end + 1);
}

/** The first of `lines` that is a valid cosignature by `vkey` on the checkpoint text. */
async function firstVerified(options: { checkpointText: string; lines: string[]; vkey: string }): Promise<{ line: string; time: number } | undefined> {
  for (const line of options.lines) {
    try {
      const { time } = await verifyCosignature({ checkpointText: options.checkpointText, line, vkey: options.vkey });
      return { line, time };
    } catch {
      // Another witness's line, or a bad one: tlog-witness says a client ignores unknown keys.
    }
  }
  return undefined;
}
