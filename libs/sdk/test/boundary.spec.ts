import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as server from '@writ/server';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as sdk from '../src/index.js';

// The SDK is client code: an agent's key and requests, a service's middleware. Server-only code
// (JWS and MAC checks on node:crypto, the DPoP nonce secret file) lives in libs/server, which the
// registry and the verifier import (issue 18). These tests read the import declarations of real
// files with the TypeScript parser, so they fail as soon as one crosses the line.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * What an agent needs from node:crypto to hold and use its own key: generate, import, export,
 * sign, and hash (a JWK thumbprint). Verifying signatures or MACs is the servers' job.
 */
const AGENT_CRYPTO = new Set(['createHash', 'createPrivateKey', 'createPublicKey', 'generateKeyPairSync', 'sign', 'KeyObject', 'JsonWebKey']);
/** The one SDK file that touches the file system: the agent's own key file (`loadOrCreateAgentKey`). */
const AGENT_KEY_FILE = 'libs/sdk/src/agent/key.ts';
const FILE_SYSTEM = new Set(['fs', 'node:fs', 'fs/promises', 'node:fs/promises']);
const CRYPTO = new Set(['crypto', 'node:crypto']);

interface Import {
  module: string;
  /** The names imported or re-exported; `*` for a namespace, a whole-module re-export or a dynamic import. */
  names: string[];
}

/** Every module a source file imports or re-exports, statically or with `import()`, and the names it takes. */
function importsOf(file: string, source: string): Import[] {
  const found: Import[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({ module: node.moduleSpecifier.text, names: namesOf(node) });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      found.push({ module: node.arguments[0].text, names: ['*'] });
    }
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(file, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TSX));
  return found;
}

function namesOf(node: ts.ImportDeclaration | ts.ExportDeclaration): string[] {
  if (ts.isExportDeclaration(node)) {
    if (node.exportClause === undefined || ts.isNamespaceExport(node.exportClause)) return ['*'];
    return node.exportClause.elements.map((e) => (e.propertyName ?? e.name).text);
  }
  const clause = node.importClause;
  if (clause === undefined) return ['*'];
  const names = clause.name ? ['default'] : [];
  if (clause.namedBindings && ts.isNamespaceImport(clause.namedBindings)) names.push('*');
  else if (clause.namedBindings) names.push(...clause.namedBindings.elements.map((e) => (e.propertyName ?? e.name).text));
  return names;
}

/** Why a file of libs/sdk/src may not import this, or `undefined` when it may. */
function sdkImportProblem(file: string, { module, names }: Import): string | undefined {
  const target = module.startsWith('.') ? relative(root, resolve(root, dirname(file), module)) : module;
  if (target === '@writ/server' || target.startsWith('@writ/server/') || target.startsWith('libs/server/')) {
    return `${file} imports server-only code from ${module}`;
  }
  if (FILE_SYSTEM.has(module) && file !== AGENT_KEY_FILE) return `${file} uses the file system (${module}); only the agent's key file may`;
  if (CRYPTO.has(module)) {
    const server = names.filter((name) => !AGENT_CRYPTO.has(name));
    if (server.length > 0) return `${file} imports ${server.join(', ')} from ${module}: the SDK signs with the agent's key, servers verify`;
  }
  return undefined;
}

const SDK_SUBPATHS = new Set(Object.keys((JSON.parse(readFileSync(join(root, 'libs/sdk/package.json'), 'utf8')) as { exports: Record<string, string> }).exports));
const SERVER_NAMES = new Set(Object.keys(server));

/** Why a file outside libs/sdk may not import this, or `undefined` when it may. */
function appImportProblem(file: string, { module, names }: Import): string | undefined {
  if (module !== '@writ/sdk' && !module.startsWith('@writ/sdk/')) return undefined;
  const subpath = `.${module.slice('@writ/sdk'.length)}`;
  if (!SDK_SUBPATHS.has(subpath)) return `${file} imports ${module}, which the SDK does not export (server-only code is @writ/server)`;
  const server = names.filter((name) => SERVER_NAMES.has(name));
  if (server.length > 0) return `${file} imports ${server.join(', ')} from ${module}: server-only code is @writ/server`;
  return undefined;
}

