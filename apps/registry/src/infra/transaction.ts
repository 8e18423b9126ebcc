import type { EntityManager } from 'typeorm';
import type { Database } from './database.service.js';

declare const openTransaction: unique symbol;

/**
 * An open database transaction as services see it: a handle they pass on to the repositories
 * (and the audit chain) that must write in the same unit of work. Only repositories look inside.
 */
export interface Transaction {
  readonly [openTransaction]: true;
}

/** Runs a unit of work in one transaction: every write made with `tx` commits together, or none does. */
export type TransactionRunner = <T>(work: (tx: Transaction) => Promise<T>) => Promise<T>;

/**
 * The TypeORM side of a {@link Transaction}: the handle is the transaction's EntityManager, so
 * `Database.transaction` keeps its embedded-storage serialisation and its isolation unchanged.
 */
export function databaseTransactions(db: Database): TransactionRunner {
  return (work) => db.transaction((manager) => work(asTransaction(manager)));
}

/** The EntityManager behind a handle made by {@link databaseTransactions} (repositories only). */
export function entityManager(tx: Transaction): EntityManager {
  return tx as unknown as EntityManager;
}

/** The handle for a transaction TypeORM opened. */
function asTransaction(manager: EntityManager): Transaction {
  return manager as unknown as Transaction;
}
