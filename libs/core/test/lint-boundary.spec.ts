import { unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { afterAll, describe, expect, it } from 'vitest';

// libs/core must stay free of I/O; the lint configuration is what enforces it. These tests lint
// real files placed in libs/core/src, so they fail if the rule is ever weakened.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const probes: string[] = [];

async function lintCoreSource(name: string, code: string): Promise<string[]> {
  const file = join(root, 'libs/core/src', `__lint_probe_${name}.ts`);
  writeFileSync(file, code);
  probes.push(file);
  const eslint = new ESLint({ cwd: root });
  const [result] = await eslint.lintFiles([file]);
  return (result?.messages ?? []).filter((m) => m.ruleId?.startsWith('no-restricted')).map((m) => m.message);
}

afterAll(() => probes.forEach((file) => unlinkSync(file)));

describe('libs/core import boundary', () => {
  it.each([
    ['node_prefix', "import { createHash } from 'node:crypto';\nexport const h = createHash;\n", 'no Node built-in modules'],
    ['bare_builtin', "import { readFileSync } from 'fs';\nexport const r = readFileSync;\n", 'no Node built-in modules'],
    ['framework', "import { Injectable } from '@nestjs/common';\nexport const i = Injectable;\n", 'no framework, database, Redis or HTTP client'],
    ['redis', "import Redis from 'ioredis';\nexport const r = Redis;\n", 'no framework, database, Redis or HTTP client'],
    ['database', "import { DataSource } from 'typeorm';\nexport const d = DataSource;\n", 'no framework, database, Redis or HTTP client'],
    ['process', 'export const env = process.env.X;\n', 'libs/core reads no environment.'],
    ['buffer', "export const b = Buffer.from('x');\n", 'libs/core uses Uint8Array, not Buffer.'],
  ])('fails lint for a forbidden %s in libs/core/src', async (name, code, message) => {
    const messages = await lintCoreSource(name, code);
    expect(messages.some((m) => m.includes(message))).toBe(true);
  }, 30_000);

  it('allows jose, zod and Web Crypto', async () => {
    const messages = await lintCoreSource(
      'allowed',
      "import { base64url } from 'jose';\nimport { z } from 'zod';\nexport const s = z.string();\nexport const e = base64url.encode;\nexport const d = crypto.subtle;\n",
    );
    expect(messages).toEqual([]);
  }, 30_000);
});
