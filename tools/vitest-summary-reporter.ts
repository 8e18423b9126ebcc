import type { Reporter, SerializedError, TestModule, TestRunEndReason } from 'vitest/node';

/**
 * Prints one plain closing line after vitest's own summary, so that a reader (or CI) that does not
 * know vitest's format can tell what ran and why a run failed:
 * `Tests: N passed, N failed, N skipped; files failed outside a test: N; unhandled errors: N`.
 * A file whose hooks or collection failed and an error thrown outside every test fail the run as
 * surely as a failed test, so they are counted too, and each is named.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>, reason: TestRunEndReason): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const brokenFiles: string[] = [];
    for (const mod of testModules) {
      const failedBefore = failed;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      // A failed file none of whose tests failed broke in collection or in a hook.
      if (mod.state() === 'failed' && failed === failedBefore) brokenFiles.push(mod.moduleId);
    }
    const lines = [`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped; files failed outside a test: ${brokenFiles.length}; unhandled errors: ${unhandledErrors.length}`];
    for (const file of brokenFiles) lines.push(`  file failed outside a test: ${file}`);
    for (const error of unhandledErrors) lines.push(`  unhandled error: ${error.name ?? 'Error'}: ${error.message ?? ''}`);
    if (reason !== 'passed') lines.push(`Run ${reason}.`);
    process.stdout.write(`\n${lines.join('\n')}\n`);
  }
}
