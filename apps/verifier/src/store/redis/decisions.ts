import { type Clock, type GrantStateSnapshot, grantStateKey, revocationKey, verifierKey } from '@writ/core';
import { defineScript, readLuaScript, RESTORE_GRANT_SCRIPT, restoreGrantCommand } from '@writ/server/redis/scripts';
import { type DecisionInput, type DecisionOutcome, GrantStateMissing, type GrantStateSource, MAX_MINOR, StoreUnavailable } from '../store.js';
import { describe, type RedisConnection, sleep } from './connection.js';
import type { RedisEventQueue } from './event-queue.js';
import { RedisDeadlines } from './redis-clock.js';

/** The whole decision in one script (decide.lua: its header says what it is sent). */
const DECIDE_SCRIPT = readLuaScript(new URL('./decide.lua', import.meta.url));

/** How long a grant's rebuilt state lives without an allow: longer than any grant (ADR 0011). */
const RESTORED_STATE_TTL_MS = 31 * 24 * 3600_000;
/** One restore request per grant per this long, per verifier: decisions retry, the channel need not. */
const RESTORE_REQUEST_EVERY_MS = 1_000;
/** How often a decision waiting for a grant's state looks for it. */
const STATE_POLL_MS = 10;
/** The index in decide.lua's ARGV (from 0 here) of the decision's deadline. */
const DEADLINE_ARG = 13;

