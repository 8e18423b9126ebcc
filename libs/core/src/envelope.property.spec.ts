import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Envelope,
  type EnvelopeRequest,
  type EnvelopeState,
  evaluateEnvelope,
  isWithinTimeWindow,
  isWithinTimeWindows,
  localTime,
  narrows,
  type TimeWindow,
  type Weekday,
  WEEKDAYS,
} from './envelope.js';

const RUNS = { numRuns: 300 };
const ZONES = ['Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Pacific/Auckland', 'UTC'] as const;
const CURRENCIES = ['EUR', 'USD'] as const;
const YEAR_2026 = { min: Date.parse('2026-01-01T00:00:00Z'), max: Date.parse('2027-01-01T00:00:00Z') };
// Instants near the 2026 daylight-saving changes of the zones above, where mistakes would hide.
const DST_CHANGES = [
  '2026-03-08T07:00:00Z', // New York, spring forward
  '2026-03-29T01:00:00Z', // Paris, spring forward
  '2026-04-04T14:00:00Z', // Auckland, fall back
  '2026-09-26T14:00:00Z', // Auckland, spring forward
  '2026-10-25T01:00:00Z', // Paris, fall back
  '2026-11-01T06:00:00Z', // New York, fall back
].map((iso) => Date.parse(iso));

