import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseTrustedLogs, parseTrustedLogsFile, type TrustedLog } from './trusted-logs.js';

/**
 * signed-note §Verifier keys: a key name is non-empty text without spaces, newlines or `+`.
 * tlog-cosignature §Format: it SHOULD be a schema-less URL naming the cosigner.
 */
const KEY_NAME = /^[^\s+]{1,255}$/;

/**
 * The witness's environment. Each variable's `.meta()` description (and `unset`, for one that may
 * be left out) is the configuration table of docs/configuration.md (`npm run docs:config`).
 */
export const witnessEnvSchema = z.object({
  WRIT_WITNESS_DATA_DIR: z
    .string()
    .min(1)
    .default('.data/witness')
    .describe(
      "the witness's Ed25519 key (`witness-key.pem`, made on first start) and the last checkpoint it cosigned for each log (`checkpoints/`): created 0700 (files 0600); the witness refuses to start when the folder is within reach of another account",
    ),
  WRIT_WITNESS_HOST: z.string().min(1).default('127.0.0.1').describe('the address the witness listens on'),
  WRIT_WITNESS_PORT: z.coerce.number().int().min(0).max(65535).default(4200).describe('the port the witness listens on (0: one the system picks)'),
  WRIT_WITNESS_NAME: z
    .string()
    .regex(KEY_NAME, 'must be 1 to 255 characters without spaces or +')
    .default('writ.local/witness')
    .describe("the witness's key name, in its cosignature lines and its vkey (tlog-cosignature: a schema-less URL that names it); changing it changes the vkey"),
  WRIT_WITNESS_LOGS: z
    .string()
    .min(1)
    .optional()
    .meta({
      unset: '`npm start` adds its own registry\'s log; a witness started alone refuses to start',
      description:
        'the logs it witnesses: `<origin> <vkey>` pairs separated by `;` or newlines (a log with two keys is named twice), or the path of a JSON file ending in `.json` holding `[{ "origin": "…", "vkeys": ["…"] }]`; each vkey is a signed-note verifier key of type Ed25519 (`name+hex key id+base64`)',
    }),
});

/** The witness's validated configuration. */
export interface WitnessConfig {
  /** Absolute path of the data folder. */
  dataDir: string;
  host: string;
  port: number;
  /** The key name of its cosignatures. */
  name: string;
  /** The logs it cosigns for, by origin. */
  logs: TrustedLog[];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** A `WRIT_WITNESS_LOGS` value that names a file rather than listing pairs. */
const LOGS_FILE = /^\S+\.json$/;

/**
 * Reads the environment once; a bad value stops start-up with a message naming every wrong
 * variable. `WRIT_WITNESS_LOGS` may be left out only by a caller that adds logs itself (`npm start`).
 */
export function loadWitnessConfig(env: Record<string, string | undefined> = process.env): WitnessConfig {
  const parsed = witnessEnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid witness configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    dataDir: resolve(e.WRIT_WITNESS_DATA_DIR),
    host: e.WRIT_WITNESS_HOST,
    port: e.WRIT_WITNESS_PORT,
    name: e.WRIT_WITNESS_NAME,
    logs: e.WRIT_WITNESS_LOGS === undefined ? [] : logsOf(e.WRIT_WITNESS_LOGS),
  };
}

/** The logs `WRIT_WITNESS_LOGS` names, inline or in a JSON file. */
function logsOf(value: string): TrustedLog[] {
  const trimmed = value.trim();
  try {
    if (LOGS_FILE.test(trimmed)) return parseTrustedLogsFile(jsonFile(trimmed));
    return parseTrustedLogs(trimmed);
  } catch (error) {
    throw new ConfigError(`invalid witness configuration:\n  WRIT_WITNESS_LOGS: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function jsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${path} is not JSON`);
  }
}
