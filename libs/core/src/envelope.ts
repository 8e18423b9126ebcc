import { z } from 'zod';
import {
  ApprovalRequired,
  BudgetExceeded,
  InvalidAuthorizationDetails,
  InvalidRequest,
  OutsideTimeWindow,
  RateLimited,
} from './errors.js';

/**
 * Days of the week, as the envelope writes them, Monday first (ISO 8601).
 *
 * @example
 * ```ts
 * WEEKDAYS.indexOf('sat'); // 5
 * ```
 */
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
/**
 * A day of the week.
 *
 * @example
 * ```ts
 * const weekend: Weekday[] = ['sat', 'sun'];
 * ```
 */
export type Weekday = (typeof WEEKDAYS)[number];

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'time is HH:MM, 00:00 to 23:59');

function resolvedZone(tz: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

const ETC_OFFSET = /^Etc\/GMT([+-])(\d{1,2})$/i;

/**
 * Why `tz` may not name a time window's zone, or undefined when it may. A zone is a place
 * (`Area/City`, or UTC): `Etc/GMT+5` reads as UTC+5 but means UTC-05:00 (POSIX signs are
 * inverted), and abbreviations (`EST`, `CET`) and other names without an area say nothing a
 * person can check (`EST` is UTC-05:00 all year, not New York's time). ADR 0019.
 *
 * @example
 * ```ts
 * timeZoneProblem('Europe/Paris'); // undefined
 * timeZoneProblem('Etc/GMT+5'); // 'Etc/GMT+5 means UTC-05:00; name a city zone (Area/City, such as America/Bogota)'
 * ```
 */
export function timeZoneProblem(tz: string): string | undefined {
  const resolved = resolvedZone(tz);
  // Not echoed: the sentence travels as an OAuth error_description, ASCII only (RFC 6749 §5.2),
  // and an unknown zone can hold anything. A zone Intl knows is ASCII.
  if (resolved === undefined) return 'tz is not a known IANA time zone';
  if (resolved === 'UTC') return undefined;
  const etc = ETC_OFFSET.exec(tz);
  if (etc !== null) {
    // POSIX: GMT+5 is five hours west of Greenwich, so its offset has the opposite sign. ASCII
    // minus: the sentence travels as an OAuth error_description (RFC 6749 §5.2: %x20-7E).
    const sign = etc[1] === '+' ? '-' : '+';
    return `${tz} means UTC${sign}${etc[2]!.padStart(2, '0')}:00; name a city zone (Area/City, such as America/Bogota)`;
  }
  if (!tz.includes('/') || /^Etc\//i.test(resolved)) {
    return `${tz} is an abbreviation or legacy name, not a place; name a city zone (Area/City, such as America/New_York)`;
  }
  return undefined;
}

/**
 * The canonical spelling of a time zone Intl knows: `europe/PARIS` is `Europe/Paris`, a link
 * such as `US/Eastern` its zone (`America/New_York`), `Etc/UTC` and `GMT` are `UTC`. A zone Intl
 * does not know comes back unchanged.
 *
 * @example
 * ```ts
 * canonicalTimeZone('europe/PARIS'); // 'Europe/Paris'
 * ```
 */
export function canonicalTimeZone(tz: string): string {
  return resolvedZone(tz) ?? tz;
}

/**
 * Largest amount an envelope or a request may state. Amounts are compared in thousandths
 * ({@link toMinorUnits}); this bound keeps a budget plus a request below 2^53 thousandths, so the
 * comparison stays exact.
 *
 * @example
 * ```ts
 * EnvelopeSchema.safeParse({ amount: { currency: 'EUR', total_max: AMOUNT_MAX * 10 } }).success; // false
 * ```
 */
export const AMOUNT_MAX = 1_000_000_000_000;

const amountValue = z.number().finite().nonnegative().max(AMOUNT_MAX);

/**
 * A weekly time window in an IANA time zone, named by a place or UTC (see {@link timeZoneProblem})
 * and given back in its canonical spelling ({@link canonicalTimeZone}). `start` is inclusive, `end` exclusive; a window
 * whose `end` is not after its `start` crosses midnight (`22:00`-`06:00`), and belongs to the day
 * it starts on. `start` equal to `end` means the whole day. Windows are read on the local wall
 * clock of the instant, so on a daylight-saving change a window keeps its local hours.
 *
 * @example
 * ```ts
 * // Friday and Saturday nights, 22:00 to 06:00 the next morning, Paris time.
 * TimeWindowSchema.parse({ days: ['fri', 'sat'], start: '22:00', end: '06:00', tz: 'Europe/Paris' });
 * ```
 */
export const TimeWindowSchema = z.strictObject({
  days: z.array(z.enum(WEEKDAYS)).min(1).max(7),
  start: hhmm,
  end: hhmm,
  // Checked, then stored and signed in its canonical spelling, so the screen, the approval
  // document and the narrowing comparison (which groups windows by zone) all read one name.
  tz: z
    .string()
    .min(1)
    .max(64)
    .superRefine((tz, ctx) => {
      const problem = timeZoneProblem(tz);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, abort: true });
    })
    .overwrite(canonicalTimeZone),
});

