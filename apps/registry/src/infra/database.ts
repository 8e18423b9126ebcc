import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import pg from 'pg';
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
    // A connection attempt to a database that does not answer fails after this long instead of
    // waiting forever (the request then answers 503).
    return new DataSource({ ...common, url: target.url, driver: { ...pg, Pool: SurvivingPool }, extra: { max: 10, connectionTimeoutMillis: CONNECT_TIMEOUT_MS } });
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
          // An 'error' while no query runner listens must not end the process (issue 19).
          this.on('error', (error: unknown) => logConnectionError('the embedded database', error));
        }
      },
    },
    // gen_random_uuid is built in; PGlite has no uuid-ossp extension.
    uuidExtension: 'pgcrypto',
  });
}

/** How long opening a connection to PostgreSQL may take. */
const CONNECT_TIMEOUT_MS = 5_000;

const logger = new Logger('database');

function logConnectionError(where: string, error: unknown): void {
  logger.warn(`${where}: connection lost (${error instanceof Error ? error.message : String(error)}); requests answer 503 until it is back`);
}

/**
 * node-postgres' pool, with an 'error' listener on every client it opens (issue 19, "PostgreSQL
 * restarted"). The pool listens on its idle clients, and TypeORM on those its query runners
 * hold, but a client checked out by other code (the audit append's two round trips) has no
 * listener between its statements: PostgreSQL's restart (`57P01 terminating connection due to
 * administrator command`) then raised an unhandled 'error' event, which ends a Node process. With
 * this listener the error is logged, the client's next statement fails, and the pool drops the
 * broken client when it is released; new connections are opened once the database is back.
 */
class SurvivingPool extends pg.Pool {
  constructor(config?: pg.PoolConfig) {
    super(config);
    this.on('connect', (client) => {
      client.on('error', (error) => logConnectionError('PostgreSQL', error));
    });
    // Idle clients' errors come here too; TypeORM adds its own listener, this one stays.
    this.on('error', () => undefined);
  }
}

/**
 * Whether `error` says the database cannot be reached now (refused, reset, timed out, shutting
 * down or starting up), as opposed to a failed statement: such a request answers
 * `503 temporarily_unavailable`, never `500` (issue 19). node-postgres' own errors, Node's socket
 * errors and PostgreSQL's SQLSTATE classes 08 (connection exception) and 57P01-57P03 (shutdown,
 * crash, starting up) count; TypeORM's wrapper is looked through.
 */
export function isDatabaseUnreachable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; depth++) {
    const { code } = e as { code?: unknown };
    if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code))) return true;
    if (UNREACHABLE_MESSAGES.some((pattern) => pattern.test(e instanceof Error ? e.message : ''))) return true;
    e = (e as { driverError?: unknown }).driverError ?? e.cause;
  }
  return false;
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** node-postgres' errors for a connection that is gone or could not be made (they carry no code). */
const UNREACHABLE_MESSAGES = [/^Connection terminated/, /^timeout exceeded when trying to connect$/, /is not queryable$/];

/** Opens the data source and applies pending migrations in one transaction each. */
export async function openDatabase(target: DatabaseTarget): Promise<DataSource> {
  const dataSource = createDataSource(target);
  await dataSource.initialize();
  await dataSource.runMigrations({ transaction: 'each' });
  // PGlite has just created its files 0666 and folders 0755, whatever the umask (ADR 0020).
  if ('pgliteDir' in target && target.pgliteDir !== 'memory') makePrivate(target.pgliteDir);
  return dataSource;
}
