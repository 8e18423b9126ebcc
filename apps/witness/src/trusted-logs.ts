import { parseVerifierKey } from '@writ/core';
import { z } from 'zod';

/** A log the witness cosigns for: its origin line and the verifier keys (vkeys) of its checkpoints. */
export interface TrustedLog {
  origin: string;
  vkeys: string[];
}

/**
 * tlog-checkpoint §Note text: the origin is non-empty and SHOULD hold no spaces; here it also has
 * no other whitespace or control character (it is the first token of a `<origin> <vkey>` pair).
 */
const ORIGIN = /^[^\s\p{Cc}]{1,255}$/u;

/** signed-note §Signature type: 0x01 is Ed25519, the only type a log's own signature uses here. */
const ED25519 = 0x01;

/** How many logs one witness is configured with at most. */
const MAX_LOGS = 1000;
/** How many keys one log may have (key rotation keeps an old one beside a new one for a while). */
const MAX_KEYS_PER_LOG = 8;

const logsFileSchema = z
  .array(z.object({ origin: z.string(), vkeys: z.array(z.string()).min(1).max(MAX_KEYS_PER_LOG) }).strict())
  .min(1)
  .max(MAX_LOGS);

/**
 * The logs of an inline `WRIT_WITNESS_LOGS`: `<origin> <vkey>` pairs separated by `;` or newlines.
 * An origin named twice gets both keys. Throws an Error saying which entry is wrong.
 */
export function parseTrustedLogs(text: string): TrustedLog[] {
  return collect(pairsOf(text));
}

/** The logs of a logs file's parsed JSON (`[{ "origin": …, "vkeys": [...] }]`), checked as {@link parseTrustedLogs}. */
export function parseTrustedLogsFile(json: unknown): TrustedLog[] {
  return collect(filePairsOf(json));
}

function collect(entries: { origin: string; vkey: string }[]): TrustedLog[] {
  const byOrigin = new Map<string, Set<string>>();
  for (const { origin, vkey } of entries) {
    checkOrigin(origin);
    checkLogKey(origin, vkey);
    const keys = byOrigin.get(origin) ?? new Set<string>();
    keys.add(vkey);
    if (keys.size > MAX_KEYS_PER_LOG) throw new Error(`log ${origin} has more than ${MAX_KEYS_PER_LOG} keys`);
    byOrigin.set(origin, keys);
  }
  if (byOrigin.size === 0) throw new Error('names no log');
  if (byOrigin.size > MAX_LOGS) throw new Error(`names more than ${MAX_LOGS} logs`);
  return [...byOrigin].map(([origin, keys]) => ({ origin, vkeys: [...keys] }));
}

function pairsOf(text: string): { origin: string; vkey: string }[] {
  return text
    .split(/[;\n]/)
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry, index) => {
      const parts = entry.split(/\s+/);
      if (parts.length !== 2) throw new Error(`entry ${index + 1} is not "<origin> <vkey>"`);
      return { origin: parts[0]!, vkey: parts[1]! };
    });
}

function filePairsOf(value: unknown): { origin: string; vkey: string }[] {
  const parsed = logsFileSchema.safeParse(value);
  if (!parsed.success) throw new Error('the file must hold [{ "origin": "…", "vkeys": ["…"] }] (1 to 1000 logs, 1 to 8 keys each)');
  return parsed.data.flatMap(({ origin, vkeys }) => vkeys.map((vkey) => ({ origin, vkey })));
}

function checkOrigin(origin: string): void {
  if (!ORIGIN.test(origin)) throw new Error(`origin ${JSON.stringify(origin.slice(0, 64))} must be 1 to 255 characters without whitespace or control characters`);
}

function checkLogKey(origin: string, vkey: string): void {
  let type: number;
  try {
    type = parseVerifierKey(vkey).type;
  } catch {
    throw new Error(`the key of log ${origin} is not a signed-note verifier key (name+hex key id+base64)`);
  }
  if (type !== ED25519) throw new Error(`the key of log ${origin} is not an Ed25519 (type 0x01) verifier key`);
}

/**
 * The logs a running witness trusts, by origin. `npm start` adds its registry's log once the
 * registry has opened (its checkpoint key is made then).
 */
export class TrustedLogs {
  private readonly byOrigin = new Map<string, readonly string[]>();

  constructor(logs: readonly TrustedLog[] = []) {
    for (const log of logs) this.add(log);
  }

  /** Trusts `log`'s keys for its origin (replacing any it had); checked as the configuration is. */
  add(log: TrustedLog): void {
    const [checked] = collect(log.vkeys.map((vkey) => ({ origin: log.origin, vkey })));
    this.byOrigin.set(checked!.origin, Object.freeze([...checked!.vkeys]));
  }

  /** The vkeys of the log with this origin, or undefined for an origin it does not witness. */
  keysOf(origin: string): readonly string[] | undefined {
    return this.byOrigin.get(origin);
  }

  get size(): number {
    return this.byOrigin.size;
  }
}
