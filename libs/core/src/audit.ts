import { CompactSign, compactVerify, errors as joseErrors } from 'jose';
import type { CryptoKey, JWK, KeyObject } from 'jose';
import { z } from 'zod';
import { canonicalJson, fromHex, sha256, toHex, utf8 } from './encoding.js';

/**
 * The `prev_hash` of the first event: 32 zero bytes, as hex (ARCHITECTURE.md, "Audit chain").
 *
 * @example
 * ```ts
 * events[0].prev_hash === GENESIS_HASH; // true for an intact chain
 * ```
 */
export const GENESIS_HASH = '0'.repeat(64);

const hexHash = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 hash in lowercase hex');
const jsonObject = z.record(z.string(), z.unknown());

/**
 * One event of the audit chain as it is stored and exported (one JSON Lines row).
 * `hash = SHA-256(prev_hash || JCS(event without hash))`.
 *
 * @example
 * ```ts
 * AuditEventSchema.parse(JSON.parse(line));
 * ```
 */
export const AuditEventSchema = z.object({
  seq: z.number().int().positive(),
  id: z.string().min(1).max(128),
  at: z.iso.datetime({ offset: true }),
  type: z.string().min(1).max(64),
  actor: z.string().max(256).nullable(),
  subject: z.string().max(256).nullable(),
  grant_id: z.string().max(128).nullable(),
  txn: z.string().max(128).nullable(),
  parent_id: z.string().max(128).nullable(),
  data: jsonObject,
  prev_hash: hexHash,
  hash: hexHash,
});

/**
 * A stored audit event.
 *
 * @example
 * ```ts
 * const event: AuditEvent = AuditEventSchema.parse(row);
 * ```
 */
export type AuditEvent = z.infer<typeof AuditEventSchema>;
/**
 * An audit event before its hash is computed.
 *
 * @example
 * ```ts
 * const { hash, ...unhashed } = event; await hashAuditEvent(unhashed);
 * ```
 */
export type UnhashedAuditEvent = Omit<AuditEvent, 'hash'>;

/**
 * SHA-256 of some bytes: Web Crypto by default; a server may plug in a synchronous native one
 * (Node's `createHash`), which costs far less per event than an asynchronous Web Crypto digest.
 * The hash is the same either way.
 *
 * @example
 * ```ts
 * // On Node, with `createHash` from Node's crypto module:
 * const nodeDigest: AuditDigest = (bytes) => createHash('sha256').update(bytes).digest();
 * const event = await appendAuditEvent(previous, draft, nodeDigest);
 * ```
 */
