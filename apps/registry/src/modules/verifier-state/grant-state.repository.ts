import type { RevocationKind } from '@writ/core';
import type { Database } from '../../infra/database.service.js';

/** A decision event of a grant as the state rebuild reads it from the chain. */
export interface ChainDecision {
  id: string;
  /** An allow: appended as allowed, or recorded as unrecordable with the outcome allow. */
  allowed: boolean;
  /** When the registry appended it (ISO 8601). */
  at: string;
  /** What the fold needs of its data: `at_ms`, `proof_jti`, `proof_jkt`. */
  data: Record<string, unknown>;
}

/** An unexpired revocation as a grant's rebuilt state carries it. */
export interface StateRevocation {
  kind: RevocationKind;
  value: string;
  expiresAtMs: number;
}

/**
 * What a grant's verifier state is rebuilt from (ADR 0017): the grants, the audit chain's decision
 * and token events, and the revocations, read only.
 */
export interface GrantStateRepository {
  grantExists(grantId: string): Promise<boolean>;
  /** The approved grants not expired at `now`, by id. */
  liveGrants(now: Date): Promise<string[]>;
  /** Every allow of the grant in the chain, and what the store added for them, in thousandths (`charged_minor`, else the amount). */
  allowedTotals(grantId: string): Promise<{ uses: number; spentMinor: number }>;
  /** The grant's decision events of `types` appended at or after `since`. */
  decisionsSince(grantId: string, types: string[], since: Date): Promise<ChainDecision[]>;
  /** Which of these queue ids are in the chain: as the event's id, or named by a dead letter (`data.queue_id`). */
  idsInChain(ids: string[]): Promise<Set<string>>;
  /**
   * Every revocation unexpired at `now` that names the grant, one of its txns or tokens (from its
   * events of `tokenTypes`), or an agent acting in it (its requester, a holder, or a hop's actor), oldest first.
   */
  revocationsFor(grantId: string, tokenTypes: string[], now: Date): Promise<StateRevocation[]>;
}

/** An allow in the chain: appended, or recorded as unrecordable with its outcome. */
const ALLOWED = `(type = 'verification.allowed' OR (type = 'verification.unrecordable' AND data->>'outcome' = 'allow'))`;

export class DatabaseGrantStateRepository implements GrantStateRepository {
  constructor(private readonly db: Database) {}

  async grantExists(grantId: string): Promise<boolean> {
    const rows = await this.db.query<unknown[]>('SELECT 1 FROM grants WHERE id = $1', [grantId]);
    return rows.length > 0;
  }

  async liveGrants(now: Date): Promise<string[]> {
    const rows = await this.db.query<{ id: string }[]>(`SELECT id FROM grants WHERE status = 'approved' AND expires_at > $1 ORDER BY id`, [now]);
    return rows.map((r) => r.id);
  }

  async allowedTotals(grantId: string): Promise<{ uses: number; spentMinor: number }> {
    const [totals] = await this.db.query<{ uses: number; spent: string }[]>(
      `SELECT count(*)::int AS uses,
              coalesce(sum(CASE
                WHEN jsonb_typeof(data->'charged_minor') = 'number' THEN (data->>'charged_minor')::numeric
                -- Before charged_minor was recorded: the amount, as the store counted it (thousandths).
                WHEN jsonb_typeof(data->'amount') = 'number' THEN round((data->>'amount')::numeric * 1000)
                ELSE 0 END), 0)::text AS spent
         FROM audit_events WHERE grant_id = $1 AND ${ALLOWED}`,
      [grantId],
    );
    return { uses: totals?.uses ?? 0, spentMinor: Number(totals?.spent ?? 0) };
  }

  decisionsSince(grantId: string, types: string[], since: Date): Promise<ChainDecision[]> {
    return this.db.query<ChainDecision[]>(
      `SELECT id, ${ALLOWED} AS allowed, at, jsonb_build_object('at_ms', data->'at_ms', 'proof_jti', data->'proof_jti', 'proof_jkt', data->'proof_jkt') AS data
         FROM audit_events WHERE grant_id = $1 AND type = ANY($2::text[]) AND at >= $3`,
      // `at` (ISO 8601, UTC) is when the registry appended the event: never before the decision.
      [grantId, types, since.toISOString()],
    );
  }

  async idsInChain(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db.query<{ id: string }[]>(
      `SELECT id FROM audit_events WHERE id = ANY($1::text[])
       UNION SELECT data->>'queue_id' AS id FROM audit_events WHERE type = 'verification.unrecordable' AND data->>'queue_id' = ANY($1::text[])`,
      [ids],
    );
    return new Set(rows.map((r) => r.id));
  }

  async revocationsFor(grantId: string, tokenTypes: string[], now: Date): Promise<StateRevocation[]> {
    const rows = await this.db.query<{ kind: RevocationKind; value: string; expires_at: Date | string }[]>(
      `WITH tokens AS (
         SELECT txn, actor, data->>'jti' AS jti, data->>'actor' AS hop_actor
           FROM audit_events WHERE grant_id = $1 AND type = ANY($2::text[]))
       SELECT kind, value, expires_at FROM revocations
        WHERE expires_at > $3 AND (
              (kind = 'grant' AND value = $1)
           OR (kind = 'txn' AND value IN (SELECT txn FROM tokens WHERE txn IS NOT NULL))
           OR (kind = 'token' AND value IN (SELECT jti FROM tokens WHERE jti IS NOT NULL))
           OR (kind = 'agent' AND (value IN (SELECT agent_id FROM grants WHERE id = $1)
                                   OR value IN (SELECT actor FROM tokens WHERE actor IS NOT NULL)
                                   OR value IN (SELECT hop_actor FROM tokens WHERE hop_actor IS NOT NULL))))
        ORDER BY revoked_at`,
      [grantId, tokenTypes, now],
    );
    return rows.map((r) => ({ kind: r.kind, value: r.value, expiresAtMs: new Date(r.expires_at).getTime() }));
  }
}
