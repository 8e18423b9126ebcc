#!/usr/bin/env node
// `npm run check`: the static checks, type-check and lint, in one process that builds each
// TypeScript program once for both. `npm run typecheck` is the type-check alone
// (`node tools/check.mjs --typecheck`); `npm run lint` is ESLint alone (`eslint .`), as an editor runs it.
//
// - Type-check: every TypeScript file of the workspace checked once. Each Nx project's `typecheck`
//   target checks that project with the files it imports, so run one after another they check the
//   registry's sources four times. Here the Node side (the registry, the verifier, the demo, the
//   tools, the browser tests, the load tests, the migrations: one set of compiler options) is one
//   program, tsconfig.node.json, and every other tsconfig (the libraries' stricter import rules, the
//   UI's JSX, k6) is its own; tools/typecheck-configs.json lists them, and
//   tools/test/typecheck-plan.spec.ts fails when a project's typecheck target checks a file that no
//   config there checks with the same options.
// - Lint: ESLint over the workspace (eslint.config.js), its typed rules reading the programs the
//   type-check built and checked (`parserOptions.programs`, in the order of the config's
//   `parserOptions.project`) instead of building their own. Apart, `npm run lint` and a
//   `tsc -p` per config took 250 s of CPU; together 110 s (docs/testing.md).
// - The programs share the parsed files of node_modules (@types/node, NestJS, TypeORM, Next...)
//   where their compiler settings agree (the key TypeScript's language service shares them by).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = 'usage: node tools/check.mjs [--typecheck] [--root <workspace folder>]';
let args;
try {
  args = parseArgs({ options: { typecheck: { type: 'boolean' }, root: { type: 'string' } } }).values;
} catch (error) {
  console.error(`${error.message}\n${USAGE}`);
  process.exit(2);
}
/** The workspace: this one, or (for tools/test/check.spec.ts) another laid out the same way. */
const ROOT = path.resolve(args.root ?? path.join(import.meta.dirname, '..'));
const typecheckOnly = args.typecheck === true;
// Loaded once the arguments are known: a usage error answers at once.
const { default: ts } = await import('typescript');

/** The configs, in the order they are checked (tools/typecheck-configs.json, which the plan's test reads too). */
const TYPECHECK_CONFIGS = JSON.parse(readFileSync(path.join(ROOT, 'tools/typecheck-configs.json'), 'utf8'));

const seconds = (since) => ((performance.now() - since) / 1000).toFixed(1);
const registry = ts.createDocumentRegistry();
/** Parsed files by compiler settings key, file name and parse options. */
const parsed = new Map();

/** A compiler host that hands every program the same parsed file where their settings agree. */
function sharingHost(options) {
  const host = ts.createCompilerHost(options, true);
  const parse = host.getSourceFile.bind(host);
  const settings = registry.getKeyForCompilationSettings(options);
  host.getSourceFile = (fileName, languageVersionOrOptions, onError, shouldCreate) => {
    const how = typeof languageVersionOrOptions === 'object' ? languageVersionOrOptions : { languageVersion: languageVersionOrOptions };
    const key = `${settings}\0${fileName}\0${how.languageVersion}\0${how.impliedNodeFormat}\0${how.jsDocParsingMode}`;
    if (!parsed.has(key)) parsed.set(key, parse(fileName, languageVersionOrOptions, onError, shouldCreate));
    return parsed.get(key);
  };
  return host;
}

const programs = new Map();
function programOf(config) {
  const file = path.resolve(ROOT, config);
  if (!programs.has(file)) {
    const commandLine = ts.getParsedCommandLineOfConfigFile(file, {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(`${config}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`);
      },
    });
    programs.set(
      file,
      ts.createProgram({
        rootNames: commandLine.fileNames,
        options: commandLine.options,
        projectReferences: commandLine.projectReferences,
        configFileParsingDiagnostics: ts.getConfigFileParsingDiagnostics(commandLine),
        host: sharingHost(commandLine.options),
      }),
    );
  }
  return programs.get(file);
}

const formatHost = { getCanonicalFileName: (file) => file, getCurrentDirectory: () => ROOT, getNewLine: () => '\n' };
const failed = [];

for (const config of TYPECHECK_CONFIGS) {
  const started = performance.now();
  const program = programOf(config);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  const files = program.getSourceFiles().filter((file) => !file.fileName.includes('/node_modules/')).length;
  if (diagnostics.length === 0) {
    console.log(`type-check ${config}: ok (${files} files) in ${seconds(started)} s`);
  } else {
    const format = process.stdout.isTTY ? ts.formatDiagnosticsWithColorAndContext : ts.formatDiagnostics;
    console.log(format(diagnostics, formatHost));
    console.log(`type-check ${config}: FAILED, ${diagnostics.length} error(s) (${files} files) in ${seconds(started)} s`);
    failed.push(`type errors in ${config}`);
  }
}

if (!typecheckOnly) {
  const started = performance.now();
  const { ESLint } = await import('eslint');
  const eslint = new ESLint({ cwd: ROOT });
  // The programs the typed rules read, as eslint.config.js names them: the first that holds a file is its.
  const { languageOptions } = await eslint.calculateConfigForFile(path.join(ROOT, 'any.ts'));
  const projects = languageOptions?.parserOptions?.project;
  if (!Array.isArray(projects) || projects.length === 0) throw new Error('eslint.config.js names no parserOptions.project (a list) for the TypeScript files');
  const lint = new ESLint({
    cwd: ROOT,
    overrideConfig: [{ files: ['**/*.ts', '**/*.tsx', '**/*.mts', '**/*.cts'], languageOptions: { parserOptions: { project: null, programs: projects.map(programOf) } } }],
  });
  const results = await lint.lintFiles(['.']);
  const errors = results.reduce((sum, result) => sum + result.errorCount, 0);
  const warnings = results.reduce((sum, result) => sum + result.warningCount, 0);
  if (errors + warnings > 0) console.log(await (await lint.loadFormatter('stylish')).format(results));
  if (errors > 0) failed.push(`${errors} lint error(s)`);
  console.log(`lint: ${errors === 0 ? 'ok' : 'FAILED'} (${results.length} files) in ${seconds(started)} s`);
}

if (failed.length > 0) {
  console.log(failed.join('; '));
  process.exit(1);
}