/**
 * A weekly time window.
 *
 * @example
 * ```ts
 * const officeHours: TimeWindow = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '18:00', tz: 'Europe/Paris' };
 * ```
 */
export type TimeWindow = z.infer<typeof TimeWindowSchema>;

/**
 * The behavioural envelope (ARCHITECTURE.md): limits the verifier enforces per grant, shared by
 * every token derived from it. Every part is optional. An absent `rate`, `time_windows` or
 * `max_uses` does not constrain; an absent `amount` means the grant moves no money, so a request
 * that states an amount is refused (fail closed: the human approved no money).
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
      per_request_max: amountValue.optional(),
      total_max: amountValue.optional(),
      approval_above: amountValue.optional(),
    })
    .optional(),
  max_uses: z.number().int().positive().max(1_000_000_000).optional(),
});

/**
 * The behavioural envelope.
 *
 * @example
 * ```ts
 * const envelope: Envelope = { rate: { limit: 60, window_s: 60 }, max_uses: 100 };
 * ```
 */
export type Envelope = z.infer<typeof EnvelopeSchema>;

// ---------------------------------------------------------------------------------------------
// Local wall clock

const MINUTES_PER_DAY = 1440;
const MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY;

const SHORT_WEEKDAYS: ReadonlyMap<string, Weekday> = new Map([
  ['Mon', 'mon'],
  ['Tue', 'tue'],
  ['Wed', 'wed'],
  ['Thu', 'thu'],
  ['Fri', 'fri'],
  ['Sat', 'sat'],
  ['Sun', 'sun'],
]);

// Building an Intl.DateTimeFormat loads time zone data and costs far more than formatting with
// it; the verifier reads the clock on every request, so keep one per zone. Zones come from
// validated envelopes, but Intl accepts every spelling of a name in any letter case: the cap keeps
// odd spellings from growing the cache without bound.
const FORMATTER_CACHE_MAX = 256;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(tz: string): Intl.DateTimeFormat {
  let formatter = formatters.get(tz);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      // 'h23' rather than hour12: false, which some engines render as 24:00 at midnight.
      hourCycle: 'h23',
    });
    if (formatters.size >= FORMATTER_CACHE_MAX) formatters.clear();
    formatters.set(tz, formatter);
  }
  return formatter;
}

/**
 * The local wall clock of an instant in an IANA time zone: the day of the week and the minutes
 * since local midnight (seconds are dropped, so 17:59:59 is minute 1079).
 *
 * @throws RangeError when `tz` is not a time zone or `epochMs` is not a valid time.
 *
 * @example
 * ```ts
 * localTime(Date.parse('2026-03-29T01:30:00Z'), 'Europe/Paris'); // { weekday: 'sun', minutes: 210 } (03:30, summer time)
 * ```
 */
export function localTime(epochMs: number, tz: string): { weekday: Weekday; minutes: number } {
  // Every zone's offset today is a whole number of minutes, so the local minute changes exactly
  // when the UTC minute does: one formatting per zone and minute serves every request in it.
  const minuteKey = `${tz}|${Math.floor(epochMs / 60_000)}`;
  const cached = localMinutes.get(minuteKey);
  if (cached !== undefined) return { ...cached };
  const read = readLocalTime(epochMs, tz);
  if (localMinutes.size >= FORMATTER_CACHE_MAX) localMinutes.clear();
  localMinutes.set(minuteKey, read);
  return { ...read };
}

