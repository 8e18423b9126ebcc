import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support.js';

/**
 * `npm run typecheck` and `npm run check` (tools/check.mjs) check each file once, with fewer programs than the Nx
 * projects' `typecheck` targets. This fails when that plan checks less than the targets do: a file
 * a target's tsconfig lists that no config of the plan lists, or lists only with other compiler
 * options. Reading configs costs no type-checking.
 */

interface Config {
  path: string;
  files: Set<string>;
  /** The compiler options that decide what type-checks, as JSON (see {@link optionsKey}). */
  options: string;
}

/**
 * Options that do not change what a file is checked against: where output would go, and `paths`
 * (each config maps the same @writ/* names to the same sources, written relative to itself).
 */
const IRRELEVANT = new Set(['configFilePath', 'noEmit', 'paths', 'pathsBasePath', 'baseUrl']);

function optionsKey(options: ts.CompilerOptions): string {
  const kept = Object.entries(options).filter(([name]) => !IRRELEVANT.has(name));
  return JSON.stringify(kept.sort(([a], [b]) => a.localeCompare(b)));
}

function readConfig(path: string): Config {
  const parsed = ts.getParsedCommandLineOfConfigFile(resolve(ROOT, path), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(`${path}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`);
    },
  });
  if (!parsed) throw new Error(`${path} cannot be read`);
  return { path, files: new Set(parsed.fileNames.map((file) => resolve(file))), options: optionsKey(parsed.options) };
}

/** Every `tsc -p <config>` in the Nx projects' typecheck targets. */
function targetConfigs(): string[] {
  const projects = ['apps', 'libs'].flatMap((folder) => readdirSync(join(ROOT, folder)).map((name) => `${folder}/${name}`)).concat(['tools', 'load-tests']);
  return projects.flatMap((project) => {
    let json: { targets?: { typecheck?: { options?: { command?: string } } } };
    try {
      json = JSON.parse(readFileSync(join(ROOT, project, 'project.json'), 'utf8')) as typeof json;
    } catch {
      return [];
    }
    const command = json.targets?.typecheck?.options?.command ?? '';
    return [...command.matchAll(/tsc -p (\S+)/g)].map((match) => match[1]!);
  });
}

/** The files of `target` that no plan config checks with the same options, as "file (config)". */
function uncovered(target: Config, plan: Config[]): string[] {
  const same = plan.filter((config) => config.options === target.options);
  return [...target.files].filter((file) => !same.some((config) => config.files.has(file))).map((file) => `${file.slice(ROOT.length + 1)} (${target.path})`);
}

const planPaths = JSON.parse(readFileSync(join(ROOT, 'tools/typecheck-configs.json'), 'utf8')) as string[];

describe('npm run typecheck', () => {
  const plan = planPaths.map(readConfig);

  it('checks every file of every Nx typecheck target, with that target’s compiler options', () => {
    const targets = targetConfigs();
    expect(targets.length).toBeGreaterThanOrEqual(12);
    expect(targets.flatMap((path) => uncovered(readConfig(path), plan))).toEqual([]);
  });

  it('names a file the plan leaves out, and one it checks with other options', () => {
    const registry = readConfig('apps/registry/tsconfig.json');
    const withoutNode = plan.filter((config) => config.path !== 'tsconfig.node.json');
    expect(uncovered(registry, withoutNode)).toContain('apps/registry/src/cli.ts (apps/registry/tsconfig.json)');
    // The libraries' configs list their own files with other options (verbatimModuleSyntax).
    const sdk = readConfig('libs/sdk/tsconfig.json');
    const asRegistry = { ...sdk, options: registry.options };
    expect(uncovered(asRegistry, plan)).toContain('libs/sdk/src/index.ts (libs/sdk/tsconfig.json)');
  });
});
