import { statSync } from 'node:fs';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { type Tier, tierOf } from './test-tiers.js';

/** Slowest tier first: whole-system runs, then booted servers, then storage, then unit files. */
const RANK: Record<Tier, number> = { system: 0, e2e: 1, storage: 2, unit: 3 };

/**
 * The order test files start in. Vitest's own order groups files by project name, so on a fresh
 * clone (no timings cached yet) the demo and `npm start` runs, among the longest files, started
 * near the end, and one worker ran them alone after the other had finished. Slowest tier first
 * keeps both workers busy to the end. Within a tier, files of one project are kept together:
 * vitest reuses a worker process (`isolate: false`, the modules it loaded) for the next file only
 * when that file is of the same project; otherwise it stops the process and forks a new one that
 * imports NestJS, TypeORM and the registry again. Then, within a project, failed last time first,
 * then longest last time when vitest cached both files' times, else largest file.
 */
export default class SlowestFirstSequencer extends BaseSequencer {
  override sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const key = (spec: TestSpecification) => `${spec.project.name}:${relative(this.ctx.config.root, spec.moduleId)}`;
    const facts = new Map(
      files.map((spec) => {
        const cached = this.ctx.cache.getFileTestResults(key(spec));
        return [spec, { rank: RANK[tierOf(spec.moduleId)], failed: cached?.failed ? 0 : 1, duration: cached?.duration, size: sizeOf(spec.moduleId) }];
      }),
    );
    const sorted = [...files].sort((a, b) => {
      const x = facts.get(a)!;
      const y = facts.get(b)!;
      if (x.rank !== y.rank) return x.rank - y.rank;
      if (a.project.name !== b.project.name) return a.project.name < b.project.name ? -1 : 1;
      if (x.failed !== y.failed) return x.failed - y.failed;
      if (x.duration !== undefined && y.duration !== undefined) return y.duration - x.duration;
      return y.size - x.size;
    });
    return Promise.resolve(whileTheUiBuilds(sorted, (spec) => needsUiBuild(relative(this.ctx.config.root, spec.moduleId))));
  }
}

/** Files that start the approval UI's production server, so wait for its build (`next build`, taken in turns under a lock). */
const UI_FILES = [/^apps\/approval-ui\/e2e\//, /^apps\/approval-ui\/test\/server\.spec\.ts$/, /^tools\/test\/demo\.spec\.ts$/];

function needsUiBuild(path: string): boolean {
  return UI_FILES.some((pattern) => pattern.test(path));
}

/**
 * Files that need no UI build, moved up to run beside the first file that needs it. On a clean
 * clone that file builds the UI (30 s on an idle machine, over a minute under the suite's load),
 * and every other UI file waits for the build's lock: with the system tier first, the second
 * worker sat idle through the whole build.
 */
const BESIDE_THE_BUILD = 4;

export function whileTheUiBuilds<T>(ordered: T[], needsUi: (file: T) => boolean): T[] {
  const first = ordered.findIndex(needsUi);
  if (first < 0) return ordered;
  const rest = ordered.slice(first + 1);
  const beside = rest.filter((file) => !needsUi(file)).slice(0, BESIDE_THE_BUILD);
  return [...ordered.slice(0, first + 1), ...beside, ...rest.filter((file) => !beside.includes(file))];
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
