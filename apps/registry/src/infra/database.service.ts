import type { DataSource, EntityManager } from 'typeorm';
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

  async close(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}
