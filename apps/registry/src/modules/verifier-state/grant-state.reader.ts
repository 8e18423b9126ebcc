import { type Clock, type GrantStateSnapshot, PROOF_REPLAY_WINDOW_MS, RATE_HISTORY_MS, RATE_RESTORE_MAX, type RevocationKind } from '@writ/core';
import type { Database } from '../../infra/database.service.js';
import type { QueuedVerifierEvent } from '../audit/redis-verifier-events.js';

/** Token events: who holds each token of a grant, in which txn (as RevocationRecorder reads them). */
const TOKEN_EVENTS = ['token.issued', 'token.delegated'];
/** Every decision event, the unrecordable ones too: an allow the chain could not hold was still charged (ADR 0016). */
const DECISION_EVENTS = ['verification.allowed', 'verification.denied', 'verification.unrecordable'];
/** An allow in the chain: appended, or recorded as unrecordable with its outcome. */
const ALLOWED = `(type = 'verification.allowed' OR (type = 'verification.unrecordable' AND data->>'outcome' = 'allow'))`;

/** A decision as the fold needs it: from the chain or from the queue. */
interface Decision {
  allowed: boolean;
  atMs: number;
  proofJkt: string | undefined;
  proofJti: string | undefined;
  chargedMinor: number;
  id: string;
}

/**
 * Rebuilds one grant's verifier state from the registry's durable record (docs/adr/0017): the
 * audit chain's decisions on the grant, plus the decisions still waiting in the verifiers' queue
 * (`pending`, read by the caller BEFORE this runs: a decision acked into the chain between the
 * two reads is then seen in the chain, and one seen in both counts once, by its id).
 *
 * - `uses` and `spentMinor`: every allow, and its `charged_minor` (what the store added);
 * - the rate log: the allows of the last {@link RATE_HISTORY_MS}, at the decision's own time;
 * - proof replay: every decision's proof of the last {@link PROOF_REPLAY_WINDOW_MS};
 * - revocations: every unexpired one that names the grant, one of its txns or tokens, or an
 *   agent that acts in it (the same rule as RevocationRecorder.affectedGrants).
 */
export class GrantStateReader {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** Whether the grant exists: a state is only ever made for one. */
  async exists(grantId: string): Promise<boolean> {
    const rows = await this.db.query<unknown[]>('SELECT 1 FROM grants WHERE id = $1', [grantId]);
    return rows.length > 0;
  }

  /** The live grants (approved and unexpired): those a lost store must get back first. */
  async liveGrants(): Promise<string[]> {
    const rows = await this.db.query<{ id: string }[]>(`SELECT id FROM grants WHERE status = 'approved' AND expires_at > $1 ORDER BY id`, [new Date(this.clock.now())]);
    return rows.map((r) => r.id);
  }

  async snapshot(grantId: string, pending: readonly QueuedVerifierEvent[] = []): Promise<GrantStateSnapshot> {
    const now = this.clock.now();
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
    const recent = await this.db.query<{ id: string; allowed: boolean; at: string; data: Record<string, unknown> }[]>(
      `SELECT id, ${ALLOWED} AS allowed, at, jsonb_build_object('at_ms', data->'at_ms', 'proof_jti', data->'proof_jti', 'proof_jkt', data->'proof_jkt') AS data
         FROM audit_events WHERE grant_id = $1 AND type = ANY($2::text[]) AND at >= $3`,
      // `at` (ISO 8601, UTC) is when the registry appended the event: never before the decision.
      [grantId, DECISION_EVENTS, new Date(now - RATE_HISTORY_MS).toISOString()],
    );
    const inChain = pending.length === 0 ? new Set<string>() : await this.idsInChain(pending.map((e) => e.id));

    let uses = totals?.uses ?? 0;
    let spentMinor = Number(totals?.spent ?? 0);
    const decisions: Decision[] = recent.map((row) => decisionOf(row.id, row.allowed, row.data, Date.parse(row.at)));
    for (const event of pending) {
      if (inChain.has(event.id)) continue;
      const body = parseObject(event.body);
      if (body === undefined || body.grant_id !== grantId) continue;
      const data = parseObjectValue(body.data) ?? {};
      const decision = decisionOf(event.id, event.outcome === 'allow', data, now);
      if (decision.allowed) {
        uses += 1;
        spentMinor += decision.chargedMinor;
      }
      decisions.push(decision);
    }

    const rate: GrantStateSnapshot['rate'] = [];
    const proofs: GrantStateSnapshot['proofs'] = [];
    for (const d of decisions) {
      if (d.allowed && d.atMs > now - RATE_HISTORY_MS) rate.push({ atMs: d.atMs, member: `${d.atMs}:${d.proofJkt ?? ''}:${d.proofJti ?? d.id}` });
      const keepUntilMs = d.atMs + PROOF_REPLAY_WINDOW_MS;
      if (d.proofJkt !== undefined && d.proofJti !== undefined && keepUntilMs > now) proofs.push({ jkt: d.proofJkt, jti: d.proofJti, keepUntilMs });
    }
    rate.sort((a, b) => a.atMs - b.atMs);
    const snapshot: GrantStateSnapshot = { grantId, uses, spentMinor, rate, proofs, revocations: await this.revocations(grantId, now) };
    if (rate.length > RATE_RESTORE_MAX) {
      snapshot.rateFloorMs = rate[rate.length - RATE_RESTORE_MAX - 1]!.atMs;
      snapshot.rate = rate.slice(-RATE_RESTORE_MAX);
    }
    return snapshot;
  }

  /** Every unexpired revocation that can stop a token of this grant. */
  private async revocations(grantId: string, now: number): Promise<GrantStateSnapshot['revocations']> {
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
      [grantId, TOKEN_EVENTS, new Date(now)],
    );
    return rows.map((r) => ({ kind: r.kind, value: r.value, expiresAtMs: new Date(r.expires_at).getTime() }));
  }

  private async idsInChain(ids: string[]): Promise<Set<string>> {
    // A dead-lettered event is in the chain under an id of its own, naming its queue id.
    const rows = await this.db.query<{ id: string }[]>(
      `SELECT id FROM audit_events WHERE id = ANY($1::text[])
       UNION SELECT data->>'queue_id' AS id FROM audit_events WHERE type = 'verification.unrecordable' AND data->>'queue_id' = ANY($1::text[])`,
      [ids],
    );
    return new Set(rows.map((r) => r.id));
  }
}

function decisionOf(id: string, allowed: boolean, data: Record<string, unknown>, fallbackAtMs: number): Decision {
  const atMs = typeof data.at_ms === 'number' && Number.isSafeInteger(data.at_ms) ? data.at_ms : fallbackAtMs;
  const charged = typeof data.charged_minor === 'number' && Number.isSafeInteger(data.charged_minor) && data.charged_minor >= 0 ? data.charged_minor : 0;
  return {
    id,
    allowed,
    atMs,
    proofJkt: typeof data.proof_jkt === 'string' ? data.proof_jkt : undefined,
    proofJti: typeof data.proof_jti === 'string' ? data.proof_jti : undefined,
    chargedMinor: charged,
  };
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    return parseObjectValue(JSON.parse(text));
  } catch {
    return undefined;
  }
}

function parseObjectValue(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
