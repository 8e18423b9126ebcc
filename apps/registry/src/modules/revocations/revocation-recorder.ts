import type { OnApplicationBootstrap } from '@nestjs/common';
import type { Clock } from '@writ/core';
import type { RegistryConfig } from '../../config/config.js';
import type { Transaction, TransactionRunner } from '../../infra/transaction.js';
import type { AuditService } from '../audit/audit.service.js';
import type { GrantRevocation, GrantRevocationRecorder } from '../grants/grants.service.js';
import { CLOCK_SKEW_S } from '../tokens/issued-tokens.js';
import type { RevocationBus, RevocationEvent } from './revocation-bus.js';
import type { RevocationKind } from './revocation.entity.js';
import type { RevocationsRepository } from './revocations.repository.js';

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
export interface RevocationRecorderOptions {
  repository: RevocationsRepository;
  audit: AuditService;
  bus: RevocationBus;
  clock: Clock;
  config: Pick<RegistryConfig, 'tokenTtlSeconds'>;
}

export class RevocationRecorder implements OnApplicationBootstrap {
  private readonly repository: RevocationsRepository;
  private readonly audit: AuditService;
  private readonly bus: RevocationBus;
  private readonly clock: Clock;
  private readonly config: Pick<RegistryConfig, 'tokenTtlSeconds'>;

  constructor(options: RevocationRecorderOptions) {
    this.repository = options.repository;
    this.audit = options.audit;
    this.bus = options.bus;
    this.clock = options.clock;
    this.config = options.config;
  }

  /** Runs `work` in one transaction, for a caller with nothing else to write than the revocation. */
  get transaction(): TransactionRunner {
    return this.repository.transaction;
  }

  /**
   * Writes the row (an existing one keeps the later expiry) and the audit event in `tx`.
   * Returns what to announce: pass it to {@link announce} after the transaction commits.
   */
  async record(tx: Transaction, record: RevocationRecord, now = this.clock.now()): Promise<RevocationEvent> {
    const { kind, value } = record;
    const until = record.expiresAt ?? this.tokenLifetimeEnd(now);
    const expiresAt = await this.repository.upsert({ kind, value, revokedAt: new Date(now), expiresAt: until, reason: record.reason }, tx);
    await this.audit.append(
      {
        type: `revocation.${kind}`,
        actor: record.by,
        ...(record.subject !== undefined ? { subject: record.subject } : {}),
        ...(kind === 'grant' ? { grant_id: value } : {}),
        ...(kind === 'txn' ? { txn: value } : {}),
        data: { kind, value, reason: record.reason, expires_at: expiresAt.toISOString(), ...record.data },
      },
      tx,
    );
    return { kind, value, grantIds: record.grantIds ?? (await this.affectedGrants(kind, value, now, tx)), expiresAt };
  }

  /** Announces a committed revocation. */
  announce(event: RevocationEvent): void {
    this.bus.publish(event);
  }

  /** The recorder GrantsService calls when it revokes a grant (see {@link GrantRevocationRecorder}). */
  readonly recordGrant: GrantRevocationRecorder = async (tx: Transaction, revocation: GrantRevocation) => {
    const { grant, now } = revocation;
    const event = await this.record(
      tx,
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
    const rows = await this.repository.unexpired(new Date(now));
    for (const row of rows) {
      const grantIds = await this.affectedGrants(row.kind, row.value, now);
      this.announce({ kind: row.kind, value: row.value, grantIds, expiresAt: row.expiresAt });
    }
    return rows.length;
  }

  /**
   * The grants whose store keys must carry this revocation: the grant itself; the grant of a txn
   * or of a token (from its issuing audit event); for an agent, its live grants and the grant of
   * every unexpired token it holds or was handed (`actor` of the event, or `data.actor` of a hop).
   */
  async affectedGrants(kind: RevocationKind, value: string, now = this.clock.now(), tx?: Transaction): Promise<string[]> {
    let grantIds: string[];
    switch (kind) {
      case 'grant':
        return [value];
      case 'txn':
        grantIds = await this.repository.grantsOfTxn(value, TOKEN_EVENTS, tx);
        break;
      case 'token':
        grantIds = await this.repository.grantsOfToken(value, TOKEN_EVENTS, tx);
        break;
      case 'agent':
        grantIds = await this.repository.grantsOfAgent(value, TOKEN_EVENTS, Math.floor(now / 1000), CLOCK_SKEW_S, tx);
        break;
    }
    return grantIds.sort();
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
