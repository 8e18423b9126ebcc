import { type Clock, type GrantStateSnapshot, PROOF_REPLAY_WINDOW_MS, RATE_HISTORY_MS, RATE_RESTORE_MAX } from '@writ/core';
import type { QueuedVerifierEvent } from '../audit/redis-verifier-events.js';
import type { GrantStateRepository } from './grant-state.repository.js';

/** Token events: who holds each token of a grant, in which txn (as RevocationRecorder reads them). */
const TOKEN_EVENTS = ['token.issued', 'token.delegated'];
/** Every decision event, the unrecordable ones too: an allow the chain could not hold was still charged (ADR 0016). */
const DECISION_EVENTS = ['verification.allowed', 'verification.denied', 'verification.unrecordable'];

/** A decision as the fold needs it: from the chain or from the queue. */
interface Decision {
  allowed: boolean;
  atMs: number;
  proofJkt: string | undefined;
  proofJti: string | undefined;
  chargedMinor: number;
  id: string;
}

/**
 * Rebuilds one grant's verifier state from the registry's durable record (docs/adr/0017): the
 * audit chain's decisions on the grant, plus the decisions still waiting in the verifiers' queue
 * (`pending`, read by the caller BEFORE this runs: a decision acked into the chain between the
 * two reads is then seen in the chain, and one seen in both counts once, by its id).
 *
 * - `uses` and `spentMinor`: every allow, and its `charged_minor` (what the store added);
 * - the rate log: the allows of the last {@link RATE_HISTORY_MS}, at the decision's own time;
 * - proof replay: every decision's proof of the last {@link PROOF_REPLAY_WINDOW_MS};
 * - revocations: every unexpired one that names the grant, one of its txns or tokens, or an
 *   agent that acts in it (the same rule as RevocationRecorder.affectedGrants).
 */
export class GrantStateReader {
  private readonly repository: GrantStateRepository;
  private readonly clock: Clock;

  constructor(options: { repository: GrantStateRepository; clock: Clock }) {
    this.repository = options.repository;
    this.clock = options.clock;
  }

  /** Whether the grant exists: a state is only ever made for one. */
  exists(grantId: string): Promise<boolean> {
    return this.repository.grantExists(grantId);
  }

  /** The live grants (approved and unexpired): those a lost store must get back first. */
  liveGrants(): Promise<string[]> {
    return this.repository.liveGrants(new Date(this.clock.now()));
  }

  async snapshot(grantId: string, pending: readonly QueuedVerifierEvent[] = []): Promise<GrantStateSnapshot> {
    const now = this.clock.now();
    const totals = await this.repository.allowedTotals(grantId);
    // Only the rate history's window is read back: older decisions matter through the totals.
    const recent = await this.repository.decisionsSince(grantId, DECISION_EVENTS, new Date(now - RATE_HISTORY_MS));
    const inChain = await this.repository.idsInChain(pending.map((e) => e.id));

    let { uses, spentMinor } = totals;
    const decisions: Decision[] = recent.map((row) => decisionOf(row.id, row.allowed, row.data, Date.parse(row.at)));
    for (const event of pending) {
      if (inChain.has(event.id)) continue;
      const body = parseObject(event.body);
      if (body === undefined || body.grant_id !== grantId) continue;
      const data = parseObjectValue(body.data) ?? {};
      const decision = decisionOf(event.id, event.outcome === 'allow', data, now);
      if (decision.allowed) {
        uses += 1;
        spentMinor += decision.chargedMinor;
      }
      decisions.push(decision);
    }

    const rate: GrantStateSnapshot['rate'] = [];
    const proofs: GrantStateSnapshot['proofs'] = [];
    for (const d of decisions) {
      if (d.allowed && d.atMs > now - RATE_HISTORY_MS) rate.push({ atMs: d.atMs, member: `${d.atMs}:${d.proofJkt ?? ''}:${d.proofJti ?? d.id}` });
      const keepUntilMs = d.atMs + PROOF_REPLAY_WINDOW_MS;
      if (d.proofJkt !== undefined && d.proofJti !== undefined && keepUntilMs > now) proofs.push({ jkt: d.proofJkt, jti: d.proofJti, keepUntilMs });
    }
    rate.sort((a, b) => a.atMs - b.atMs);
    const snapshot: GrantStateSnapshot = { grantId, uses, spentMinor, rate, proofs, revocations: await this.repository.revocationsFor(grantId, TOKEN_EVENTS, new Date(now)) };
    if (rate.length > RATE_RESTORE_MAX) {
      snapshot.rateFloorMs = rate[rate.length - RATE_RESTORE_MAX - 1]!.atMs;
      snapshot.rate = rate.slice(-RATE_RESTORE_MAX);
    }
    return snapshot;
  }
}

function decisionOf(id: string, allowed: boolean, data: Record<string, unknown>, fallbackAtMs: number): Decision {
  const atMs = typeof data.at_ms === 'number' && Number.isSafeInteger(data.at_ms) ? data.at_ms : fallbackAtMs;
  const charged = typeof data.charged_minor === 'number' && Number.isSafeInteger(data.charged_minor) && data.charged_minor >= 0 ? data.charged_minor : 0;
  return {
    id,
    allowed,
    atMs,
    proofJkt: typeof data.proof_jkt === 'string' ? data.proof_jkt : undefined,
    proofJti: typeof data.proof_jti === 'string' ? data.proof_jti : undefined,
    chargedMinor: charged,
  };
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    return parseObjectValue(JSON.parse(text));
  } catch {
    return undefined;
  }
}

function parseObjectValue(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
