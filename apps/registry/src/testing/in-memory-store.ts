import { SerialLock } from '../infra/serial-lock.js';
import type { Transaction, TransactionRunner } from '../infra/transaction.js';

/** The one handle in-memory transactions hand out: there is a single in-memory "session". */
const IN_MEMORY_TRANSACTION = Object.freeze({}) as Transaction;

/**
 * The tables behind the in-memory repositories that unit tests use instead of a database. A
 * transaction runs alone (like on embedded PGlite) and is rolled back when its work throws, so
 * a service's "all or nothing" rules hold here as they do on PostgreSQL.
 */
export class InMemoryStore {
  private readonly tables = new Map<string, Map<unknown, unknown>>();
  private readonly lock = new SerialLock();

  /** The table called `name`, created empty on first use. Rows are stored as copies. */
  table<K, V>(name: string): Map<K, V> {
    let table = this.tables.get(name);
    if (!table) this.tables.set(name, (table = new Map()));
    return table as Map<K, V>;
  }

  readonly transaction: TransactionRunner = (work) =>
    this.lock.run(async () => {
      const saved = [...this.tables].map(([name, rows]) => [name, structuredClone(rows)] as const);
      try {
        return await work(IN_MEMORY_TRANSACTION);
      } catch (error) {
        const before = new Map(saved);
        for (const [name, table] of this.tables) {
          table.clear();
          for (const [key, row] of before.get(name) ?? []) table.set(key, row);
        }
        throw error;
      }
    });
}

/** A copy of a row, so that a caller changing what it read changes nothing stored. */
export function copy<T>(row: T): T {
  return structuredClone(row);
}