const localMinutes = new Map<string, { weekday: Weekday; minutes: number }>();

function readLocalTime(epochMs: number, tz: string): { weekday: Weekday; minutes: number } {
  let weekday: Weekday | undefined;
  let hour = Number.NaN;
  let minute = Number.NaN;
  for (const part of formatterFor(tz).formatToParts(epochMs)) {
    if (part.type === 'weekday') weekday = SHORT_WEEKDAYS.get(part.value);
    else if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  if (weekday === undefined || !(hour >= 0 && hour < 24 && minute >= 0 && minute < 60)) {
    throw new RangeError(`cannot read the local time in ${tz}`);
  }
  return { weekday, minutes: hour * 60 + minute };
}

// ---------------------------------------------------------------------------------------------
// Time windows as sets of minutes of the week
//
// A window is turned into half-open intervals of "minutes since Monday 00:00, local time". Both
// the check of an instant and the containment of one window in others use these intervals, so
// what `narrows` accepts is exactly what `isWithinTimeWindow` then allows.

type Interval = readonly [from: number, to: number];

function minutesOf(time: string): number {
  return Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5));
}

// A verified token's envelope is cached by the verifier and checked on every request: its
// windows' intervals are computed once per window object.
const intervalsOf = new WeakMap<TimeWindow, readonly Interval[]>();

function windowIntervals(window: TimeWindow): readonly Interval[] {
  let intervals = intervalsOf.get(window);
  if (intervals === undefined) {
    intervals = Object.freeze(computeWindowIntervals(window));
    intervalsOf.set(window, intervals);
  }
  return intervals;
}

function computeWindowIntervals(window: TimeWindow): Interval[] {
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  // Offsets from the midnight that starts the window's day; past 1440 is the next day.
  const [from, to] = start === end ? [0, MINUTES_PER_DAY] : start < end ? [start, end] : [start, MINUTES_PER_DAY + end];
  const intervals: Interval[] = [];
  for (const day of new Set(window.days)) {
    const midnight = WEEKDAYS.indexOf(day) * MINUTES_PER_DAY;
    if (midnight + to <= MINUTES_PER_WEEK) {
      intervals.push([midnight + from, midnight + to]);
    } else {
      // Sunday night runs into Monday morning, at the start of the week.
      intervals.push([midnight + from, MINUTES_PER_WEEK], [0, midnight + to - MINUTES_PER_WEEK]);
    }
  }
  return intervals;
}

function mergeIntervals(intervals: readonly Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [from, to] of sorted) {
    const last = merged.at(-1);
    // Touching intervals merge too: Monday 09:00-12:00 and 12:00-18:00 cover 09:00-18:00.
    if (last !== undefined && from <= last[1]) last[1] = Math.max(last[1], to);
    else merged.push([from, to]);
  }
  return merged;
}

function weekMinute(epochMs: number, tz: string): number {
  const { weekday, minutes } = localTime(epochMs, tz);
  return WEEKDAYS.indexOf(weekday) * MINUTES_PER_DAY + minutes;
}

/**
 * Whether an instant falls inside a weekly time window, read on the local wall clock of the
 * window's time zone (see {@link TimeWindowSchema} for the rules on `start`, `end` and midnight).
 *
 * @example
 * ```ts
 * const nights = { days: ['fri'], start: '22:00', end: '06:00', tz: 'Europe/Paris' } as const;
 * isWithinTimeWindow(nights, Date.parse('2026-06-13T01:00:00Z')); // true: Saturday 03:00 in Paris
 * isWithinTimeWindow(nights, Date.parse('2026-06-12T01:00:00Z')); // false: Friday 03:00 belongs to Thursday's night
 * ```
 */
export function isWithinTimeWindow(window: TimeWindow, epochMs: number): boolean {
  const minute = weekMinute(epochMs, window.tz);
  return windowIntervals(window).some(([from, to]) => from <= minute && minute < to);
}

