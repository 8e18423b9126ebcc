import type { Agent, AuditVerdict, TransactionAudit } from '@writ/contracts';
import { type Clock, InvalidRequest, merkleLeafHash, openNote, parseCheckpoint } from '@writ/core';
import type { AgentsRepository } from '../agents/agents.repository.js';
import type { AuditRepository } from '../audit/audit.repository.js';
import type { AuditService } from '../audit/audit.service.js';
import { GRANT_STATUSES, type GrantEntity, type GrantStatus } from '../grants/grant.entity.js';
import type { GrantsService } from '../grants/grants.service.js';
import type { ServicesRepository } from '../services/services.repository.js';
import type { AuditVerdicts } from './audit-verdicts.js';
import type { HumanViewsRepository, TransactionEvent } from './human-views.repository.js';
import { inclusionProofs } from './inclusion-proofs.js';

/**
 * Who asks, as the person must be able to tell agents apart (issue 17): the agent's own name, its
 * client id, when it was enrolled (null once the agent row is gone), and whether another of the
 * person's agents goes by the same name.
 */
export interface HumanGrantAgent {
  client_id: string;
  name: string;
  enrolled_at: string | null;
  name_shared: boolean;
}

/** A grant as its human sees it: the grant plus who asks and where, by name. */
export interface HumanGrant {
  grant_id: string;
  status: GrantStatus;
  version: number;
  agent: HumanGrantAgent;
  service: { id: string; uri: string; name: string };
  authorization_details: GrantEntity['authorization_details'];
  envelope: GrantEntity['envelope'];
  purpose: string;
  duration_s: number;
  delegation: GrantEntity['delegation'];
  requested_at: string;
  decided_at: string | null;
  expires_at: string;
  revoked_at: string | null;
  receipt_hash: string | null;
  /** On one grant (not in listings): the passkey that signed its decision, by name (ADR 0018). */
  signed_with?: { credential_id: string; label: string; removed: boolean } | null;
}

export interface HopDecision {
  at: string;
  allow: boolean;
  outcome: string;
  action: string | null;
  resource: string | null;
  amount: string | null;
  currency: string | null;
}

export interface Hop {
  jti: string;
  parent_jti: string | null;
  agent: { client_id: string; name: string };
  issued_at: string;
  expires_at: string | null;
  scope: string | null;
  token_hash_prefix: string | null;
  decisions: HopDecision[];
}

export interface TransactionView {
  txn: string;
  grant_id: string | null;
  audit: TransactionAudit;
  hops: Hop[];
}

/** At most this many rows in one listing: the UI shows the newest. */
const PAGE = 200;

/** At most this many events of one transaction get an inclusion proof in its view (the first ones). */
const PROVEN_EVENTS = 200;

export interface HumanViewsServiceOptions {
  repository: HumanViewsRepository;
  grants: GrantsService;
  /** The latest checkpoint and the log's verifier key. */
  audit: Pick<AuditService, 'latestCheckpoint' | 'log'>;
  /** The stored Merkle tree that inclusion proofs are read from. */
  tree: Pick<AuditRepository, 'nodes'>;
  /** The registry's last verdict on the log: a page never re-verifies. */
  verdicts: Pick<AuditVerdicts, 'current'>;
  /** When a view finds the log broken itself. */
  clock: Clock;
  agents: Pick<AgentsRepository, 'find' | 'listByOwner'>;
  services: Pick<ServicesRepository, 'findById'>;
}

/**
 * The form two agent names are compared in: NFKC (full-width and compatibility forms fold to
 * their plain letters) and lower case, so "Budget assistant" and "ＢＵＤＧＥＴ Assistant" count as one.
 */
function nameKey(name: string): string {
  return name.normalize('NFKC').toLowerCase();
}

function text(value: unknown): string | null {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : null;
}

/**
 * The human's read side: their grants (with agent and service names), their agents, and the
 * transactions on their grants drawn as trees of hops from the audit chain.
 */
export class HumanViewsService {
  private readonly repository: HumanViewsRepository;
  private readonly grants: GrantsService;
  private readonly audit: HumanViewsServiceOptions['audit'];
  private readonly tree: HumanViewsServiceOptions['tree'];
  private readonly verdicts: HumanViewsServiceOptions['verdicts'];
  private readonly clock: Clock;
  private readonly agentsRepository: HumanViewsServiceOptions['agents'];
  private readonly services: HumanViewsServiceOptions['services'];

  constructor(options: HumanViewsServiceOptions) {
    this.repository = options.repository;
    this.grants = options.grants;
    this.audit = options.audit;
    this.tree = options.tree;
    this.verdicts = options.verdicts;
    this.clock = options.clock;
    this.agentsRepository = options.agents;
    this.services = options.services;
  }

