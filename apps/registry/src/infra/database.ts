import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { PGliteDriver } from 'typeorm-pglite';
import { makePrivate } from './data-dir.js';
import { migrations } from '../../../../migrations/index.js';
import { AgentEntity } from '../modules/agents/agent.entity.js';
import { ClientAssertionJtiEntity } from '../modules/agents/client-assertion-jti.entity.js';
import { InitialAccessTokenEntity } from '../modules/agents/initial-access-token.entity.js';
import { AuditCheckpointEntity, AuditEventEntity } from '../modules/audit/audit.entity.js';
import { GrantEntity } from '../modules/grants/grant.entity.js';
import { ServiceEntity } from '../modules/services/service.entity.js';
import { DpopProofJtiEntity } from '../modules/tokens/dpop-proof-jti.entity.js';
import { RevocationEntity } from '../modules/revocations/revocation.entity.js';
import { ApprovalReceiptEntity, CeremonyEntity, HumanEntity, HumanSessionEntity, PasskeyEntity } from '../modules/humans/human.entities.js';
import { StepUpEntity } from '../modules/step-ups/step-up.entity.js';

export const entities = [AuditEventEntity, AuditCheckpointEntity, AgentEntity, InitialAccessTokenEntity, ClientAssertionJtiEntity, ServiceEntity, GrantEntity, DpopProofJtiEntity, RevocationEntity, HumanEntity, PasskeyEntity, HumanSessionEntity, CeremonyEntity, ApprovalReceiptEntity, StepUpEntity];

/** Where the database lives: a real PostgreSQL URL, or an embedded PGlite directory (`memory` for tests). */
export type DatabaseTarget =
  | { url: string }
  | { /** A folder, or `memory` for a throw-away database. */ pgliteDir: string }
  | {
      pgliteDir: 'memory';
      /**
       * Tests only: a PGlite data directory already migrated (PGlite's `dumpDataDir`) that the
       * throw-away database starts from, instead of running initdb and every migration again.
       */
      pgliteSnapshot: Blob;
    };

/**
 * Builds the TypeORM data source: `pg` against a real PostgreSQL when a URL is given, embedded
 * PGlite otherwise. The same migrations run on both, at start-up.
 */
export function createDataSource(target: DatabaseTarget): DataSource {
  const common = { type: 'postgres' as const, entities, migrations, migrationsRun: false, synchronize: false, logging: false };
  if ('url' in target) {
    return new DataSource({ ...common, url: target.url, extra: { max: 10 } });
  }
  let dataDir: string | undefined;
  if (target.pgliteDir !== 'memory') {
    mkdirSync(target.pgliteDir, { recursive: true, mode: 0o700 });
    dataDir = join(target.pgliteDir, 'pglite');
  }
  const snapshot = 'pgliteSnapshot' in target ? target.pgliteSnapshot : undefined;
  const { Pool } = new PGliteDriver(dataDir ? { dataDir } : snapshot ? { loadDataDir: snapshot } : {}).driver;
  return new DataSource({
    ...common,
    // typeorm-pglite's pool hands itself out as every connection, so the 'error' listener TypeORM
    // adds per open query runner (and removes on release) all land on this one emitter, with no pool
    // `max` to cap them: 1 + the queries in flight, not a leak. 100 is twice the largest burst the
    // tests drive (50 requests), so a leak that keeps adding listeners still warns.
    driver: {
      Pool: class extends Pool {
        constructor() {
          super();
          this.setMaxListeners(100);
        }
      },
    },
    // gen_random_uuid is built in; PGlite has no uuid-ossp extension.
    uuidExtension: 'pgcrypto',
  });
}

/** Opens the data source and applies pending migrations in one transaction each. */
export async function openDatabase(target: DatabaseTarget): Promise<DataSource> {
  const dataSource = createDataSource(target);
  await dataSource.initialize();
  await dataSource.runMigrations({ transaction: 'each' });
  // PGlite has just created its files 0666 and folders 0755, whatever the umask (ADR 0020).
  if ('pgliteDir' in target && target.pgliteDir !== 'memory') makePrivate(target.pgliteDir);
  return dataSource;
}
