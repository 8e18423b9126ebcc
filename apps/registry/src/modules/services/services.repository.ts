import { In } from 'typeorm';
import type { Database } from '../../infra/database.service.js';
import { databaseTransactions, entityManager, type Transaction, type TransactionRunner } from '../../infra/transaction.js';
import { ServiceEntity } from './service.entity.js';

/** Registered service providers: the only code that reads or writes `services`. */
export interface ServicesRepository {
  readonly transaction: TransactionRunner;
  /** Holds, until `tx` ends, the lock that serialises registrations across registry processes. */
  lockRegistrations(tx: Transaction): Promise<void>;
  /** Every registered service's id and URI (services are few: one per provider). */
  registeredUris(tx?: Transaction): Promise<Pick<ServiceEntity, 'id' | 'uri'>[]>;
  insert(service: ServiceEntity, tx?: Transaction): Promise<void>;
  findById(id: string): Promise<ServiceEntity | null>;
  /** The service registered at `uri` (already normalised). */
  findByUri(uri: string): Promise<ServiceEntity | null>;
  findByIds(ids: string[]): Promise<ServiceEntity[]>;
}

/** Advisory lock (two-key space, like the grants' one) serialising registrations, so two overlapping ones cannot both pass the check. */
const SERVICE_REGISTRATION_LOCK = [0x5772_5376, 0] as const; // "WrSv"

export class TypeOrmServicesRepository implements ServicesRepository {
  readonly transaction: TransactionRunner;

  constructor(private readonly db: Database) {
    this.transaction = databaseTransactions(db);
  }

  async lockRegistrations(tx: Transaction): Promise<void> {
    await entityManager(tx).query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [...SERVICE_REGISTRATION_LOCK]);
  }

  registeredUris(tx?: Transaction): Promise<Pick<ServiceEntity, 'id' | 'uri'>[]> {
    return this.repo(tx).find({ select: { id: true, uri: true } });
  }

  async insert(service: ServiceEntity, tx?: Transaction): Promise<void> {
    await this.repo(tx).insert(service);
  }

  findById(id: string): Promise<ServiceEntity | null> {
    return this.repo().findOneBy({ id });
  }

  findByUri(uri: string): Promise<ServiceEntity | null> {
    return this.repo().findOneBy({ uri });
  }

  findByIds(ids: string[]): Promise<ServiceEntity[]> {
    return ids.length === 0 ? Promise.resolve([]) : this.repo().findBy({ id: In(ids) });
  }

  private repo(tx?: Transaction) {
    return (tx ? entityManager(tx) : this.db.dataSource.manager).getRepository(ServiceEntity);
  }
}
