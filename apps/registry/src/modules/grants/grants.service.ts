import {
  assertNarrows,
  type AuthorizationDetails,
  AuthorizationDetailsSchema,
  agentText,
  type Clock,
  detailsSubsetViolation,
  type Envelope,
  EnvelopeSchema,
  identifierText,
  InvalidAuthorizationDetails,
  InvalidRequest,
  locationCovers,
  pathStepProblem,
  randomId,
} from '@writ/core';
import { DurationSchema, type GrantNarrowing, GrantNarrowingSchema, humanError } from '@writ/contracts';
import { z } from 'zod';
import { ChangeFeed, type ChangeRelay } from '../../infra/change-feed.js';
import type { AuditService } from '../audit/audit.service.js';
import type { ServiceEntity } from '../services/service.entity.js';
import type { ServicesService } from '../services/services.service.js';
import { describeIssue } from '../validation.js';
import type { Transaction } from '../../infra/transaction.js';
import type { Delegation, GrantEntity, GrantStatus } from './grant.entity.js';
import type { GrantsRepository } from './grants.repository.js';

export { MAX_DURATION_S, MIN_DURATION_S } from '@writ/contracts';

/** The body of `POST /grants`. Strict: an unknown field is refused, never ignored. */
export const GrantRequestSchema = z.strictObject({
  /** The service's id (`svc_...`) or its URI. */
  service: identifierText(z.string().min(1).max(2048)),
  authorization_details: AuthorizationDetailsSchema,
  envelope: EnvelopeSchema,
  // The agent's own words on the approval screen: refused, never trimmed, when they hold a control,
  // format or invisible character or stray whitespace (ADR 0019).
  purpose: agentText(z.string().min(1, 'purpose must not be empty').max(500, 'purpose must be at most 500 characters')),
  duration_s: DurationSchema,
  delegation: z
    .strictObject({
      max_depth: z.number().int().min(0).max(8),
      allowed_agents: z.array(identifierText(z.string().min(1).max(256))).min(1).max(64).optional(),
    })
    .optional(),
});

export type GrantRequest = z.infer<typeof GrantRequestSchema>;

/** What the human may narrow before approving (a human API contract). */
export { type GrantNarrowing, GrantNarrowingSchema };

/** A grant's revocation, handed to the {@link GrantRevocationRecorder} inside the revoking transaction. */
export interface GrantRevocation {
  grantId: string;
  /** The grant row (after its status change), or null for an id no grant has. */
  grant: GrantEntity | null;
  by: string | null;
  reason: string | null;
  now: number;
  /** Until when the revocation matters, when the caller says; otherwise the recorder decides. */
  expiresAt: Date | undefined;
  /** The status change, when the grant was live; null when its status stays as it was. */
  transition: { from: GrantStatus; status: GrantStatus; version: number } | null;
}

/**
 * Writes a grant's revocation durably (the `revocations` row and its one audit event) with the
 * revoking transaction, and returns what to run once that transaction commits (the
 * announcement). Provided by the revocations module, which itself depends on GrantsService: a
 * narrow callback instead of the service keeps the dependency one-way.
 */
export type GrantRevocationRecorder = (tx: Transaction, revocation: GrantRevocation) => Promise<() => void>;

export interface GrantsServiceOptions {
  repository: GrantsRepository;
  audit: AuditService;
  services: ServicesService;
  clock: Clock;
  /** Pending requests one agent may have at a time (ARCHITECTURE.md: pending-grant flood limit). */
  pendingLimit?: number;
  /** How long a request waits for a decision before it expires. */
  pendingTtlMs?: number;
  /**
   * Records and announces revocations (the app always sets it). Without it, a revocation is only
   * the grant's status change, audited as `grant.revoked`.
   */
  recordRevocation?: GrantRevocationRecorder;
  /** Carries grant changes to the other registry processes on the same database (PostgreSQL). */
  relay?: ChangeRelay;
}

/** The LISTEN/NOTIFY channel of grant changes. */
export const GRANT_CHANGES_CHANNEL = 'writ_grant_changes';

/** An expiry sweep handles at most this many grants per transaction. */
const EXPIRY_BATCH = 500;

/** The statuses a grant can be used or decided in, and so revoked from. */
const LIVE: readonly GrantStatus[] = ['approved', 'pending'];

/** No delegation onwards unless the request asks for it. */
const NO_DELEGATION: Delegation = { max_depth: 0 };

