import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import {
  type ApprovalReceipt,
  approvalReceiptHash,
  type Clock,
  InvalidRequest,
  randomId,
  ReceiptInvalid,
  type StepUpDocument,
  stepUpDocumentText,
  TemporarilyUnavailable,
  verifyStepUpReceipt,
} from '@writ/core';
import type { JWK } from 'jose';
import { humanError, StepUpDecisionOptionsSchema, StepUpDecisionSchema } from '@writ/contracts';
import type { RegistryConfig } from '../../config/config.js';
import type { AgentsRepository } from '../agents/agents.repository.js';
import { type AuditDraft, type AuditService, unrecordableReason } from '../audit/audit.service.js';
import { type HumansService, parseBody } from '../humans/humans.service.js';
import type { ServicesRepository } from '../services/services.repository.js';
import { STEP_UP_STATUSES, type StepUpBound, type StepUpEntity, type StepUpStatus, stepUpStatus } from './step-up.entity.js';
import type { RequestedStepUp, StepUpsRepository } from './step-ups.repository.js';
import type { VerifierStepUps } from './verifier-step-ups.js';
import { ChangeFeed, type ChangeRelay } from '../../infra/change-feed.js';

/** The LISTEN/NOTIFY channel of step-up changes. */
export const STEP_UP_CHANGES_CHANNEL = 'writ_step_up_changes';

/** How long a step-up lives when the verifier's event does not say (the verifier's own TTL). */
const DEFAULT_STEP_UP_TTL_MS = 15 * 60_000;

/** The most step-ups one list answers. */
const LIST_LIMIT = 200;

/** A step-up as its human sees it: the exact request, who made it and where, by name. */
export interface HumanStepUp {
  step_up_id: string;
  status: StepUpStatus;
  grant_id: string;
  txn: string;
  agent: { client_id: string; name: string };
  service: { id: string; uri: string; name: string };
  method: string;
  url: string;
  action: string;
  resource: string | null;
  amount: number;
  currency: string;
  /** The query as sent and the fields the service provider bound: approved with the rest (null before they were bound). */
  bound: StepUpBound | null;
  requested_at: string;
  expires_at: string;
  decided_at: string | null;
  receipt_hash: string | null;
}

/** A step-up as the agent that made the request sees it (`GET /step-ups/:id`). */
export interface AgentStepUp {
  step_up_id: string;
  status: StepUpStatus;
  grant_id: string;
  txn: string;
  amount: number;
  currency: string;
}

/** A committed change of one step-up, for the human's live inbox (`event: step_up`). */
export interface StepUpChange {
  step_up_id: string;
  owner: string;
  status: StepUpStatus;
}

/** A step-up receipt as its human downloads it: everything an offline check needs. */
export interface StepUpReceiptExport {
  receipt: ApprovalReceipt;
  hash: string;
  public_key: JWK;
  rp_id: string;
  origins: string[];
}

/** What an `approval_required` verification event says about the step-up it asks for. */
type AskedStepUp = Omit<RequestedStepUp, 'requestedAt' | 'expiresAt'> & { expiresAt: Date | undefined };

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** The step-up an ingested verification event asks the human for, or undefined (any other event). */
function askedStepUp(draft: AuditDraft): AskedStepUp | undefined {
  const data = draft.data ?? {};
  if (draft.type !== 'verification.denied' || data.outcome !== 'approval_required') return undefined;
  const id = text(data.step_up_id);
  const grantId = text(draft.grant_id);
  const agentId = text(draft.actor);
  const txn = text(draft.txn);
  const serviceId = text(data.service);
  const method = text(data.method);
  const url = text(data.url);
  const action = text(data.action);
  const currency = text(data.currency);
  const amount = data.amount;
  if (id === undefined || grantId === undefined || agentId === undefined || txn === undefined || serviceId === undefined) return undefined;
  if (method === undefined || url === undefined || action === undefined || currency === undefined) return undefined;
  if (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0) return undefined;
  const bound = boundOf(data.bound);
  if (bound === undefined) return undefined;
  const expires = text(data.step_up_expires_at);
  const expiresAt = expires === undefined ? undefined : new Date(expires);
  return {
    id,
    eventId: draft.id ?? id,
    grantId,
    agentId,
    txn,
    serviceId,
    method,
    url,
    action,
    resource: text(data.resource) ?? null,
    amount,
    currency,
    bound,
    expiresAt: expiresAt === undefined || Number.isNaN(expiresAt.getTime()) ? undefined : expiresAt,
  };
}

