import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { DatabaseTarget } from '../../src/infra/database.js';
import { pgliteSnapshot } from './pglite-snapshot.js';

/** A database for one test file, dropped afterwards. */
export interface TestDatabase {
  name: string;
  target: DatabaseTarget;
  /** Runs raw SQL outside the application (to tamper with rows, for instance). */
  drop(): Promise<void>;
}

/**
 * The storages every integration test runs on: embedded PGlite always, and the real PostgreSQL
 * when DATABASE_URL is set (CI sets it), each test file in a database of its own.
 */
export const storages: { name: string; create: () => Promise<TestDatabase> }[] = [
  { name: 'embedded PGlite', create: createPgliteDatabase },
  ...(process.env.DATABASE_URL
    ? [{ name: 'PostgreSQL', create: () => createPostgresDatabase(process.env.DATABASE_URL!) }]
    : []),
];

/**
 * The one storage an HTTP end-to-end suite runs on when storage is not its subject: PostgreSQL
 * when DATABASE_URL is set (as CI sets it), embedded PGlite otherwise. What differs between the
 * two is the integration and contract suites' subject, and they run on both (`storages`).
 */
export const e2eStorage = storages.at(-1)!;

/** A throw-away in-memory PGlite, opened from the migrated snapshot made once per run. */
export async function createPgliteDatabase(): Promise<TestDatabase> {
  return { name: 'pglite', target: { pgliteDir: 'memory', pgliteSnapshot: await pgliteSnapshot() }, drop: () => Promise.resolve() };
}

/** A fresh database on the server at `adminUrl`, named `<prefix><random>`; `drop()` removes it. */
export async function createPostgresDatabase(adminUrl: string, prefix = 'writ_test_'): Promise<TestDatabase> {
  const name = `${prefix}${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    target: { url: url.toString() },
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}