export type AuditDigest = (bytes: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/**
 * Computes an event's hash: SHA-256 over the 32 raw bytes of `prev_hash` followed by the UTF-8
 * of the RFC 8785 canonical JSON of the event without its `hash` member.
 *
 * @example
 * ```ts
 * const hash = await hashAuditEvent({ seq: 1, id: 'e1', at: '2026-11-24T09:00:00.000Z', type: 'grant.requested',
 *   actor: 'agent:planner', subject: 'user:alice', grant_id: 'g1', txn: null, parent_id: null, data: {},
 *   prev_hash: GENESIS_HASH });
 * ```
 */
export async function hashAuditEvent(event: UnhashedAuditEvent, digest: AuditDigest = sha256): Promise<string> {
  const { hash: _ignored, ...body } = event as UnhashedAuditEvent & { hash?: string };
  return toHex(await hashOfText(body.prev_hash, canonicalEvent(body), digest));
}

const encoder = new TextEncoder();

/**
 * SHA-256 over the raw bytes of `prevHash` and the UTF-8 of `text`. The digest gets one array made
 * for it, as it always has (it may keep it): the text is encoded into place, which for ASCII text,
 * as an event's usually is, takes exactly its length in bytes; other text is encoded apart and
 * copied in.
 */
function hashOfText(prevHash: string, text: string, digest: AuditDigest): Uint8Array | Promise<Uint8Array> {
  const prev = fromHex(prevHash);
  let input = new Uint8Array(prev.length + text.length);
  if (encoder.encodeInto(text, input.subarray(prev.length)).read < text.length) {
    const bytes = utf8(text);
    input = new Uint8Array(prev.length + bytes.length);
    input.set(bytes, prev.length);
  }
  input.set(prev, 0);
  return digest(input);
}

/** An audit event's members without `hash`, in RFC 8785 order (by UTF-16 code units). */
const EVENT_MEMBERS = ['actor', 'at', 'data', 'grant_id', 'id', 'parent_id', 'prev_hash', 'seq', 'subject', 'txn', 'type'] as const;

const isNullableString = (value: unknown): boolean => value === null || typeof value === 'string';

/** True for an event of the stored shape: exactly its members; strings, nulls, a safe-integer `seq`, an object `data`. */
function hasStoredShape(event: UnhashedAuditEvent): boolean {
  if (Object.keys(event).length !== EVENT_MEMBERS.length) return false;
  for (const name of EVENT_MEMBERS) if (!Object.hasOwn(event, name)) return false;
  return (
    Number.isSafeInteger(event.seq) &&
    typeof event.data === 'object' &&
    event.data !== null &&
    typeof event.at === 'string' &&
    typeof event.id === 'string' &&
    typeof event.type === 'string' &&
    typeof event.prev_hash === 'string' &&
    isNullableString(event.actor) &&
    isNullableString(event.subject) &&
    isNullableString(event.grant_id) &&
    isNullableString(event.txn) &&
    isNullableString(event.parent_id)
  );
}

/**
 * RFC 8785 text of an unhashed event: the canonical JSON of the whole event. An event of the stored
 * shape used to be written member by member, `data` by the canonicaliser and the other strings by
 * JSON.stringify: the same text, except that a lone surrogate outside `data` is written as an
 * escape instead of refused, and an error in `data` names its path from `data`. When the
 * canonicaliser refuses such an event, it is written that way, so that it is hashed, or refused
 * with the same error, as before.
 */
function canonicalEvent(event: UnhashedAuditEvent): string {
  try {
    return canonicalJson(event);
  } catch (error) {
    if (!hasStoredShape(event)) throw error;
    return canonicalEventByMember(event);
  }
}

/** The stored shape's text written member by member, in the order RFC 8785 sorts them. */
function canonicalEventByMember(event: UnhashedAuditEvent): string {
  const text = (value: string | null): string => JSON.stringify(value);
  return (
    `{"actor":${text(event.actor)},"at":${text(event.at)},"data":${canonicalJson(event.data)},"grant_id":${text(event.grant_id)},` +
    `"id":${text(event.id)},"parent_id":${text(event.parent_id)},"prev_hash":${text(event.prev_hash)},"seq":${event.seq},` +
    `"subject":${text(event.subject)},"txn":${text(event.txn)},"type":${text(event.type)}}`
  );
}

/**
 * Links a new event to the chain: gives it the next `seq`, the previous hash and its own hash.
 *
 * @example
 * ```ts
 * const first = await appendAuditEvent(null, { id: 'e1', at: new Date(0).toISOString(), type: 'admin.start',
 *   actor: null, subject: null, grant_id: null, txn: null, parent_id: null, data: {} });
 * const second = await appendAuditEvent(first, { ...draft, id: 'e2' });
 * ```
 */
export async function appendAuditEvent(
  previous: Pick<AuditEvent, 'seq' | 'hash'> | null,
  draft: Omit<UnhashedAuditEvent, 'seq' | 'prev_hash'>,
  digest: AuditDigest = sha256,
): Promise<AuditEvent> {
  return (await linkAuditEvent(previous, draft, digest)).event;
}

/**
 * An event just linked to the chain, with its JSON text.
 *
 * @example
 * ```ts
 * const linked: LinkedAuditEvent = await linkAuditEvent(previous, draft);
 * JSON.parse(linked.json); // deep-equals linked.event
 * ```
 */
export interface LinkedAuditEvent {
  event: AuditEvent;
  /**
   * The event as one JSON object: the RFC 8785 text that was hashed, with `hash` added as its last
   * member. For storage (a database can take it as it is); `JSON.parse(json)` equals `event`.
   */
  json: string;
}

/**
 * {@link appendAuditEvent}, also answering the event's JSON text, written once: the canonical
 * text the hash is taken over is the stored text too, so a server need not serialise the event a
 * second time to store it.
 *
 * @example
 * ```ts
 * const { event, json } = await linkAuditEvent(previous, draft, nodeDigest);
 * rows.push(json); // then one INSERT ... FROM jsonb_to_recordset('[' || rows || ']')
 * ```
 */
export async function linkAuditEvent(
  previous: Pick<AuditEvent, 'seq' | 'hash'> | null,
  draft: Omit<UnhashedAuditEvent, 'seq' | 'prev_hash'>,
  digest: AuditDigest = sha256,
): Promise<LinkedAuditEvent> {
  const seq = previous ? previous.seq + 1 : 1;
  const prev_hash = previous ? previous.hash : GENESIS_HASH;
  // Spreading the draft and adding members to the copy was measured at 2 to 3 µs an event on
  // Node 20, each copy given a hidden class of its own. A draft in the registry's member order is
  // copied by a literal instead, into the same members in the same order, and given its hash in
  // place; any other draft is spread as before.
  const literal = inDraftOrder(draft);
  const unhashed: UnhashedAuditEvent & { hash?: string } = literal
    ? {
        id: draft.id,
        at: draft.at,
        type: draft.type,
        actor: draft.actor,
        subject: draft.subject,
        grant_id: draft.grant_id,
        txn: draft.txn,
        parent_id: draft.parent_id,
        data: draft.data,
        seq,
        prev_hash,
      }
    : { ...draft, seq, prev_hash };
  const text = canonicalEvent(unhashed);
  const digested = hashOfText(unhashed.prev_hash, text, digest);
  // A synchronous digest's answer is used as it is, without waiting for a turn of the microtask queue.
  const hash = toHex(digested instanceof Uint8Array ? digested : await digested);
  let event: AuditEvent;
  if (literal) {
    unhashed.hash = hash;
    event = unhashed as AuditEvent;
  } else {
    event = { ...unhashed, hash };
  }
  // The hash is lowercase hex, which JSON writes as it is.
  return { event, json: `${text.slice(0, -1)},"hash":"${hash}"}` };
}

/** The members of a draft, in the order the registry writes them. */
const DRAFT_MEMBERS = ['id', 'at', 'type', 'actor', 'subject', 'grant_id', 'txn', 'parent_id', 'data'] as const;

/** True when a spread of `draft` would copy exactly DRAFT_MEMBERS, in that order. */
function inDraftOrder(draft: object): boolean {
  const keys = Object.keys(draft);
  if (keys.length !== DRAFT_MEMBERS.length) return false;
  for (let i = 0; i < keys.length; i++) if (keys[i] !== DRAFT_MEMBERS[i]) return false;
  return Object.getOwnPropertySymbols(draft).length === 0;
}

/**
 * Where a verification starts: the genesis, or a (verified) checkpoint.
 *
 * @example
 * ```ts
 * const anchor: ChainAnchor = { seq: checkpoint.seq, hash: checkpoint.hash };
 * ```
 */
export interface ChainAnchor {
  /** The last sequence number covered by the anchor (0 for genesis). */
  seq: number;
  /** The hash of event `seq` (GENESIS_HASH for genesis). */
  hash: string;
}

/**
 * The outcome of a chain verification.
 *
 * @example
 * ```ts
 * const result: ChainVerification = await verifyAuditChain(events);
 * if (!result.ok) console.log(result.brokenSeq, result.reason);
 * ```
 */
export type ChainVerification =
  | { ok: true; count: number; lastSeq: number; lastHash: string }
  | { ok: false; count: number; brokenSeq: number; reason: string };

/**
 * Verifies an audit chain incrementally, one event at a time, so that a large export can be
 * streamed. It names the first broken sequence number: a gap or reordering, a `prev_hash` that
 * does not link, or a `hash` that does not match the event's content (an edited row).
 *
 * @example
 * ```ts
 * const verifier = new AuditChainVerifier();
 * for (const event of events) if (!(await verifier.push(event))) break;
 * const result = verifier.result(); // { ok: true, count, lastSeq, lastHash } or { ok: false, brokenSeq, reason }
 * ```
 */
export class AuditChainVerifier {
  private lastSeq: number;
  private lastHash: string;
  private count = 0;
  private failure: { brokenSeq: number; reason: string } | undefined;

  constructor(anchor: ChainAnchor = { seq: 0, hash: GENESIS_HASH }) {
    this.lastSeq = anchor.seq;
    this.lastHash = anchor.hash;
  }

  /** Checks the next event; returns false once the chain is broken (later events are ignored). */
  async push(input: unknown): Promise<boolean> {
    if (this.failure) return false;
    const expectedSeq = this.lastSeq + 1;
    const parsed = AuditEventSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return this.fail(expectedSeq, `event is malformed: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`);
    }
    const event = parsed.data;
    if (event.seq !== expectedSeq) return this.fail(expectedSeq, `expected seq ${expectedSeq}, found ${event.seq}`);
    if (event.prev_hash !== this.lastHash) return this.fail(event.seq, 'prev_hash does not match the previous event');
    if ((await hashAuditEvent(event)) !== event.hash) return this.fail(event.seq, 'hash does not match the event content');
    this.lastSeq = event.seq;
    this.lastHash = event.hash;
    this.count++;
    return true;
  }

  /** The verification so far. */
  result(): ChainVerification {
    if (this.failure) return { ok: false, count: this.count, ...this.failure };
    return { ok: true, count: this.count, lastSeq: this.lastSeq, lastHash: this.lastHash };
  }

  private fail(brokenSeq: number, reason: string): false {
    this.failure = { brokenSeq, reason };
    return false;
  }
}

