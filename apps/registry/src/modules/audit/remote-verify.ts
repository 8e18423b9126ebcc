import { type CheckpointBody, type MerkleHash, openNote, parseCheckpoint, verifyConsistency } from '@writ/core';
import { z } from 'zod';

/** How long each request to the registry may take. */
const TIMEOUT_MS = 10_000;
/** A checkpoint note, or a consistency proof of at most 63 hashes, is far below this. */
const MAX_ANSWER_BYTES = 64 * 1024;

const ProofSchema = z.strictObject({
  from: z.number().int().positive(),
  to: z.number().int().positive(),
  proof: z.array(z.string().regex(/^[A-Za-z0-9+/]{43}=$/)).max(63),
});

/** What the check found: the lines to print, and the exit status (0 intact, 1 broken or unchecked, 2 unusable input). */
export interface RemoteVerification {
  status: 0 | 1 | 2;
  lines: string[];
}

/**
 * An outsider's check of a live registry (issue 19, goal 1): its latest checkpoint
 * (`GET /audit/checkpoint`) must be signed by the log's key and extend the checkpoint saved
 * before: same origin, at least as large, and an RFC 9162 §2.1.4.2 consistency proof from the
 * saved size (`GET /audit/proof/consistency`) that verifies. Uses only the documented format.
 */
export async function verifyRemoteLog(options: { checkpoint: string; registry: string; vkey: string; fetch?: typeof fetch }): Promise<RemoteVerification> {
  const get = options.fetch ?? fetch;
  let saved: CheckpointBody;
  try {
    saved = parseCheckpoint((await openNote({ note: options.checkpoint, verifiers: [options.vkey] })).text);
  } catch (error) {
    return { status: 2, lines: [`the saved checkpoint is not a checkpoint signed by ${keyName(options.vkey)}: ${(error as Error).message}`] };
  }
  const base = options.registry.replace(/\/+$/, '');
  const latestText = await fetchText(get, `${base}/audit/checkpoint`);
  if (typeof latestText !== 'string') return { status: 1, lines: [`cannot check: ${base}/audit/checkpoint: ${latestText.error}`] };
  let latest: CheckpointBody;
  try {
    latest = parseCheckpoint((await openNote({ note: latestText, verifiers: [options.vkey] })).text);
  } catch (error) {
    return { status: 1, lines: [`BROKEN: the registry's checkpoint is not signed by ${keyName(options.vkey)}: ${(error as Error).message}`] };
  }
  if (latest.origin !== saved.origin) return { status: 1, lines: [`BROKEN: the registry's checkpoint is of origin ${latest.origin}, the saved one of ${saved.origin}`] };
  if (latest.size < saved.size) {
    return {
      status: 1,
      lines: [`BROKEN: the registry's latest checkpoint has size ${latest.size}, below the saved checkpoint of size ${saved.size}: seq ${latest.size + 1} is missing`],
    };
  }
  const consistent = await provenConsistent(get, base, saved, latest);
  if (consistent !== true) return { status: 1, lines: [`BROKEN: the registry's checkpoint of size ${latest.size} does not extend the saved checkpoint of size ${saved.size}: ${consistent}`] };
  return { status: 0, lines: [`log intact: the registry's checkpoint of size ${latest.size} extends the saved checkpoint of size ${saved.size} (origin ${saved.origin})`] };
}

/** True when a consistency proof from the registry shows `saved` is a prefix of `latest`; otherwise why not. */
async function provenConsistent(get: typeof fetch, base: string, saved: CheckpointBody, latest: CheckpointBody): Promise<true | string> {
  const sameRoot = (a: MerkleHash, b: MerkleHash) => a.length === b.length && a.every((byte, i) => byte === b[i]);
  if (latest.size === saved.size) return sameRoot(latest.root, saved.root) ? true : 'the roots of the same size differ';
  const text = await fetchText(get, `${base}/audit/proof/consistency?from=${saved.size}&to=${latest.size}`);
  if (typeof text !== 'string') return `no consistency proof: ${text.error}`;
  let parsed: z.infer<typeof ProofSchema>;
  try {
    parsed = ProofSchema.parse(JSON.parse(text));
  } catch {
    return 'the consistency proof is malformed';
  }
  if (parsed.from !== saved.size || parsed.to !== latest.size) return 'the consistency proof is for other sizes';
  const proof = parsed.proof.map((hash) => new Uint8Array(Buffer.from(hash, 'base64')));
  return verifyConsistency({ oldSize: saved.size, newSize: latest.size, oldRoot: saved.root, newRoot: latest.root, proof }) ? true : 'the consistency proof does not verify';
}

/** A bounded GET: the body text of a 200, or why there is none. */
async function fetchText(get: typeof fetch, url: string): Promise<string | { error: string }> {
  try {
    const response = await get(url, { signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'error' });
    const body = await boundedBody(response);
    if (body === undefined) return { error: `answer larger than ${MAX_ANSWER_BYTES} bytes` };
    const text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    if (response.status !== 200) return { error: `${response.status} ${text.split('\n', 1)[0]!.slice(0, 200)}` };
    return text;
  } catch (error) {
    if (error instanceof TypeError && /decode|encoded/i.test(error.message)) return { error: 'the answer is not UTF-8 text' };
    return { error: (error as Error).name === 'TimeoutError' ? 'timeout' : 'unreachable' };
  }
}

/** The body, read no further than {@link MAX_ANSWER_BYTES}; undefined when it is larger. */
async function boundedBody(response: Response): Promise<Uint8Array | undefined> {
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, length);
    length += value.length;
    if (length > MAX_ANSWER_BYTES) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
}

function keyName(vkey: string): string {
  return vkey.split('+', 1)[0] ?? 'the log key';
}
