import { hash, randomUUID } from 'node:crypto';
import {
  AuditChainVerifier,
  type AuditEvent,
  type ChainVerification,
  type Clock,
  linkAuditEvent,
  signCheckpoint,
  verifyCheckpoint,
} from '@writ/core';
import { SerialLock } from '../../infra/serial-lock.js';
import type { Transaction } from '../../infra/transaction.js';
import type { KeyStore } from '../keys/key-store.js';
import type { AuditCheckpoint, AuditHead, AuditRepository, ChainExtension } from './audit.repository.js';

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

export interface AuditVerification {
  chain: ChainVerification;
  checkpoints: { verified: number; failed: { seq: number; reason: string }[] };
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
  /** Signs the checkpoints, and publishes the keys that check them. */
  keys: Pick<KeyStore, 'active' | 'jwks'>;
  clock: Clock;
  /** A signed checkpoint every this many events. */
  checkpointEvery: number;
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
 */
export class AuditService {
  private readonly appendLock = new SerialLock();
  private queue: Pending[] = [];
  private flushing = false;

  private readonly repository: AuditRepository;
  private readonly keys: AuditServiceOptions['keys'];
  private readonly clock: Clock;
  private readonly checkpointEvery: number;

  constructor(options: AuditServiceOptions) {
    this.repository = options.repository;
    this.keys = options.keys;
    this.clock = options.clock;
    this.checkpointEvery = options.checkpointEvery;
  }

  /**
   * Appends one event (or returns the existing one with the same id) and resolves once it is
   * committed. With `tx`, the event joins the caller's transaction and commits with it.
   */
  append(draft: AuditDraft, tx?: Transaction): Promise<AuditEvent> {
    if (tx) {
      return this.repository.extend(idsOf([draft]), (head, known) => this.chain(head, [draft], known), tx).then(([outcome]) => {
        if (outcome instanceof Error) throw outcome;
        return outcome!;
      });
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ draft, resolve, reject });
      if (!this.flushing) void this.flush();
    });
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
  private appendGroup(group: Pending[]): Promise<(AuditEvent | Error)[]> {
    const drafts = group.map((p) => p.draft);
    return this.appendLock.run(() => this.repository.extend(idsOf(drafts), (head, known) => this.chain(head, drafts, known)));
  }

  private settle(group: Pending[], outcomes: (AuditEvent | Error)[]): void {
    group.forEach((p, i) => {
      const outcome = outcomes[i]!;
      if (outcome instanceof Error) p.reject(outcome);
      else p.resolve(outcome);
    });
  }

    /**
   * Links `drafts` in order after `head`, with the checkpoints that fall due. A draft whose id is
   * already in the chain (or earlier in the group) is not appended again; one that cannot be
   * hashed (its data is not JSON) yields its error and is skipped, and the others go on.
   */
  private async chain(head: AuditHead, drafts: AuditDraft[], known: Map<string, AuditEvent>): Promise<ChainExtension<(AuditEvent | Error)[]>> {
    const at = new Date(this.clock.now()).toISOString();
    const appended: AuditEvent[] = [];
    // The appended events' JSON texts, as linkAuditEvent wrote them for the hash: stored as they are.
    const texts: string[] = [];
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
      known.set(event.id, event);
      appended.push(event);
      result.push(event);
      previous = event;
    }
    return { result, events: appended, eventsJson: `[${texts.join(',')}]`, checkpoints: await this.checkpointsFor(appended) };
  }

  /** A signed checkpoint for every event of the group whose seq is a multiple of `checkpointEvery`. */
  private async checkpointsFor(events: AuditEvent[]): Promise<AuditCheckpoint[]> {
    const due = events.filter((e) => e.seq % this.checkpointEvery === 0);
    if (due.length === 0) return [];
    const key = await this.keys.active();
    const at = new Date(this.clock.now()).toISOString();
    return Promise.all(
      due.map(async (e) => {
        const checkpoint = { seq: e.seq, hash: e.hash, at };
        return { ...checkpoint, kid: key.kid, jws: await signCheckpoint(checkpoint, { privateKey: key.privateKey, kid: key.kid }) };
      }),
    );
  }

  /** Signs a checkpoint of the current head now (also called on a timer); the existing one when the head has one. */
  async checkpoint(): Promise<AuditCheckpoint | undefined> {
    return this.appendLock.run(() => this.repository.checkpointHead((head) => this.sign(head)));
  }

  private async sign(head: NonNullable<AuditHead>): Promise<AuditCheckpoint> {
    const key = await this.keys.active();
    const checkpoint = { seq: head.seq, hash: head.hash, at: new Date(this.clock.now()).toISOString() };
    return { ...checkpoint, kid: key.kid, jws: await signCheckpoint(checkpoint, { privateKey: key.privateKey, kid: key.kid }) };
  }

  /**
   * Re-computes the whole chain from the database, page by page, naming the first broken seq,
   * and checks every checkpoint's signature and that it matches the chain.
   */
  async verify(): Promise<AuditVerification> {
    const verifier = new AuditChainVerifier();
    const hashes = new Map<number, string>();
    const checkpoints = await this.repository.checkpoints();
    const wanted = new Set(checkpoints.map((c) => c.seq));
    for (let after = 0; ; ) {
      const page = await this.repository.eventsAfter(after, VERIFY_PAGE);
      let ok = true;
      for (const event of page) {
        if (wanted.has(event.seq)) hashes.set(event.seq, event.hash);
        if (!(await verifier.push(event))) {
          ok = false;
          break;
        }
      }
      if (!ok || page.length < VERIFY_PAGE) break;
      after = page.at(-1)!.seq;
    }
    const { keys } = await this.keys.jwks();
    const failed: { seq: number; reason: string }[] = [];
    let verified = 0;
    for (const cp of checkpoints) {
      const jwk = keys.find((k) => k.kid === cp.kid);
      if (!jwk) {
        // A key past its serving time can no longer be checked: say so, do not count it as verified.
        failed.push({ seq: cp.seq, reason: `signing key ${cp.kid} is no longer published` });
        continue;
      }
      try {
        const payload = await verifyCheckpoint(cp.jws, jwk);
        if (payload.seq !== cp.seq || payload.hash !== cp.hash.trim()) failed.push({ seq: cp.seq, reason: 'checkpoint row differs from its signed payload' });
        else if (hashes.get(cp.seq) !== payload.hash) failed.push({ seq: cp.seq, reason: 'chain hash at this seq differs from the signed checkpoint' });
        else verified++;
      } catch (error) {
        failed.push({ seq: cp.seq, reason: (error as Error).message });
      }
    }
    return { chain: verifier.result(), checkpoints: { verified, failed } };
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

/** The ids drafts carry (an event already in the chain with one of them is not appended again). */
function idsOf(drafts: AuditDraft[]): string[] {
  return drafts.flatMap((d) => (d.id ? [d.id] : []));
}
