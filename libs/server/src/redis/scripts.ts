import { readFileSync } from 'node:fs';
import { revocationMessage } from '@writ/contracts';
import { type GrantStateSnapshot, grantStateKey, revocationKey } from '@writ/core';

/**
 * The Lua scripts of the verifiers' Redis, each in its `.lua` file, read once when this module is
 * loaded. A client defines each once as a command (ioredis' `defineCommand`: EVALSHA of the
 * script's SHA-1, and EVAL only when Redis answers NOSCRIPT), so a call sends the SHA-1, never the
 * script text, and nothing is rebuilt per call.
 */

/** A Lua script and, when fixed, how many of a call's arguments are keys. */
export interface LuaScript {
  readonly lua: string;
  readonly numberOfKeys?: number;
}

/** What ioredis' `Redis` and `Cluster` offer to define a script as a command. */
export interface ScriptHost {
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
}

/** Reads a `.lua` file (a `file:` URL, usually `new URL('./x.lua', import.meta.url)`): call once, at module load. */
export function readLuaScript(file: URL, numberOfKeys?: number): LuaScript {
  const lua = readFileSync(file, 'utf8');
  return numberOfKeys === undefined ? { lua } : { lua, numberOfKeys };
}

/** Defines `script` on the client as the command `name`. */
export function defineScript(host: ScriptHost, name: string, script: LuaScript): void {
  host.defineCommand(name, script.numberOfKeys === undefined ? { lua: script.lua } : { lua: script.lua, numberOfKeys: script.numberOfKeys });
}

/** Flips a pending step-up to approved (approve-step-up.lua); KEYS: the step-up hash. Answers 1 when it did. */
export const APPROVE_STEP_UP_SCRIPT = readLuaScript(new URL('./approve-step-up.lua', import.meta.url), 1);

/** Writes a grant's rebuilt state where it is absent (restore-grant.lua, ADR 0017); arguments from {@link restoreGrantCommand}. */
export const RESTORE_GRANT_SCRIPT = readLuaScript(new URL('./restore-grant.lua', import.meta.url));

/** The key of a step-up, the one argument of {@link APPROVE_STEP_UP_SCRIPT}. */
export function approveStepUpKey(prefix: string, grantId: string, stepUpId: string): string {
  return grantStateKey(prefix, grantId, 'stepup', stepUpId);
}

/**
 * The keys and arguments of {@link RESTORE_GRANT_SCRIPT} for one snapshot, at `nowMs` (what has
 * expired by then is left out). A revocation key holds the revocation message (ADR 0008).
 */
export function restoreGrantCommand(prefix: string, snapshot: GrantStateSnapshot, nowMs: number, stateTtlMs: number): { keys: string[]; args: string[] } {
  const g = snapshot.grantId;
  const proofs = snapshot.proofs.filter((p) => p.keepUntilMs > nowMs);
  const revocations = snapshot.revocations.filter((r) => r.expiresAtMs > nowMs);
  const keys = [
    grantStateKey(prefix, g, 'counters'),
    grantStateKey(prefix, g, 'rate'),
    ...proofs.map((p) => grantStateKey(prefix, g, 'proof', `${p.jkt}:${p.jti}`)),
    ...revocations.map((r) => revocationKey(prefix, g, r.kind, r.value)),
  ];
  const args = [
    String(stateTtlMs),
    String(snapshot.uses),
    String(snapshot.spentMinor),
    snapshot.rateFloorMs === undefined ? '' : String(snapshot.rateFloorMs),
    String(nowMs),
    String(snapshot.rate.length),
  ];
  for (const entry of snapshot.rate) args.push(String(entry.atMs), entry.member);
  args.push(String(proofs.length));
  for (const p of proofs) args.push(String(Math.max(1, p.keepUntilMs - nowMs)));
  for (const r of revocations) {
    args.push(String(Math.max(1, r.expiresAtMs - nowMs)), revocationMessage({ kind: r.kind, value: r.value, grantIds: [g], expiresAtMs: r.expiresAtMs }));
  }
  return { keys, args };
}