function isDue(grant: GrantEntity, now: number): boolean {
  return (grant.status === 'pending' || grant.status === 'approved') && grant.expires_at.getTime() <= now;
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidRequest('request body must be a JSON object');
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const { path, text } = describeIssue(parsed.error, body);
  // RFC 9396 §5: a malformed authorization_details is invalid_authorization_details.
  throw path[0] === 'authorization_details' ? new InvalidAuthorizationDetails(text) : new InvalidRequest(text);
}

/**
 * Whether a location has a dot segment (RFC 3986 §3.3 `.` or `..`) or an encoded dot, slash or
 * backslash, read on the text as written (`pathStepProblem` of @writ/core, as for identifiers and
 * resources): the URL parser would silently remove or keep them, so the person would approve one
 * path and a service could serve another (ADR 0002).
 */
function hasPathTraversal(location: string): boolean {
  return pathStepProblem(location) !== undefined;
}

/** The first capability the service does not offer, as a sentence, or null. */
function catalogueViolation(details: AuthorizationDetails, service: ServiceEntity): string | null {
  for (const [index, capability] of details.entries()) {
    const prefix = `capability ${index} (${capability.type})`;
    const traversal = capability.locations.find(hasPathTraversal);
    if (traversal !== undefined) return `${prefix}: location '${traversal}' has a dot segment or an encoded dot, slash or backslash`;
    const entry = service.catalogue.find((e) => e.type === capability.type);
    if (!entry) return `${prefix}: type '${capability.type}' is not offered by ${service.uri}`;
    const action = capability.actions.find((a) => !entry.actions.includes(a));
    if (action !== undefined) return `${prefix}: action '${action}' is not offered by ${service.uri}`;
    const location = capability.locations.find((l) => !locationCovers(service.uri, l));
    if (location !== undefined) return `${prefix}: location '${location}' is not under ${service.uri}`;
  }
  return null;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

type Waiter = () => void;

/** A human's signed decision on a grant, as the approval flow hands it over. */
export interface SignedDecision {
  /** The grant version the signed document names: a grant that changed since is refused. */
  version: number;
  /** base64url(SHA-256(JCS(receipt))): `tctx.approval` of every token of the grant. */
  receiptHash: string;
  /** Writes the receipt in the deciding transaction. */
  record(tx: Transaction): Promise<void>;
}

/** A committed change of one grant, for the human's live inbox. */
export interface GrantChange {
  grant_id: string;
  owner: string;
  status: GrantStatus;
  version: number;
}

function checkVersion(grant: GrantEntity, signed: SignedDecision): void {
  if (grant.version !== signed.version) throw humanError('grant_changed', { signed: signed.version, current: grant.version });
}

/**
 * Grants: an agent's request for capabilities at one service, and its life
 * (pending → approved | denied | expired; approved → revoked | expired; pending → revoked).
 * Every transition bumps `version` and appends its audit event in the same transaction.
 */
export class GrantsService {
  private readonly repository: GrantsRepository;
  private readonly audit: AuditService;
  private readonly services: ServicesService;
  private readonly clock: Clock;
  private readonly pendingLimit: number;
  private readonly pendingTtlMs: number;
  private readonly recordRevocation: GrantRevocationRecorder | undefined;
  /** Waiters per grant id and the inbox listeners, woken after each commit (in every process, with a relay). */
  private readonly changes: ChangeFeed<GrantChange>;

  constructor(options: GrantsServiceOptions) {
    this.repository = options.repository;
    this.audit = options.audit;
    this.services = options.services;
    this.clock = options.clock;
    this.pendingLimit = options.pendingLimit ?? 10;
    this.pendingTtlMs = options.pendingTtlMs ?? 15 * 60_000;
    this.recordRevocation = options.recordRevocation;
    this.changes = new ChangeFeed((change) => change.grant_id, options.relay ? { via: options.relay, channel: GRANT_CHANGES_CHANNEL } : undefined);
  }

  /**
   * Records an agent's request. `owner` is the agent's human, read from the agent by the caller.
   *
   * @throws InvalidRequest on a malformed body, an unknown service, or too many pending requests.
   * @throws InvalidAuthorizationDetails when a capability is malformed or not in the service's catalogue.
   */
  async request(agentId: string, owner: string, body: unknown): Promise<GrantEntity> {
    const input = parse(GrantRequestSchema, body);
    const service = await this.services.find(input.service);
    if (!service) throw new InvalidRequest(`unknown service '${input.service}'`);
    const violation = catalogueViolation(input.authorization_details, service);
    if (violation !== null) throw new InvalidAuthorizationDetails(violation);
    const now = this.clock.now();
    return this.repository.transaction(async (tx) => {
      // Serialise one agent's requests, so two concurrent ones cannot both pass the count.
      await this.repository.lockAgentRequests(agentId, tx);
      const pending = await this.repository.countPending(agentId, new Date(now), tx);
      if (pending >= this.pendingLimit) throw new InvalidRequest(`too many pending grant requests (limit ${this.pendingLimit})`);
      const grant: GrantEntity = {
        id: `grt_${randomId()}`,
        agent_id: agentId,
        owner,
        service_id: service.id,
        authorization_details: input.authorization_details,
        envelope: input.envelope,
        purpose: input.purpose,
        duration_s: input.duration_s,
        status: 'pending',
        version: 1,
        delegation: input.delegation ?? NO_DELEGATION,
        requested_at: new Date(now),
        decided_at: null,
        expires_at: new Date(now + this.pendingTtlMs),
        revoked_at: null,
        approval: null,
      };
      await this.repository.insert(grant, tx);
      await this.audit.append(
        {
          type: 'grant.requested',
          actor: agentId,
          subject: owner,
          grant_id: grant.id,
          data: {
            service_id: service.id,
            authorization_details: grant.authorization_details,
            envelope: grant.envelope,
            purpose: grant.purpose,
            duration_s: grant.duration_s,
            delegation: grant.delegation,
          },
        },
        tx,
      );
      return grant;
    }).then((grant) => {
      this.emit(grant);
      return grant;
    });
  }

  /**
   * The grant, with expiry applied first: a grant past `expires_at` is never returned as pending
   * or approved (it is flipped to expired, with its audit event, before it is returned).
   */
  async get(grantId: string): Promise<GrantEntity | null> {
    // One plain statement: this lookup is on every token request.
    return this.settle(await this.repository.find(grantId));
  }

  /**
   * A grant row read elsewhere (in the same statement as the calling agent, on the token path),
   * brought up to date like {@link get}: a grant past its expiry is expired first.
   */
  settle(grant: GrantEntity | null): Promise<GrantEntity | null> {
    if (!grant || !isDue(grant, this.clock.now())) return Promise.resolve(grant);
    return this.expireOne(grant.id);
  }

  /** The grant if it is this agent's; another agent's grant is indistinguishable from none. */
  async getForAgent(grantId: string, agentId: string): Promise<GrantEntity | null> {
    const grant = await this.get(grantId);
    return grant?.agent_id === agentId ? grant : null;
  }

  /**
   * The values a narrowed approval would give the grant, checked against the request: each a
   * subset of what was asked. Pure; the approval flow uses it to build the document the human
   * signs, and {@link approve} checks it again when the signed decision comes back.
   *
   * @throws InvalidAuthorizationDetails if a narrowed value is wider than the request.
   * @throws InvalidRequest if a narrowed duration is longer than requested.
   */
  narrowed(grant: GrantEntity, narrowed: unknown = {}): { authorization_details: AuthorizationDetails; envelope: Envelope; duration_s: number; isNarrowed: boolean } {
    // Parsed again: the narrowing comes from a human's form, and a wider value must never slip through.
    const narrowing = parse(GrantNarrowingSchema, narrowed);
    const details = narrowing.authorization_details ?? grant.authorization_details;
    const envelope: Envelope = narrowing.envelope ?? grant.envelope;
    const duration = narrowing.duration_s ?? grant.duration_s;
    const violation = detailsSubsetViolation(details, grant.authorization_details);
    if (violation !== null) throw new InvalidAuthorizationDetails(violation);
    assertNarrows(envelope, grant.envelope);
    if (duration > grant.duration_s) throw new InvalidRequest(`duration_s ${duration} is longer than the requested ${grant.duration_s}`);
    const isNarrowed = !sameJson(details, grant.authorization_details) || !sameJson(envelope, grant.envelope) || duration !== grant.duration_s;
    return { authorization_details: details, envelope, duration_s: duration, isNarrowed };
  }

  /**
   * The owner approves a pending grant, possibly narrowed first, with a signed decision: the
   * approved grant runs until the `expiresAt` the human signed, and carries the receipt's hash.
   * Only the approval flow calls it, once the passkey assertion over the document is verified.
   *
   * @throws HumanApiError if the grant is not the owner's, no longer pending, or changed since the document was issued.
   * @throws InvalidAuthorizationDetails if a narrowed value is wider than the request.
   * @throws InvalidRequest if a narrowed duration is longer than requested.
   */
  async approve(grantId: string, byOwner: string, narrowed: GrantNarrowing, signed: SignedDecision & { expiresAt: Date }): Promise<GrantEntity> {
    return this.transition(grantId, byOwner, ['pending'], async (grant, tx, now) => {
      checkVersion(grant, signed);
      const { authorization_details: details, envelope, duration_s: duration, isNarrowed } = this.narrowed(grant, narrowed);
      if (signed.expiresAt.getTime() <= now) throw humanError('approval_run_out');
      Object.assign(grant, {
        authorization_details: details,
        envelope,
        duration_s: duration,
        status: 'approved',
        decided_at: new Date(now),
        expires_at: signed.expiresAt,
        approval: signed.receiptHash,
      });
      await signed.record(tx);
      await this.save(tx, grant, {
        type: 'grant.approved',
        actor: byOwner,
        data: {
          narrowed: isNarrowed,
          ...(isNarrowed ? { authorization_details: details, envelope, duration_s: duration } : {}),
          expires_at: grant.expires_at.toISOString(),
          receipt_hash: signed.receiptHash,
        },
      });
    });
  }

  /** The owner denies a pending grant, with a signed decision. @throws HumanApiError if not the owner's, not pending, or changed since. */
  async deny(grantId: string, byOwner: string, signed: SignedDecision): Promise<GrantEntity> {
    return this.transition(grantId, byOwner, ['pending'], async (grant, tx, now) => {
      checkVersion(grant, signed);
      Object.assign(grant, { status: 'denied', decided_at: new Date(now) });
      await signed.record(tx);
      await this.save(tx, grant, { type: 'grant.denied', actor: byOwner, data: { receipt_hash: signed.receiptHash } });
    });
  }

  /** Calls `listener` after every committed change of any grant (requests included); returns the unsubscribe. */
  onChange(listener: (change: GrantChange) => void): () => void {
    return this.changes.onChange(listener);
  }

  /**
   * The owner revokes an approved (or still pending) grant: its status changes, the revocation is
   * recorded (row and one audit event, in the same transaction) and announced once committed.
   * @throws HumanApiError otherwise.
   */
  async revoke(grantId: string, byOwner: string, reason: string | null = null): Promise<GrantEntity> {
    let announce: (() => void) | undefined;
    const grant = await this.transition(grantId, byOwner, LIVE, async (grant, tx, now) => {
      announce = await this.revokeIn(tx, grant, byOwner, reason, now, undefined);
    });
    announce?.();
    return grant;
  }

  /**
   * Revokes a grant for a caller that has already decided `by` may (RevocationsService.revoke):
   * no owner check. A live grant becomes revoked; a grant in any other state, or an unknown id,
   * keeps its state, yet the revocation is still recorded and announced, so every verifier drops
   * whatever it cached. Needs the revocation recorder.
   */
  async revokeRecorded(grantId: string, by: string | null, reason: string | null, expiresAt?: Date): Promise<void> {
    const record = this.recordRevocation;
    if (!record) throw new Error('GrantsService was built without a revocation recorder');
    const now = this.clock.now();
    let row: GrantEntity | null = null;
    const announce = await this.repository.transaction(async (tx) => {
      const grant = (row = await this.repository.lock(grantId, tx));
      if (grant && isDue(grant, now)) await this.expireIn(tx, grant);
      if (grant && LIVE.includes(grant.status)) return this.revokeIn(tx, grant, by, reason, now, expiresAt);
      return record(tx, { grantId, grant, by, reason, now, expiresAt, transition: null });
    });
    this.notify(grantId, row);
    announce();
  }

  /**
   * Flips every pending or approved grant whose `expires_at` is at or before `now` to expired,
   * each with its `grant.expired` event. Run on a timer by {@link GrantExpiryTimer}; returns how many.
   */
  async expireDue(now = this.clock.now()): Promise<number> {
    let total = 0;
    for (;;) {
      const expired = await this.repository.transaction(async (tx) => {
        // Grants another sweep (another process) holds are skipped, not waited for.
        const due = await this.repository.lockDue(['pending', 'approved'], new Date(now), EXPIRY_BATCH, tx);
        for (const grant of due) await this.expireIn(tx, grant);
        return due;
      });
      for (const grant of expired) this.notify(grant.id, grant);
      total += expired.length;
      if (expired.length < EXPIRY_BATCH) return total;
    }
  }

  /**
   * Resolves with the grant as soon as it leaves pending, or after `timeoutMs` with its state
   * then (re-read, so expiry is applied). No polling: a waiter is woken by a notification sent
   * after the deciding transaction commits, in this process and, with a relay (PostgreSQL
   * LISTEN/NOTIFY), from every other registry process on the same database.
   * Returns null if the grant is not this agent's. Rejects with `signal.reason` when aborted.
   */
  async waitForDecision(grantId: string, agentId: string, timeoutMs: number, signal?: AbortSignal): Promise<GrantEntity | null> {
    signal?.throwIfAborted();
    let wake!: Waiter;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const unsubscribe = this.changes.wait(grantId, wake);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      // Subscribed before the first read, so a decision committed in between is not missed.
      const grant = await this.getForAgent(grantId, agentId);
      if (!grant || grant.status !== 'pending') return grant;
      signal?.throwIfAborted();
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, timeoutMs))));
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(signal?.reason as Error);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      await Promise.race([woken, timedOut, aborted]);
      return await this.getForAgent(grantId, agentId);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      unsubscribe();
    }
  }

  /** Runs one transition under a row lock, applying a due expiry first (which then wins). */
  private async transition(
    grantId: string,
    byOwner: string,
    from: readonly GrantStatus[],
    apply: (grant: GrantEntity, tx: Transaction, now: number) => Promise<void>,
  ): Promise<GrantEntity> {
    const now = this.clock.now();
    const outcome = await this.repository.transaction(async (tx) => {
      const grant = await this.repository.lock(grantId, tx);
      // Another human's grant answers as an unknown one, so grant ids are not probeable.
      if (!grant || grant.owner !== byOwner) throw humanError('grant_not_found');
      // A due expiry is committed, and then the transition is refused.
      if (isDue(grant, now)) {
        await this.expireIn(tx, grant);
        return { grant, expired: true };
      }
      if (!from.includes(grant.status)) throw humanError('grant_wrong_status', { status: grant.status, expected: from.join(' or ') });
      await apply(grant, tx, now);
      return { grant, expired: false };
    });
    this.notify(grantId, outcome.grant);
    if (outcome.expired) throw humanError('grant_wrong_status', { status: 'expired', expected: from.join(' or ') });
    return outcome.grant;
  }

  /** Expires one grant if it is still due (lazy expiry on read). */
  private async expireOne(grantId: string): Promise<GrantEntity | null> {
    const now = this.clock.now();
    const grant = await this.repository.transaction(async (tx) => {
      const row = await this.repository.lock(grantId, tx);
      if (row && isDue(row, now)) await this.expireIn(tx, row);
      return row;
    });
    this.notify(grantId, grant);
    return grant;
  }

  /** A live grant becomes revoked, with exactly one audit event; returns the announcement to make after commit. */
  private async revokeIn(
    tx: Transaction,
    grant: GrantEntity,
    by: string | null,
    reason: string | null,
    now: number,
    expiresAt: Date | undefined,
  ): Promise<() => void> {
    const from = grant.status;
    Object.assign(grant, { status: 'revoked', revoked_at: new Date(now), decided_at: grant.decided_at ?? new Date(now) });
    if (!this.recordRevocation) {
      await this.save(tx, grant, { type: 'grant.revoked', actor: by, data: { from } });
      return () => undefined;
    }
    await this.write(tx, grant);
    // The revocation's event carries the status change: one event, not grant.revoked and revocation.grant.
    return this.recordRevocation(tx, { grantId: grant.id, grant, by, reason, now, expiresAt, transition: { from, status: grant.status, version: grant.version } });
  }

  private async expireIn(tx: Transaction, grant: GrantEntity): Promise<void> {
    const from = grant.status;
    grant.status = 'expired';
    await this.save(tx, grant, { type: 'grant.expired', actor: 'registry', data: { from, expires_at: grant.expires_at.toISOString() } });
  }

  /** Bumps the version, writes the row and appends the event, in the caller's transaction. */
  private async save(tx: Transaction, grant: GrantEntity, event: { type: string; actor: string | null; data: Record<string, unknown> }): Promise<void> {
    await this.write(tx, grant);
    await this.audit.append(
      { type: event.type, actor: event.actor, subject: grant.owner, grant_id: grant.id, data: { ...event.data, status: grant.status, version: grant.version } },
      tx,
    );
  }

  /** Bumps the version and writes the row, in the caller's transaction. */
  private async write(tx: Transaction, grant: GrantEntity): Promise<void> {
    grant.version += 1;
    await this.repository.update(grant, tx);
  }

  /** Wakes this grant's waiters (they re-read the committed row themselves), and tells the listeners what changed. */
  private notify(grantId: string, grant?: GrantEntity | null): void {
    if (grant) this.emit(grant);
    else this.changes.wake(grantId);
  }

  private emit(grant: GrantEntity): void {
    this.changes.publish({ grant_id: grant.id, owner: grant.owner, status: grant.status, version: grant.version });
  }
}