/** The TypeScript files under `dir`, skipping dependencies and build output. */
function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return SKIPPED_DIRECTORIES.has(entry.name) ? [] : sourceFiles(path);
    return /\.(ts|tsx|mts)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}
const SKIPPED_DIRECTORIES = new Set(['node_modules', '.next', 'dist', 'coverage']);

/** The problems `check` finds in the files; only files that name `mention` at all are parsed. */
function problems(files: string[], mention: string, check: (file: string, imported: Import) => string | undefined): string[] {
  return files.flatMap((file) => {
    const source = readFileSync(join(root, file), 'utf8');
    if (!source.includes(mention)) return [];
    return importsOf(file, source).flatMap((imported) => check(file, imported) ?? []);
  });
}

describe('the SDK holds no server-only code', () => {
  it('libs/sdk/src imports neither @writ/server, the file system (but for the agent key file) nor node:crypto verification', () => {
    const files = sourceFiles('libs/sdk/src');
    expect(files).toContain(AGENT_KEY_FILE);
    expect(problems(files, '', sdkImportProblem)).toEqual([]);
  });

  it('exports nothing @writ/server exports', () => {
    expect(SERVER_NAMES.size).toBeGreaterThan(0);
    expect(Object.keys(sdk).filter((name) => SERVER_NAMES.has(name))).toEqual([]);
  });

  it('exports no ./node-crypto or ./dpop-nonces subpath', () => {
    expect([...SDK_SUBPATHS].sort()).toEqual(['.', './agent']);
  });

  it('no app, library, tool or load test imports server-only code from @writ/sdk', () => {
    const files = ['apps', 'libs', 'tools', 'load-tests'].flatMap(sourceFiles).filter((file) => !file.startsWith('libs/sdk/'));
    expect(files).toContain('apps/verifier/src/verifier.ts');
    expect(problems(files, '@writ/sdk', appImportProblem)).toEqual([]);
  });
});

describe('the boundary checks catch what they are for', () => {
  const sdkProblems = (file: string, source: string): string[] => importsOf(file, source).flatMap((i) => sdkImportProblem(file, i) ?? []);
  const appProblems = (source: string): string[] => importsOf('apps/x/src/a.ts', source).flatMap((i) => appImportProblem('apps/x/src/a.ts', i) ?? []);

  it.each([
    ["import { DpopNonces } from '@writ/server/dpop-nonces';"],
    ["export * from '@writ/server';"],
    ["import { verifyJws } from '../../../server/src/node-crypto.js';"],
    ["const m = await import('@writ/server/node-crypto');"],
    ["import { readFileSync } from 'node:fs';"],
    ["import { writeFile } from 'fs/promises';"],
    ["import { createHmac } from 'node:crypto';"],
    ["import { sign, verify } from 'crypto';"],
    ["import * as crypto from 'node:crypto';"],
  ])('refuses %s in libs/sdk/src', (source) => {
    expect(sdkProblems('libs/sdk/src/agent/agent.ts', source)).toHaveLength(1);
  });

  it("allows the agent's key file its file system and signing imports", () => {
    const source = "import { createHash, createPrivateKey, type KeyObject, sign } from 'node:crypto';\nimport { chmod, readFile } from 'node:fs/promises';\nimport { z } from 'zod';";
    expect(sdkProblems(AGENT_KEY_FILE, source)).toEqual([]);
  });

  it.each([
    ["import { nodeSignatureVerifier } from '@writ/sdk/node-crypto';"],
    ["import type { DpopNonces } from '@writ/sdk/dpop-nonces';"],
    ["import { verifyJws, writVerifier } from '@writ/sdk';"],
    ["export { DpopNonces } from '@writ/sdk';"],
  ])('refuses %s in an app', (source) => {
    expect(appProblems(source)).toHaveLength(1);
  });

  it('allows the SDK to apps and server-only code from @writ/server', () => {
    expect(appProblems("import { writVerifier } from '@writ/sdk';\nimport { WritAgent } from '@writ/sdk/agent';\nimport { verifyJws } from '@writ/server/node-crypto';")).toEqual([]);
  });
});
