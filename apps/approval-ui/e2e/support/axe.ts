import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Axe from 'axe-core';
import type { Page } from 'playwright-core';

const require = createRequire(import.meta.url);

/** axe-core's browser build, read once from node_modules: nothing is fetched. */
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** The rules of WCAG 2.0 and 2.1, levels A and AA, as axe-core tags them. */
export const WCAG_21_AA: readonly string[] = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

/**
 * What the approval UI is held to: WCAG 2.1 A and AA, the one WCAG 2.2 AA rule axe-core has
 * (target size), and axe-core's best practices (landmarks, heading order, one h1, unique names).
 */
export const APPROVAL_UI_RULES: readonly string[] = [...WCAG_21_AA, 'wcag22aa', 'best-practice'];

/** One rule that failed, with every element it failed on, in plain data. */
export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  helpUrl: string;
  nodes: { target: string; html: string; summary: string }[];
}

/**
 * Runs axe-core on the page as it is now (injected first when the page does not have it yet:
 * each navigation loses it) with the rules of `tags`, and answers the violations.
 */
export async function runAxe(page: Page, tags: readonly string[] = WCAG_21_AA): Promise<AxeViolation[]> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ content: AXE_SOURCE });
  const options: Axe.RunOptions = { runOnly: { type: 'tag', values: [...tags] }, resultTypes: ['violations'] };
  return page.evaluate(async (runOptions) => {
    const { axe } = window as unknown as { axe: typeof Axe };
    const results = await axe.run(document, runOptions);
    return results.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact ?? null,
      help: violation.help,
      helpUrl: violation.helpUrl,
      nodes: violation.nodes.map((node) => ({
        // A selector per frame or shadow root on the way to the element.
        target: node.target.map((part) => (Array.isArray(part) ? part.join(' >>> ') : String(part))).join(' | '),
        html: node.html,
        summary: node.failureSummary ?? '',
      })),
    }));
  }, options);
}

/**
 * The violations as lines a person can act on: where, the rule id and impact, what it asks,
 * then each element (selector, markup, why it failed) and the rule's help page.
 */
export function describeViolations(where: string, violations: readonly AxeViolation[]): string[] {
  return violations.map((violation) =>
    [
      `${where}: ${violation.id} (${violation.impact ?? 'no impact given'}): ${violation.help}`,
      ...violation.nodes.map((node) => `  at ${node.target}\n    ${node.html}\n    ${node.summary.replaceAll('\n', '\n    ')}`),
      `  help: ${violation.helpUrl}`,
    ].join('\n'),
  );
}
