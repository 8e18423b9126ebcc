import { hash, randomUUID } from 'node:crypto';
import {
  AuditChainVerifier,
  type AuditEvent,
  type ChainVerification,
  type Clock,
  consistencyProof,
  formatCheckpoint,
  InvalidRequest,
  inclusionProof,
  linkAuditEvent,
  MerkleFrontier,
  type MerkleHash,
  merkleRootAt,
  openNote,
  parseCheckpoint,
  signNote,
  verifyCheckpoint,
} from '@writ/core';
import { SerialLock } from '../../infra/serial-lock.js';
import type { Transaction } from '../../infra/transaction.js';
import type { KeyStore } from '../keys/key-store.js';
import { type AuditLogSigner, ephemeralAuditLogSigner } from './audit-log-key.js';
import {
  type AuditCheckpoint,
  type AuditHead,
  type AuditRepository,
  type AuditTreeNode,
  AuditTreeIncomplete,
  type ChainExtension,
  compactRange,
  eventLeaf,
} from './audit.repository.js';

/** What a caller records; the chain adds seq, time, hashes. */
export interface AuditDraft {
  type: string;
  actor?: string | null;
  subject?: string | null;
  grant_id?: string | null;
  txn?: string | null;
  parent_id?: string | null;
  data?: Record<string, unknown>;
  /** Idempotency: an event id already in the chain is not appended again. */
  id?: string;
}

/**
 * SHA-256 with node:crypto: synchronous, and far cheaper per event than a Web Crypto digest; one
 * shot, so no native Hash object per event for the garbage collector.
 */
const nodeDigest = (bytes: Uint8Array): Uint8Array => hash('sha256', bytes, 'buffer');

/** Page size when re-verifying from the database, so memory stays flat on long chains. */
const VERIFY_PAGE = 1000;

/**
 * A checkpoint the log must extend, kept outside its database: a file someone saved, or the last
 * checkpoint a witness cosigned.
 */
export interface AuditAnchor {
  /** Where it came from, for the report (`--checkpoint <file>`, `witness <name>`). */
  source: string;
  /** The checkpoint as a signed note. */
  note: string;
}

/** How one anchor fared: `missingSeq` when the log ends before it (truncated). */
export interface AnchorVerdict {
  source: string;
  size: number;
  ok: boolean;
  reason?: string;
  missingSeq?: number;
}

export interface AuditVerification {
  /** The events re-hashed this time (from `from`); broken at the first seq found wrong or missing. */
  chain: ChainVerification;
  checkpoints: { verified: number; failed: { seq: number; reason: string }[] };
  /** The size verification started from: 0, or the last verified head. */
  from: number;
  /** The Merkle tree over the events at the head (base64 root), null on an empty log. */
  tree: { size: number; root: string } | null;
  anchors: AnchorVerdict[];
}

/** At most this many queued events go into one group commit (bounds one transaction's size). */
const MAX_GROUP = 256;

interface Pending {
  draft: AuditDraft;
  resolve: (event: AuditEvent) => void;
  reject: (error: unknown) => void;
}

export interface AuditServiceOptions {
  repository: AuditRepository;
  /** The JWT keys: they check the JWS checkpoints taken before issue 19 (the log's own key signs the new ones). */
  keys: Pick<KeyStore, 'jwks'>;
  clock: Clock;
  /** A signed checkpoint every this many events. */
  checkpointEvery: number;
  /** Signs checkpoints as C2SP signed notes (default: a key that lives in this process only). */
  log?: AuditLogSigner;
}

