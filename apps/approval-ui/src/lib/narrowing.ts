import type { Envelope } from '@writ/core';
import type { GrantNarrowing, HumanGrant } from '@writ/contracts';

/*
 * The "Narrow before approving" form, as data: which limits a request lets the human lower, and
 * the `narrowing` object of `POST /me/grants/:id/decision/options` built from what they typed.
 * The registry checks every narrowing again (a narrowed grant must be covered by the request);
 * the checks here only tell the human early, in words, next to the field.
 */

/** The number fields of the form, by name. */
export type LimitName = 'rateLimit' | 'perRequestMax' | 'totalMax' | 'maxUses' | 'durationMinutes';

/** One number field: its label, the requested value it starts at, and what it accepts. */
export interface LimitField {
  name: LimitName;
  label: string;
  requested: number;
  min: number;
  /** Whole numbers only (counts); amounts and minutes may have decimals. */
  integer: boolean;
}

/** What the form holds: one flag per requested capability, and the text of each number field. */
export interface NarrowingInput {
  keep: readonly boolean[];
  values: Readonly<Partial<Record<LimitName, string>>>;
}

/** A message per field that is refused, and `capabilities` when none is kept. */
export type NarrowingErrors = Partial<Record<LimitName | 'capabilities', string>>;

export type NarrowingResult =
  | { ok: true; narrowing: GrantNarrowing | undefined }
  | { ok: false; errors: NarrowingErrors };

type Requested = Pick<HumanGrant, 'authorization_details' | 'envelope' | 'duration_s'>;

/** The labels the form shows; the end-to-end test finds the fields by them. */
export const LIMIT_LABELS: Readonly<Record<LimitName, string>> = {
  rateLimit: 'Requests allowed per window',
  perRequestMax: 'Most per request',
  totalMax: 'Most in total',
  maxUses: 'Most uses',
  durationMinutes: 'Duration in minutes',
};

export const KEEP_ONE_CAPABILITY = 'Keep at least one capability.';

/** The refusal of a value above the requested one. */
export function tooHighMessage(label: string, requested: number): string {
  return `${label} cannot be more than ${requested}, the value requested. You can lower it, not raise it.`;
}

/**
 * The number fields this request has, in form order, each starting at the requested value:
 * only the limits the request sets (a limit it does not set cannot be lowered from nothing),
 * and always the duration.
 */
export function limitFields(grant: Requested): LimitField[] {
  const { envelope } = grant;
  const fields: LimitField[] = [];
  const add = (name: LimitName, requested: number | undefined, min: number, integer: boolean): void => {
    if (requested !== undefined) fields.push({ name, label: LIMIT_LABELS[name], requested, min, integer });
  };
  add('rateLimit', envelope.rate?.limit, 1, true);
  add('perRequestMax', envelope.amount?.per_request_max, 0, false);
  add('totalMax', envelope.amount?.total_max, 0, false);
  add('maxUses', envelope.max_uses, 1, true);
  add('durationMinutes', grant.duration_s / 60, 0, false);
  return fields;
}

/** The form as it starts: every capability kept, every field at the requested value. */
export function initialInput(grant: Requested): NarrowingInput {
  const values: Partial<Record<LimitName, string>> = {};
  for (const field of limitFields(grant)) values[field.name] = String(field.requested);
  return { keep: grant.authorization_details.map(() => true), values };
}

/** The value of one field, or why it is refused. */
function readField(field: LimitField, text: string | undefined): { value: number } | { error: string } {
  const trimmed = (text ?? '').trim();
  const value = trimmed === '' ? Number.NaN : Number(trimmed);
  if (!Number.isFinite(value)) return { error: `${field.label} needs a number.` };
  if (field.integer && !Number.isInteger(value)) return { error: `${field.label} must be a whole number.` };
  if (field.name === 'durationMinutes') {
    // Minutes become whole seconds; the grant must last at least one.
    if (Math.round(value * 60) < 1) return { error: `${field.label} must be more than 0.` };
  } else if (value < field.min) {
    return { error: `${field.label} must be at least ${field.min}.` };
  }
  const tooHigh =
    field.name === 'durationMinutes' ? Math.round(value * 60) > Math.round(field.requested * 60) : value > field.requested;
  if (tooHigh) return { error: tooHighMessage(field.label, field.requested) };
  return { value };
}

/**
 * The `narrowing` to send with an approval, holding only what the human changed:
 * `authorization_details` when a capability was unchecked (the kept ones, unchanged, in the
 * requested order), `envelope` when a limit was lowered (the requested envelope with the lowered
 * numbers, everything else as requested), `duration_s` when the duration was shortened.
 * `undefined` when nothing changed: an approval exactly as requested.
 *
 * Refuses (with a message per field) a value above the requested one, a value that is not a
 * number or is below the field's minimum, and unchecking every capability.
 *
 * @example
 * ```ts
 * buildNarrowing(grant, { keep: [true], values: { maxUses: '10', durationMinutes: '60' } });
 * // { ok: true, narrowing: { envelope: { ...grant.envelope, max_uses: 10 } } }
 * ```
 */
export function buildNarrowing(grant: Requested, input: NarrowingInput): NarrowingResult {
  const errors: NarrowingErrors = {};
  const values: Partial<Record<LimitName, number>> = {};
  for (const field of limitFields(grant)) {
    const read = readField(field, input.values[field.name]);
    if ('error' in read) errors[field.name] = read.error;
    else values[field.name] = read.value;
  }
  const kept = grant.authorization_details.filter((_detail, i) => input.keep[i] !== false);
  if (kept.length === 0) errors.capabilities = KEEP_ONE_CAPABILITY;
  if (Object.keys(errors).length > 0) return { ok: false, errors };

  const narrowing: GrantNarrowing = {};
  if (kept.length < grant.authorization_details.length) narrowing.authorization_details = kept;

  const envelope = lowerEnvelope(grant.envelope, values);
  if (envelope !== undefined) narrowing.envelope = envelope;

  const minutes = values.durationMinutes;
  if (minutes !== undefined) {
    const seconds = Math.round(minutes * 60);
    if (seconds !== grant.duration_s) narrowing.duration_s = seconds;
  }
  return { ok: true, narrowing: Object.keys(narrowing).length === 0 ? undefined : narrowing };
}

/** The requested envelope with the lowered numbers, or `undefined` when none was lowered. */
function lowerEnvelope(requested: Envelope, values: Partial<Record<LimitName, number>>): Envelope | undefined {
  const envelope = structuredClone(requested);
  let changed = false;
  const { rateLimit, perRequestMax, totalMax, maxUses } = values;
  if (envelope.rate !== undefined && rateLimit !== undefined && rateLimit !== envelope.rate.limit) {
    envelope.rate.limit = rateLimit;
    changed = true;
  }
  if (envelope.amount !== undefined) {
    if (perRequestMax !== undefined && perRequestMax !== envelope.amount.per_request_max) {
      envelope.amount.per_request_max = perRequestMax;
      changed = true;
    }
    if (totalMax !== undefined && totalMax !== envelope.amount.total_max) {
      envelope.amount.total_max = totalMax;
      changed = true;
    }
  }
  if (maxUses !== undefined && maxUses !== envelope.max_uses) {
    envelope.max_uses = maxUses;
    changed = true;
  }
  return changed ? envelope : undefined;
}