/**
 * Whether an instant falls inside at least one of the windows. No window means no time allowed.
 *
 * @example
 * ```ts
 * isWithinTimeWindows(
 *   [
 *     { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '18:00', tz: 'Europe/Paris' },
 *     { days: ['sat'], start: '10:00', end: '12:00', tz: 'Europe/Paris' },
 *   ],
 *   Date.parse('2026-06-13T09:30:00Z'),
 * ); // true: Saturday 11:30 in Paris
 * ```
 */
export function isWithinTimeWindows(windows: readonly TimeWindow[], epochMs: number): boolean {
  return windows.some((window) => isWithinTimeWindow(window, epochMs));
}

// ---------------------------------------------------------------------------------------------
// Amounts

/**
 * An amount in thousandths of its currency unit, rounded to the nearest. Thousandths cover every
 * ISO 4217 currency in use (the Kuwaiti dinar has three decimals), and integers add up exactly
 * where floating point does not: `0.1 + 0.2` is `300` thousandths, not `300.00000000000006`.
 *
 * @throws RangeError when the result is not a safe integer (an amount not finite or beyond 9e12).
 *
 * @example
 * ```ts
 * toMinorUnits(0.1) + toMinorUnits(0.2) === toMinorUnits(0.3); // true
 * toMinorUnits(12.345); // 12345
 * ```
 */
export function toMinorUnits(amount: number): number {
  // `+ 0` turns the -0 that Math.round gives for tiny negative amounts into 0.
  const minor = Math.round(amount * 1000) + 0;
  if (!Number.isSafeInteger(minor)) throw new RangeError(`amount ${amount} cannot be counted in thousandths`);
  return minor;
}

// ---------------------------------------------------------------------------------------------
// Narrowing

function describeWindowBriefly(window: TimeWindow): string {
  return `${window.days.join(',')} ${window.start}-${window.end} ${window.tz}`;
}

function timeWindowsViolation(child: readonly TimeWindow[], parent: readonly TimeWindow[]): string | null {
  const parentByZone = new Map<string, Interval[]>();
  for (const window of parent) {
    parentByZone.set(window.tz, [...(parentByZone.get(window.tz) ?? []), ...windowIntervals(window)]);
  }
  const coverByZone = new Map([...parentByZone].map(([tz, intervals]) => [tz, mergeIntervals(intervals)]));
  for (const [index, window] of child.entries()) {
    // Only windows in the same zone can contain it: two zones that agree today may not after
    // their next daylight-saving or legislative change.
    const cover = coverByZone.get(window.tz) ?? [];
    const inside = windowIntervals(window).every(([from, to]) =>
      cover.some(([coverFrom, coverTo]) => coverFrom <= from && to <= coverTo),
    );
    if (!inside) return `time_windows: window ${index} (${describeWindowBriefly(window)}) is not inside a parent window`;
  }
  return null;
}

type AmountLimits = NonNullable<Envelope['amount']>;
const AMOUNT_LIMITS = ['per_request_max', 'total_max', 'approval_above'] as const;

function amountViolation(child: AmountLimits | undefined, parent: AmountLimits | undefined): string | null {
  if (parent === undefined) {
    return child === undefined ? null : 'amount is added, but the parent allows no amount';
  }
  if (child === undefined) return 'amount is dropped';
  if (child.currency !== parent.currency) return `amount currency ${child.currency} differs from ${parent.currency}`;
  for (const limit of AMOUNT_LIMITS) {
    const parentValue = parent[limit];
    if (parentValue === undefined) continue;
    const childValue = child[limit];
    if (childValue === undefined) return `amount.${limit} is dropped`;
    // Compared as evaluateEnvelope compares them, in thousandths. A lower approval_above is
    // stricter too: the human is asked about more payments.
    if (toMinorUnits(childValue) > toMinorUnits(parentValue)) {
      return `amount.${limit} ${childValue} exceeds ${parentValue}`;
    }
  }
  return null;
}

/**
 * Why `child` is not a narrowing of `parent`, or `null` when it is. Every constraint the parent
 * has, the child must have, no wider; the child may add constraints, except `amount`: a parent
 * without `amount` refuses every amount, so a child that adds one would allow more.
 *
 * @example
 * ```ts
 * envelopeViolation({ rate: { limit: 120, window_s: 60 } }, { rate: { limit: 60, window_s: 60 } });
 * // 'rate 120/60s is wider than 60/60s'
 * envelopeViolation({ rate: { limit: 30, window_s: 60 }, max_uses: 5 }, { rate: { limit: 60, window_s: 60 } }); // null
 * ```
 */
