import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// @writ/contracts runs wherever a wire is spoken, the approval UI's browser pages included: its
// sources import zod, @writ/core and each other, nothing else (no Node built-in, no server code).
const SRC = join(import.meta.dirname, '../src');
const ALLOWED = /^(zod|@writ\/core|\.\/[\w.-]+\.js)$/;

/** The module specifiers a source imports or re-exports, statically or with `import()`. */
function specifiers(file: string, source: string): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) found.push(node.moduleSpecifier.text);
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) found.push(node.arguments[0].text);
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(file, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS));
  return found;
}

describe('libs/contracts stays browser-safe', () => {
  it('imports only zod, @writ/core and its own files in src', () => {
    const files = readdirSync(SRC).filter((name) => name.endsWith('.ts') && !name.endsWith('.spec.ts'));
    expect(files).toContain('human-api.ts');
    const outside = files.flatMap((name) => specifiers(name, readFileSync(join(SRC, name), 'utf8')).filter((module) => !ALLOWED.test(module)).map((module) => `${name}: ${module}`));
    expect(outside).toEqual([]);
  });

  it('would catch a Node built-in, a server library or another app', () => {
    const probe = "import { readFileSync } from 'node:fs';\nimport { DpopNonces } from '@writ/server/dpop-nonces';\nexport * from '../../apps/registry/src/x.js';\nconst m = await import('ioredis');";
    expect(specifiers('probe.ts', probe).filter((module) => !ALLOWED.test(module))).toEqual(['node:fs', '@writ/server/dpop-nonces', '../../apps/registry/src/x.js', 'ioredis']);
  });
});
