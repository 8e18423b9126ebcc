import { z } from 'zod';

/** Days of the week, as the envelope writes them. */
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
/** A day of the week. */
export type Weekday = (typeof WEEKDAYS)[number];

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'time is HH:MM, 00:00 to 23:59');

function isIanaZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * A weekly time window in an IANA time zone. `start` is inclusive, `end` exclusive; a window
 * whose `end` is not after its `start` crosses midnight (`22:00`-`06:00`), and belongs to the day
 * it starts on. `start` equal to `end` means the whole day.
 */
export const TimeWindowSchema = z.strictObject({
  days: z.array(z.enum(WEEKDAYS)).min(1).max(7),
  start: hhmm,
  end: hhmm,
  tz: z.string().min(1).max(64).refine(isIanaZone, 'tz is not a known IANA time zone'),
});

/** A weekly time window. */
export type TimeWindow = z.infer<typeof TimeWindowSchema>;

/**
 * The behavioural envelope (ARCHITECTURE.md): limits the verifier enforces per grant, shared by
 * every token derived from it. Every part is optional; an absent part does not constrain.
 *
 * @example
 * ```ts
 * EnvelopeSchema.parse({
 *   rate: { limit: 60, window_s: 60 },
 *   time_windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '18:00', tz: 'Europe/Paris' }],
 *   amount: { currency: 'EUR', per_request_max: 200, total_max: 500, approval_above: 150 },
 *   max_uses: 100,
 * });
 * ```
 */
export const EnvelopeSchema = z.strictObject({
  rate: z
    .strictObject({
      limit: z.number().int().positive().max(1_000_000),
      window_s: z.number().int().positive().max(86_400),
    })
    .optional(),
  time_windows: z.array(TimeWindowSchema).min(1).max(32).optional(),
  amount: z
    .strictObject({
      currency: z.string().regex(/^[A-Z]{3}$/, 'currency is an ISO 4217 code'),
      per_request_max: z.number().finite().nonnegative().optional(),
      total_max: z.number().finite().nonnegative().optional(),
      approval_above: z.number().finite().nonnegative().optional(),
    })
    .optional(),
  max_uses: z.number().int().positive().max(1_000_000_000).optional(),
});

/** The behavioural envelope. */
export type Envelope = z.infer<typeof EnvelopeSchema>;
