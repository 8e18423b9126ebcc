import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/infra/database.js';
import { storages, type TestDatabase } from './support/databases.js';

/**
 * Statements that only take away what a migration declares and no entity repeats: foreign keys,
 * checks, unique constraints, indexes and column defaults. The migrations are the schema's one
 * source (`synchronize` is off), and an entity maps the columns the code reads and writes; it
 * need not restate the database's own guards, so these are no disagreement.
 */
const ONLY_IN_MIGRATIONS = [/^ALTER TABLE "[^"]+" DROP CONSTRAINT "[^"]+"$/, /^DROP INDEX "[^"]+"\."[^"]+"$/, /^ALTER TABLE "[^"]+" ALTER COLUMN "[^"]+" DROP DEFAULT$/];

/** What the schema builder would change for the entities to match the database, guards aside. */
function disagreements(upQueries: readonly { query: string }[]): string[] {
  return upQueries.map((q) => q.query).filter((query) => !ONLY_IN_MIGRATIONS.some((pattern) => pattern.test(query)));
}

/**
 * CI fails when a TypeORM entity and the migrations disagree: given a freshly migrated database,
 * TypeORM's schema builder plans the statements that would make it match the entities. A table,
 * column, type, nullability or default an entity has and the migrations do not make (or a column
 * the migrations make and no entity maps) is such a statement.
 */
describe.each(storages)('entities and migrations on $name', ({ create }) => {
  let testDb: TestDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    testDb = await create();
    dataSource = await openDatabase(testDb.target);
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await testDb?.drop();
  });

  it('agree: a migrated database needs no statement to match the entities', async () => {
    const planned = await dataSource.driver.createSchemaBuilder().log();
    expect(disagreements(planned.upQueries), 'an entity changed without a migration, or a migration without its entity').toEqual([]);
  });
});

describe('disagreements', () => {
  it('keeps a new column, a changed type or nullability and a dropped column, and leaves out guards only the migrations declare', () => {
    const planned = [
      'ALTER TABLE "grants" ADD "note" text NOT NULL',
      'ALTER TABLE "grants" ALTER COLUMN "purpose" SET NOT NULL',
      'ALTER TABLE "agents" DROP COLUMN "jkt"',
      'ALTER TABLE "humans" ALTER COLUMN "passkey_notice_at" SET DEFAULT now()',
      'ALTER TABLE "grants" DROP CONSTRAINT "grants_service_id_fkey"',
      'DROP INDEX "public"."agents_owner_idx"',
      'ALTER TABLE "grants" ALTER COLUMN "version" DROP DEFAULT',
    ].map((query) => ({ query }));
    expect(disagreements(planned)).toEqual([
      'ALTER TABLE "grants" ADD "note" text NOT NULL',
      'ALTER TABLE "grants" ALTER COLUMN "purpose" SET NOT NULL',
      'ALTER TABLE "agents" DROP COLUMN "jkt"',
      'ALTER TABLE "humans" ALTER COLUMN "passkey_notice_at" SET DEFAULT now()',
    ]);
  });
});