/**
 * The one append path of the audit chain. Appends are serialised twice: an in-process lock
 * (so a process does not queue pool connections on the database lock) and a transaction-scoped
 * PostgreSQL advisory lock (so several registry processes never fork the chain). The event is
 * committed before `append` resolves: callers answer only after that.
 *
 * Appends that do not share a caller's transaction are group-committed (ADR 0007): while one
 * transaction is writing, new events queue; the next transaction appends all of them, in arrival
 * order, under one lock and one commit. Nothing waits on a timer, so a lone event is written at
 * once, and a burst costs one commit per group instead of one per event.
 *
 * Each event is also a leaf of the log's RFC 9162 Merkle tree (docs/audit.md): the subtrees an
 * append completes are written in the same transaction, and checkpoints sign the tree's head as
 * C2SP signed notes, so proofs and verification work from the stored tree.
 */
export class AuditService {
  private readonly appendLock = new SerialLock();
  private queue: Pending[] = [];
  private flushing = false;

  private readonly repository: AuditRepository;
  private readonly keys: AuditServiceOptions['keys'];
  private readonly clock: Clock;
  private readonly checkpointEvery: number;
  private readonly checkpointListeners: (() => void)[] = [];
  /** The log's origin and the verifier key of its checkpoints. */
  readonly log: AuditLogSigner;

  constructor(options: AuditServiceOptions) {
    this.repository = options.repository;
    this.keys = options.keys;
    this.clock = options.clock;
    this.checkpointEvery = options.checkpointEvery;
    this.log = options.log ?? ephemeralAuditLogSigner();
  }

  /** Calls `listener` (without waiting for it) each time a checkpoint was committed: the witness publisher. */
  whenCheckpointed(listener: () => void): void {
    this.checkpointListeners.push(listener);
  }

  private checkpointed(): void {
    for (const listener of this.checkpointListeners) listener();
  }