  async listGrants(humanId: string, status: string | undefined): Promise<HumanGrant[]> {
    if (status !== undefined && !(GRANT_STATUSES as readonly string[]).includes(status)) {
      throw new InvalidRequest(`status must be one of ${GRANT_STATUSES.join(', ')}`);
    }
    // Lazy expiry first, so a lapsed request never shows as pending.
    await this.grants.expireDue();
    const rows = await this.repository.grantsOfOwner(humanId, status as GrantStatus | undefined, PAGE);
    const shared = await this.sharedNames(humanId);
    return rows.map((row) => this.view(row.grant, row.agent, shared, row.service));
  }

  /** The name keys ({@link nameKey}) that two or more of the person's agents share, whatever their status. */
  private async sharedNames(humanId: string): Promise<Set<string>> {
    const names = await this.repository.agentNamesOf(humanId);
    const seen = new Set<string>();
    const shared = new Set<string>();
    for (const client_name of names) {
      const key = nameKey(client_name);
      if (seen.has(key)) shared.add(key);
      seen.add(key);
    }
    return shared;
  }

  /** One of the human's grants; null for another human's or an unknown one. */
  async grant(humanId: string, grantId: string): Promise<HumanGrant | null> {
    const grant = await this.grants.get(grantId);
    if (!grant || grant.owner !== humanId) return null;
    return this.describe(grant);
  }

  /** A grant row with its agent's and service's names. */
  async describe(grant: GrantEntity): Promise<HumanGrant> {
    const agent = await this.agentsRepository.find(grant.agent_id);
    const service = await this.services.findById(grant.service_id);
    if (!service) throw new Error(`service ${grant.service_id} of grant ${grant.id} is not stored`);
    const shared = await this.sharedNames(grant.owner);
    const signer = await this.repository.approvalSigner(grant.id);
    const signedWith = signer ? { credential_id: signer.id, label: signer.label, removed: signer.removedAt !== null } : null;
    return { ...this.view(grant, agent ? { name: agent.client_name, createdAt: agent.created_at } : null, shared, { uri: service.uri, name: service.display_name }), signed_with: signedWith };
  }

  async agents(humanId: string): Promise<Agent[]> {
    const rows = await this.agentsRepository.listByOwner(humanId, PAGE);
    const shared = await this.sharedNames(humanId);
    return rows.map((a) => ({
      client_id: a.client_id,
      name: a.client_name,
      name_shared: shared.has(nameKey(a.client_name)),
      status: a.status,
      created_at: a.created_at.toISOString(),
      disabled_at: a.disabled_at?.toISOString() ?? null,
      jkt: a.jkt,
    }));
  }

  /** The human's transactions (one per root token), newest first, optionally of one grant. */
  async transactions(humanId: string, grantId: string | undefined): Promise<{ txn: string; grant_id: string | null; started_at: string; hops: number; decisions: number }[]> {
    return this.repository.transactionsOf(humanId, grantId, PAGE);
  }

  /** Whether `txn` was started on one of the human's grants (its root token names them as `sub`). */
  async ownsTransaction(humanId: string, txn: string): Promise<boolean> {
    return this.repository.rootNames(txn, humanId);
  }

  /** One transaction of the human's as a tree of hops with their verification decisions; null if not theirs. */
  async transaction(humanId: string, txn: string): Promise<TransactionView | null> {
    const events = await this.repository.eventsOf(txn);
    const root = events.find((e) => e.type === 'token.issued');
    if (!root) return null;
    if ((await this.repository.subjectAt(root.seq)) !== humanId) return null;
    const names = new Map((await this.agentsRepository.listByOwner(humanId)).map((a) => [a.client_id, a.client_name]));
    const hops = new Map<string, Hop>();
    for (const event of events) {
      if (event.type !== 'token.issued' && event.type !== 'token.delegated') continue;
      const jti = text(event.data.jti);
      if (jti === null) continue;
      const agent = event.type === 'token.delegated' ? (text(event.data.actor) ?? event.actor ?? '') : (event.actor ?? '');
      const exp = typeof event.data.exp === 'number' ? new Date(event.data.exp * 1000).toISOString() : null;
      hops.set(jti, {
        jti,
        parent_jti: text(event.data.parent_jti),
        agent: { client_id: agent, name: names.get(agent) ?? agent },
        issued_at: event.at,
        expires_at: exp,
        scope: text(event.data.scope),
        token_hash_prefix: text(event.data.token_hash)?.slice(0, 12) ?? null,
        decisions: [],
      });
    }
    for (const event of events) {
      if (!event.type.startsWith('verification.')) continue;
      const hop = hops.get(text(event.data.jti) ?? '');
      if (!hop) continue;
      hop.decisions.push({
        at: event.at,
        allow: event.type === 'verification.allowed',
        outcome: text(event.data.outcome) ?? event.type,
        action: text(event.data.action),
        resource: text(event.data.resource),
        amount: text(event.data.amount),
        currency: text(event.data.currency),
      });
    }
    return { txn, grant_id: root.grant_id, audit: await this.auditOf(events), hops: [...hops.values()] };
  }

