import { ensurePgliteSnapshot } from './pglite-snapshot.js';

/**
 * Vitest global setup of the projects that open PGlite: makes the migrated snapshot once, before
 * any test file runs, so that parallel files do not each make it.
 */
export default async function setup(): Promise<void> {
  await ensurePgliteSnapshot();
}
