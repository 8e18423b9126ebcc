import type { OnApplicationBootstrap } from '@nestjs/common';
import type { Clock } from '@writ/core';
import type { EntityManager } from 'typeorm';
import type { RegistryConfig } from '../../config/config.js';
import type { Database } from '../../infra/database.service.js';
import type { AuditService } from '../audit/audit.service.js';
import type { GrantRevocation, GrantRevocationRecorder } from '../grants/grants.service.js';
import { CLOCK_SKEW_S } from '../tokens/issued-tokens.js';
import type { RevocationBus, RevocationEvent } from './revocation-bus.js';
import type { RevocationKind } from './revocation.entity.js';
import { asTransaction } from '../../infra/transaction.js';

/** One revocation to record. */
export interface RevocationRecord {
  kind: RevocationKind;
  value: string;
  by: string | null;
  reason: string | null;
  /** Default: the longest a token issued now could live. */
  expiresAt?: Date;
  /** The affected grants, when the caller knows them; looked up otherwise. */
  grantIds?: string[];
  subject?: string;
  /** More facts for the audit event (a grant's status change). */
  data?: Record<string, unknown>;
}

/** Token events: who holds each token, and in which grant and txn. */
const TOKEN_EVENTS = ['token.issued', 'token.delegated'];

/**
 * The one place a revocation is written (ARCHITECTURE.md "Revocation"): the durable `revocations`
 * row and its one `revocation.<kind>` audit event, in the caller's transaction; then, once the
 * caller has committed, the announcement on the {@link RevocationBus}. It depends on neither
 * GrantsService nor RevocationsService, so both can use it without a dependency cycle.
 */
export class RevocationRecorder implements OnApplicationBootstrap {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditService,
    private readonly bus: RevocationBus,
    private readonly clock: Clock,
    private readonly config: Pick<RegistryConfig, 'tokenTtlSeconds'>,
  ) {}

  /**
   * Writes the row (an existing one keeps the later expiry) and the audit event with `manager`.
   * Returns what to announce: pass it to {@link announce} after the transaction commits.
   */
  async record(manager: EntityManager, record: RevocationRecord, now = this.clock.now()): Promise<RevocationEvent> {
    const { kind, value } = record;
    const until = record.expiresAt ?? this.tokenLifetimeEnd(now);
    const rows: { expires_at: Date | string }[] = await manager.query(
      `INSERT INTO revocations (kind, value, revoked_at, expires_at, reason) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (kind, value) DO UPDATE SET expires_at = GREATEST(revocations.expires_at, EXCLUDED.expires_at)
       RETURNING expires_at`,
      [kind, value, new Date(now), until, record.reason],
    );
    const expiresAt = new Date(rows[0]!.expires_at);
    await this.audit.append(
      {
        type: `revocation.${kind}`,
        actor: record.by,
        ...(record.subject !== undefined ? { subject: record.subject } : {}),
        ...(kind === 'grant' ? { grant_id: value } : {}),
        ...(kind === 'txn' ? { txn: value } : {}),
        data: { kind, value, reason: record.reason, expires_at: expiresAt.toISOString(), ...record.data },
      },
      asTransaction(manager),
    );
    return { kind, value, grantIds: record.grantIds ?? (await this.affectedGrants(manager, kind, value, now)), expiresAt };
  }

  /** Announces a committed revocation. */
  announce(event: RevocationEvent): void {
    this.bus.publish(event);
  }

  /** The recorder GrantsService calls when it revokes a grant (see {@link GrantRevocationRecorder}). */
  readonly recordGrant: GrantRevocationRecorder = async (manager: EntityManager, revocation: GrantRevocation) => {
    const { grant, now } = revocation;
    const event = await this.record(
      manager,
      {
        kind: 'grant',
        value: revocation.grantId,
        by: revocation.by,
        reason: revocation.reason,
        expiresAt: revocation.expiresAt ?? this.grantRevocationEnd(grant?.expires_at ?? null, now),
        grantIds: [revocation.grantId],
        ...(grant ? { subject: grant.owner } : {}),
        ...(revocation.transition ? { data: revocation.transition } : {}),
      },
      now,
    );
    return () => this.announce(event);
  };

  /** Start-up: see {@link resync}. */
  async onApplicationBootstrap(): Promise<void> {
    await this.resync();
  }

  /**
   * Announces every unexpired revocation again. Run at start-up: an announcement that had not
   * reached Redis when a process stopped is made by the next one. Returns how many.
   */
  async resync(): Promise<number> {
    const now = this.clock.now();
    const rows: { kind: RevocationKind; value: string; expires_at: Date | string }[] = await this.db.dataSource.query(
      'SELECT kind, value, expires_at FROM revocations WHERE expires_at > $1 ORDER BY revoked_at',
      [new Date(now)],
    );
    for (const row of rows) {
      const grantIds = await this.affectedGrants(this.db.dataSource.manager, row.kind, row.value, now);
      this.announce({ kind: row.kind, value: row.value, grantIds, expiresAt: new Date(row.expires_at) });
    }
    return rows.length;
  }

  /**
   * The grants whose store keys must carry this revocation: the grant itself; the grant of a txn
   * or of a token (from its issuing audit event); for an agent, its live grants and the grant of
   * every unexpired token it holds or was handed (`actor` of the event, or `data.actor` of a hop).
   */
  async affectedGrants(manager: EntityManager, kind: RevocationKind, value: string, now = this.clock.now()): Promise<string[]> {
    let rows: { grant_id: string }[];
    switch (kind) {
      case 'grant':
        return [value];
      case 'txn':
        rows = await manager.query(
          'SELECT DISTINCT grant_id FROM audit_events WHERE txn = $1 AND grant_id IS NOT NULL AND type = ANY($2::text[])',
          [value, TOKEN_EVENTS],
        );
        break;
      case 'token':
        rows = await manager.query(
          `SELECT DISTINCT grant_id FROM audit_events WHERE type = ANY($2::text[]) AND grant_id IS NOT NULL AND data->>'jti' = $1`,
          [value, TOKEN_EVENTS],
        );
        break;
      case 'agent':
        rows = await manager.query(
          `SELECT id AS grant_id FROM grants WHERE agent_id = $1 AND status IN ('pending', 'approved')
           UNION
           SELECT grant_id FROM audit_events
            WHERE type = ANY($2::text[]) AND grant_id IS NOT NULL AND (actor = $1 OR data->>'actor' = $1)
              AND (data->>'exp')::bigint + $3 > $4`,
          [value, TOKEN_EVENTS, CLOCK_SKEW_S, Math.floor(now / 1000)],
        );
        break;
    }
    return rows.map((r) => r.grant_id).sort();
  }

  /** The latest a token issued at `now` can still be accepted. */
  private tokenLifetimeEnd(now: number): Date {
    return new Date(now + (this.config.tokenTtlSeconds + CLOCK_SKEW_S) * 1000);
  }

  /** No token outlives its grant, so a grant's revocation matters until the earlier of the two. */
  private grantRevocationEnd(grantExpiresAt: Date | null, now: number): Date {
    const tokens = this.tokenLifetimeEnd(now);
    if (grantExpiresAt === null) return tokens;
    const grant = new Date(grantExpiresAt.getTime() + CLOCK_SKEW_S * 1000);
    return grant < tokens ? grant : tokens;
  }
}
