import { AuditService } from '../modules/audit/audit.service.js';
import { InProcessRevocationBus, type RevocationEvent } from '../modules/revocations/revocation-bus.js';
import { RevocationRecorder } from '../modules/revocations/revocation-recorder.js';
import { InMemoryAgentsRepository } from './in-memory-agents.js';
import { InMemoryAuditRepository } from './in-memory-audit.js';
import { InMemoryGrantsRepository } from './in-memory-grants.js';
import { InMemoryHumanViewsRepository } from './in-memory-human-views.js';
import { InMemoryHumansRepository } from './in-memory-humans.js';
import { InMemoryRevocationsRepository } from './in-memory-revocations.js';
import { InMemoryServicesRepository } from './in-memory-services.js';
import { InMemoryStepUpsRepository } from './in-memory-step-ups.js';
import { InMemoryStore } from './in-memory-store.js';
import { inMemoryKeys } from './test-keys.js';

/** A clock a test moves by hand. */
export class TestClock {
  constructor(private at: number) {}

  now(): number {
    return this.at;
  }

  advance(ms: number): void {
    this.at += ms;
  }
}

/**
 * The registry's storage in memory, with the audit chain and the revocation recorder built on
 * it: what a service's unit test starts from. `announced` collects what the recorder announced.
 */
export async function inMemoryRegistry(start = Date.UTC(2026, 0, 1, 12)) {
  const store = new InMemoryStore();
  const clock = new TestClock(start);
  const repositories = {
    audit: new InMemoryAuditRepository(store),
    agents: new InMemoryAgentsRepository(store),
    grants: new InMemoryGrantsRepository(store),
    humans: new InMemoryHumansRepository(store),
    humanViews: new InMemoryHumanViewsRepository(store),
    revocations: new InMemoryRevocationsRepository(store),
    services: new InMemoryServicesRepository(store),
    stepUps: new InMemoryStepUpsRepository(store),
  };
  const audit = new AuditService({ repository: repositories.audit, keys: await inMemoryKeys(), clock, checkpointEvery: 1000 });
  const bus = new InProcessRevocationBus();
  const announced: RevocationEvent[] = [];
  bus.subscribe((event) => announced.push(event));
  const recorder = new RevocationRecorder({ repository: repositories.revocations, audit, bus, clock, config: { tokenTtlSeconds: 300 } });
  return { store, clock, repositories, audit, recorder, announced };
}
