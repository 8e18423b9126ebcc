import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

// libs/core must stay free of I/O; the lint configuration is what enforces it. These tests lint
// sources as files of libs/core/src (by path, never written there: other specs read that folder
// while this one runs), so they fail if the rule is ever weakened.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Each forbidden probe: a name, the source linted as a file of libs/core/src, and what lint must say about it. */
const forbidden: [name: string, code: string, message: string][] = [
  ['node_prefix', "import { createHash } from 'node:crypto';\nexport const h = createHash;\n", 'no Node built-in modules'],
  ['bare_builtin', "import { readFileSync } from 'fs';\nexport const r = readFileSync;\n", 'no Node built-in modules'],
  ['framework', "import { Injectable } from '@nestjs/common';\nexport const i = Injectable;\n", 'no framework, database, Redis or HTTP client'],
  ['redis', "import Redis from 'ioredis';\nexport const r = Redis;\n", 'no framework, database, Redis or HTTP client'],
  ['database', "import { DataSource } from 'typeorm';\nexport const d = DataSource;\n", 'no framework, database, Redis or HTTP client'],
  ['process', 'export const env = process.env.X;\n', 'libs/core reads no environment.'],
  ['buffer', "export const b = Buffer.from('x');\n", 'libs/core uses Uint8Array, not Buffer.'],
];
const allowed = "import { base64url } from 'jose';\nimport { z } from 'zod';\nexport const s = z.string();\nexport const e = base64url.encode;\nexport const d = crypto.subtle;\n";

const probeFile = (name: string): string => join(root, 'libs/core/src', `__lint_probe_${name}.ts`);
const probes = new Map<string, string>([...forbidden.map(([name, code]): [string, string] => [name, code]), ['allowed', allowed]]);
/** The no-restricted-* messages lint gave each probe, by probe name. */
const restrictions = new Map<string, string[]>();

// One ESLint instance with the workspace's own configuration lints every probe. Only the boundary
// rules run, so the parser is spared building the TypeScript program the typed rules need (that,
// once per probe, made this file take 13 s); what the boundary rules say does not depend on types.
beforeAll(async () => {
  const eslint = new ESLint({
    cwd: root,
    ruleFilter: ({ ruleId }) => ruleId.startsWith('no-restricted'),
    overrideConfig: { languageOptions: { parserOptions: { projectService: false, project: null } } },
  });
  for (const [name, code] of probes) {
    const [result] = await eslint.lintText(code, { filePath: probeFile(name), warnIgnored: true });
    if (!result) throw new Error(`ESLint did not lint the probe ${name}`);
    restrictions.set(name, result.messages.filter((m) => m.ruleId?.startsWith('no-restricted')).map((m) => m.message));
  }
}, 60_000);

describe('libs/core import boundary', () => {
  it.each(forbidden)('fails lint for a forbidden %s in libs/core/src', (name, _code, message) => {
    expect(restrictions.get(name)!.some((m) => m.includes(message))).toBe(true);
  });

  it('allows jose, zod and Web Crypto', () => {
    expect(restrictions.get('allowed')).toEqual([]);
  });
});