interface ScriptCommands {
  writVerifierDecide(numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  writVerifierRestore(numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
}

export interface RedisDecisionsOptions {
  clock: Clock;
  /** Where a grant's lost state comes from (ADR 0017); without it, the registry is asked on the `restore` channel. */
  grantState: GrantStateSource | undefined;
  /** Without `grantState`: how long a decision that found no state waits for the registry to write it. */
  stateWaitMs: number;
}

/**
 * The decision script and the grant state it decides on (one job of the Redis store, ADR 0011 and
 * 0017): builds the script's keys and arguments, runs it in one round trip, reads its answer, and
 * when the grant's state is missing has it rebuilt (from the given source, or by the registry on
 * the `restore` channel) before deciding again; never from zero.
 */
export class RedisDecisions {
  private readonly commands: ScriptCommands;
  private readonly clock: Clock;
  private readonly grantState: GrantStateSource | undefined;
  private readonly stateWaitMs: number;
  /** When each grant's restore was last asked for. */
  private readonly restoreRequests = new Map<string, number>();
  /** Rebuilds in progress (or waits for the registry's), by grant. */
  private readonly rebuilding = new Map<string, Promise<void>>();
  /**
   * Revocation keys by the revocations list: the verifier hands the same list for every decision
   * on one token, so they are built once per token, not per request.
   */
  private readonly revocationKeys = new WeakMap<DecisionInput['revocations'], { grantId: string; keys: string[] }>();
  /** Each decision's deadline on Redis's clock. */
  private readonly deadlines: RedisDeadlines;

  constructor(
    private readonly connection: RedisConnection,
    private readonly prefix: string,
    private readonly events: RedisEventQueue,
    options: RedisDecisionsOptions,
  ) {
    this.clock = options.clock;
    this.grantState = options.grantState;
    this.stateWaitMs = options.stateWaitMs;
    // The script must start early enough for its answer to come back before the verifier gives up.
    this.deadlines = new RedisDeadlines(connection, Math.max(1, connection.timeoutMs - connection.graceMs));
    defineScript(connection.redis, 'writVerifierDecide', DECIDE_SCRIPT);
    defineScript(connection.redis, 'writVerifierRestore', RESTORE_GRANT_SCRIPT);
    this.commands = connection.redis as unknown as ScriptCommands;
  }

  async decide(input: DecisionInput): Promise<DecisionOutcome> {
    checkDecisionInput(input);
    const { keys, args } = this.scriptCall(input);
    let reply = await this.run(keys, args);
    if (isNoState(reply)) {
      // ADR 0017: this Redis lost the grant's state (or never had it). Never decide from zero.
      await this.stateMissing(input.grantId);
      reply = await this.run(keys, args);
      if (isNoState(reply)) throw new GrantStateMissing(input.grantId);
    }
    const outcome = parseDecision(reply, input);
    this.events.noteGrantEvent(input.grantId);
    return outcome;
  }

  /** One run of decide.lua, with a deadline from now (decide.lua's header, "Deadline"). */
  private async run(keys: string[], args: string[]): Promise<unknown> {
    const deadline = this.deadlines.deadline();
    args[DEADLINE_ARG] = String(typeof deadline === 'number' ? deadline : await deadline);
    this.connection.coalesceWrites();
    const reply = await this.connection.runDecision(() => this.commands.writVerifierDecide(keys.length, ...keys, ...args));
    // Every answer ends with Redis's clock when the script ran (decide.lua's header).
    if (Array.isArray(reply) && reply.length >= 2) this.deadlines.observe(Number(reply.pop()));
    if (Array.isArray(reply) && reply[0] === 'late') {
      // Redis took it up after its deadline: the verifier has (or would have) answered 503; nothing counted.
      throw new StoreUnavailable('verifier store: the decision reached Redis after its deadline; nothing was counted');
    }
    return reply;
  }

  /** Stops the clock measurement. */
  close(): void {
    this.deadlines.close();
  }

  async restoreGrant(snapshot: GrantStateSnapshot): Promise<boolean> {
    const { keys, args } = restoreGrantCommand(this.prefix, snapshot, this.clock.now(), RESTORED_STATE_TTL_MS);
    const reply = await this.connection.run('restore grant state', () => this.commands.writVerifierRestore(keys.length, ...keys, ...args));
    return reply === 1;
  }

  /** The keys and arguments of decide.lua for this decision (its header lists them). */
  private scriptCall(input: DecisionInput): { keys: string[]; args: string[] } {
    const { grantId, nowMs, amount } = input;
    const stepUp = amount?.stepUp;
    const p = this.prefix;
    const keys = [
      grantStateKey(p, grantId, 'proof', `${input.proof.jkt}:${input.proof.jti}`),
      grantStateKey(p, grantId, 'counters'),
      grantStateKey(p, grantId, 'rate'),
      grantStateKey(p, grantId, 'events'),
      ...this.revocationKeysOf(grantId, input.revocations),
    ];
    const args = [
      String(Math.max(1, Math.ceil(input.proof.keepUntilMs - nowMs))),
      String(input.stateTtlMs),
      input.event.id,
      input.event.body,
      input.precheck?.code ?? '',
      input.maxUses === undefined ? '' : String(input.maxUses),
      input.rate ? String(input.rate.limit) : '',
      input.rate ? String(nowMs - input.rate.windowMs) : '',
      input.rate ? String(input.rate.windowMs) : '',
      String(nowMs),
      `${nowMs}:${input.proof.jkt}:${input.proof.jti}`,
      amount ? String(amount.minor) : '',
      amount?.totalMaxMinor === undefined ? '' : String(amount.totalMaxMinor),
      // The deadline, set by each run.
      '',
    ];
    if (stepUp) {
      keys.push(grantStateKey(p, grantId, 'stepup-for', stepUp.fingerprint), grantStateKey(p, grantId, 'stepup', stepUp.newId));
      args.push(grantStateKey(p, grantId, 'stepup', ''), stepUp.newId, stepUp.request, String(stepUp.ttlMs), String(nowMs + stepUp.ttlMs));
    }
    return { keys, args };
  }

  private revocationKeysOf(grantId: string, revocations: DecisionInput['revocations']): string[] {
    let ready = this.revocationKeys.get(revocations);
    if (ready === undefined || ready.grantId !== grantId) {
      ready = { grantId, keys: revocations.map((r) => revocationKey(this.prefix, grantId, r.kind, r.value)) };
      this.revocationKeys.set(revocations, ready);
    }
    return ready.keys;
  }

  /**
   * The grant has no state here: rebuild it now when a source was given (then the decision runs
   * again), or ask the registry (at most once a second per grant) and answer 503.
   */
  private async stateMissing(grantId: string): Promise<void> {
    // Decisions that found the state missing together share one rebuild, or one wait.
    let running = this.rebuilding.get(grantId);
    if (running === undefined) {
      const source = this.grantState;
      running = (source === undefined ? this.askAndWait(grantId) : this.rebuild(grantId, source)).finally(() => this.rebuilding.delete(grantId));
      this.rebuilding.set(grantId, running);
    }
    await running;
  }

  /** Rebuilds the grant's state from `source` and writes it. */
  private async rebuild(grantId: string, source: GrantStateSource): Promise<void> {
    let snapshot: GrantStateSnapshot | null;
    try {
      snapshot = await source(grantId, await this.events.pendingEvents(grantId));
    } catch (error) {
      if (error instanceof StoreUnavailable) throw error;
      this.connection.logger.warn(`could not rebuild the state of grant ${grantId}: ${describe(error)}`);
      throw new GrantStateMissing(grantId);
    }
    if (snapshot === null) throw new GrantStateMissing(grantId);
    await this.restoreGrant(snapshot);
  }

  /** Asks the registry for the grant's state (at most once a second) and waits a moment for it. */
  private async askAndWait(grantId: string): Promise<void> {
    const now = this.clock.now();
    const last = this.restoreRequests.get(grantId);
    if (last === undefined || now - last >= RESTORE_REQUEST_EVERY_MS) {
      if (this.restoreRequests.size >= 10_000) this.restoreRequests.clear();
      this.restoreRequests.set(grantId, now);
      await this.connection.run('ask for a restore', () => this.connection.redis.publish(verifierKey(this.prefix, 'restore'), grantId)).catch(() => undefined);
    }
    const counters = grantStateKey(this.prefix, grantId, 'counters');
    const deadline = Date.now() + this.stateWaitMs;
    while (Date.now() < deadline) {
      await sleep(STATE_POLL_MS);
      if ((await this.connection.run('look for the state', () => this.connection.redis.hexists(counters, 'state'))) === 1) return;
    }
    this.connection.logger.warn(`no state for grant ${grantId} in Redis: asked the registry to rebuild it (denying with 503 until then)`);
    throw new GrantStateMissing(grantId);
  }
}

/** Refuses a decision the script could not decide exactly (numbers Lua's doubles or Redis would not take as sent). */
function checkDecisionInput(input: DecisionInput): void {
  checkInteger('nowMs', input.nowMs, 0);
  checkInteger('stateTtlMs', input.stateTtlMs, 1);
  if (input.maxUses !== undefined) checkInteger('maxUses', input.maxUses, 0);
  if (input.rate) {
    checkInteger('rate.limit', input.rate.limit, 0);
    checkInteger('rate.windowMs', input.rate.windowMs, 1);
  }
  const amount = input.amount;
  if (amount) {
    checkInteger('amount.minor', amount.minor, 0, MAX_MINOR);
    if (amount.totalMaxMinor !== undefined) checkInteger('amount.totalMaxMinor', amount.totalMaxMinor, 0, MAX_MINOR);
    if (amount.stepUp) checkInteger('amount.stepUp.ttlMs', amount.stepUp.ttlMs, 1);
  }
}

function checkInteger(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
}

function isNoState(reply: unknown): boolean {
  return Array.isArray(reply) && reply.length === 1 && reply[0] === 'no_state';
}

/** The script's answer as a {@link DecisionOutcome}; anything unexpected is {@link StoreUnavailable}. */
function parseDecision(reply: unknown, input: DecisionInput): DecisionOutcome {
  if (!Array.isArray(reply)) throw garbage(reply);
  const parts = reply as unknown[];
  const tag = parts[0];
  const int = (index: number): number => {
    const value = Number(parts[index]);
    if (!Number.isSafeInteger(value)) throw garbage(reply);
    return value;
  };
  switch (tag) {
    case 'allow': {
      const stepUpId = parts[4];
      return {
        allow: true,
        uses: int(1),
        spentMinor: int(2),
        rateCount: int(3),
        ...(typeof stepUpId === 'string' && stepUpId !== '' ? { stepUpId } : {}),
      };
    }
    case 'replayed':
      return { allow: false, reason: 'replayed' };
    case 'revoked': {
      const revocation = input.revocations[int(1) - 1];
      if (!revocation) throw garbage(reply);
      return { allow: false, reason: 'revoked', kind: revocation.kind, value: revocation.value };
    }
    case 'precheck':
      if (!input.precheck) throw garbage(reply);
      return { allow: false, reason: 'precheck', code: input.precheck.code };
    case 'max_uses':
      return { allow: false, reason: 'max_uses', uses: int(1) };
    case 'rate_limited':
      return { allow: false, reason: 'rate_limited', retryAfterMs: int(1) };
    case 'budget_exceeded':
      return { allow: false, reason: 'budget_exceeded', spentMinor: int(1) };
    case 'approval_required':
      if (typeof parts[1] !== 'string') throw garbage(reply);
      return { allow: false, reason: 'approval_required', stepUpId: parts[1] };
    default:
      throw garbage(reply);
  }
}

function garbage(reply: unknown): StoreUnavailable {
  return new StoreUnavailable(`verifier store: unexpected answer from the decision script: ${JSON.stringify(reply)}`);
}