/**
 * The `bound` of a verification event (ADR 0014 amendment): `null` when the event has none (a
 * verifier from before), `undefined` when it is malformed, which records no step-up: the person
 * must see everything the verifier fingerprinted, or approve nothing.
 */
function boundOf(value: unknown): StepUpBound | null | undefined {
  if (value === undefined) return null;
  if (typeof value !== 'object' || value === null) return undefined;
  const { query, fields, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0 || (query !== null && typeof query !== 'string')) return undefined;
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return undefined;
  if (!Object.values(fields).every((v) => typeof v === 'string')) return undefined;
  return { query, fields: fields as Record<string, string> };
}

type Waiter = () => void;

export interface StepUpsServiceOptions {
  repository: StepUpsRepository;
  /** Names the agents in a step-up's view and document. */
  agents: Pick<AgentsRepository, 'findByIds'>;
  /** Names the services in a step-up's view and document. */
  services: Pick<ServicesRepository, 'findByIds'>;
  audit: AuditService;
  humans: HumansService;
  clock: Clock;
  config: Pick<RegistryConfig, 'rp' | 'uiOrigins'>;
  /** The verifiers' store an approval is written to; without it, approvals are refused (503). */
  verifier?: VerifierStepUps;
  logger?: { warn(message: string): void };
  /** Carries step-up changes to the other registry processes on the same database (PostgreSQL). */
  relay?: ChangeRelay;
}

/**
 * Step-ups (ARCHITECTURE.md "Behavioural envelope"): a request above the grant's `approval_above`
 * that the verifier holds (`approval_required`, with a step-up id) until the grant's human
 * approves exactly that request with a passkey.
 *
 * - The registry learns of each from the verifier's decision events ({@link recordRequested},
 *   called by the ingestion before it acks them): one row per step-up id, idempotent.
 * - The human decides with the same two-step WebAuthn ceremony as for grants, over the step-up
 *   document (`@writ/core` {@link StepUpDocument}); the receipt is kept with the step-up.
 * - An approval is written to the verifiers' store inside the deciding transaction: it commits only
 *   if the store flipped the step-up from pending to approved.
 * - The agent that made the request long-polls its status; waiters are woken after each commit
 *   (no database polling), in every registry process with a relay, like grants' decisions.
 */
export class StepUpsService {
  /** Waiters per step-up id and the inbox listeners, woken after each commit (in every process, with a relay). */
  private readonly changes: ChangeFeed<StepUpChange>;

  private readonly repository: StepUpsRepository;
  private readonly agents: StepUpsServiceOptions['agents'];
  private readonly services: StepUpsServiceOptions['services'];
  private readonly audit: AuditService;
  private readonly humans: HumansService;
  private readonly clock: Clock;
  private readonly config: StepUpsServiceOptions['config'];
  private readonly verifier: VerifierStepUps | undefined;
  private readonly logger: { warn(message: string): void };

  constructor(options: StepUpsServiceOptions) {
    this.repository = options.repository;
    this.agents = options.agents;
    this.services = options.services;
    this.audit = options.audit;
    this.humans = options.humans;
    this.clock = options.clock;
    this.config = options.config;
    this.verifier = options.verifier;
    this.logger = options.logger ?? { warn: (message) => console.warn(`[step-ups] ${message}`) };
    const { relay } = options;
    this.changes = new ChangeFeed((change) => change.step_up_id, relay ? { via: relay, channel: STEP_UP_CHANGES_CHANNEL } : undefined);
  }