/**
 * Verifies a whole chain held in memory (see {@link AuditChainVerifier} for streams).
 *
 * @example
 * ```ts
 * const result = await verifyAuditChain(events);
 * if (!result.ok) console.error(`audit chain broken at seq ${result.brokenSeq}: ${result.reason}`);
 * ```
 */
export async function verifyAuditChain(events: Iterable<unknown>, anchor?: ChainAnchor): Promise<ChainVerification> {
  const verifier = new AuditChainVerifier(anchor);
  for (const event of events) if (!(await verifier.push(event))) break;
  return verifier.result();
}

/**
 * A signed statement that the chain up to `seq` ends in `hash`.
 *
 * @example
 * ```ts
 * CheckpointSchema.parse({ seq: 10, hash: head.hash, at: new Date().toISOString() });
 * ```
 */
export const CheckpointSchema = z.strictObject({
  seq: z.number().int().nonnegative(),
  hash: hexHash,
  at: z.iso.datetime({ offset: true }),
});

/**
 * A checkpoint payload.
 *
 * @example
 * ```ts
 * const checkpoint: Checkpoint = { seq: 10, hash: head.hash, at: '2026-11-24T09:00:00.000Z' };
 * ```
 */
export type Checkpoint = z.infer<typeof CheckpointSchema>;