  /**
   * The transaction's place in the audit log (issue 19, goal 2): the registry's last verdict on
   * the whole log (never a verification here), the latest signed checkpoint, and each event's leaf
   * hash with its RFC 9162 §2.1.3 inclusion proof in that checkpoint's tree, read in one batch.
   * A stored checkpoint whose signature does not verify, or a tree that cannot give the proofs,
   * turns the verdict to broken: the page then claims no inclusion.
   */
  private async auditOf(all: TransactionEvent[]): Promise<TransactionAudit> {
    const events = all.slice(0, PROVEN_EVENTS);
    const omitted = all.length - events.length;
    const leaves = events.map((e) => merkleLeafHash(Buffer.from(e.hash, 'hex')));
    const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
    const unproven = (): TransactionAudit['events'] => events.map((e, i) => ({ seq: e.seq, type: e.type, leaf_hash: base64(leaves[i]!), proof: null }));
    const verdict = await this.verdicts.current();
    const stored = await this.audit.latestCheckpoint();
    if (!stored?.note) return { verdict, checkpoint: null, events: unproven(), omitted };
    const checkpoint = await this.openCheckpoint(stored.note);
    if (checkpoint instanceof Error) return { verdict: this.brokenAt(verdict, stored.seq, `the latest checkpoint does not verify: ${checkpoint.message}`), checkpoint: null, events: unproven(), omitted };
    const inside = events.filter((e) => e.seq <= checkpoint.size);
    const proofs = await inclusionProofs({ indexes: inside.map((e) => e.seq - 1), size: checkpoint.size, fetch: (ids) => this.tree.nodes(ids) }).catch((error: unknown) => error as Error);
    if (proofs instanceof Error) return { verdict: this.brokenAt(verdict, checkpoint.size, `no inclusion proof can be read: ${proofs.message}`), checkpoint: null, events: unproven(), omitted };
    const proofOf = new Map(inside.map((e, i) => [e.seq, proofs[i]!.map(base64)]));
    return {
      verdict,
      checkpoint: { size: checkpoint.size, root: base64(checkpoint.root), note: stored.note },
      events: events.map((e, i) => ({ seq: e.seq, type: e.type, leaf_hash: base64(leaves[i]!), proof: proofOf.get(e.seq) ?? null })),
      omitted,
    };
  }

  /** The verdict once this view found the log broken at `seq` (the last intact head kept, if any). */
  private brokenAt(verdict: AuditVerdict, seq: number, reason: string): AuditVerdict {
    const verified = verdict.status === 'verified' ? { size: verdict.size, at: verdict.at } : verdict.status === 'broken' ? verdict.verified : null;
    return { status: 'broken', seq, reason, at: new Date(this.clock.now()).toISOString(), verified };
  }

  /** A stored checkpoint note opened with the log's key (docs/audit.md, "Checkpoints"); the error when it does not verify. */
  private async openCheckpoint(note: string): Promise<{ size: number; root: Uint8Array } | Error> {
    try {
      const { text } = await openNote({ note, verifiers: [this.audit.log.vkey] });
      const body = parseCheckpoint(text);
      if (body.origin !== this.audit.log.origin) return new Error(`it is of another log (${body.origin})`);
      return body;
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  }

  private view(
    grant: GrantEntity,
    agent: { name: string; createdAt: Date | null } | null,
    shared: ReadonlySet<string>,
    service: { uri: string; name: string },
  ): HumanGrant {
    const iso = (d: Date | null): string | null => (d === null ? null : new Date(d).toISOString());
    return {
      grant_id: grant.id,
      status: grant.status,
      version: grant.version,
      agent: {
        client_id: grant.agent_id,
        name: agent?.name ?? grant.agent_id,
        enrolled_at: iso(agent?.createdAt ?? null),
        name_shared: agent !== null && shared.has(nameKey(agent.name)),
      },
      service: { id: grant.service_id, uri: service.uri, name: service.name },
      authorization_details: grant.authorization_details,
      envelope: grant.envelope,
      purpose: grant.purpose,
      duration_s: grant.duration_s,
      delegation: grant.delegation,
      requested_at: iso(grant.requested_at)!,
      decided_at: iso(grant.decided_at),
      expires_at: iso(grant.expires_at)!,
      revoked_at: iso(grant.revoked_at),
      receipt_hash: grant.approval,
    };
  }
}
