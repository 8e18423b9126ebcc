import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CONFIG_TABLES, CONFIGURATION_DOC, renderConfigurationDoc, renderTable, ROOT } from '../config-docs.js';

const doc = readFileSync(resolve(ROOT, CONFIGURATION_DOC), 'utf8');

/** Source files under `path` (a file or a folder), tests and build output left out. */
function sourceFiles(path: string): string[] {
  const absolute = resolve(ROOT, path);
  if (statSync(absolute).isFile()) return [absolute];
  return readdirSync(absolute, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) return [];
    const child = join(path, entry.name);
    if (entry.isDirectory()) return sourceFiles(child);
    return /\.(ts|tsx|mjs|js)$/.test(entry.name) && !/\.spec\./.test(entry.name) ? [resolve(ROOT, child)] : [];
  });
}

/** The variables `source` reads one by one: `process.env.X`, `env.X` or `env['X']`, assignments left out. */
function environmentReads(source: string): Set<string> {
  const reads = new Set<string>();
  for (const match of source.matchAll(/\benv(?:\.([A-Z][A-Z0-9_]*)(?![\w$])|\[['"]([A-Z][A-Z0-9_]*)['"]\])(?!\s*=[^=])/g)) reads.add((match[1] ?? match[2])!);
  return reads;
}

describe('docs/configuration.md', () => {
  it('holds exactly the tables the config schemas generate (run npm run docs:config after changing a schema)', () => {
    expect(renderConfigurationDoc(doc), `${CONFIGURATION_DOC} is out of date: run npm run docs:config`).toBe(doc);
  });

  it('changes when a variable is added to a schema or its default changes', () => {
    const registry = CONFIG_TABLES.find((table) => table.name === 'registry')!;
    const added = { ...registry, schema: registry.schema.extend({ WRIT_NEW_SETTING: z.string().optional().describe('a new setting') }) };
    expect(renderConfigurationDoc(doc, [added])).toContain('| `WRIT_NEW_SETTING` | unset: not used | a new setting |');
    const changed = { ...registry, schema: registry.schema.extend({ WRIT_TOKEN_TTL_S: z.coerce.number().int().min(10).max(3600).default(600).describe("a transaction token's life, in seconds") }) };
    expect(renderConfigurationDoc(doc, [changed])).toContain("| `WRIT_TOKEN_TTL_S` | `600` | a transaction token's life, in seconds; a whole number from 10 to 3600 |");
    expect(renderConfigurationDoc(doc, [changed])).not.toBe(doc);
  });

  it('cannot be generated while a variable has no description', () => {
    expect(() => renderTable(z.object({ WRIT_UNDESCRIBED: z.string().default('x') }))).toThrow('WRIT_UNDESCRIBED has no description');
  });

  it('refuses a document that lacks a table’s markers', () => {
    expect(() => renderConfigurationDoc('# Configuration\n')).toThrow('no <!-- config:registry');
  });

  it('renders the default, what leaving a variable out means, the accepted range and values, and escapes pipes', () => {
    const table = renderTable(
      z.object({
        A_PORT: z.coerce.number().int().min(1).max(65535).default(80).describe('a port'),
        A_MODE: z.enum(['off', 'on']).default('off').describe('a | mode'),
        A_URL: z.string().optional().meta({ unset: 'nothing is sent', description: 'where to send' }),
      }),
    );
    expect(table.split('\n')).toEqual([
      '| variable | default | meaning |',
      '| --- | --- | --- |',
      '| `A_PORT` | `80` | a port; a whole number from 1 to 65535 |',
      '| `A_MODE` | `off` | a \\| mode; one of `off`, `on` |',
      '| `A_URL` | unset: nothing is sent | where to send |',
    ]);
  });
});

describe('the variables the code reads', () => {
  it.each(CONFIG_TABLES)('are all in the $name table', ({ schema, readers }) => {
    const documented = new Set(Object.keys(schema.shape));
    const read = readers.flatMap(sourceFiles).flatMap((file) => [...environmentReads(readFileSync(file, 'utf8'))]);
    expect(read.filter((name) => !documented.has(name))).toEqual([]);
  });

  it.each(CONFIG_TABLES.filter((table) => table.readDirectly))('are the only rows of the $name table, which has no schema of its own to parse with', ({ schema, readers }) => {
    const read = new Set(readers.flatMap(sourceFiles).flatMap((file) => [...environmentReads(readFileSync(file, 'utf8'))]));
    expect(Object.keys(schema.shape).filter((name) => !read.has(name))).toEqual([]);
  });

  it('are found in every way the code reads them, and not where it writes them', () => {
    const source = "const a = process.env.ONE; const b = env.TWO ?? 3; const c = env['THREE']; process.env.WRITTEN = '1'; if (env.FOUR === 'x') {}";
    expect([...environmentReads(source)].sort()).toEqual(['FOUR', 'ONE', 'THREE', 'TWO']);
  });
});