/**
 * JWS `typ` of a signed checkpoint.
 *
 * @example
 * ```ts
 * decodeProtectedHeader(jws).typ === CHECKPOINT_TYP; // true
 * ```
 */
export const CHECKPOINT_TYP = 'writ-audit-checkpoint+jws';

/**
 * The exact bytes a checkpoint signature covers: the RFC 8785 canonical JSON of `{seq, hash, at}`.
 *
 * @example
 * ```ts
 * checkpointPayload({ seq: 10, hash: 'ab…', at: '2026-11-24T09:00:00.000Z' }); // '{"at":"…","hash":"ab…","seq":10}'
 * ```
 */
export function checkpointPayload(checkpoint: Checkpoint): string {
  return canonicalJson(CheckpointSchema.parse(checkpoint));
}

/**
 * Signs a checkpoint as a compact JWS with the registry's key.
 *
 * @example
 * ```ts
 * const jws = await signCheckpoint({ seq, hash, at }, { privateKey, kid: 'reg-2026-11' });
 * ```
 */
export async function signCheckpoint(
  checkpoint: Checkpoint,
  options: { privateKey: CryptoKey | KeyObject | JWK; kid: string; alg?: 'ES256' | 'EdDSA' },
): Promise<string> {
  return new CompactSign(utf8(checkpointPayload(checkpoint)))
    .setProtectedHeader({ alg: options.alg ?? 'ES256', kid: options.kid, typ: CHECKPOINT_TYP })
    .sign(options.privateKey);
}

/**
 * Verifies a signed checkpoint with the registry's public key and returns its payload; throws
 * a `TypeError` naming what is wrong.
 *
 * @example
 * ```ts
 * const { seq, hash } = await verifyCheckpoint(jws, publicKey);
 * ```
 */
export async function verifyCheckpoint(jws: string, publicKey: CryptoKey | KeyObject | JWK): Promise<Checkpoint> {
  let verified;
  try {
    verified = await compactVerify(jws, publicKey, { algorithms: ['ES256', 'EdDSA'] });
  } catch (error) {
    if (error instanceof joseErrors.JOSEError) throw new TypeError(`checkpoint signature is invalid (${error.code})`);
    throw error;
  }
  if (verified.protectedHeader.typ !== CHECKPOINT_TYP) throw new TypeError(`checkpoint typ must be ${CHECKPOINT_TYP}`);
  const payload: unknown = JSON.parse(new TextDecoder().decode(verified.payload));
  const checkpoint = CheckpointSchema.safeParse(payload);
  if (!checkpoint.success) throw new TypeError('checkpoint payload is malformed');
  return checkpoint.data;
}