  /**
   * Appends one event (or returns the existing one with the same id) and resolves once it is
   * committed. With `tx`, the event joins the caller's transaction and commits with it.
   */
  append(draft: AuditDraft, tx?: Transaction): Promise<AuditEvent> {
    if (tx) {
      return this.repository.extend(idsOf([draft]), (head, known, edge) => this.chain(head, [draft], known, edge), tx).then(([outcome]) => {
        if (outcome instanceof Error) throw outcome;
        return outcome!;
      });
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ draft, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /**
   * Appends `drafts` in order, queued all at once so that they share a group (one transaction of
   * up to 256 events when nothing else is queued), each settling on its own as {@link append}
   * would: what ingestion calls with a batch read from the queue.
   */
  appendAll(drafts: AuditDraft[]): Promise<PromiseSettledResult<AuditEvent>[]> {
    const outcomes = drafts.map((draft) => new Promise<AuditEvent>((resolve, reject) => this.queue.push({ draft, resolve, reject })));
    if (!this.flushing && this.queue.length > 0) void this.flush();
    return Promise.allSettled(outcomes);
  }

  /** Writes queued events group by group until the queue is empty; each group is one transaction. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_GROUP);
        try {
          this.settle(group, await this.appendGroup(group));
        } catch (error) {
          // Nothing of the group was committed. When the database refused what one event holds
          // (a NUL, say), each event is tried alone so that it fails only its own caller (issue
          // 16, 4); otherwise (an outage) every caller learns it, none answers as if it were.
          if (group.length === 1 || !isUnrecordableEvent(error)) {
            for (const p of group) p.reject(error);
            continue;
          }
          for (const p of group) {
            try {
              this.settle([p], await this.appendGroup([p]));
            } catch (alone) {
              p.reject(alone);
            }
          }
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** One group in one transaction: an outcome per draft (an Error for one that cannot be hashed). */
  private async appendGroup(group: Pending[]): Promise<(AuditEvent | Error)[]> {
    const drafts = group.map((p) => p.draft);
    let checkpointed = false;
    const outcomes = await this.appendLock.run(() =>
      this.repository.extend(idsOf(drafts), async (head, known, edge) => {
        const extension = await this.chain(head, drafts, known, edge);
        checkpointed = extension.checkpoints.length > 0;
        return extension;
      }),
    );
    if (checkpointed) this.checkpointed();
    return outcomes;
  }

  private settle(group: Pending[], outcomes: (AuditEvent | Error)[]): void {
    group.forEach((p, i) => {
      const outcome = outcomes[i]!;
      if (outcome instanceof Error) p.reject(outcome);
      else p.resolve(outcome);
    });
  }

  /**
   * Links `drafts` in order after `head`, with the Merkle tree's new nodes and the checkpoints that
   * fall due. A draft whose id is already in the chain (or earlier in the group) is not appended
   * again; one that cannot be hashed (its data is not JSON) yields its error and is skipped, and
   * the others go on.
   */
  private async chain(head: AuditHead, drafts: AuditDraft[], known: Map<string, AuditEvent>, edge: AuditTreeNode[]): Promise<ChainExtension<(AuditEvent | Error)[]>> {
    const at = new Date(this.clock.now()).toISOString();
    const tree = treeAt(head?.seq ?? 0, edge);
    const appended: AuditEvent[] = [];
    // The appended events' JSON texts, as linkAuditEvent wrote them for the hash: stored as they are.
    const texts: string[] = [];
    const nodes: AuditTreeNode[] = [];
    const due: { event: AuditEvent; root: MerkleHash }[] = [];
    const result: (AuditEvent | Error)[] = [];
    let previous = head;
    for (const draft of drafts) {
      const existing = draft.id ? known.get(draft.id) : undefined;
      if (existing) {
        result.push(existing);
        continue;
      }
      const linked = await linkAuditEvent(previous, {
        id: draft.id ?? `evt_${randomUUID()}`,
        at,
        type: draft.type,
        actor: draft.actor ?? null,
        subject: draft.subject ?? null,
        grant_id: draft.grant_id ?? null,
        txn: draft.txn ?? null,
        parent_id: draft.parent_id ?? null,
        data: draft.data ?? {},
      }, nodeDigest).catch((error: unknown) => new UnhashableEvent(error instanceof Error ? error.message : String(error), { cause: error }));
      if (linked instanceof Error) {
        result.push(linked);
        continue;
      }
      const { event } = linked;
      texts.push(linked.json);
      nodes.push(...tree.append(eventLeaf(event.hash)));
      if (event.seq % this.checkpointEvery === 0) due.push({ event, root: tree.root() });
      known.set(event.id, event);
      appended.push(event);
      result.push(event);
      previous = event;
    }
    const checkpoints = await Promise.all(due.map(({ event, root }) => this.sign({ seq: event.seq, hash: event.hash }, root)));
    const { hashes } = tree.state();
    const after = compactRange(tree.size).map((id, i) => ({ ...id, hash: hashes[i]! }));
    return { result, events: appended, eventTexts: texts, nodes, edge: after, checkpoints };
  }

  /** Signs a checkpoint of the current head now (also called on a timer); the existing one when the head has one. */
  async checkpoint(): Promise<AuditCheckpoint | undefined> {
    let signed = false;
    const checkpoint = await this.appendLock.run(() =>
      this.repository.checkpointHead((head, edge) => {
        signed = true;
        return this.sign(head, treeAt(head.seq, edge).root());
      }),
    );
    if (signed) this.checkpointed();
    return checkpoint;
  }

  /** The C2SP tlog-checkpoint of the tree of `head.seq` leaves, signed by the log's key. */
  private async sign(head: NonNullable<AuditHead>, root: MerkleHash): Promise<AuditCheckpoint> {
    const text = formatCheckpoint({ origin: this.log.origin, size: head.seq, root });
    // signNote imports a KeyObject for Web Crypto once and keeps it: not once per checkpoint.
    const note = await signNote({ text, name: this.log.origin, privateKey: this.log.privateKey });
    return { seq: head.seq, hash: head.hash, at: new Date(this.clock.now()).toISOString(), note };
  }

  /** The newest signed checkpoint note; undefined before the first. */
  async latestCheckpoint(): Promise<AuditCheckpoint | undefined> {
    return this.repository.latestCheckpoint();
  }

  /**
   * The newest checkpoint as published at `GET /audit/checkpoint`: its note with the witnesses'
   * cosignature lines kept for it added after the log's signature (signed-note: a note carries any
   * number of signature lines; a reader checks those of the keys it knows and skips the others).
   */
  async publishedCheckpoint(): Promise<string | undefined> {
    const latest = await this.repository.latestCheckpoint();
    if (latest?.note === undefined) return undefined;
    const cosignatures = await this.repository.cosignatures(latest.seq);
    return latest.note + cosignatures.map((c) => `${c.line}\n`).join('');
  }

  /**
   * RFC 9162 §2.1.3: the proof that event `seq` (leaf `seq - 1`) is in the tree of `size` leaves.
   * @throws {InvalidRequest} when `seq` or `size` is out of the log's bounds.
   */
  async inclusionProof(options: { seq: number; size: number }): Promise<{ seq: number; size: number; leaf: MerkleHash; proof: MerkleHash[] }> {
    const { seq, size } = options;
    const head = await this.treeSize();
    if (size > head) throw new InvalidRequest(`size must be at most the log's size, ${head}`);
    if (seq > size) throw new InvalidRequest('seq must be at most size');
    const fetch = this.fetchNodes();
    const [leaf] = await fetch([{ level: 0, index: seq - 1 }]);
    return { seq, size, leaf: leaf!, proof: await inclusionProof({ index: seq - 1, size, fetch, digest: nodeDigest }) };
  }

  /**
   * RFC 9162 §2.1.4: the proof that the tree of `from` leaves is a prefix of the tree of `to`.
   * @throws {InvalidRequest} when `from` or `to` is out of the log's bounds.
   */
  async consistencyProof(options: { from: number; to: number }): Promise<{ from: number; to: number; proof: MerkleHash[] }> {
    const { from, to } = options;
    const head = await this.treeSize();
    if (to > head) throw new InvalidRequest(`to must be at most the log's size, ${head}`);
    if (from > to) throw new InvalidRequest('from must be at most to');
    return { from, to, proof: await consistencyProof({ oldSize: from, newSize: to, fetch: this.fetchNodes(), digest: nodeDigest }) };
  }

  /** The tree's root at `size` leaves, from the stored nodes. */
  rootAt(size: number): Promise<MerkleHash> {
    return merkleRootAt({ size, fetch: this.fetchNodes(), digest: nodeDigest });
  }

  private async treeSize(): Promise<number> {
    return (await this.repository.head())?.seq ?? 0;
  }

  private fetchNodes(): (ids: { level: number; index: number }[]) => Promise<MerkleHash[]> {
    return (ids) => this.repository.nodes(ids);
  }

  /**
   * Verifies the log (docs/audit.md, "Operating the log"): re-hashes the events after the last
   * verified head (all of them with `full`), rebuilds the Merkle tree over them and checks every
   * checkpoint taken since: its signature by the log's key, and that its root is the tree's root at
   * its size (a JWS checkpoint of before: that its hash is the event's). Each anchor (a checkpoint
   * kept outside, a witness's) must be a prefix of the log: a log that ends before one is BROKEN,
   * naming the anchor's size and the first missing seq. An intact result becomes the verified head.
   */
  async verify(options: { anchors?: AuditAnchor[]; unavailable?: { source: string; reason: string }[]; full?: boolean } = {}): Promise<AuditVerification> {
    const head = await this.repository.head();
    const size = head?.seq ?? 0;
    const saved = options.full ? undefined : await this.repository.verifiedHead();
    const from = saved && saved.size <= size ? saved.size : 0;
    const anchors = await Promise.all((options.anchors ?? []).map((anchor) => this.openAnchor(anchor)));
    const breaks: { seq: number; reason: string }[] = [];
    if (saved && saved.size > size) breaks.push({ seq: size + 1, reason: `the log ends at seq ${size}, below the last verified head of size ${saved.size}` });
    for (const anchor of anchors) {
      if (anchor.checkpoint && anchor.checkpoint.size > size) {
        anchor.verdict = { ...anchor.verdict, ok: false, missingSeq: size + 1, reason: `the log ends at seq ${size}, below this checkpoint of size ${anchor.checkpoint.size}: seq ${size + 1} is missing` };
        breaks.push({ seq: size + 1, reason: `${anchor.verdict.source}: ${anchor.verdict.reason}` });
      }
    }

    const replay = await this.replay({ from, saved: from > 0 ? saved : undefined, size, anchors });
    const failure = [...breaks, ...(replay.chain.ok ? [] : [{ seq: replay.chain.brokenSeq, reason: replay.chain.reason }])].sort((a, b) => a.seq - b.seq)[0];
    const chain: ChainVerification = failure ? { ok: false, count: replay.chain.count, brokenSeq: failure.seq, reason: failure.reason } : replay.chain;
    // An anchor that could not be read (a witness away) cannot be told apart from one withheld.
    const verdicts = [...anchors.map((a) => a.verdict), ...(options.unavailable ?? []).map(({ source, reason }) => ({ source, size: 0, ok: false, reason }))];
    const intact = chain.ok && replay.checkpoints.failed.length === 0 && verdicts.every((v) => v.ok) && replay.root !== undefined;
    if (intact && head) await this.repository.saveVerifiedHead({ size, root: replay.root!, hash: head.hash, at: new Date(this.clock.now()).toISOString() });
    return { chain, checkpoints: replay.checkpoints, from, tree: replay.root && size > 0 ? { size, root: Buffer.from(replay.root).toString('base64') } : null, anchors: verdicts };
  }

  /** An anchor's note opened with the log's key and parsed; a verdict saying why when it cannot be. */
  private async openAnchor(anchor: AuditAnchor): Promise<{ checkpoint?: { size: number; root: MerkleHash }; verdict: AnchorVerdict }> {
    try {
      const { text } = await openNote({ note: anchor.note, verifiers: [this.log.vkey] });
      const body = parseCheckpoint(text);
      if (body.origin !== this.log.origin) return { verdict: { source: anchor.source, size: body.size, ok: false, reason: `the checkpoint is of another log (${body.origin})` } };
      return { checkpoint: body, verdict: { source: anchor.source, size: body.size, ok: true } };
    } catch (error) {
      return { verdict: { source: anchor.source, size: 0, ok: false, reason: `not a checkpoint signed by this log's key: ${(error as Error).message}` } };
    }
  }

  /**
   * Re-hashes events `from + 1 ..= size` onto the tree as stored at `from` (checked against the
   * verified head's root), checking checkpoints and anchors on the way, then the stored tree at the
   * head against the one rebuilt. `root` is undefined when the stored tree is not the events' tree.
   */
  private async replay(options: {
    from: number;
    saved: { root: MerkleHash; hash: string } | undefined;
    size: number;
    anchors: { checkpoint?: { size: number; root: MerkleHash }; verdict: AnchorVerdict }[];
  }): Promise<{ chain: ChainVerification; checkpoints: AuditVerification['checkpoints']; root: MerkleHash | undefined }> {
    const { from, saved, size, anchors } = options;
    const failed: { seq: number; reason: string }[] = [];
    let verified = 0;
    const verifier = new AuditChainVerifier(saved ? { seq: from, hash: saved.hash } : undefined);
    const tree = await this.storedTree(from, saved?.root).catch((error: unknown) => error as Error);
    if (tree instanceof Error) {
      return { chain: { ok: false, count: 0, brokenSeq: from, reason: tree.message }, checkpoints: { verified, failed }, root: undefined };
    }
    // Appends go on while this runs: what came after the head read at the start is left for next time.
    const checkpoints = new Map((await this.repository.checkpoints()).filter((c) => c.seq > from && c.seq <= size).map((c) => [c.seq, c]));
    const anchorsAt = new Map<number, (typeof anchors)[number][]>();
    for (const anchor of anchors) {
      const at = anchor.checkpoint?.size;
      if (at === undefined || at > size) continue;
      if (at <= from) await this.checkAnchorOnStoredTree(anchor);
      else anchorsAt.set(at, [...(anchorsAt.get(at) ?? []), anchor]);
    }
    const { keys } = await this.keys.jwks();
    for (let after = from; after < size; ) {
      const page = await this.repository.eventsAfter(after, VERIFY_PAGE);
      if (page.length === 0) break;
      for (const event of page) {
        if (event.seq > size) break;
        if (!(await verifier.push(event))) break;
        tree.append(eventLeaf(event.hash));
        const checkpoint = checkpoints.get(event.seq);
        if (checkpoint) {
          const reason = await this.checkpointProblem(checkpoint, { root: tree.root(), eventHash: event.hash, keys });
          if (reason) failed.push({ seq: checkpoint.seq, reason });
          else verified++;
        }
        for (const anchor of anchorsAt.get(event.seq) ?? []) {
          if (!sameBytes(anchor.checkpoint!.root, tree.root())) anchor.verdict = { ...anchor.verdict, ok: false, reason: `the tree's root at size ${event.seq} differs from this checkpoint's` };
        }
      }
      if (!verifier.result().ok || page.at(-1)!.seq >= size) break;
      after = page.at(-1)!.seq;
    }
    const chain = verifier.result();
    if (!chain.ok || tree.size !== size) {
      // Checkpoints past the break cannot be checked against events that do not link up.
      for (const c of checkpoints.values()) if (c.seq > tree.size) failed.push({ seq: c.seq, reason: 'the chain is broken before this checkpoint' });
      const brokenAt = chain.ok ? { ok: false as const, count: chain.count, brokenSeq: tree.size + 1, reason: `seq ${tree.size + 1} is missing` } : chain;
      return { chain: brokenAt, checkpoints: { verified, failed }, root: undefined };
    }
    // The stored tree (what proofs are made from) must be the tree of the events.
    const stored = await this.rootAt(size).catch((error: unknown) => error as Error);
    if (stored instanceof Error || !sameBytes(stored, tree.root())) {
      const reason = stored instanceof Error ? stored.message : `the stored Merkle tree's root at size ${size} is not the root of the events`;
      return { chain: { ok: false, count: chain.count, brokenSeq: size, reason }, checkpoints: { verified, failed }, root: undefined };
    }
    return { chain, checkpoints: { verified, failed }, root: tree.root() };
  }

  /** The tree at `size` from its stored compact range; its root must be `root` when one is given. */
  private async storedTree(size: number, root: MerkleHash | undefined): Promise<MerkleFrontier> {
    const edge = compactRange(size);
    const tree = new MerkleFrontier({ size, hashes: await this.repository.nodes(edge), digest: nodeDigest });
    if (root && !sameBytes(tree.root(), root)) throw new AuditTreeIncomplete(`the stored Merkle tree at size ${size} is no longer the one verified before`);
    return tree;
  }

  /** An anchor at or below the verified head: its root against the stored tree's. */
  private async checkAnchorOnStoredTree(anchor: { checkpoint?: { size: number; root: MerkleHash }; verdict: AnchorVerdict }): Promise<void> {
    const { size, root } = anchor.checkpoint!;
    const stored = await this.rootAt(size).catch((error: unknown) => error as Error);
    if (stored instanceof Error) anchor.verdict = { ...anchor.verdict, ok: false, reason: stored.message };
    else if (!sameBytes(stored, root)) anchor.verdict = { ...anchor.verdict, ok: false, reason: `the tree's root at size ${size} differs from this checkpoint's` };
  }

  /** Why a stored checkpoint does not check out at its seq; undefined when it does. */
  private async checkpointProblem(
    checkpoint: AuditCheckpoint,
    at: { root: MerkleHash; eventHash: string; keys: Awaited<ReturnType<AuditServiceOptions['keys']['jwks']>>['keys'] },
  ): Promise<string | undefined> {
    if (checkpoint.note !== undefined) {
      try {
        const { text } = await openNote({ note: checkpoint.note, verifiers: [this.log.vkey] });
        const body = parseCheckpoint(text);
        if (body.origin !== this.log.origin || body.size !== checkpoint.seq) return 'checkpoint row differs from its signed note';
        return sameBytes(body.root, at.root) ? undefined : `the tree's root at size ${checkpoint.seq} differs from the signed checkpoint`;
      } catch (error) {
        return `checkpoint note does not verify: ${(error as Error).message}`;
      }
    }
    const jwk = at.keys.find((k) => k.kid === checkpoint.kid);
    // A key past its serving time can no longer be checked: say so, do not count it as verified.
    if (!jwk || checkpoint.jws === undefined) return `signing key ${checkpoint.kid ?? '(none)'} is no longer published`;
    try {
      const payload = await verifyCheckpoint(checkpoint.jws, jwk);
      if (payload.seq !== checkpoint.seq || payload.hash !== checkpoint.hash) return 'checkpoint row differs from its signed payload';
      return payload.hash === at.eventHash ? undefined : 'chain hash at this seq differs from the signed checkpoint';
    } catch (error) {
      return (error as Error).message;
    }
  }

  /** Every event of the chain, oldest first, for export (JSON Lines). */
  async *export(): AsyncGenerator<AuditEvent> {
    for (let after = 0; ; ) {
      const page = await this.repository.eventsAfter(after, VERIFY_PAGE);
      yield* page;
      if (page.length < VERIFY_PAGE) return;
      after = page.at(-1)!.seq;
    }
  }
}

/** An event `linkAuditEvent` could not canonicalise or hash (a lone surrogate, a non-JSON value). */
export class UnhashableEvent extends Error {
  override readonly name = 'UnhashableEvent';
}

/**
 * Why an append failed, when the failure is about what the event holds and would recur on every
 * try: it cannot be canonicalised or hashed ({@link UnhashableEvent}, from `linkAuditEvent`), or
 * the database refused its data (SQLSTATE class 22, data exception: a NUL that jsonb or text
 * cannot hold, a lone surrogate escape; class 54, a value over a limit). Undefined for anything
 * else (a connection lost, a database away): such a failure is retried, never dead-lettered.
 */
export function unrecordableReason(error: unknown): string | undefined {
  if (error instanceof UnhashableEvent) return `cannot be canonicalised: ${error.message}`;
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, driverError } = error as { code?: unknown; driverError?: { code?: unknown } };
  const sqlState = typeof code === 'string' ? code : typeof driverError?.code === 'string' ? driverError.code : undefined;
  if (sqlState === undefined || !/^(22|54)[0-9A-Z]{3}$/.test(sqlState)) return undefined;
  return `refused by the database (SQLSTATE ${sqlState}): ${error instanceof Error ? error.message : 'no message'}`;
}

/** Whether {@link unrecordableReason} names a reason. */
export function isUnrecordableEvent(error: unknown): boolean {
  return unrecordableReason(error) !== undefined;
}

/**
 * The tree at `size` leaves from the stored compact range `edge`. Fails closed when a node is
 * missing (rows deleted under the registry): nothing is appended onto a tree that is not whole.
 */
function treeAt(size: number, edge: AuditTreeNode[]): MerkleFrontier {
  const expected = compactRange(size);
  if (edge.length !== expected.length || edge.some((node, i) => node.level !== expected[i]!.level || node.index !== expected[i]!.index)) {
    throw new AuditTreeIncomplete(`the audit log's Merkle tree does not reach its head (seq ${size}): nodes are missing`);
  }
  return new MerkleFrontier({ size, hashes: edge.map((node) => node.hash), digest: nodeDigest });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** The ids drafts carry (an event already in the chain with one of them is not appended again). */
function idsOf(drafts: AuditDraft[]): string[] {
  return drafts.flatMap((d) => (d.id ? [d.id] : []));
}
