import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// STYLE.md: every public export carries TSDoc with an @example, as jose's does. The public API
// is what src/agent/index.ts re-exports; the modules' other exports are the SDK's own plumbing.
const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src/agent');
const sources = readdirSync(src).filter((f) => f.endsWith('.ts') && f !== 'index.ts');

/** Every name index.ts re-exports, types included (which `import *` does not show). */
function publicNames(): Set<string> {
  const sf = ts.createSourceFile('index.ts', readFileSync(join(src, 'index.ts'), 'utf8'), ts.ScriptTarget.Latest, true);
  const names = new Set<string>();
  for (const statement of sf.statements) {
    if (ts.isExportDeclaration(statement) && statement.exportClause && ts.isNamedExports(statement.exportClause)) {
      for (const element of statement.exportClause.elements) names.add(element.name.text);
    }
  }
  return names;
}

function publicExportsWithoutExample(file: string, names: Set<string>): string[] {
  const sf = ts.createSourceFile(file, readFileSync(join(src, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const missing: string[] = [];
  for (const statement of sf.statements) {
    const exported = ts.canHaveModifiers(statement) && ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    if (!exported) continue;
    const declared = ts.isVariableStatement(statement)
      ? statement.declarationList.declarations.map((d) => d.name.getText(sf))
      : [(statement as ts.DeclarationStatement).name?.getText(sf) ?? '?'];
    const docs = ts.getJSDocCommentsAndTags(statement).map((d) => d.getText(sf)).join('\n');
    if (!docs.includes('@example')) missing.push(...declared.filter((name) => names.has(name)));
  }
  return missing;
}

describe('@writ/sdk/agent public API documentation', () => {
  const names = publicNames();

  it.each(sources)('%s: every public export has TSDoc with an @example', (file) => {
    expect(publicExportsWithoutExample(file, names)).toEqual([]);
  });
});
