import type { Database } from '../../infra/database.service.js';
import type { GrantEntity, GrantStatus } from '../grants/grant.entity.js';

/** A grant with the names a person reads it by: its agent's (null for an agent gone) and its service's. */
export interface NamedGrant {
  grant: GrantEntity;
  agent: { name: string; createdAt: Date } | null;
  service: { uri: string; name: string };
}

/** The passkey that signed a grant's decision. */
export interface ApprovalSigner {
  id: string;
  label: string;
  removedAt: Date | null;
}

/** One transaction of a person's, summed up from its events. */
export interface TransactionSummary {
  txn: string;
  grant_id: string | null;
  started_at: string;
  hops: number;
  decisions: number;
}

/** An event of a transaction, as its tree of hops is drawn. */
export interface TransactionEvent {
  seq: number;
  /** The event's chained hash (64 hex): its Merkle leaf is taken over these 32 bytes. */
  hash: string;
  at: string;
  type: string;
  actor: string | null;
  grant_id: string | null;
  txn: string | null;
  data: Record<string, unknown>;
}

/** The person's read side across grants, agents, receipts and the audit chain, read only. */
export interface HumanViewsRepository {
  /** The owner's grants, newest request first, of one status when given, at most `limit`. */
  grantsOfOwner(owner: string, status: GrantStatus | undefined, limit: number): Promise<NamedGrant[]>;
  /** The names of every agent of the owner, whatever its status. */
  agentNamesOf(owner: string): Promise<string[]>;
  /** The passkey that signed the grant's decision, or null before one did. */
  approvalSigner(grantId: string): Promise<ApprovalSigner | null>;
  /** The transactions whose root token names `subject` (of one grant when given), newest first, at most `limit`. */
  transactionsOf(subject: string, grantId: string | undefined, limit: number): Promise<TransactionSummary[]>;
  /** Whether `txn`'s root token names `subject`. */
  rootNames(txn: string, subject: string): Promise<boolean>;
  /** Every event of the transaction, in chain order. */
  eventsOf(txn: string): Promise<TransactionEvent[]>;
  /** The subject of the event at `seq`. */
  subjectAt(seq: number): Promise<string | null>;
}

export class DatabaseHumanViewsRepository implements HumanViewsRepository {
  constructor(private readonly db: Database) {}

  async grantsOfOwner(owner: string, status: GrantStatus | undefined, limit: number): Promise<NamedGrant[]> {
    const rows = await this.db.query<(GrantEntity & { agent_name: string | null; agent_created_at: Date | string | null; service_uri: string; service_name: string })[]>(
      `SELECT g.*, a.client_name AS agent_name, a.created_at AS agent_created_at, s.uri AS service_uri, s.display_name AS service_name
         FROM grants g JOIN services s ON s.id = g.service_id LEFT JOIN agents a ON a.client_id = g.agent_id
        WHERE g.owner = $1 ${status === undefined ? '' : 'AND g.status = $3'}
        ORDER BY g.requested_at DESC LIMIT $2`,
      status === undefined ? [owner, limit] : [owner, limit, status],
    );
    return rows.map(({ agent_name, agent_created_at, service_uri, service_name, ...grant }) => ({
      grant,
      agent: agent_name === null ? null : { name: agent_name, createdAt: new Date(agent_created_at!) },
      service: { uri: service_uri, name: service_name },
    }));
  }

  async agentNamesOf(owner: string): Promise<string[]> {
    return (await this.db.query<{ client_name: string }[]>(`SELECT client_name FROM agents WHERE owner = $1`, [owner])).map((r) => r.client_name);
  }

  async approvalSigner(grantId: string): Promise<ApprovalSigner | null> {
    const [signer] = await this.db.query<{ id: string; label: string; removed_at: Date | null }[]>(
      'SELECT p.id, p.label, p.removed_at FROM approval_receipts r JOIN passkeys p ON p.id = r.credential_id WHERE r.grant_id = $1',
      [grantId],
    );
    return signer ? { id: signer.id, label: signer.label, removedAt: signer.removed_at === null ? null : new Date(signer.removed_at) } : null;
  }

  async transactionsOf(subject: string, grantId: string | undefined, limit: number): Promise<TransactionSummary[]> {
    const rows = await this.db.query<{ txn: string; grant_id: string | null; started_at: string; hops: string; decisions: string }[]>(
      `SELECT txn, min(grant_id) AS grant_id, min(at) AS started_at,
              count(*) FILTER (WHERE type IN ('token.issued', 'token.delegated')) AS hops,
              count(*) FILTER (WHERE type LIKE 'verification.%') AS decisions
         FROM audit_events
        WHERE txn IN (SELECT txn FROM audit_events WHERE type = 'token.issued' AND subject = $1 AND txn IS NOT NULL ${grantId === undefined ? '' : 'AND grant_id = $3'})
        GROUP BY txn ORDER BY min(seq) DESC LIMIT $2`,
      grantId === undefined ? [subject, limit] : [subject, limit, grantId],
    );
    return rows.map((r) => ({ txn: r.txn, grant_id: r.grant_id, started_at: r.started_at, hops: Number(r.hops), decisions: Number(r.decisions) }));
  }

  async rootNames(txn: string, subject: string): Promise<boolean> {
    const rows = await this.db.query<unknown[]>(`SELECT 1 FROM audit_events WHERE txn = $1 AND type = 'token.issued' AND subject = $2 LIMIT 1`, [txn, subject]);
    return rows.length > 0;
  }

  async eventsOf(txn: string): Promise<TransactionEvent[]> {
    const rows = await this.db.query<(Omit<TransactionEvent, 'seq'> & { seq: string | number })[]>(
      `SELECT seq, hash, at, type, actor, grant_id, txn, data FROM audit_events WHERE txn = $1 ORDER BY seq`,
      [txn],
    );
    return rows.map((row) => ({ ...row, seq: Number(row.seq), hash: row.hash.trim() }));
  }

  async subjectAt(seq: number): Promise<string | null> {
    const [row] = await this.db.query<{ subject: string | null }[]>(`SELECT subject FROM audit_events WHERE seq = $1`, [seq]);
    return row?.subject ?? null;
  }
}