export function envelopeViolation(child: Envelope, parent: Envelope): string | null {
  if (parent.rate !== undefined) {
    if (child.rate === undefined) return 'rate is dropped';
    // Sufficient, not necessary: with fixed windows, 10 per 30 s never exceeds 60 per 60 s
    // either, but comparing limit and window separately is simple, and never accepts a wider rate.
    if (child.rate.limit > parent.rate.limit || child.rate.window_s < parent.rate.window_s) {
      return `rate ${child.rate.limit}/${child.rate.window_s}s is wider than ${parent.rate.limit}/${parent.rate.window_s}s`;
    }
  }
  if (parent.time_windows !== undefined) {
    if (child.time_windows === undefined) return 'time_windows is dropped';
    const violation = timeWindowsViolation(child.time_windows, parent.time_windows);
    if (violation !== null) return violation;
  }
  const amount = amountViolation(child.amount, parent.amount);
  if (amount !== null) return amount;
  if (parent.max_uses !== undefined) {
    if (child.max_uses === undefined) return 'max_uses is dropped';
    if (child.max_uses > parent.max_uses) return `max_uses ${child.max_uses} exceeds ${parent.max_uses}`;
  }
  return null;
}

/**
 * Whether `child` allows nothing that `parent` refuses, constraint by constraint (see
 * {@link envelopeViolation} for the reason when it does not).
 *
 * @example
 * ```ts
 * const parent = { amount: { currency: 'EUR', total_max: 500 } };
 * narrows({ amount: { currency: 'EUR', total_max: 200, approval_above: 50 } }, parent); // true
 * narrows({ amount: { currency: 'EUR', total_max: 600 } }, parent); // false
 * ```
 */
export function narrows(child: Envelope, parent: Envelope): boolean {
  return envelopeViolation(child, parent) === null;
}

/**
 * Throws unless `child` narrows `parent`: the check the registry makes on every hop and on every
 * narrowing the human makes before approving.
 *
 * @throws InvalidAuthorizationDetails naming the first constraint that is wider.
 *
 * @example
 * ```ts
 * assertNarrows({ max_uses: 200 }, { max_uses: 100 });
 * // throws InvalidAuthorizationDetails: 'envelope is wider than its parent: max_uses 200 exceeds 100'
 * ```
 */
