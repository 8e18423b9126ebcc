import type { Pool } from 'pg';
import type { DataSource, EntityManager } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';
import { SerialLock } from './serial-lock.js';

/** The open data source and the one way to run a write transaction on it. */
export class Database {
  private readonly embeddedLock = new SerialLock();

  constructor(
    readonly dataSource: DataSource,
    /** True on PGlite: one session, so transactions must never overlap. */
    readonly embedded: boolean,
  ) {}

  /** Runs `work` in a transaction; on embedded storage, never concurrently with another one. */
  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    const run = () => this.dataSource.transaction(work);
    return this.embedded ? this.embeddedLock.run(run) : run();
  }

  /**
   * Runs one statement on its own (autocommit): one round trip, no BEGIN/COMMIT. On embedded
   * storage it waits for any open transaction, since PGlite's one session would otherwise run
   * the statement inside that transaction.
   */
  query<T = unknown>(sql: string, parameters: unknown[] = []): Promise<T> {
    const pool = this.pgPool();
    if (!pool) return this.embeddedLock.run(() => this.dataSource.query<T>(sql, parameters));
    // Straight to node-postgres' pool: no TypeORM query runner to build and release per statement.
    return pool.query(sql, parameters).then((result) => result.rows as T);
  }

  /** node-postgres' pool on PostgreSQL, for the few hot paths that manage their own round trips; undefined on PGlite. */
  pgPool(): Pool | undefined {
    return this.embedded ? undefined : ((this.dataSource.driver as PostgresDriver).master as Pool);
  }

  async close(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}