  /**
   * Records the step-ups that ingested verification events ask for: a pending row per new id
   * (owned by the grant's human), nothing for an id already known, so a batch delivered twice or a
   * retried request changes nothing. Each event on its own (issue 16, 4): one the database refuses
   * for what it holds (a NUL, see `unrecordableReason`) is logged and skipped, so it never keeps
   * another grant's step-up from its human; any other failure (an outage) throws, so that the batch
   * is not acked and comes again.
   */
  async recordRequested(drafts: readonly AuditDraft[]): Promise<void> {
    for (const draft of drafts) {
      const asked = askedStepUp(draft);
      if (asked === undefined) {
        if (draft.data?.outcome === 'approval_required') this.logger.warn(`verification event ${draft.id ?? '?'} asks for a step-up it does not describe: ignored`);
        continue;
      }
      try {
        await this.recordOne(asked);
      } catch (error) {
        const reason = unrecordableReason(error);
        if (reason === undefined) throw error;
        this.logger.warn(`step-up of verification event ${asked.eventId} cannot be recorded, skipped: ${reason}`);
      }
    }
  }

  private async recordOne(asked: AskedStepUp): Promise<void> {
    const now = this.clock.now();
    const expiresAt = asked.expiresAt ?? new Date(now + DEFAULT_STEP_UP_TTL_MS);
    // Owned by the grant's human; an unknown grant or an id already recorded adds nothing.
    const { expiresAt: _asked, ...stepUp } = asked;
    const row = await this.repository.insertRequested({ ...stepUp, requestedAt: new Date(now), expiresAt });
    if (row === null) return;
    this.notify({ step_up_id: asked.id, owner: row.owner, status: 'pending' });
  }

  /** The human's step-ups, newest first, optionally of one status. */
  async listForHuman(humanId: string, status: string | undefined): Promise<HumanStepUp[]> {
    if (status !== undefined && !(STEP_UP_STATUSES as readonly string[]).includes(status)) {
      throw new InvalidRequest(`status must be one of ${STEP_UP_STATUSES.join(', ')}`);
    }
    const rows = await this.repository.listForOwner(humanId, status as StepUpStatus | undefined, new Date(this.clock.now()), LIST_LIMIT);
    return this.describe(rows);
  }

  /** One of the human's step-ups; null for an unknown id or another human's. */
  async getForHuman(humanId: string, stepUpId: string): Promise<HumanStepUp | null> {
    const row = await this.find(stepUpId);
    if (!row || row.owner !== humanId) return null;
    const [view] = await this.describe([row]);
    return view ?? null;
  }

  /** Step 1 of a decision: the step-up document and the WebAuthn options that sign it. */
  async beginDecision(humanId: string, stepUpId: string, body: unknown): Promise<{ ceremony: string; document: string; options: PublicKeyCredentialRequestOptionsJSON }> {
    const { decision } = parseBody(StepUpDecisionOptionsSchema, body);
    const row = await this.find(stepUpId);
    this.checkDecidable(row, humanId);
    const [[agent], [service]] = await Promise.all([this.agents.findByIds([row.agent_id]), this.services.findByIds([row.service_id])]);
    if (!agent || !service) throw humanError('parties_gone', { subject: 'step-up' });
    const document: StepUpDocument = {
      decision,
      kind: 'step_up',
      step_up_id: row.id,
      grant_id: row.grant_id,
      txn: row.txn,
      subject: row.owner,
      agent: { client_id: agent.client_id, name: agent.client_name },
      service: { id: service.id, uri: service.uri },
      method: row.method,
      url: row.url,
      action: row.action,
      resource: row.resource,
      amount: row.amount,
      currency: row.currency,
      // Signed with the rest: approving the document approves exactly what the verifier fingerprinted.
      ...(row.bound !== null && { bound: row.bound }),
      nonce: randomId(),
    };
    const documentText = stepUpDocumentText(document);
    const { ceremony, options } = await this.humans.beginSigning('step_up_decision', humanId, documentText, {
      grantId: row.grant_id,
      data: { decision, step_up_id: row.id },
    });
    return { ceremony, document: documentText, options };
  }