export function assertNarrows(child: Envelope, parent: Envelope): void {
  const violation = envelopeViolation(child, parent);
  if (violation !== null) throw new InvalidAuthorizationDetails(`envelope is wider than its parent: ${violation}`);
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/**
 * What a request asks of the envelope. `amount` and `currency` come together, or not at all.
 *
 * @example
 * ```ts
 * const retried: EnvelopeRequest = { amount: 180, currency: 'EUR', stepUpApproved: true };
 * ```
 */
export interface EnvelopeRequest {
  /** The amount of money the request moves, in currency units (decimals allowed). */
  amount?: number;
  /** ISO 4217 code of `amount`. */
  currency?: string;
  /** A human approved this exact request after an `approval_required` (the step-up passed). */
  stepUpApproved?: boolean;
}

/**
 * The grant's counters before this request, shared by every token derived from the grant.
 * The store counts; {@link evaluateEnvelope} only reads.
 *
 * @example
 * ```ts
 * // 3 requests allowed so far, 120 spent, 2 of them in the rate window that ends in 40 s.
 * const state: EnvelopeState = { uses: 3, spent: 120, rateCount: 2, rateWindowEndsAtMs: nowMs + 40_000 };
 * ```
 */
export interface EnvelopeState {
  /** Requests allowed so far. */
  uses: number;
  /** Money spent so far, in the envelope's currency. */
  spent: number;
  /** Requests already counted in the current rate window. */
  rateCount: number;
  /**
   * When the current rate window ends (epoch ms). At or after it the window is over and its count
   * no longer applies; the store then opens a new one ending `window_s` later.
   */
  rateWindowEndsAtMs: number;
}

/**
 * The errors an envelope refuses a request with; switch on `code`.
 *
 * @example
 * ```ts
 * function retryAfter(error: EnvelopeError): number | undefined {
 *   return error.code === 'rate_limited' ? error.retryAfter : undefined;
 * }
 * ```
 */
export type EnvelopeError = OutsideTimeWindow | BudgetExceeded | RateLimited | InvalidRequest | ApprovalRequired;

/**
 * The answer of {@link evaluateEnvelope}.
 *
 * @example
 * ```ts
 * const decision: EnvelopeDecision = evaluateEnvelope(envelope, request, state, nowMs);
 * if (!decision.allow) return decision.error.toJSON(); // { error: 'budget_exceeded', error_description: '...' }
 * ```
 */
export type EnvelopeDecision = { allow: true } | { allow: false; error: EnvelopeError };

// A fresh object each time: a caller may add to the answer it gets.
function allow(): EnvelopeDecision {
  return { allow: true };
}

function deny(error: EnvelopeError): EnvelopeDecision {
  return { allow: false, error };
}

function evaluateAmount(limits: AmountLimits | undefined, request: EnvelopeRequest, spent: number): EnvelopeDecision {
  const { amount, currency } = request;
  if (amount === undefined) {
    if (currency !== undefined) return deny(new InvalidRequest('currency is given without an amount'));
    // Fail closed: a limit cannot be checked against an amount the request does not state.
    if (limits !== undefined && AMOUNT_LIMITS.some((limit) => limits[limit] !== undefined)) {
      return deny(new InvalidRequest('this grant limits amounts: the request must state its amount and currency'));
    }
    return allow();
  }
  if (!Number.isFinite(amount) || amount < 0 || amount > AMOUNT_MAX) {
    // A negative amount would give budget back.
    return deny(new InvalidRequest(`amount must be a number from 0 to ${AMOUNT_MAX}`));
  }
  if (limits === undefined) return deny(new InvalidRequest('this grant allows no amount'));
  // Fail closed: an amount without its currency could be in any currency.
  if (currency === undefined) return deny(new InvalidRequest('amount is given without a currency'));
  if (currency !== limits.currency) {
    return deny(new InvalidRequest(`amount currency ${currency} differs from ${limits.currency}`));
  }
  const minor = toMinorUnits(amount);
  if (limits.per_request_max !== undefined && minor > toMinorUnits(limits.per_request_max)) {
    return deny(new BudgetExceeded(`amount ${amount} exceeds per_request_max ${limits.per_request_max}`));
  }
  if (limits.total_max !== undefined && toMinorUnits(spent) + minor > toMinorUnits(limits.total_max)) {
    return deny(new BudgetExceeded(`amount ${amount} would bring the total above total_max ${limits.total_max}`));
  }
  const aboveApproval = limits.approval_above !== undefined && minor > toMinorUnits(limits.approval_above);
  if (aboveApproval && request.stepUpApproved !== true) {
    return deny(
      new ApprovalRequired(
        `amount ${amount} is above approval_above ${limits.approval_above}: a human must approve this request`,
      ),
    );
  }
  return allow();
}

/**
 * Decides one request against an envelope and the grant's counters, at `nowMs`. Pure: it reads
 * `state` and changes nothing; the caller counts the request when it is allowed. Checks, in
 * order: time window, `max_uses`, rate, then amount (well-formed and in the envelope's currency,
 * `per_request_max`, `total_max`, `approval_above`).
 *
 * `max_uses` reached is `budget_exceeded`: the grant's budget of uses is spent, and unlike
 * `rate_limited` waiting does not help.
 *
 * `approval_required` carries no step-up id: the verifier creates the step-up and sends its id.
 *
 * @example
 * ```ts
 * const envelope = { rate: { limit: 60, window_s: 60 }, amount: { currency: 'EUR', per_request_max: 200 } };
 * const state = { uses: 3, spent: 120, rateCount: 60, rateWindowEndsAtMs: 1_700_000_030_000 };
 * const decision = evaluateEnvelope(envelope, { amount: 50, currency: 'EUR' }, state, 1_700_000_000_500);
 * // { allow: false, error: RateLimited { code: 'rate_limited', retryAfter: 30 } }
 * ```
 */
export function evaluateEnvelope(
  envelope: Envelope,
  request: EnvelopeRequest,
  state: EnvelopeState,
  nowMs: number,
): EnvelopeDecision {
  if (envelope.time_windows !== undefined && !isWithinTimeWindows(envelope.time_windows, nowMs)) {
    return deny(new OutsideTimeWindow('the request falls outside every allowed time window'));
  }
  if (envelope.max_uses !== undefined && state.uses >= envelope.max_uses) {
    return deny(new BudgetExceeded('max_uses reached'));
  }
  if (envelope.rate !== undefined) {
    const windowOpen = nowMs < state.rateWindowEndsAtMs;
    if (windowOpen && state.rateCount >= envelope.rate.limit) {
      // Retry-After is in whole seconds (RFC 9110 §10.2.3): round up, so a retry is never early.
      const retryAfter = Math.max(1, Math.ceil((state.rateWindowEndsAtMs - nowMs) / 1000));
      return deny(
        new RateLimited(`rate limit of ${envelope.rate.limit} per ${envelope.rate.window_s}s reached`, retryAfter),
      );
    }
  }
  return evaluateAmount(envelope.amount, request, state.spent);
}

// ---------------------------------------------------------------------------------------------
// Plain language, for the approval screen

const DAY_NAMES: Readonly<Record<Weekday, string>> = {
  mon: 'Monday',
  tue: 'Tuesday',
  wed: 'Wednesday',
  thu: 'Thursday',
  fri: 'Friday',
  sat: 'Saturday',
  sun: 'Sunday',
};

const list = new Intl.ListFormat('en', { style: 'long', type: 'conjunction' });
const count = new Intl.NumberFormat('en');

function describeDays(days: readonly Weekday[]): string {
  const included = WEEKDAYS.map((day) => days.includes(day));
  if (included.every(Boolean)) return 'Every day';
  // Runs of consecutive days, wrapping from Sunday to Monday; the week has a gap, so each run
  // has a first day whose previous day is not included.
  const items: { first: number; text: string }[] = [];
  for (let first = 0; first < 7; first++) {
    if (!included[first] || included[(first + 6) % 7]) continue;
    let length = 1;
    while (included[(first + length) % 7]) length++;
    const name = (offset: number): string => DAY_NAMES[WEEKDAYS[(first + offset) % 7] ?? 'mon'];
    // Three days or more read better as a range; two are simply listed ("Saturday and Sunday").
    if (length >= 3) items.push({ first, text: `${name(0)} to ${name(length - 1)}` });
    else for (let i = 0; i < length; i++) items.push({ first: (first + i) % 7, text: name(i) });
  }
  return list.format(items.sort((a, b) => a.first - b.first).map((item) => item.text));
}

const offsetFormatters = new Map<string, Intl.DateTimeFormat>();

/** `UTC+05:30`, `UTC−05:00`, `UTC+00:00` (a real minus sign, as the person reads it). */
function utcOffset(epochMs: number, tz: string): string {
  let formatter = offsetFormatters.get(tz);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'longOffset' });
    offsetFormatters.set(tz, formatter);
  }
  // `GMT+05:30`, `GMT-05:00`, or `GMT` alone for a zero offset.
  const name = formatter.formatToParts(epochMs).find((part) => part.type === 'timeZoneName')?.value ?? 'GMT';
  const offset = name.slice(3) || '+00:00';
  return `UTC${offset.replace('-', '−')}`;
}

