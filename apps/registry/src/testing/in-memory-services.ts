import type { Transaction } from '../infra/transaction.js';
import type { ServiceEntity } from '../modules/services/service.entity.js';
import type { ServicesRepository } from '../modules/services/services.repository.js';
import { copy, type InMemoryStore } from './in-memory-store.js';

/** Registered services in memory, for unit tests. */
export class InMemoryServicesRepository implements ServicesRepository {
  constructor(private readonly store: InMemoryStore) {}

  get transaction() {
    return this.store.transaction;
  }

  private get rows(): Map<string, ServiceEntity> {
    return this.store.table('services');
  }

  /** Registrations are already serialised: an in-memory transaction runs alone. */
  lockRegistrations(_tx: Transaction): Promise<void> {
    return Promise.resolve();
  }

  registeredUris(): Promise<Pick<ServiceEntity, 'id' | 'uri'>[]> {
    return Promise.resolve([...this.rows.values()].map(({ id, uri }) => ({ id, uri })));
  }

  insert(service: ServiceEntity): Promise<void> {
    if (this.rows.has(service.id) || [...this.rows.values()].some((s) => s.uri === service.uri)) {
      return Promise.reject(new Error(`duplicate key: service ${service.id} at ${service.uri}`));
    }
    this.rows.set(service.id, copy(service));
    return Promise.resolve();
  }

  findById(id: string): Promise<ServiceEntity | null> {
    const row = this.rows.get(id);
    return Promise.resolve(row ? copy(row) : null);
  }

  findByUri(uri: string): Promise<ServiceEntity | null> {
    const row = [...this.rows.values()].find((s) => s.uri === uri);
    return Promise.resolve(row ? copy(row) : null);
  }

  findByIds(ids: string[]): Promise<ServiceEntity[]> {
    return Promise.resolve(ids.flatMap((id) => (this.rows.has(id) ? [copy(this.rows.get(id)!)] : [])));
  }
}
