import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// STYLE.md: every public export of libs/core carries TSDoc with an @example, as jose's does.
const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src');
const sources = readdirSync(src).filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts') && f !== 'index.ts');

function exportsWithoutExample(file: string): string[] {
  const text = readFileSync(join(src, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const missing: string[] = [];
  for (const statement of sf.statements) {
    const exported = ts.canHaveModifiers(statement) && ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    if (!exported) continue;
    const names = ts.isVariableStatement(statement)
      ? statement.declarationList.declarations.map((d) => d.name.getText(sf))
      : [(statement as ts.DeclarationStatement).name?.getText(sf) ?? '?'];
    const docs = ts.getJSDocCommentsAndTags(statement).map((d) => d.getText(sf)).join('\n');
    if (!docs.includes('@example')) missing.push(...names);
  }
  return missing;
}

describe('libs/core public API documentation', () => {
  it.each(sources)('%s: every export has TSDoc with an @example', (file) => {
    expect(exportsWithoutExample(file)).toEqual([]);
  });
});