/**
 * A time zone with its UTC offsets in the year of `atMs`, so that a person need not know what a
 * zone's name means: `Europe/Paris, UTC+01:00 or UTC+02:00 in summer time`, `Asia/Kolkata, UTC+05:30`.
 *
 * @example
 * ```ts
 * describeTimeZone('America/New_York', Date.parse('2026-03-01T00:00:00Z')); // 'America/New_York, UTC−05:00 or UTC−04:00 in summer time'
 * describeTimeZone('UTC'); // 'UTC'
 * ```
 */
export function describeTimeZone(tz: string, atMs: number = Date.now()): string {
  if (tz === 'UTC') return 'UTC';
  const year = new Date(atMs).getUTCFullYear();
  const january = utcOffset(Date.UTC(year, 0, 1), tz);
  const july = utcOffset(Date.UTC(year, 6, 1), tz);
  if (january === july) return `${tz}, ${january}`;
  // Summer time is the larger offset, in either hemisphere.
  const minutes = (text: string): number => (text[3] === '+' ? 1 : -1) * (Number(text.slice(4, 6)) * 60 + Number(text.slice(7, 9)));
  const [standard, summer] = minutes(january) < minutes(july) ? [january, july] : [july, january];
  return `${tz}, ${standard} or ${summer} in summer time`;
}

