import { readdirSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';

/**
 * The test suite's tiers (issue 18, "tests at the right size"), from fastest to slowest. A file's
 * tier comes from its name (`*.e2e.spec.ts`, `*.integration.spec.ts`, `*.contract.spec.ts`,
 * anything else `*.spec.ts` is a unit test) unless `byPath` names it: files older than the naming.
 *
 * `npm test` runs every tier. WRIT_TEST_TIERS=unit,storage (a comma-separated list) runs only
 * those: `npm run test:fast` is the unit tier.
 */
export const TIERS = ['unit', 'storage', 'e2e', 'system'] as const;
export type Tier = (typeof TIERS)[number];

/** What each tier holds, for the scripts' and the summary's readers. */
export const TIER_DESCRIPTIONS: Record<Tier, string> = {
  unit: 'no database, Redis, booted server or browser: logic, in-memory repositories, in-process stand-ins',
  storage: 'integration and contract suites on every storage: PGlite and PostgreSQL, in-process, Redis and Redis Cluster',
  e2e: 'a booted registry and verifier over HTTP, or the CLI as a process, on one storage unless storage is the subject',
  system: 'whole-system runs: npm start, the demo, the approval UI in Chromium',
};

const workspace = resolve(import.meta.dirname, '..');

/** Workspace-relative paths (with `/`) whose name does not say their tier, and why they are there. */
const byPath: Record<string, Tier> = {
  // The registry's CLI run as a user runs it: a process of its own, on PGlite on disk.
  'apps/registry/test/cli.spec.ts': 'e2e',
  'apps/registry/test/services-cli.spec.ts': 'e2e',
  'apps/registry/test/receipts-cli.spec.ts': 'e2e',
  'apps/registry/test/audit-cli.spec.ts': 'e2e',
  // The audit log's tree migration, and its tampering detected, on every registry storage.
  'apps/registry/test/audit-migration.spec.ts': 'storage',
  'apps/registry/test/audit-tamper.spec.ts': 'storage',
  // On every registry storage, with Redis.
  'apps/registry/test/revocation-bus.spec.ts': 'storage',
  'apps/registry/test/verifier-events.spec.ts': 'storage',
  'apps/registry/test/schema-drift.spec.ts': 'storage',
  // Builds the approval UI for production and serves it over HTTP.
  'apps/approval-ui/test/server.spec.ts': 'e2e',
  'tools/test/demo.spec.ts': 'system',
};

/** The tier of a test file (absolute, or relative to the workspace). */
export function tierOf(file: string): Tier {
  const path = relative(workspace, resolve(workspace, file)).split(sep).join('/');
  const named = byPath[path];
  if (named) return named;
  if (path.startsWith('apps/approval-ui/e2e/')) return 'system';
  if (/\.e2e\.spec\.tsx?$/.test(path)) return 'e2e';
  if (/\.(integration|contract)\.spec\.tsx?$/.test(path)) return 'storage';
  return 'unit';
}

/** The tiers WRIT_TEST_TIERS asks for; every tier when it is unset or empty. */
export function selectedTiers(value = process.env.WRIT_TEST_TIERS): Tier[] {
  const asked = (value ?? '').split(',').map((tier) => tier.trim()).filter((tier) => tier !== '');
  if (asked.length === 0) return [...TIERS];
  const unknown = asked.filter((tier) => !(TIERS as readonly string[]).includes(tier));
  if (unknown.length > 0) throw new Error(`WRIT_TEST_TIERS: unknown tier ${unknown.join(', ')} (tiers: ${TIERS.join(', ')})`);
  return asked as Tier[];
}

/** Every spec file under `dir` (node_modules, .next and dot folders left out). */
function specFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') return [];
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return specFiles(path);
    return /\.spec\.tsx?$/.test(entry.name) ? [path] : [];
  });
}

/**
 * What a vitest project rooted at `projectRoot` leaves out so that only the selected tiers run:
 * nothing when every tier is selected (new files are then found by the project's own globs),
 * otherwise each spec file of another tier, by its path relative to the project.
 */
export function excludeOtherTiers(projectRoot: string, tiers: readonly Tier[] = selectedTiers()): string[] {
  if (tiers.length === TIERS.length) return [];
  return specFiles(projectRoot)
    .filter((file) => !tiers.includes(tierOf(file)))
    .map((file) => relative(projectRoot, file).split(sep).join('/'));
}