const hhmm = (minutes: number): string =>
  `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
const minutesOf = (time: string): number => Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5));

// ---------------------------------------------------------------------------------------------
// Random envelopes

const timeArb = fc.oneof(
  fc.integer({ min: 0, max: 95 }).map((quarter) => quarter * 15),
  fc.integer({ min: 0, max: 1439 }),
);
const daysArb = fc.uniqueArray(fc.constantFrom(...WEEKDAYS), { minLength: 1, maxLength: 7 });

function windowArb(zones: readonly string[] = ZONES, time = timeArb): fc.Arbitrary<TimeWindow> {
  return fc.record({
    days: daysArb,
    tz: fc.constantFrom(...zones),
    // Start equal to end (the whole day) is rare among random pairs: give it its own share.
    times: fc.oneof(fc.tuple(time, time), time.map((t) => [t, t] as const)),
  }).map(({ days, tz, times: [start, end] }) => ({ days, start: hhmm(start), end: hhmm(end), tz }));
}

// Money in cents or in thousandths, up to 1000: the same range requests use, so limits bite.
const moneyArb = fc.oneof(
  fc.integer({ min: 0, max: 100_000 }).map((cents) => cents / 100),
  fc.integer({ min: 0, max: 1_000_000 }).map((thousandths) => thousandths / 1000),
);

const rateArb = fc.record({ limit: fc.integer({ min: 1, max: 100 }), window_s: fc.integer({ min: 1, max: 86_400 }) });
const amountArb = fc.record(
  { currency: fc.constantFrom(...CURRENCIES), per_request_max: moneyArb, total_max: moneyArb, approval_above: moneyArb },
  { requiredKeys: ['currency'] },
);

const envelopeParts = {
  rate: rateArb,
  time_windows: fc.array(windowArb(), { minLength: 1, maxLength: 3 }),
  amount: amountArb,
  max_uses: fc.integer({ min: 1, max: 200 }),
};
const envelopeArb: fc.Arbitrary<Envelope> = fc.record(envelopeParts, { requiredKeys: [] });

// ---------------------------------------------------------------------------------------------
// Narrowed children, derived from a parent

function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

// Half the time: a child that adds every constraint it may would rarely allow anything.
function orAbsent<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.option(arb, { nil: undefined, freq: 2 });
}

/** A piece of `window`: some of its days and a stretch of its hours, perhaps on the next day. */
function subWindowArb(window: TimeWindow): fc.Arbitrary<TimeWindow> {
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  const [from, length] = start === end ? [0, 1440] : [start, (end - start + 1440) % 1440];
  return fc
    .record({
      days: fc.subarray(window.days, { minLength: 1 }),
      stretch: fc
        .integer({ min: 0, max: length - 1 })
        .chain((a) => fc.integer({ min: a + 1, max: length }).map((b) => [from + a, from + b] as const)),
    })
    .map(({ days, stretch: [childStart, childEnd] }) => {
      // A piece that starts after midnight belongs to the next day.
      const shift = Math.floor(childStart / 1440);
      const shifted = days.map((day) => WEEKDAYS[(WEEKDAYS.indexOf(day) + shift) % 7]!);
      return { days: shifted, start: hhmm(childStart % 1440), end: hhmm(childEnd % 1440), tz: window.tz };
    });
}

function atMost(max: number): fc.Arbitrary<number> {
  const cents = Math.floor(max * 100);
  return fc.oneof(fc.constant(max), fc.integer({ min: 0, max: cents }).map((c) => c / 100));
}

/** Children that keep every constraint of `parent`, no wider, and may add their own. */
function narrowedArb(parent: Envelope): fc.Arbitrary<Envelope> {
  const { rate, time_windows, amount, max_uses } = parent;
  return fc
    .record({
      rate: rate
        ? fc.record({
            limit: fc.integer({ min: 1, max: rate.limit }),
            window_s: fc.integer({ min: rate.window_s, max: 86_400 }),
          })
        : orAbsent(rateArb),
      time_windows: time_windows
        ? fc.array(fc.constantFrom(...time_windows).chain(subWindowArb), { minLength: 1, maxLength: 3 })
        : orAbsent(fc.array(windowArb(), { minLength: 1, maxLength: 3 })),
      // A parent without amount refuses every amount: a child cannot add one.
      amount: amount
        ? fc
            .record({
              per_request_max: amount.per_request_max === undefined ? orAbsent(moneyArb) : atMost(amount.per_request_max),
              total_max: amount.total_max === undefined ? orAbsent(moneyArb) : atMost(amount.total_max),
              approval_above: amount.approval_above === undefined ? orAbsent(moneyArb) : atMost(amount.approval_above),
            })
            .map((limits) => compact({ currency: amount.currency, ...limits }))
        : fc.constant(undefined),
      max_uses: max_uses ? fc.integer({ min: 1, max: max_uses }) : orAbsent(fc.integer({ min: 1, max: 200 })),
    })
    .map(compact);
}

/**
 * Children one step wider than the parent or a narrowed child, on one constraint: a limit raised
 * a little, a window stretched, a day or a currency changed, a constraint dropped or (for amount)
 * added. Some still narrow the parent (a narrowed child had room), most do not: they sit on the
 * boundary `narrows` must draw.
 */
function widenedArb(parent: Envelope): fc.Arbitrary<Envelope> {
  const small = fc.oneof(fc.constantFrom(0.001, 0.01), fc.integer({ min: 1, max: 1000 }).map((c) => c / 100));
  const minutes = fc.oneof(fc.integer({ min: 1, max: 15 }), fc.integer({ min: 1, max: 180 }));
  return fc.oneof(fc.constant(parent), narrowedArb(parent)).chain((child) => {
    const { rate, time_windows, amount, max_uses } = child;
    const steps: fc.Arbitrary<Envelope>[] = [
      amount ? fc.constant({ ...child, amount: undefined }) : amountArb.map((added) => ({ ...child, amount: added })),
    ];
    if (rate) {
      steps.push(
        fc.constant({ ...child, rate: undefined }),
        fc.integer({ min: 1, max: 2 }).map((k) => ({ ...child, rate: { ...rate, limit: rate.limit + k } })),
        fc.integer({ min: 1, max: 60 }).map((k) => ({ ...child, rate: { ...rate, window_s: Math.max(1, rate.window_s - k) } })),
      );
    }
    if (time_windows) {
      const one = fc.nat(time_windows.length - 1);
      const replace = (i: number, changed: Partial<TimeWindow>): Envelope => ({
        ...child,
        time_windows: time_windows.map((w, j) => (i === j ? { ...w, ...changed } : w)),
      });
      steps.push(
        fc.constant({ ...child, time_windows: undefined }),
        fc.tuple(one, minutes).map(([i, k]) => replace(i, { end: hhmm((minutesOf(time_windows[i]!.end) + k) % 1440) })),
        fc.tuple(one, minutes).map(([i, k]) =>
          replace(i, { start: hhmm((minutesOf(time_windows[i]!.start) + 1440 - k) % 1440) }),
        ),
        fc.tuple(one, fc.constantFrom(...WEEKDAYS)).map(([i, day]) => replace(i, { days: [...time_windows[i]!.days, day] })),
        fc.tuple(one, fc.constantFrom(...ZONES)).map(([i, tz]) => replace(i, { tz })),
      );
    }
    if (amount) {
      const other = CURRENCIES.find((c) => c !== amount.currency)!;
      steps.push(fc.constant({ ...child, amount: { ...amount, currency: other } }));
      for (const limit of ['per_request_max', 'total_max', 'approval_above'] as const) {
        const value = amount[limit];
        if (value === undefined) continue;
        steps.push(
          fc.constant({ ...child, amount: compact({ ...amount, [limit]: undefined }) }),
          small.map((d) => ({ ...child, amount: { ...amount, [limit]: value + d } })),
        );
      }
    }
    if (max_uses) {
      steps.push(
        fc.constant({ ...child, max_uses: undefined }),
        fc.integer({ min: 1, max: 2 }).map((k) => ({ ...child, max_uses: max_uses + k })),
      );
    }
    return fc.oneof(...steps).map(compact);
  });
}

// ---------------------------------------------------------------------------------------------
// Requests, states and instants, aimed at the limits of both envelopes

const instantArb = fc.oneof(
  fc.integer(YEAR_2026),
  fc.constantFrom(...DST_CHANGES).chain((change) => fc.integer({ min: change - 86_400_000, max: change + 86_400_000 })),
);

function defined<T>(values: readonly (T | undefined)[]): T[] {
  return values.filter((v): v is T => v !== undefined);
}

/**
 * 0, or a count next to one of `limits`. `spread` weighs 0 against each limit: high when many
 * constraints are in play, since each refusal makes the checks after it unreachable.
 */
function countNear(limits: readonly number[], spread: number): fc.Arbitrary<number> {
  return fc.oneof(
    { weight: spread * Math.max(1, limits.length), arbitrary: fc.constant(0) },
    ...limits.map((limit) => ({
      weight: 1,
      arbitrary: fc.integer({ min: -1, max: 1 }).map((d) => Math.max(0, limit + d)),
    })),
  );
}

/** Any amount, or one within a few thousandths or cents of one of `limits`. */
function moneyNear(limits: readonly number[]): fc.Arbitrary<number> {
  return fc.oneof(
    moneyArb,
    ...limits.map((limit) =>
      fc
        .oneof(fc.integer({ min: -3, max: 3 }).map((d) => d / 1000), fc.integer({ min: -3, max: 3 }).map((d) => d / 100))
        .map((d) => Math.max(0, limit + d)),
    ),
  );
}

function requestArb(envelopes: readonly Envelope[]): fc.Arbitrary<EnvelopeRequest> {
  const amounts = defined(envelopes.map((e) => e.amount));
  const limits = defined(amounts.flatMap((a) => [a.per_request_max, a.total_max, a.approval_above]));
  const withoutAmount = fc.record({ stepUpApproved: fc.boolean() }, { requiredKeys: [] });
  const anyRequest = fc.record({ amount: moneyArb, currency: fc.constantFrom(...CURRENCIES) }, { requiredKeys: [] });
  if (amounts.length === 0) return fc.oneof({ weight: 4, arbitrary: withoutAmount }, { weight: 1, arbitrary: anyRequest });
  const fitting = fc.record({
    amount: moneyNear(limits),
    currency: fc.constantFrom(...amounts.map((a) => a.currency)),
    stepUpApproved: fc.boolean(),
  });
  return fc.oneof(
    { weight: 6, arbitrary: fitting },
    { weight: 1, arbitrary: withoutAmount },
    { weight: 1, arbitrary: anyRequest },
  );
}

function stateArb(
  envelopes: readonly Envelope[],
  request: EnvelopeRequest,
  nowMs: number,
  spread: number,
): fc.Arbitrary<EnvelopeState> {
  const totals = defined(envelopes.map((e) => e.amount?.total_max));
  // Spent so far such that this request lands right at or around a total.
  const room = totals.map((total) => Math.max(0, total - (request.amount ?? 0)));
  return fc.record({
    uses: countNear(defined(envelopes.map((e) => e.max_uses)), spread),
    spent: fc.oneof(fc.constant(0), moneyNear(room)),
    rateCount: countNear(defined(envelopes.map((e) => e.rate?.limit)), spread),
    rateWindowEndsAtMs: fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: nowMs + 1, max: nowMs + 120_000 }) },
      { weight: 1, arbitrary: fc.integer({ min: nowMs - 120_000, max: nowMs }) },
    ),
  });
}

const FIRST_MONDAY = Date.parse('2026-01-05T00:00:00Z');
const DAY_MS = 86_400_000;
const WEEK_MINUTES = 7 * 1440;

/**
 * An instant whose local wall clock is (about) inside `window`: random instants rarely fall in a
 * narrow child window, and the safety property says nothing about requests the child refuses.
 * Off by an hour near a daylight-saving change, which is fine: any instant is a valid case.
 */
function instantInsideArb(window: TimeWindow): fc.Arbitrary<number> {
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  const [from, length] = start === end ? [0, 1440] : [start, (end - start + 1440) % 1440];
  return fc
    .record({
      week: fc.integer({ min: 0, max: 50 }),
      day: fc.constantFrom(...window.days),
      // Edges too: a window stretched by a few minutes differs from its parent only there.
      minute: fc.oneof(
        fc.integer({ min: from, max: from + length - 1 }),
        fc.integer({ min: 0, max: Math.min(20, length - 1) }).map((d) => from + d),
        fc.integer({ min: 0, max: Math.min(20, length - 1) }).map((d) => from + length - 1 - d),
      ),
    })
    .map(({ week, day, minute }) => {
      const wall = FIRST_MONDAY + week * 7 * DAY_MS + WEEKDAYS.indexOf(day) * DAY_MS + minute * 60_000;
      const local = localTime(wall, window.tz);
      const utcMinuteOfWeek = Math.floor((wall - FIRST_MONDAY) / 60_000) % WEEK_MINUTES;
      const localMinuteOfWeek = WEEKDAYS.indexOf(local.weekday) * 1440 + local.minutes;
      // The zone's offset in minutes, within half a week either way.
      const offset = ((localMinuteOfWeek - utcMinuteOfWeek + WEEK_MINUTES * 1.5) % WEEK_MINUTES) - WEEK_MINUTES / 2;
      return wall - offset * 60_000;
    });
}

function situationArb(parent: Envelope, child: Envelope, spread: number) {
  const instants = child.time_windows
    ? fc.oneof(
        { weight: 1, arbitrary: instantArb },
        { weight: 5, arbitrary: fc.constantFrom(...child.time_windows).chain(instantInsideArb) },
      )
    : instantArb;
  const envelopes = [parent, child];
  return fc.tuple(instants, requestArb(envelopes)).chain(([nowMs, request]) =>
    fc.record({ nowMs: fc.constant(nowMs), request: fc.constant(request), state: stateArb(envelopes, request, nowMs, spread) }),
  );
}

// ---------------------------------------------------------------------------------------------

describe('narrows (properties)', () => {
  it('holds for every envelope and itself', () => {
    fc.assert(
      fc.property(envelopeArb, (envelope) => narrows(envelope, envelope)),
      RUNS,
    );
  });

  it('holds for every derived child: lower limits, longer windows, sub-windows, lower approval_above', () => {
    fc.assert(
      fc.property(envelopeArb.chain((parent) => fc.tuple(fc.constant(parent), narrowedArb(parent))), ([parent, child]) =>
        narrows(child, parent),
      ),
      RUNS,
    );
  });

  it('is transitive', () => {
    const chainArb = envelopeArb.chain((grandparent) =>
      narrowedArb(grandparent).chain((parent) =>
        fc.tuple(
          fc.constant(grandparent),
          fc.constant(parent),
          // Derived, one step wider, or random: the last two test the implication both ways.
          fc.oneof(narrowedArb(parent), widenedArb(parent), envelopeArb),
        ),
      ),
    );
    fc.assert(
      fc.property(chainArb, ([grandparent, parent, child]) => {
        expect(narrows(parent, grandparent)).toBe(true);
        if (narrows(child, parent)) expect(narrows(child, grandparent)).toBe(true);
      }),
      RUNS,
    );
  });

  it('accepts exactly the time windows whose every minute of the week lies in a parent window (UTC, 15-minute grid)', () => {
    const quarter = fc.integer({ min: 0, max: 95 }).map((q) => q * 15);
    const windowsArb = fc.array(windowArb(['UTC'], quarter), { minLength: 1, maxLength: 3 });
    // The parent's own windows moved by a few quarters or a day: children on the boundary.
    const nudgedArb = (parent: TimeWindow[]) =>
      fc
        .record({
          i: fc.nat(parent.length - 1),
          field: fc.constantFrom('start', 'end'),
          quarters: fc.integer({ min: -4, max: 4 }),
          day: fc.option(fc.constantFrom(...WEEKDAYS), { nil: undefined }),
        })
        .map(({ i, field, quarters, day }) =>
          parent.map((w, j) => {
            if (i !== j) return w;
            const moved = hhmm((minutesOf(w[field]) + quarters * 15 + 1440) % 1440);
            return { ...w, [field]: moved, days: day === undefined ? w.days : [...new Set([...w.days, day])] };
          }),
        );
    const pairArb = windowsArb.chain((parent) => fc.tuple(fc.oneof(windowsArb, nudgedArb(parent)), fc.constant(parent)));
    const monday = Date.parse('2026-06-15T00:00:00Z');
    // On a 15-minute grid every window is a union of quarter hours: sampling each is exhaustive.
    const quarters = Array.from({ length: 7 * 96 }, (_, i) => monday + i * 15 * 60_000);
    fc.assert(
      fc.property(pairArb, ([child, parent]) => {
        const childWider = quarters.some((t) => isWithinTimeWindows(child, t) && !isWithinTimeWindows(parent, t));
        expect(narrows({ time_windows: child }, { time_windows: parent })).toBe(!childWider);
      }),
      { numRuns: 100 },
    );
  });
});

describe('evaluateEnvelope (properties)', () => {
  it('never allows with a narrowed envelope what the parent refuses', () => {
    let narrowing = 0;
    let childAllowed = 0;
    const caseArb = envelopeArb.chain((parent) =>
      fc
        .oneof(
          { weight: 2, arbitrary: narrowedArb(parent) },
          { weight: 2, arbitrary: widenedArb(parent) },
          { weight: 1, arbitrary: envelopeArb },
        )
        .chain((child) =>
          fc.tuple(
            fc.constant(parent),
            fc.constant(child),
            // Several requests per pair of envelopes: generating the envelopes is the costly part.
            fc.array(situationArb(parent, child, 3), { minLength: 10, maxLength: 10 }),
          ),
        ),
    );
    fc.assert(
      fc.property(caseArb, ([parent, child, situations]) => {
        if (!narrows(child, parent)) return;
        narrowing++;
        for (const { nowMs, request, state } of situations) {
          if (!evaluateEnvelope(child, request, state, nowMs).allow) continue;
          childAllowed++;
          expect(evaluateEnvelope(parent, request, state, nowMs)).toEqual({ allow: true });
        }
      }),
      RUNS,
    );
    // Guard against a vacuous pass: about half the pairs narrow, and the child allows some 250
    // requests that the parent then has to allow too.
    expect(narrowing).toBeGreaterThan(RUNS.numRuns / 3);
    expect(childAllowed).toBeGreaterThan(RUNS.numRuns / 3);
  });

  it('never allows with a narrowed envelope what the parent refuses, one constraint at a time', () => {
    // With a single constraint, requests land on its boundary far more often: this finds
    // off-by-one and off-by-a-thousandth mistakes that the mixed envelopes above rarely reach.
    const keys = ['rate', 'time_windows', 'amount', 'max_uses'] as const;
    const only = (envelope: Envelope, key: (typeof keys)[number]): Envelope => compact({ [key]: envelope[key] });
    const caseArb = fc.constantFrom(...keys).chain((key) =>
      fc.record(envelopeParts, { requiredKeys: [key] }).chain((full) => {
        const parent = only(full, key);
        return fc
          .oneof(narrowedArb(parent), widenedArb(parent))
          .map((child) => only(child, key))
          .chain((child) =>
            fc.tuple(
              fc.constant(parent),
              fc.constant(child),
              fc.array(situationArb(parent, child, 1), { minLength: 20, maxLength: 20 }),
            ),
          );
      }),
    );
    fc.assert(
      fc.property(caseArb, ([parent, child, situations]) => {
        if (!narrows(child, parent)) return;
        for (const { nowMs, request, state } of situations) {
          if (evaluateEnvelope(child, request, state, nowMs).allow) {
            expect(evaluateEnvelope(parent, request, state, nowMs)).toEqual({ allow: true });
          }
        }
      }),
      RUNS,
    );
  });

});

describe('isWithinTimeWindow (properties)', () => {
  it('follows the documented rules, written out day by day', () => {
    // The rules of TimeWindowSchema as a person would apply them, independent of the
    // minutes-of-the-week intervals the implementation uses.
    const byTheRules = (window: TimeWindow, weekday: Weekday, minutes: number): boolean => {
      const start = minutesOf(window.start);
      const end = minutesOf(window.end);
      const today = window.days.includes(weekday);
      const yesterday = window.days.includes(WEEKDAYS[(WEEKDAYS.indexOf(weekday) + 6) % 7]!);
      if (start === end) return today;
      if (start < end) return today && start <= minutes && minutes < end;
      return (today && minutes >= start) || (yesterday && minutes < end);
    };
    fc.assert(
      fc.property(windowArb(), instantArb, (window, nowMs) => {
        const { weekday, minutes } = localTime(nowMs, window.tz);
        expect(isWithinTimeWindow(window, nowMs)).toBe(byTheRules(window, weekday, minutes));
      }),
      RUNS,
    );
  });

  it("decides evaluateEnvelope's time check", () => {
    const state = { uses: 0, spent: 0, rateCount: 0, rateWindowEndsAtMs: 0 };
    fc.assert(
      fc.property(envelopeParts.time_windows, instantArb, (time_windows, nowMs) => {
        expect(evaluateEnvelope({ time_windows }, {}, state, nowMs).allow).toBe(isWithinTimeWindows(time_windows, nowMs));
      }),
      RUNS,
    );
  });
});

describe('localTime (properties)', () => {
  it('matches UTC arithmetic in UTC and in Asia/Kolkata (UTC+05:30, no daylight saving)', () => {
    const byUtc = (ms: number) => {
      const date = new Date(ms);
      return { weekday: WEEKDAYS[(date.getUTCDay() + 6) % 7], minutes: date.getUTCHours() * 60 + date.getUTCMinutes() };
    };
    fc.assert(
      fc.property(fc.integer(YEAR_2026), (ms) => {
        expect(localTime(ms, 'UTC')).toEqual(byUtc(ms));
        expect(localTime(ms, 'Asia/Kolkata')).toEqual(byUtc(ms + 330 * 60_000));
      }),
      RUNS,
    );
  });
});
