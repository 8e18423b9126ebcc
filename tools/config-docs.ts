/**
 * `npm run docs:config`: writes the configuration tables of docs/configuration.md from the zod
 * schemas that read the environment, each between `<!-- config:<name> … -->` and
 * `<!-- /config:<name> -->`. `npm run docs:config -- --check` only says whether the file is up
 * to date (exit 1 when it is not); tools/test/config-docs.spec.ts fails on the same condition.
 *
 * A variable's row comes from its schema: the description (`.describe()`, or `.meta()` with an
 * `unset` text saying what leaving it out means), the default, and the accepted range or values.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { registryEnvSchema } from '../apps/registry/src/config/config.js';
import { verifierEnvSchema } from '../apps/verifier/src/config.js';
import { witnessEnvSchema } from '../apps/witness/src/config.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const CONFIGURATION_DOC = 'docs/configuration.md';

const port = (fallback: number) => z.coerce.number().int().min(1).max(65535).default(fallback);

/**
 * What `npm start` (tools/start.ts) reads itself, before handing the whole environment to the
 * registry's and the verifier's schemas. It has no schema of its own to parse with, so this one
 * is checked against the variables the file reads (tools/test/config-docs.spec.ts).
 */
export const startEnvSchema = z.object({
  UI_PORT: port(3000).describe("the approval UI's port; its origin `http://localhost:<UI_PORT>` is the default `WRIT_UI_ORIGINS`"),
  REGISTRY_HOST: registryEnvSchema.shape.REGISTRY_HOST.describe('as for the registry; also makes the default `WRIT_ISSUER`, `http://<REGISTRY_HOST>:<REGISTRY_PORT>`'),
  REGISTRY_PORT: registryEnvSchema.shape.REGISTRY_PORT.describe('as for the registry; also makes the default `WRIT_ISSUER`'),
});

/** What the approval UI's server (`npm run start:ui`) and its `/api/*` proxy read. */
export const approvalUiEnvSchema = z.object({
  UI_PORT: port(3000).describe('the port the approval UI listens on'),
  UI_HOST: z
    .string()
    .default('localhost')
    .describe("the host name it listens on; WebAuthn needs the page's origin to match the registry's `WRIT_RP_ID` and `WRIT_UI_ORIGINS`"),
  WRIT_REGISTRY_URL: z.string().default('http://127.0.0.1:4000').describe('where its `/api/*` proxy sends requests (the registry), read at each request'),
});

/** What `npm run demo` reads: where Writ answers and how to reach the operator API. */
export const demoEnvSchema = z.object({
  WRIT_REGISTRY_URL: z.string().optional().meta({ unset: '`http://127.0.0.1:<REGISTRY_PORT>`', description: 'the registry' }),
  WRIT_VERIFIER_URL: z.string().optional().meta({ unset: '`http://127.0.0.1:<VERIFIER_PORT>`', description: 'the verifier its example service providers call' }),
  WRIT_UI_URL: z.string().optional().meta({ unset: '`http://localhost:<UI_PORT>`', description: 'the approval UI' }),
  REGISTRY_PORT: port(4000).describe('the port in the default `WRIT_REGISTRY_URL`'),
  VERIFIER_PORT: port(4100).describe('the port in the default `WRIT_VERIFIER_URL`'),
  UI_PORT: port(3000).describe('the port in the default `WRIT_UI_URL`'),
  WRIT_OPERATOR_TOKEN: z
    .string()
    .optional()
    .meta({ unset: 'read from `<WRIT_DATA_DIR>/keys/operator-token`', description: "the registry's operator token, to register the example providers and mint enrollment tokens" }),
  WRIT_DATA_DIR: z.string().default('.data').describe('the folder `npm start` uses, where the operator token is read from'),
  CHROMIUM_PATH: z
    .string()
    .optional()
    .meta({ unset: '`/usr/bin/chromium`, then `/usr/bin/chromium-browser`', description: 'the Chromium that `--headless` drives (never downloaded)' }),
});

/** One generated table: its marker name, its schema, and where the variables are read. */
export interface ConfigTable {
  name: string;
  schema: z.ZodObject;
  /** The file that defines the schema, named in the marker. */
  definedIn: string;
  /** Files and folders (relative to the repository) whose direct environment reads the table must cover. */
  readers: string[];
  /** True when the readers read the environment one variable at a time: each row must be read there too. */
  readDirectly: boolean;
}