function describeWindow(window: TimeWindow, atMs: number): string {
  const { start, end } = window;
  const hours = start === end ? 'all day' : start < end ? `${start}–${end}` : `${start} to ${end} the next day`;
  return `${describeDays(window.days)}, ${hours} (${describeTimeZone(window.tz, atMs)})`;
}

function describeRateWindow(seconds: number): string {
  const named: Record<number, string> = { 1: 'per second', 60: 'per minute', 3600: 'per hour', 86400: 'per day' };
  const name = named[seconds];
  if (name !== undefined) return name;
  if (seconds % 3600 === 0) return `every ${seconds / 3600} hours`;
  if (seconds % 60 === 0) return `every ${seconds / 60} minutes`;
  return `every ${count.format(seconds)} seconds`;
}

function moneyFormatter(currency: string): Intl.NumberFormat {
  const { maximumFractionDigits = 2 } = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions();
  return new Intl.NumberFormat('en', {
    style: 'currency',
    currency,
    // Show every thousandth the envelope counts, so the screen never rounds a limit up or down,
    // and drop ".00" from whole amounts: "€200", "€0.125".
    maximumFractionDigits: Math.max(maximumFractionDigits, 3),
    trailingZeroDisplay: 'stripIfInteger',
  });
}

function describeAmount(limits: AmountLimits): string[] {
  const money = moneyFormatter(limits.currency);
  const caps: string[] = [];
  if (limits.per_request_max !== undefined) caps.push(`${money.format(limits.per_request_max)} per payment`);
  if (limits.total_max !== undefined) caps.push(`${money.format(limits.total_max)} in total`);
  const lines = [
    caps.length > 0 ? `Up to ${caps.join(' and ')}` : `Payments in ${limits.currency}, with no limit on the amount`,
  ];
  if (limits.approval_above !== undefined) {
    lines.push(`Asks you again for any payment above ${money.format(limits.approval_above)}`);
  }
  return lines;
}

/**
 * The envelope in plain words, one line per limit, for the approval screen. An empty list means
 * no limit at all (and no money: see {@link EnvelopeSchema}).
 *
 * @example
 * ```ts
 * describeEnvelope({
 *   rate: { limit: 60, window_s: 60 },
 *   time_windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '18:00', tz: 'Europe/Paris' }],
 *   amount: { currency: 'EUR', per_request_max: 200, total_max: 500, approval_above: 150 },
 *   max_uses: 100,
 * });
 * // [
 * //   'At most 60 requests per minute',
 * //   'Monday to Friday, 09:00–18:00 (Europe/Paris, UTC+01:00 or UTC+02:00 in summer time)',
 * //   'Up to €200 per payment and €500 in total',
 * //   'Asks you again for any payment above €150',
 * //   'At most 100 uses',
 * // ]
 * ```
 */
export function describeEnvelope(envelope: Envelope, atMs: number = Date.now()): string[] {
  const lines: string[] = [];
  if (envelope.rate !== undefined) {
    const { limit, window_s } = envelope.rate;
    lines.push(`At most ${count.format(limit)} ${limit === 1 ? 'request' : 'requests'} ${describeRateWindow(window_s)}`);
  }
  for (const window of envelope.time_windows ?? []) lines.push(describeWindow(window, atMs));
  if (envelope.amount !== undefined) lines.push(...describeAmount(envelope.amount));
  if (envelope.max_uses !== undefined) {
    lines.push(`At most ${count.format(envelope.max_uses)} ${envelope.max_uses === 1 ? 'use' : 'uses'}`);
  }
  return lines;
}
