import { parseRevocationMessage } from '@writ/contracts';
import type { GrantStateSnapshot } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { APPROVE_STEP_UP_SCRIPT, approveStepUpKey, defineScript, type LuaScript, RESTORE_GRANT_SCRIPT, restoreGrantCommand } from './scripts.js';

const NOW = 1_700_000_000_000;

describe('the shared Lua scripts', () => {
  it('are read from their files once, with the number of keys the approve script takes', () => {
    expect(APPROVE_STEP_UP_SCRIPT.numberOfKeys).toBe(1);
    expect(APPROVE_STEP_UP_SCRIPT.lua).toContain("redis.call('HSET', KEYS[1], 'status', 'approved')");
    expect(RESTORE_GRANT_SCRIPT.numberOfKeys).toBeUndefined();
    expect(RESTORE_GRANT_SCRIPT.lua).toContain("redis.call('HSET', KEYS[1], 'state', ARGV[5])");
  });

  it('are defined on a client as commands, with their text and key count as read', () => {
    const defined: Record<string, LuaScript> = {};
    const host = { defineCommand: (name: string, definition: LuaScript) => void (defined[name] = definition) };
    defineScript(host, 'approve', APPROVE_STEP_UP_SCRIPT);
    defineScript(host, 'restore', RESTORE_GRANT_SCRIPT);
    expect(defined).toEqual({ approve: { lua: APPROVE_STEP_UP_SCRIPT.lua, numberOfKeys: 1 }, restore: { lua: RESTORE_GRANT_SCRIPT.lua } });
  });

  it('approve a step-up under the grant hash tag', () => {
    expect(approveStepUpKey('writ:', 'grt_1', 'su_1')).toBe('writ:{g:grt_1}:stepup:su_1');
  });
});

describe('restoreGrantCommand', () => {
  const snapshot: GrantStateSnapshot = {
    grantId: 'grt_1',
    uses: 3,
    spentMinor: 12_500,
    rate: [
      { atMs: NOW - 2_000, member: 'a' },
      { atMs: NOW - 1_000, member: 'b' },
    ],
    rateFloorMs: NOW - 60_000,
    proofs: [
      { jkt: 'k1', jti: 'p-live', keepUntilMs: NOW + 5_000 },
      { jkt: 'k1', jti: 'p-gone', keepUntilMs: NOW },
    ],
    revocations: [
      { kind: 'token', value: 'tok_1', expiresAtMs: NOW + 60_000 },
      { kind: 'agent', value: 'agt_old', expiresAtMs: NOW - 1 },
    ],
  };

  it('lays out keys and arguments as restore-grant.lua reads them, leaving out what has expired', () => {
    const { keys, args } = restoreGrantCommand('writ:', snapshot, NOW, 86_400_000);
    expect(keys).toEqual(['writ:{g:grt_1}:counters', 'writ:{g:grt_1}:rate', 'writ:{g:grt_1}:proof:k1:p-live', 'writ:{g:grt_1}:revoked:token:tok_1']);
    expect(args.slice(0, 11)).toEqual(['86400000', '3', '12500', String(NOW - 60_000), String(NOW), '2', String(NOW - 2_000), 'a', String(NOW - 1_000), 'b', '1']);
    expect(args.slice(11, 13)).toEqual(['5000', '60000']);
    expect(args).toHaveLength(14);
  });

  it('writes under a revocation key the message the registry publishes, naming this grant', () => {
    const { args } = restoreGrantCommand('writ:', snapshot, NOW, 86_400_000);
    expect(parseRevocationMessage(args[13]!)).toEqual({ kind: 'token', value: 'tok_1', grantIds: ['grt_1'], expiresAtMs: NOW + 60_000 });
  });

  it('sends an empty rate floor when none was trimmed', () => {
    const { args } = restoreGrantCommand('p:', { ...snapshot, rateFloorMs: undefined, rate: [], proofs: [], revocations: [] }, NOW, 1);
    expect(args).toEqual(['1', '3', '12500', '', String(NOW), '0', '0']);
  });
});
