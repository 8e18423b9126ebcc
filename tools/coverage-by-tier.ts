import v8 from '@vitest/coverage-v8';
import type { CoverageProviderModule } from 'vitest/node';
import { type Tier, tierOf } from './test-tiers.js';

/**
 * Vitest's V8 coverage, recorded only while a test file of the unit tier runs (vitest.config.ts:
 * `coverage.customProviderModule`). The report, its table and the threshold on libs/core are
 * vitest's V8 provider's own; what changes is which files drive the counters.
 *
 * V8's block coverage counts every block of every function the worker runs (NestJS, TypeORM,
 * Fastify, pg, jose), and vitest then reads all those counters back after each file: in the
 * storage tier it took 28 % more CPU than without coverage, in the unit tier 24 %
 * (docs/testing.md). The unit tier is the tier that exercises the code's logic: on its own it
 * covers libs/core's lines as much as the whole suite does (99.8 %). The storage, e2e and system
 * tiers run uninstrumented.
 *
 * A worker that runs files one after another (`isolate: false`) starts recording for a unit file
 * and stops for a file of another tier; counters are read after each file (`takeCoverage`).
 */
export const RECORDED_TIERS: ReadonlySet<Tier> = new Set(['unit']);

/** The test files the worker is about to run: vitest's worker state, a global of its own. */
function filesOfThisRun(): string[] {
  const state = (globalThis as { __vitest_worker__?: { ctx?: { files?: ReadonlyArray<{ filepath: string }> } } }).__vitest_worker__;
  const files = state?.ctx?.files;
  // Unknown (another vitest layout): record, as vitest's own provider would.
  return files === undefined ? [] : files.map((file) => file.filepath);
}

export function shouldRecord(files: readonly string[]): boolean {
  return files.length === 0 || files.every((file) => RECORDED_TIERS.has(tierOf(file)));
}

let recording = false;

const coverageByTier: CoverageProviderModule = {
  async startCoverage() {
    const wanted = shouldRecord(filesOfThisRun());
    // `isolate: true` makes vitest's module start and stop for real, each time asked.
    if (wanted && !recording) await v8.startCoverage?.({ isolate: true });
    else if (!wanted && recording) await v8.stopCoverage?.({ isolate: true });
    recording = wanted;
  },
  takeCoverage(options) {
    return recording ? v8.takeCoverage?.(options) : { result: [] };
  },
  async stopCoverage(options) {
    // A worker kept for the next file (isolate: false) keeps recording until a file of another tier.
    if (options.isolate === false || !recording) return;
    await v8.stopCoverage?.({ isolate: true });
    recording = false;
  },
  getProvider: () => v8.getProvider(),
};

export default coverageByTier;
