import type { Agent } from '@writ/contracts';
import { InvalidRequest } from '@writ/core';
import type { Database } from '../../infra/database.service.js';
import { AgentEntity } from '../agents/agent.entity.js';
import type { AuditService } from '../audit/audit.service.js';
import { GRANT_STATUSES, type GrantEntity, type GrantStatus } from '../grants/grant.entity.js';
import type { GrantsService } from '../grants/grants.service.js';
import { ServiceEntity } from '../services/service.entity.js';

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
  chain: { ok: boolean; count: number; brokenSeq?: number; reason?: string };
  hops: Hop[];
}

/** At most this many rows in one listing: the UI shows the newest. */
const PAGE = 200;

interface EventRow {
  seq: number;
  at: string;
  type: string;
  actor: string | null;
  grant_id: string | null;
  txn: string | null;
  data: Record<string, unknown>;
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
  constructor(
    private readonly db: Database,
    private readonly grants: GrantsService,
    private readonly audit: AuditService,
  ) {}

  async listGrants(humanId: string, status: string | undefined): Promise<HumanGrant[]> {
    if (status !== undefined && !(GRANT_STATUSES as readonly string[]).includes(status)) {
      throw new InvalidRequest(`status must be one of ${GRANT_STATUSES.join(', ')}`);
    }
    // Lazy expiry first, so a lapsed request never shows as pending.
    await this.grants.expireDue();
    const rows = await this.db.query<(GrantEntity & { agent_name: string | null; agent_created_at: Date | string | null; service_uri: string; service_name: string })[]>(
      `SELECT g.*, a.client_name AS agent_name, a.created_at AS agent_created_at, s.uri AS service_uri, s.display_name AS service_name
         FROM grants g JOIN services s ON s.id = g.service_id LEFT JOIN agents a ON a.client_id = g.agent_id
        WHERE g.owner = $1 ${status === undefined ? '' : 'AND g.status = $2'}
        ORDER BY g.requested_at DESC LIMIT ${PAGE}`,
      status === undefined ? [humanId] : [humanId, status],
    );
    const shared = await this.sharedNames(humanId);
    return rows.map((row) =>
      this.view(row, row.agent_name === null ? null : { name: row.agent_name, createdAt: row.agent_created_at }, shared, { uri: row.service_uri, name: row.service_name }),
    );
  }

  /** The name keys ({@link nameKey}) that two or more of the person's agents share, whatever their status. */
  private async sharedNames(humanId: string): Promise<Set<string>> {
    const rows = await this.db.query<{ client_name: string }[]>(`SELECT client_name FROM agents WHERE owner = $1`, [humanId]);
    const seen = new Set<string>();
    const shared = new Set<string>();
    for (const { client_name } of rows) {
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
    const agent = await this.db.dataSource.getRepository(AgentEntity).findOneBy({ client_id: grant.agent_id });
    const service = await this.db.dataSource.getRepository(ServiceEntity).findOneByOrFail({ id: grant.service_id });
    const shared = await this.sharedNames(grant.owner);
    const [signer] = await this.db.query<{ id: string; label: string; removed_at: Date | null }[]>(
      'SELECT p.id, p.label, p.removed_at FROM approval_receipts r JOIN passkeys p ON p.id = r.credential_id WHERE r.grant_id = $1',
      [grant.id],
    );
    const signedWith = signer ? { credential_id: signer.id, label: signer.label, removed: signer.removed_at !== null } : null;
    return { ...this.view(grant, agent ? { name: agent.client_name, createdAt: agent.created_at } : null, shared, { uri: service.uri, name: service.display_name }), signed_with: signedWith };
  }

  async agents(humanId: string): Promise<Agent[]> {
    const rows = await this.db.dataSource.getRepository(AgentEntity).find({ where: { owner: humanId }, order: { created_at: 'DESC' }, take: PAGE });
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
    const rows = await this.db.query<{ txn: string; grant_id: string | null; started_at: string; hops: string; decisions: string }[]>(
      `SELECT txn, min(grant_id) AS grant_id, min(at) AS started_at,
              count(*) FILTER (WHERE type IN ('token.issued', 'token.delegated')) AS hops,
              count(*) FILTER (WHERE type LIKE 'verification.%') AS decisions
         FROM audit_events
        WHERE txn IN (SELECT txn FROM audit_events WHERE type = 'token.issued' AND subject = $1 AND txn IS NOT NULL ${grantId === undefined ? '' : 'AND grant_id = $2'})
        GROUP BY txn ORDER BY min(seq) DESC LIMIT ${PAGE}`,
      grantId === undefined ? [humanId] : [humanId, grantId],
    );
    return rows.map((r) => ({ txn: r.txn, grant_id: r.grant_id, started_at: r.started_at, hops: Number(r.hops), decisions: Number(r.decisions) }));
  }

  /** Whether `txn` was started on one of the human's grants (its root token names them as `sub`). */
  async ownsTransaction(humanId: string, txn: string): Promise<boolean> {
    const rows = await this.db.query<unknown[]>(`SELECT 1 FROM audit_events WHERE txn = $1 AND type = 'token.issued' AND subject = $2 LIMIT 1`, [txn, humanId]);
    return rows.length > 0;
  }

  /** One transaction of the human's as a tree of hops with their verification decisions; null if not theirs. */
  async transaction(humanId: string, txn: string): Promise<TransactionView | null> {
    const events = await this.db.query<EventRow[]>(
      `SELECT seq, at, type, actor, grant_id, txn, data FROM audit_events WHERE txn = $1 ORDER BY seq`,
      [txn],
    );
    const root = events.find((e) => e.type === 'token.issued');
    if (!root) return null;
    const [owner] = await this.db.query<{ subject: string | null }[]>(`SELECT subject FROM audit_events WHERE seq = $1`, [root.seq]);
    if (owner?.subject !== humanId) return null;
    const names = new Map(
      (await this.db.dataSource.getRepository(AgentEntity).find({ where: { owner: humanId } })).map((a) => [a.client_id, a.client_name]),
    );
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
    const { chain } = await this.audit.verify();
    return {
      txn,
      grant_id: root.grant_id,
      chain: chain.ok ? { ok: true, count: chain.count } : { ok: false, count: chain.count, brokenSeq: chain.brokenSeq, reason: chain.reason },
      hops: [...hops.values()],
    };
  }

  private view(
    grant: GrantEntity,
    agent: { name: string; createdAt: Date | string | null } | null,
    shared: ReadonlySet<string>,
    service: { uri: string; name: string },
  ): HumanGrant {
    const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());
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
