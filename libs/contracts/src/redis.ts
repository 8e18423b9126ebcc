import { REVOCATION_KINDS, type RevocationKind } from '@writ/core';
import { z } from 'zod';

/**
 * The messages the registry and the verifiers exchange through the verifiers' Redis (ADR 0008,
 * 0011, 0014, 0017), defined once for both ends. The keys they live under are built by
 * `store-keys` of @writ/core; the Lua scripts both ends run are in @writ/server.
 */

/**
 * A revocation as the registry writes it under each revocation key and announces it on the
 * revocation channel (ADR 0008); a verifier store that records one itself writes the same.
 */
export const RevocationMessageSchema = z.object({
  kind: z.enum(REVOCATION_KINDS as [RevocationKind, ...RevocationKind[]]),
  value: z.string(),
  grantIds: z.array(z.string()),
  expiresAt: z.iso.datetime(),
});

export type RevocationMessage = z.infer<typeof RevocationMessageSchema>;

/** The text of a revocation message: what a revocation key holds and the channel carries. */
export function revocationMessage(revocation: { kind: RevocationKind; value: string; grantIds: string[]; expiresAtMs: number }): string {
  const message: RevocationMessage = { kind: revocation.kind, value: revocation.value, grantIds: revocation.grantIds, expiresAt: new Date(revocation.expiresAtMs).toISOString() };
  return JSON.stringify(message);
}

/**
 * A revocation message read from a key or the channel, with its expiry in epoch ms; undefined
 * when it is not JSON or not a revocation message (the reader ignores it and says so).
 */
export function parseRevocationMessage(text: string): { kind: RevocationKind; value: string; grantIds: string[]; expiresAtMs: number } | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = RevocationMessageSchema.safeParse(json);
  if (!parsed.success) return undefined;
  const { kind, value, grantIds, expiresAt } = parsed.data;
  return { kind, value, grantIds, expiresAtMs: Date.parse(expiresAt) };
}

/** A decision's audit event as it waits in the queue, for the registry's audit chain. */
export interface QueuedDecisionEvent {
  id: string;
  /** JSON of the event: `{ type, actor, subject, grant_id, txn, data }`. */
  body: string;
  /** `allow`, or the denial reason (`revoked:<kind>`) or error code of the decision. */
  outcome: string;
  /**
   * The step-up of the decision: on `approval_required`, the one the human is asked for (new, or
   * the pending one of a retried request); on an allow, the approved one it consumed. The body is
   * written before the store decides, so only the store can name it.
   */
  stepUpId?: string;
  /**
   * On `approval_required`: when that step-up expires at the verifier (epoch ms), so the registry
   * shows the human the real deadline.
   */
  stepUpExpiresAtMs?: number;
}

/**
 * The fields of a queued event in a Redis stream entry, by event member. The decision script
 * (`decide.lua` of the verifier) writes the same names.
 */
export const QUEUED_EVENT_FIELDS = { id: 'id', body: 'body', outcome: 'outcome', stepUpId: 'step_up', stepUpExpiresAtMs: 'step_up_expires_at' } as const;

/** The field-value list of an `XADD` of an event decided outside the script (no step-up). */
export function queuedEventStreamFields(event: Pick<QueuedDecisionEvent, 'id' | 'body' | 'outcome'>): [string, string, string, string, string, string] {
  return [QUEUED_EVENT_FIELDS.id, event.id, QUEUED_EVENT_FIELDS.body, event.body, QUEUED_EVENT_FIELDS.outcome, event.outcome];
}

/**
 * A stream entry (`XRANGE` fields) as the queued event it holds, as the registry appends it. An
 * entry without an id still gets a stable one from its stream and entry id, so reading it twice
 * appends it once, and a state rebuild reading it counts it under the id it has in the chain.
 */
export function queuedEventOfStreamEntry(stream: string, entryId: string, fields: readonly string[]): QueuedDecisionEvent {
  const field = (name: string): string | undefined => {
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
    return undefined;
  };
  const stepUpId = field(QUEUED_EVENT_FIELDS.stepUpId);
  const expires = Number(field(QUEUED_EVENT_FIELDS.stepUpExpiresAtMs));
  return {
    id: field(QUEUED_EVENT_FIELDS.id) ?? `vev_${stream}_${entryId}`,
    body: field(QUEUED_EVENT_FIELDS.body) ?? '',
    outcome: field(QUEUED_EVENT_FIELDS.outcome) ?? 'unknown',
    ...(stepUpId === undefined || stepUpId === '' ? {} : { stepUpId }),
    ...(Number.isSafeInteger(expires) && expires > 0 ? { stepUpExpiresAtMs: expires } : {}),
  };
}

