import type { Database } from '../../infra/database.service.js';
import { databaseTransactions, entityManager, type Transaction, type TransactionRunner } from '../../infra/transaction.js';
import type { RevocationKind } from './revocation.entity.js';

/** A revocation as written: what it names, when, why, and until when it can matter. */
export interface RevocationRow {
  kind: RevocationKind;
  value: string;
  revokedAt: Date;
  expiresAt: Date;
  reason: string | null;
}

/** Revocations, and the durable record they are resolved against: the only code that reads or writes `revocations`. */
export interface RevocationsRepository {
  readonly transaction: TransactionRunner;
  /** Writes the revocation; one already recorded keeps the later expiry. Answers the expiry now stored. */
  upsert(revocation: RevocationRow, tx?: Transaction): Promise<Date>;
  /** Every revocation still unexpired at `now`, oldest first. */
  unexpired(now: Date): Promise<Pick<RevocationRow, 'kind' | 'value' | 'expiresAt'>[]>;
  /** Whether any of these (kind, value) pairs is revoked. */
  anyRevoked(pairs: [RevocationKind, string][]): Promise<boolean>;
  /** The grants of the tokens of transaction `txn`, from their issuing events (`types`). */
  grantsOfTxn(txn: string, types: string[], tx?: Transaction): Promise<string[]>;
  /** The grants of token `jti`, from its issuing events (`types`). */
  grantsOfToken(jti: string, types: string[], tx?: Transaction): Promise<string[]>;
  /**
   * The grants agent `clientId` holds live (pending or approved), and the grants of every token it
   * holds or was handed (`types`) whose `exp` plus `skewSeconds` is after `nowSeconds`.
   */
  grantsOfAgent(clientId: string, types: string[], nowSeconds: number, skewSeconds: number, tx?: Transaction): Promise<string[]>;
}

export class TypeOrmRevocationsRepository implements RevocationsRepository {
  readonly transaction: TransactionRunner;

  constructor(private readonly db: Database) {
    this.transaction = databaseTransactions(db);
  }

  async upsert(revocation: RevocationRow, tx?: Transaction): Promise<Date> {
    const rows = await this.query<{ expires_at: Date | string }[]>(
      `INSERT INTO revocations (kind, value, revoked_at, expires_at, reason) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (kind, value) DO UPDATE SET expires_at = GREATEST(revocations.expires_at, EXCLUDED.expires_at)
       RETURNING expires_at`,
      [revocation.kind, revocation.value, revocation.revokedAt, revocation.expiresAt, revocation.reason],
      tx,
    );
    return new Date(rows[0]!.expires_at);
  }

  async unexpired(now: Date): Promise<Pick<RevocationRow, 'kind' | 'value' | 'expiresAt'>[]> {
    const rows = await this.query<{ kind: RevocationKind; value: string; expires_at: Date | string }[]>(
      'SELECT kind, value, expires_at FROM revocations WHERE expires_at > $1 ORDER BY revoked_at',
      [now],
    );
    return rows.map((row) => ({ kind: row.kind, value: row.value, expiresAt: new Date(row.expires_at) }));
  }

  async anyRevoked(pairs: [RevocationKind, string][]): Promise<boolean> {
    const rows = await this.query<unknown[]>(
      `SELECT 1 FROM revocations r JOIN unnest($1::text[], $2::text[]) AS t(kind, value) ON r.kind = t.kind AND r.value = t.value LIMIT 1`,
      [pairs.map(([kind]) => kind), pairs.map(([, value]) => value)],
    );
    return rows.length > 0;
  }

  grantsOfTxn(txn: string, types: string[], tx?: Transaction): Promise<string[]> {
    return this.grantIds('SELECT DISTINCT grant_id FROM audit_events WHERE txn = $1 AND grant_id IS NOT NULL AND type = ANY($2::text[])', [txn, types], tx);
  }

  grantsOfToken(jti: string, types: string[], tx?: Transaction): Promise<string[]> {
    return this.grantIds(`SELECT DISTINCT grant_id FROM audit_events WHERE type = ANY($2::text[]) AND grant_id IS NOT NULL AND data->>'jti' = $1`, [jti, types], tx);
  }

  grantsOfAgent(clientId: string, types: string[], nowSeconds: number, skewSeconds: number, tx?: Transaction): Promise<string[]> {
    return this.grantIds(
      `SELECT id AS grant_id FROM grants WHERE agent_id = $1 AND status IN ('pending', 'approved')
       UNION
       SELECT grant_id FROM audit_events
        WHERE type = ANY($2::text[]) AND grant_id IS NOT NULL AND (actor = $1 OR data->>'actor' = $1)
          AND (data->>'exp')::bigint + $3 > $4`,
      [clientId, types, skewSeconds, nowSeconds],
      tx,
    );
  }

  private async grantIds(sql: string, parameters: unknown[], tx?: Transaction): Promise<string[]> {
    return (await this.query<{ grant_id: string }[]>(sql, parameters, tx)).map((row) => row.grant_id);
  }

  private query<T>(sql: string, parameters: unknown[], tx?: Transaction): Promise<T> {
    return tx ? entityManager(tx).query<T>(sql, parameters) : this.db.dataSource.query<T>(sql, parameters);
  }
}