  /**
   * Step 2: the assertion over the document. Checked like a grant decision (ceremony, exact
   * document, challenge, passkey, then the receipt as a third party checks it), then applied in one
   * transaction: the step-up row, the receipt, the `step_up.approved` or `step_up.denied` event
   * and, for an approval, the verifiers' store, whose refusal undoes the rest.
   */
  async finishDecision(humanId: string, stepUpId: string, body: unknown): Promise<{ stepUp: HumanStepUp; receiptHash: string }> {
    const input = parseBody(StepUpDecisionSchema, body);
    const ceremony = await this.humans.consume(input.ceremony, 'step_up_decision', humanId);
    if (ceremony.data.step_up_id !== stepUpId) throw humanError('ceremony_other_subject', { subject: 'step-up' });
    const { passkey, receipt } = await this.humans.finishSigning(ceremony, input.document, input.response, humanId, 'step-up document');
    let document: StepUpDocument;
    try {
      ({ document } = await verifyStepUpReceipt(receipt, { publicKey: passkey.jwk, rpId: this.config.rp.id, origins: this.config.uiOrigins, stepUpId }));
    } catch (error) {
      if (error instanceof ReceiptInvalid) throw humanError('receipt_invalid', { receipt: 'step-up', reason: error.message });
      throw error;
    }
    const receiptHash = await approvalReceiptHash(receipt);
    const now = this.clock.now();
    const decided = await this.repository.transaction(async (tx) => {
      const row = await this.repository.lock(stepUpId, tx);
      this.checkDecidable(row, humanId, now);
      Object.assign(row, {
        status: document.decision === 'approve' ? 'approved' : 'denied',
        decided_at: new Date(now),
        credential_id: passkey.id,
        receipt,
        receipt_hash: receiptHash,
      });
      await this.repository.update(row, tx);
      await this.audit.append(
        {
          type: document.decision === 'approve' ? 'step_up.approved' : 'step_up.denied',
          actor: humanId,
          subject: row.owner,
          grant_id: row.grant_id,
          txn: row.txn,
          data: { step_up_id: row.id, agent: row.agent_id, amount: row.amount, currency: row.currency, receipt_hash: receiptHash },
        },
        tx,
      );
      // Last, so that a refusal or an unreachable store rolls the decision back.
      if (document.decision === 'approve') await this.approveAtVerifier(row);
      return row;
    });
    this.notify({ step_up_id: decided.id, owner: decided.owner, status: stepUpStatus(decided, now) });
    const [view] = await this.describe([decided]);
    return { stepUp: view!, receiptHash };
  }

  /** The stored receipt of one of the human's step-ups, with what an offline check needs; null if none. */
  async receipt(humanId: string, stepUpId: string): Promise<StepUpReceiptExport | null> {
    const row = await this.find(stepUpId);
    if (!row || row.owner !== humanId || row.receipt === null || row.receipt_hash === null || row.credential_id === null) return null;
    const passkey = await this.humans.findPasskey(row.credential_id);
    if (!passkey) throw new Error(`passkey ${row.credential_id} of step-up ${row.id} is not stored`);
    return { receipt: row.receipt, hash: row.receipt_hash, public_key: passkey.jwk, rp_id: this.config.rp.id, origins: this.config.uiOrigins };
  }

  /** What the agent that made the request sees of a step-up. */
  agentView(row: StepUpEntity): AgentStepUp {
    return { step_up_id: row.id, status: stepUpStatus(row, this.clock.now()), grant_id: row.grant_id, txn: row.txn, amount: row.amount, currency: row.currency };
  }

  /** The step-up if `agentId` made the request; another agent's is indistinguishable from none. */
  async getForAgent(stepUpId: string, agentId: string): Promise<StepUpEntity | null> {
    const row = await this.find(stepUpId);
    return row?.agent_id === agentId ? row : null;
  }

