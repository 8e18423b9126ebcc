import { selectedTiers } from '../../../../tools/test-tiers.js';
import { ensurePgliteSnapshot } from './pglite-snapshot.js';

/**
 * Vitest global setup of the projects that open PGlite: makes the migrated snapshot once, before
 * any test file runs, so that parallel files do not each make it. The unit tier opens no database.
 */
export default async function setup(): Promise<void> {
  if (selectedTiers().every((tier) => tier === 'unit')) return;
  await ensurePgliteSnapshot();
}