export const CONFIG_TABLES: ConfigTable[] = [
  { name: 'registry', schema: registryEnvSchema, definedIn: 'apps/registry/src/config/config.ts', readers: ['apps/registry/src'], readDirectly: false },
  { name: 'verifier', schema: verifierEnvSchema, definedIn: 'apps/verifier/src/config.ts', readers: ['apps/verifier/src'], readDirectly: false },
  { name: 'witness', schema: witnessEnvSchema, definedIn: 'apps/witness/src/config.ts', readers: ['apps/witness/src'], readDirectly: false },
  { name: 'start', schema: startEnvSchema, definedIn: 'tools/config-docs.ts', readers: ['tools/start.ts'], readDirectly: true },
  { name: 'approval-ui', schema: approvalUiEnvSchema, definedIn: 'tools/config-docs.ts', readers: ['apps/approval-ui/server.mjs', 'apps/approval-ui/src'], readDirectly: true },
  { name: 'demo', schema: demoEnvSchema, definedIn: 'tools/config-docs.ts', readers: ['apps/demo/src', 'apps/approval-ui/e2e/support/browser.ts'], readDirectly: true },
];

/** What a variable's schema says, wrappers (optional, default, transform pipes) taken off. */
interface VariableFacts {
  description: string | undefined;
  unset: string | undefined;
  optional: boolean;
  defaultValue: unknown;
  base: z.ZodType;
}

function factsOf(schema: z.ZodType): VariableFacts {
  const meta = schema.meta() ?? {};
  const facts: VariableFacts = {
    description: typeof meta.description === 'string' ? meta.description : undefined,
    unset: typeof meta.unset === 'string' ? meta.unset : undefined,
    optional: false,
    defaultValue: undefined,
    base: schema,
  };
  let current: z.ZodType = schema;
  for (;;) {
    if (current instanceof z.ZodOptional) {
      facts.optional = true;
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodDefault) {
      facts.defaultValue ??= current.def.defaultValue;
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      // `.default(...).transform(...).pipe(...)`: what the environment holds is the input side.
      current = current.in as z.ZodType;
    } else {
      facts.base = current;
      return facts;
    }
  }
}

/** What values are accepted, when the schema says it more precisely than the description. */
function accepted(base: z.ZodType): string | undefined {
  if (base instanceof z.ZodNumber) {
    const kind = base.isInt ? 'a whole number' : 'a number';
    const { minValue: min, maxValue: max } = base;
    const finite = (n: number | null): n is number => n !== null && Number.isFinite(n) && Math.abs(n) < Number.MAX_SAFE_INTEGER;
    if (finite(min) && finite(max)) return `${kind} from ${min} to ${max}`;
    if (finite(min)) return `${kind}, at least ${min}`;
    if (finite(max)) return `${kind}, at most ${max}`;
    return kind;
  }
  if (base instanceof z.ZodEnum) return `one of ${base.options.map((o) => `\`${String(o)}\``).join(', ')}`;
  return undefined;
}

const cell = (text: string) => text.replace(/\|/g, '\\|');

/** A default as the environment would hold it. */
const shown = (value: unknown) => (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value));

/** One Markdown table row per variable of `schema`; throws on a variable with no description. */
export function renderTable(schema: z.ZodObject): string {
  const rows = Object.entries(schema.shape).map(([name, variable]) => {
    const facts = factsOf(variable as z.ZodType);
    if (facts.description === undefined) throw new Error(`${name} has no description: add .describe() or .meta({ description }) to its schema`);
    const byDefault =
      facts.defaultValue !== undefined ? `\`${shown(facts.defaultValue)}\`` : facts.optional ? `unset: ${facts.unset ?? 'not used'}` : 'required';
    const accepts = accepted(facts.base);
    const meaning = accepts === undefined ? facts.description : `${facts.description}; ${accepts}`;
    return `| \`${name}\` | ${cell(byDefault)} | ${cell(meaning)} |`;
  });
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** `text` with every table's block regenerated; throws when a table's markers are missing. */
export function renderConfigurationDoc(text: string, tables: readonly ConfigTable[] = CONFIG_TABLES): string {
  let rendered = text;
  for (const table of tables) {
    const block = new RegExp(`<!-- config:${table.name} [^>]*-->[\\s\\S]*?<!-- /config:${table.name} -->`);
    if (!block.test(rendered)) throw new Error(`${CONFIGURATION_DOC} has no <!-- config:${table.name} … --> … <!-- /config:${table.name} --> block`);
    const generated = [
      `<!-- config:${table.name} (generated by npm run docs:config from ${table.definedIn}: edit the schema, not this table) -->`,
      renderTable(table.schema),
      `<!-- /config:${table.name} -->`,
    ].join('\n');
    rendered = rendered.replace(block, () => generated);
  }
  return rendered;
}

function main(args: string[]): number {
  const path = resolve(ROOT, CONFIGURATION_DOC);
  const current = readFileSync(path, 'utf8');
  const rendered = renderConfigurationDoc(current);
  if (args.includes('--check')) {
    if (rendered === current) return 0;
    console.error(`${CONFIGURATION_DOC} is out of date with the config schemas: run npm run docs:config`);
    return 1;
  }
  if (rendered !== current) writeFileSync(path, rendered);
  console.log(rendered === current ? `${CONFIGURATION_DOC} is up to date` : `${CONFIGURATION_DOC} written`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