  /**
   * Resolves with the step-up once it is decided or expired, or after `timeoutMs` with its state
   * then. A step-up the registry has not heard of yet (the verifier's event is still on its way) is
   * waited for too, within the same time. No polling: waiters are woken in process when the event
   * is ingested and when a decision commits, and at the step-up's own expiry. Another agent's
   * step-up is treated exactly like an unknown id (waited for, then null), so that not even the
   * time of the answer tells whether it exists. Rejects with `signal.reason` when aborted.
   */
  async waitForDecision(stepUpId: string, agentId: string, timeoutMs: number, signal?: AbortSignal): Promise<StepUpEntity | null> {
    const deadline = this.clock.now() + Math.max(0, timeoutMs);
    for (;;) {
      signal?.throwIfAborted();
      let wake!: Waiter;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      // Subscribed before the read, so an ingestion or a decision committed in between is not missed.
      const unsubscribe = this.changes.wait(stepUpId, wake);
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      try {
        const found = await this.find(stepUpId);
        const row = found?.agent_id === agentId ? found : null;
        const now = this.clock.now();
        if (row && stepUpStatus(row, now) !== 'pending') return row;
        const left = deadline - now;
        if (left <= 0) return row;
        const until = row ? Math.min(left, row.expires_at.getTime() - now) : left;
        const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, until))));
        const aborted = new Promise<never>((_, reject) => {
          onAbort = () => reject(signal?.reason as Error);
          signal?.addEventListener('abort', onAbort, { once: true });
        });
        await Promise.race([woken, timedOut, aborted]);
      } finally {
        clearTimeout(timer);
        if (onAbort) signal?.removeEventListener('abort', onAbort);
        unsubscribe();
      }
    }
  }

  /** Calls `listener` after every committed change of a step-up (a new one included); returns the unsubscribe. */
  onChange(listener: (change: StepUpChange) => void): () => void {
    return this.changes.onChange(listener);
  }

  private find(stepUpId: string): Promise<StepUpEntity | null> {
    if (stepUpId.length > 128) return Promise.resolve(null);
    return this.repository.find(stepUpId);
  }

  /** Refuses a decision on a step-up that is not the human's, or not pending any more. */
  private checkDecidable(row: StepUpEntity | null, humanId: string, now = this.clock.now()): asserts row is StepUpEntity {
    // Another human's step-up answers as an unknown one, so ids are not probeable.
    if (!row || row.owner !== humanId) throw humanError('step_up_not_found');
    const status = stepUpStatus(row, now);
    if (status !== 'pending') throw humanError('step_up_wrong_status', { status });
  }

  /** Flips the step-up to approved in the verifiers' store; anything but a flip aborts the decision. */
  private async approveAtVerifier(row: StepUpEntity): Promise<void> {
    if (this.verifier === undefined) throw new TemporarilyUnavailable('no verifier store is configured: the approval cannot reach the verifiers');
    let flipped: boolean;
    try {
      flipped = await this.verifier.approveStepUp(row.grant_id, row.id);
    } catch (error) {
      this.logger.warn(`step-up ${row.id}: the verifiers' store did not answer: ${error instanceof Error ? error.message : String(error)}`);
      throw new TemporarilyUnavailable("the verifiers' store cannot be reached: try again");
    }
    if (!flipped) throw humanError('step_up_expired_at_verifier');
  }

  private async describe(rows: StepUpEntity[]): Promise<HumanStepUp[]> {
    if (rows.length === 0) return [];
    const [agents, services] = await Promise.all([
      this.agents.findByIds([...new Set(rows.map((r) => r.agent_id))]),
      this.services.findByIds([...new Set(rows.map((r) => r.service_id))]),
    ]);
    const agentName = new Map(agents.map((a) => [a.client_id, a.client_name]));
    const service = new Map(services.map((s) => [s.id, s]));
    const now = this.clock.now();
    return rows.map((row) => ({
      step_up_id: row.id,
      status: stepUpStatus(row, now),
      grant_id: row.grant_id,
      txn: row.txn,
      agent: { client_id: row.agent_id, name: agentName.get(row.agent_id) ?? row.agent_id },
      service: { id: row.service_id, uri: service.get(row.service_id)?.uri ?? '', name: service.get(row.service_id)?.display_name ?? row.service_id },
      method: row.method,
      url: row.url,
      action: row.action,
      resource: row.resource,
      amount: row.amount,
      currency: row.currency,
      bound: row.bound,
      requested_at: row.requested_at.toISOString(),
      expires_at: row.expires_at.toISOString(),
      decided_at: row.decided_at?.toISOString() ?? null,
      receipt_hash: row.receipt_hash,
    }));
  }

  /** Wakes the step-up's waiters (they re-read the committed row) and tells the listeners, in every process. */
  private notify(change: StepUpChange): void {
    this.changes.publish(change);
  }
}
