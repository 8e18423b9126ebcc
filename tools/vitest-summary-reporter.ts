import type { Reporter, SerializedError, TestModule, TestRunEndReason } from 'vitest/node';
import { type Tier, tierOf, TIERS } from './test-tiers.js';

/**
 * Prints one plain closing line after vitest's own summary, so that a reader (or CI) that does not
 * know vitest's format can tell what ran and why a run failed:
 * `Tests: N passed, N failed, N skipped; files failed outside a test: N; unhandled errors: N`.
 * A file whose hooks or collection failed and an error thrown outside every test fail the run as
 * surely as a failed test, so they are counted too, and each is named.
 *
 * Just before it, one line counts the tests and files of each tier that ran (tools/test-tiers.ts):
 * `Tiers: unit 900 tests in 60 files, storage 300 tests in 12 files, ...`.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>, reason: TestRunEndReason): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const brokenFiles: string[] = [];
    const tiers = new Map<Tier, { tests: number; files: number }>();
    for (const mod of testModules) {
      const failedBefore = failed;
      const tier = tierOf(mod.moduleId);
      const counts = tiers.get(tier) ?? { tests: 0, files: 0 };
      tiers.set(tier, counts);
      counts.files++;
      for (const test of mod.children.allTests()) {
        counts.tests++;
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      // A failed file none of whose tests failed broke in collection or in a hook.
      if (mod.state() === 'failed' && failed === failedBefore) brokenFiles.push(mod.moduleId);
    }
    const ran = TIERS.flatMap((tier) => {
      const counts = tiers.get(tier);
      return counts ? [`${tier} ${counts.tests} tests in ${counts.files} files`] : [];
    });
    const lines = [`Tiers: ${ran.join(', ')}`, `Tests: ${passed} passed, ${failed} failed, ${skipped} skipped; files failed outside a test: ${brokenFiles.length}; unhandled errors: ${unhandledErrors.length}`];
    for (const file of brokenFiles) lines.push(`  file failed outside a test: ${file}`);
    for (const error of unhandledErrors) lines.push(`  unhandled error: ${error.name ?? 'Error'}: ${error.message ?? ''}`);
    if (reason !== 'passed') lines.push(`Run ${reason}.`);
    process.stdout.write(`\n${lines.join('\n')}\n`);
  }
}
