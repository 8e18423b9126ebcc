import { describe, expect, it } from 'vitest';
import {
  assertNarrows,
  canonicalTimeZone,
  describeEnvelope,
  describeTimeZone,
  type Envelope,
  envelopeViolation,
  EnvelopeSchema,
  type EnvelopeState,
  evaluateEnvelope,
  isWithinTimeWindow,
  isWithinTimeWindows,
  localTime,
  narrows,
  type TimeWindow,
  TimeWindowSchema,
  toMinorUnits,
} from './envelope.js';
import {
  ApprovalRequired,
  BudgetExceeded,
  InvalidAuthorizationDetails,
  InvalidRequest,
  OutsideTimeWindow,
  RateLimited,
} from './errors.js';

const at = (iso: string): number => Date.parse(iso);
const WEEKDAYS_ONLY = ['mon', 'tue', 'wed', 'thu', 'fri'] as const;

function window(days: TimeWindow['days'], start: string, end: string, tz = 'Europe/Paris'): TimeWindow {
  return { days, start, end, tz };
}

describe('EnvelopeSchema', () => {
  it('accepts the envelope of ARCHITECTURE.md', () => {
    const envelope = {
      rate: { limit: 60, window_s: 60 },
      time_windows: [window([...WEEKDAYS_ONLY], '09:00', '18:00')],
      amount: { currency: 'EUR', per_request_max: 200, total_max: 500, approval_above: 150 },
      max_uses: 100,
    };
    expect(EnvelopeSchema.parse(envelope)).toEqual(envelope);
  });

  it('rejects an unknown time zone, a time past 23:59 and unknown fields', () => {
    expect(TimeWindowSchema.safeParse(window(['mon'], '09:00', '18:00', 'Mars/Olympus')).success).toBe(false);
    expect(TimeWindowSchema.safeParse(window(['mon'], '09:00', '24:00')).success).toBe(false);
    expect(EnvelopeSchema.safeParse({ rate: { limit: 1, window_s: 1, burst: 2 } }).success).toBe(false);
  });

  it('stores a time zone in its canonical spelling', () => {
    expect(TimeWindowSchema.parse(window(['mon'], '09:00', '18:00', 'europe/PARIS')).tz).toBe('Europe/Paris');
    expect(TimeWindowSchema.parse(window(['mon'], '09:00', '18:00', 'Etc/UTC')).tz).toBe('UTC');
    expect(TimeWindowSchema.parse(window(['mon'], '09:00', '18:00', 'US/Eastern')).tz).toBe('America/New_York');
    expect(EnvelopeSchema.parse({ time_windows: [window(['mon'], '09:00', '18:00', 'AMERICA/new_york')] }).time_windows?.[0]?.tz).toBe('America/New_York');
    expect(canonicalTimeZone('Mars/Olympus')).toBe('Mars/Olympus');
  });

  it.each([
    ['Etc/GMT+5', 'Etc/GMT+5 means UTC-05:00; name a city zone (Area/City, such as America/Bogota)'],
    ['Etc/GMT-14', 'Etc/GMT-14 means UTC+14:00; name a city zone (Area/City, such as America/Bogota)'],
    ['etc/gmt+10', 'etc/gmt+10 means UTC-10:00; name a city zone (Area/City, such as America/Bogota)'],
    ['EST', 'EST is an abbreviation or legacy name, not a place; name a city zone (Area/City, such as America/New_York)'],
    ['CET', 'CET is an abbreviation or legacy name, not a place; name a city zone (Area/City, such as America/New_York)'],
    ['PST8PDT', 'PST8PDT is an abbreviation or legacy name, not a place; name a city zone (Area/City, such as America/New_York)'],
    ['Mars/Olympus', 'tz is not a known IANA time zone'],
    ['Europe/Zürich', 'tz is not a known IANA time zone'],
  ])('refuses the time zone %s, saying why', (tz, message) => {
    const parsed = TimeWindowSchema.safeParse(window(['mon'], '09:00', '18:00', tz));
    expect(parsed.error?.issues.map((issue) => [issue.path, issue.message])).toEqual([[['tz'], message]]);
  });

  it('accepts UTC under any of its names', () => {
    for (const tz of ['UTC', 'utc', 'GMT', 'Etc/GMT', 'Etc/GMT+0', 'Etc/UTC', 'Zulu']) {
      expect(TimeWindowSchema.parse(window(['mon'], '09:00', '18:00', tz)).tz).toBe('UTC');
    }
  });

  it('rejects amounts too large to count exactly in thousandths', () => {
    expect(EnvelopeSchema.safeParse({ amount: { currency: 'EUR', total_max: 1e12 } }).success).toBe(true);
    expect(EnvelopeSchema.safeParse({ amount: { currency: 'EUR', total_max: 1e13 } }).success).toBe(false);
  });
});

describe('localTime', () => {
  it('reads the weekday and minutes since local midnight', () => {
    expect(localTime(at('2026-06-13T09:30:00Z'), 'Europe/Paris')).toEqual({ weekday: 'sat', minutes: 11 * 60 + 30 });
    expect(localTime(at('2026-06-13T09:30:59Z'), 'UTC')).toEqual({ weekday: 'sat', minutes: 9 * 60 + 30 });
  });

  it('reads midnight as 00:00, never 24:00', () => {
    expect(localTime(at('2026-06-14T22:00:00Z'), 'Europe/Paris')).toEqual({ weekday: 'mon', minutes: 0 });
  });

  it('follows Paris across the spring-forward gap of 2026-03-29', () => {
    expect(localTime(at('2026-03-29T00:59:00Z'), 'Europe/Paris')).toEqual({ weekday: 'sun', minutes: 1 * 60 + 59 });
    expect(localTime(at('2026-03-29T01:00:00Z'), 'Europe/Paris')).toEqual({ weekday: 'sun', minutes: 3 * 60 });
  });

  it('reads both instants of the repeated hour in Paris on 2026-10-25 as the same wall clock', () => {
    expect(localTime(at('2026-10-25T00:30:00Z'), 'Europe/Paris')).toEqual({ weekday: 'sun', minutes: 2 * 60 + 30 });
    expect(localTime(at('2026-10-25T01:30:00Z'), 'Europe/Paris')).toEqual({ weekday: 'sun', minutes: 2 * 60 + 30 });
  });

  it('handles the half-hour offset of Asia/Kolkata', () => {
    expect(localTime(at('2026-06-12T03:30:00Z'), 'Asia/Kolkata')).toEqual({ weekday: 'fri', minutes: 9 * 60 });
  });

  it('puts a UTC Thursday evening on Friday morning in Auckland', () => {
    expect(localTime(at('2026-01-15T20:00:00Z'), 'Pacific/Auckland')).toEqual({ weekday: 'fri', minutes: 9 * 60 });
  });

  it('throws a RangeError for an unknown zone or an invalid time', () => {
    expect(() => localTime(0, 'Not/AZone')).toThrow(RangeError);
    expect(() => localTime(Number.NaN, 'UTC')).toThrow(RangeError);
  });
});

describe('isWithinTimeWindow', () => {
  const officeHours = window([...WEEKDAYS_ONLY], '09:00', '18:00');

  it('includes the start and excludes the end', () => {
    expect(isWithinTimeWindow(officeHours, at('2026-06-12T06:59:59Z'))).toBe(false); // Fri 08:59:59
    expect(isWithinTimeWindow(officeHours, at('2026-06-12T07:00:00Z'))).toBe(true); // Fri 09:00
    expect(isWithinTimeWindow(officeHours, at('2026-06-12T15:59:59Z'))).toBe(true); // Fri 17:59:59
    expect(isWithinTimeWindow(officeHours, at('2026-06-12T16:00:00Z'))).toBe(false); // Fri 18:00
  });

  it('refuses a day that is not listed', () => {
    expect(isWithinTimeWindow(officeHours, at('2026-06-13T08:00:00Z'))).toBe(false); // Sat 10:00
  });

  it('gives the early hours of a window crossing midnight to the day it starts on', () => {
    const fridayNight = window(['fri'], '22:00', '06:00');
    expect(isWithinTimeWindow(fridayNight, at('2026-06-12T20:00:00Z'))).toBe(true); // Fri 22:00
    expect(isWithinTimeWindow(fridayNight, at('2026-06-13T01:00:00Z'))).toBe(true); // Sat 03:00
    expect(isWithinTimeWindow(fridayNight, at('2026-06-13T04:00:00Z'))).toBe(false); // Sat 06:00
    expect(isWithinTimeWindow(fridayNight, at('2026-06-12T01:00:00Z'))).toBe(false); // Fri 03:00: Thursday's night
    expect(isWithinTimeWindow(fridayNight, at('2026-06-13T20:00:00Z'))).toBe(false); // Sat 22:00
  });

  it('ends a window written 22:00-00:00 at midnight', () => {
    const lateEvening = window(['sat'], '22:00', '00:00', 'UTC');
    expect(isWithinTimeWindow(lateEvening, at('2026-06-13T23:59:00Z'))).toBe(true);
    expect(isWithinTimeWindow(lateEvening, at('2026-06-14T00:00:00Z'))).toBe(false);
  });

  it('runs a Sunday night window into Monday morning', () => {
    const sundayNight = window(['sun'], '22:00', '02:00', 'UTC');
    expect(isWithinTimeWindow(sundayNight, at('2026-06-15T01:59:00Z'))).toBe(true); // Mon 01:59
    expect(isWithinTimeWindow(sundayNight, at('2026-06-15T02:00:00Z'))).toBe(false);
    expect(isWithinTimeWindow(sundayNight, at('2026-06-08T01:00:00Z'))).toBe(true); // the Monday before
  });

  it('reads start equal to end as the whole of the listed day, not 24 hours from start', () => {
    const saturday = window(['sat'], '13:00', '13:00', 'UTC');
    expect(isWithinTimeWindow(saturday, at('2026-06-13T00:00:00Z'))).toBe(true);
    expect(isWithinTimeWindow(saturday, at('2026-06-13T23:59:59Z'))).toBe(true);
    expect(isWithinTimeWindow(saturday, at('2026-06-14T00:00:00Z'))).toBe(false);
    expect(isWithinTimeWindow(saturday, at('2026-06-14T12:59:00Z'))).toBe(false);
    expect(isWithinTimeWindow(saturday, at('2026-06-12T23:59:00Z'))).toBe(false);
  });

  it('never opens a window that lies in the spring-forward gap (Paris, 2026-03-29)', () => {
    const gap = window(['sun'], '02:00', '03:00');
    for (let ms = at('2026-03-29T00:00:00Z'); ms < at('2026-03-29T02:00:00Z'); ms += 60_000) {
      expect(isWithinTimeWindow(gap, ms)).toBe(false);
    }
  });

  it('keeps the local hours of a window on the spring-forward day (Paris, 2026-03-29)', () => {
    const earlyMorning = window(['sun'], '01:00', '03:30');
    expect(isWithinTimeWindow(earlyMorning, at('2026-03-29T00:30:00Z'))).toBe(true); // 01:30 CET
    expect(isWithinTimeWindow(earlyMorning, at('2026-03-29T01:29:00Z'))).toBe(true); // 03:29 CEST
    expect(isWithinTimeWindow(earlyMorning, at('2026-03-29T01:30:00Z'))).toBe(false); // 03:30 CEST
  });

  it('allows both instants of the repeated hour on fall-back day (Paris, 2026-10-25)', () => {
    const repeated = window(['sun'], '02:00', '03:00');
    expect(isWithinTimeWindow(repeated, at('2026-10-25T00:30:00Z'))).toBe(true); // 02:30 CEST
    expect(isWithinTimeWindow(repeated, at('2026-10-25T01:30:00Z'))).toBe(true); // 02:30 CET
    expect(isWithinTimeWindow(repeated, at('2026-10-25T02:00:00Z'))).toBe(false); // 03:00 CET
  });

  it('allows both 01:30 instants of fall-back day in New York (2026-11-01) or neither', () => {
    const one = window(['sun'], '01:00', '02:00', 'America/New_York');
    const beforeHalfPast = window(['sun'], '00:00', '01:30', 'America/New_York');
    for (const instant of [at('2026-11-01T05:30:00Z'), at('2026-11-01T06:30:00Z')]) {
      expect(isWithinTimeWindow(one, instant)).toBe(true);
      expect(isWithinTimeWindow(beforeHalfPast, instant)).toBe(false);
    }
  });

  it('jumps from 01:59 to 03:00 on spring-forward day in New York (2026-03-08)', () => {
    const beforeTwo = window(['sun'], '01:00', '02:00', 'America/New_York');
    expect(isWithinTimeWindow(beforeTwo, at('2026-03-08T06:59:00Z'))).toBe(true);
    expect(isWithinTimeWindow(beforeTwo, at('2026-03-08T07:00:00Z'))).toBe(false);
  });

  it('opens at 09:00 India time, a half-hour offset from UTC', () => {
    const morning = window(['fri'], '09:00', '09:30', 'Asia/Kolkata');
    expect(isWithinTimeWindow(morning, at('2026-06-12T03:29:59Z'))).toBe(false);
    expect(isWithinTimeWindow(morning, at('2026-06-12T03:30:00Z'))).toBe(true);
    expect(isWithinTimeWindow(morning, at('2026-06-12T04:00:00Z'))).toBe(false);
  });

  it('opens at 09:00 Auckland time in both summer (UTC+13) and winter (UTC+12)', () => {
    const morning = window(['thu', 'fri'], '09:00', '10:00', 'Pacific/Auckland');
    expect(isWithinTimeWindow(morning, at('2026-01-15T20:00:00Z'))).toBe(true); // Fri 16 Jan 09:00 NZDT
    expect(isWithinTimeWindow(morning, at('2026-07-15T21:00:00Z'))).toBe(true); // Thu 16 Jul 09:00 NZST
    expect(isWithinTimeWindow(morning, at('2026-07-15T20:00:00Z'))).toBe(false); // Thu 08:00 NZST
  });

  it('keeps the local end of a night window that crosses the spring-forward change (Paris)', () => {
    const saturdayNight = window(['sat'], '22:00', '06:00');
    expect(isWithinTimeWindow(saturdayNight, at('2026-03-28T20:59:00Z'))).toBe(false); // Sat 21:59 CET
    expect(isWithinTimeWindow(saturdayNight, at('2026-03-28T21:00:00Z'))).toBe(true); // Sat 22:00 CET
    expect(isWithinTimeWindow(saturdayNight, at('2026-03-29T03:59:00Z'))).toBe(true); // Sun 05:59 CEST
    expect(isWithinTimeWindow(saturdayNight, at('2026-03-29T04:00:00Z'))).toBe(false); // Sun 06:00 CEST
  });

  it('keeps the local end of a night window that crosses the fall-back change (Paris)', () => {
    const saturdayNight = window(['sat'], '22:00', '06:00');
    expect(isWithinTimeWindow(saturdayNight, at('2026-10-24T20:00:00Z'))).toBe(true); // Sat 22:00 CEST
    expect(isWithinTimeWindow(saturdayNight, at('2026-10-25T04:59:00Z'))).toBe(true); // Sun 05:59 CET
    expect(isWithinTimeWindow(saturdayNight, at('2026-10-25T05:00:00Z'))).toBe(false); // Sun 06:00 CET
  });
});

describe('isWithinTimeWindows', () => {
  it('allows an instant inside any one of the windows', () => {
    const windows = [window([...WEEKDAYS_ONLY], '09:00', '18:00'), window(['sat'], '10:00', '12:00')];
    expect(isWithinTimeWindows(windows, at('2026-06-13T09:30:00Z'))).toBe(true); // Sat 11:30
    expect(isWithinTimeWindows(windows, at('2026-06-13T10:30:00Z'))).toBe(false); // Sat 12:30
  });

  it('allows nothing when there is no window', () => {
    expect(isWithinTimeWindows([], at('2026-06-13T09:30:00Z'))).toBe(false);
  });
});

describe('toMinorUnits', () => {
  it('counts thousandths so that 0.1 + 0.2 equals 0.3', () => {
    expect(toMinorUnits(0.1) + toMinorUnits(0.2)).toBe(toMinorUnits(0.3));
    expect(toMinorUnits(0.1 + 0.2)).toBe(300);
    expect(toMinorUnits(12.345)).toBe(12_345);
    expect(toMinorUnits(1e12)).toBe(1e15);
  });

  it('rounds to the nearest thousandth', () => {
    expect(toMinorUnits(0.0004)).toBe(0);
    expect(toMinorUnits(0.0006)).toBe(1);
    expect(Object.is(toMinorUnits(-0.0001), 0)).toBe(true);
  });

  it('throws a RangeError for amounts that cannot be counted exactly', () => {
    expect(() => toMinorUnits(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => toMinorUnits(Number.NaN)).toThrow(RangeError);
    expect(() => toMinorUnits(1e14)).toThrow(RangeError);
  });
});

describe('narrows and envelopeViolation', () => {
  const parent: Envelope = {
    rate: { limit: 60, window_s: 60 },
    time_windows: [window([...WEEKDAYS_ONLY], '09:00', '18:00')],
    amount: { currency: 'EUR', per_request_max: 200, total_max: 500, approval_above: 150 },
    max_uses: 100,
  };

  it('accepts an envelope as a narrowing of itself', () => {
    expect(envelopeViolation(parent, parent)).toBeNull();
    expect(narrows({}, {})).toBe(true);
  });

  it('accepts a child that is tighter on every constraint and adds new ones', () => {
    const child: Envelope = {
      rate: { limit: 10, window_s: 3600 },
      time_windows: [window(['tue', 'wed'], '10:00', '12:00')],
      amount: { currency: 'EUR', per_request_max: 50, total_max: 100, approval_above: 20 },
      max_uses: 3,
    };
    expect(envelopeViolation(child, parent)).toBeNull();
    expect(narrows({ rate: { limit: 1, window_s: 1 }, max_uses: 1, time_windows: [window(['mon'], '00:00', '00:00')] }, {})).toBe(
      true,
    );
  });

  it.each<[string, Envelope, string]>([
    ['a higher rate limit', { ...parent, rate: { limit: 120, window_s: 60 } }, 'rate 120/60s is wider than 60/60s'],
    ['a shorter rate window', { ...parent, rate: { limit: 60, window_s: 30 } }, 'rate 60/30s is wider than 60/60s'],
    ['a rate limit higher by one', { ...parent, rate: { limit: 61, window_s: 3600 } }, 'rate 61/3600s is wider than 60/60s'],
    ['a rate window shorter by a second', { ...parent, rate: { limit: 1, window_s: 59 } }, 'rate 1/59s is wider than 60/60s'],
    ['no rate', { ...parent, rate: undefined }, 'rate is dropped'],
    ['no time windows', { ...parent, time_windows: undefined }, 'time_windows is dropped'],
    [
      'a window on a day the parent does not allow',
      { ...parent, time_windows: [window(['sat'], '10:00', '12:00')] },
      'time_windows: window 0 (sat 10:00-12:00 Europe/Paris) is not inside a parent window',
    ],
    [
      'a window running later than the parent',
      { ...parent, time_windows: [window(['mon'], '09:00', '18:00'), window(['tue'], '17:00', '19:00')] },
      'time_windows: window 1 (tue 17:00-19:00 Europe/Paris) is not inside a parent window',
    ],
    [
      'a window ending a minute after the parent',
      { ...parent, time_windows: [window(['mon'], '09:00', '18:01')] },
      'time_windows: window 0 (mon 09:00-18:01 Europe/Paris) is not inside a parent window',
    ],
    [
      'a window starting a minute before the parent',
      { ...parent, time_windows: [window(['fri'], '08:59', '18:00')] },
      'time_windows: window 0 (fri 08:59-18:00 Europe/Paris) is not inside a parent window',
    ],
    [
      'the same hours in another zone',
      { ...parent, time_windows: [window(['mon'], '10:00', '12:00', 'Europe/Berlin')] },
      'time_windows: window 0 (mon 10:00-12:00 Europe/Berlin) is not inside a parent window',
    ],
    ['no amount', { ...parent, amount: undefined }, 'amount is dropped'],
    [
      'another currency',
      { ...parent, amount: { currency: 'USD', per_request_max: 200, total_max: 500, approval_above: 150 } },
      'amount currency USD differs from EUR',
    ],
    [
      'a higher per-request maximum',
      { ...parent, amount: { currency: 'EUR', per_request_max: 201, total_max: 500, approval_above: 150 } },
      'amount.per_request_max 201 exceeds 200',
    ],
    [
      'a higher total',
      { ...parent, amount: { currency: 'EUR', per_request_max: 200, total_max: 600, approval_above: 150 } },
      'amount.total_max 600 exceeds 500',
    ],
    [
      'a higher approval threshold',
      { ...parent, amount: { currency: 'EUR', per_request_max: 200, total_max: 500, approval_above: 151 } },
      'amount.approval_above 151 exceeds 150',
    ],
    [
      'no approval threshold',
      { ...parent, amount: { currency: 'EUR', per_request_max: 200, total_max: 500 } },
      'amount.approval_above is dropped',
    ],
    ['more uses', { ...parent, max_uses: 101 }, 'max_uses 101 exceeds 100'],
    ['no use limit', { ...parent, max_uses: undefined }, 'max_uses is dropped'],
  ])('refuses a child with %s', (_what, child, reason) => {
    expect(envelopeViolation(child, parent)).toBe(reason);
    expect(narrows(child, parent)).toBe(false);
  });

  it('refuses a child that adds an amount to a parent that allows none', () => {
    expect(envelopeViolation({ amount: { currency: 'EUR', total_max: 1 } }, {})).toBe(
      'amount is added, but the parent allows no amount',
    );
  });

  it('lets a child add an approval threshold or a limit the parent lacks', () => {
    expect(narrows({ amount: { currency: 'EUR', approval_above: 10, per_request_max: 5 } }, { amount: { currency: 'EUR' } })).toBe(
      true,
    );
  });

  it('compares amounts in thousandths, as evaluation does', () => {
    const p: Envelope = { amount: { currency: 'EUR', total_max: 0.3 } };
    expect(narrows({ amount: { currency: 'EUR', total_max: 0.1 + 0.2 } }, p)).toBe(true);
    expect(narrows({ amount: { currency: 'EUR', total_max: 0.301 } }, p)).toBe(false);
  });

  describe('time windows', () => {
    const narrowsWindows = (child: TimeWindow[], parentWindows: TimeWindow[]): boolean =>
      narrows({ time_windows: child }, { time_windows: parentWindows });

    it('accepts the early hours of a parent window crossing midnight, on the next day', () => {
      const fridayNight = [window(['fri'], '22:00', '06:00')];
      expect(narrowsWindows([window(['sat'], '01:00', '03:00')], fridayNight)).toBe(true);
      expect(narrowsWindows([window(['fri'], '23:00', '05:00')], fridayNight)).toBe(true);
      expect(narrowsWindows([window(['fri'], '01:00', '03:00')], fridayNight)).toBe(false);
      expect(narrowsWindows([window(['fri'], '21:00', '05:00')], fridayNight)).toBe(false);
      expect(narrowsWindows([window(['fri'], '23:00', '07:00')], fridayNight)).toBe(false);
    });

    it('accepts a child ending at midnight inside a parent running past it', () => {
      expect(narrowsWindows([window(['fri'], '22:00', '00:00')], [window(['fri'], '21:00', '06:00')])).toBe(true);
    });

    it('treats a whole-day window as 00:00 to 24:00 of each listed day', () => {
      const weekend = [window(['sat', 'sun'], '00:00', '00:00')];
      expect(narrowsWindows([window(['sat'], '07:00', '07:00')], weekend)).toBe(true);
      expect(narrowsWindows([window(['sat'], '22:00', '06:00')], weekend)).toBe(true);
      expect(narrowsWindows([window(['sun'], '22:00', '06:00')], weekend)).toBe(false);
      expect(narrowsWindows([window(['sat'], '00:00', '00:00')], [window(['sat'], '00:00', '23:59')])).toBe(false);
    });

    it('wraps a Sunday night window into Monday morning', () => {
      const sundayNight = [window(['sun'], '20:00', '04:00', 'UTC')];
      expect(narrowsWindows([window(['mon'], '00:00', '03:00', 'UTC')], sundayNight)).toBe(true);
      expect(narrowsWindows([window(['sun'], '23:00', '04:00', 'UTC')], sundayNight)).toBe(true);
      expect(narrowsWindows([window(['mon'], '03:00', '05:00', 'UTC')], sundayNight)).toBe(false);
    });

    it('accepts a child covered by several parent windows of the same zone together', () => {
      const split = [window(['mon'], '09:00', '12:00'), window(['mon'], '12:00', '18:00'), window(['tue'], '09:00', '18:00')];
      expect(narrowsWindows([window(['mon', 'tue'], '10:00', '14:00')], split)).toBe(true);
      expect(narrowsWindows([window(['mon'], '08:00', '14:00')], split)).toBe(false);
    });

    it('accepts a night spanning a parent evening window and the next morning window', () => {
      const parentWindows = [window(['fri'], '20:00', '00:00'), window(['sat'], '00:00', '08:00')];
      expect(narrowsWindows([window(['fri'], '22:00', '06:00')], parentWindows)).toBe(true);
    });

    it('does not let a parent window in another zone cover a gap', () => {
      const parentWindows = [window(['mon'], '09:00', '12:00'), window(['mon'], '12:00', '18:00', 'Europe/Berlin')];
      expect(narrowsWindows([window(['mon'], '10:00', '14:00')], parentWindows)).toBe(false);
    });
  });

  it('assertNarrows throws invalid_authorization_details with the reason', () => {
    expect(() => assertNarrows(parent, parent)).not.toThrow();
    let thrown: unknown;
    try {
      assertNarrows({ ...parent, max_uses: 200 }, parent);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InvalidAuthorizationDetails);
    expect((thrown as InvalidAuthorizationDetails).code).toBe('invalid_authorization_details');
    expect((thrown as InvalidAuthorizationDetails).description).toBe(
      'envelope is wider than its parent: max_uses 200 exceeds 100',
    );
  });
});

describe('evaluateEnvelope', () => {
  const envelope: Envelope = {
    rate: { limit: 60, window_s: 60 },
    time_windows: [window([...WEEKDAYS_ONLY], '09:00', '18:00')],
    amount: { currency: 'EUR', per_request_max: 200, total_max: 500, approval_above: 150 },
    max_uses: 100,
  };
  const now = at('2026-06-12T08:00:00Z'); // Friday 10:00 in Paris
  const fresh: EnvelopeState = { uses: 0, spent: 0, rateCount: 0, rateWindowEndsAtMs: 0 };
  const payment = { amount: 100, currency: 'EUR' };

  function refusal(decision: ReturnType<typeof evaluateEnvelope>) {
    if (decision.allow) throw new Error('expected a refusal');
    return decision.error;
  }

  it('allows a request inside every limit', () => {
    expect(evaluateEnvelope(envelope, payment, fresh, now)).toEqual({ allow: true });
    expect(evaluateEnvelope({}, {}, fresh, now)).toEqual({ allow: true });
  });

  it('refuses outside the time windows with outside_time_window', () => {
    const error = refusal(evaluateEnvelope(envelope, payment, fresh, at('2026-06-13T08:00:00Z')));
    expect(error).toBeInstanceOf(OutsideTimeWindow);
    expect(error.code).toBe('outside_time_window');
    expect(error.status).toBe(403);
  });

  it('refuses once max_uses is reached with budget_exceeded', () => {
    expect(evaluateEnvelope(envelope, payment, { ...fresh, uses: 99 }, now).allow).toBe(true);
    const error = refusal(evaluateEnvelope(envelope, payment, { ...fresh, uses: 100 }, now));
    expect(error).toBeInstanceOf(BudgetExceeded);
    expect(error.code).toBe('budget_exceeded');
    expect(error.description).toBe('max_uses reached');
  });

  it('refuses at the rate limit with rate_limited and the seconds left in the window, rounded up', () => {
    const full = { ...fresh, rateCount: 60, rateWindowEndsAtMs: now + 12_300 };
    const error = refusal(evaluateEnvelope(envelope, payment, full, now));
    expect(error).toBeInstanceOf(RateLimited);
    expect(error.code).toBe('rate_limited');
    expect(error.status).toBe(429);
    // EnvelopeError is a union discriminated by code: no cast needed to reach retryAfter.
    expect(error.code === 'rate_limited' && error.retryAfter).toBe(13);
    expect(evaluateEnvelope(envelope, payment, { ...full, rateCount: 59 }, now).allow).toBe(true);
  });

  it('asks to retry after at least one second, even a millisecond before the window ends', () => {
    const full = { ...fresh, rateCount: 60, rateWindowEndsAtMs: now + 1 };
    const error = refusal(evaluateEnvelope(envelope, payment, full, now));
    expect(error.code === 'rate_limited' && error.retryAfter).toBe(1);
  });

  it('no longer counts a rate window that has ended', () => {
    const ended = { ...fresh, rateCount: 60, rateWindowEndsAtMs: now };
    expect(evaluateEnvelope(envelope, payment, ended, now)).toEqual({ allow: true });
  });

  it.each<[string, { amount?: number; currency?: string }, string]>([
    ['another currency', { amount: 10, currency: 'USD' }, 'amount currency USD differs from EUR'],
    ['an amount without a currency', { amount: 10 }, 'amount is given without a currency'],
    ['a currency without an amount', { currency: 'EUR' }, 'currency is given without an amount'],
    ['no amount where amounts are limited', {}, 'this grant limits amounts: the request must state its amount and currency'],
    ['a negative amount', { amount: -5, currency: 'EUR' }, 'amount must be a number from 0 to 1000000000000'],
    ['an amount that is not a number', { amount: Number.NaN, currency: 'EUR' }, 'amount must be a number from 0 to 1000000000000'],
    ['an infinite amount', { amount: Number.POSITIVE_INFINITY, currency: 'EUR' }, 'amount must be a number from 0 to 1000000000000'],
  ])('refuses %s with invalid_request', (_what, request, description) => {
    const error = refusal(evaluateEnvelope(envelope, request, fresh, now));
    expect(error).toBeInstanceOf(InvalidRequest);
    expect(error.code).toBe('invalid_request');
    expect(error.description).toBe(description);
  });

  it('refuses an amount to a grant whose envelope has no amount (fail closed)', () => {
    const error = refusal(evaluateEnvelope({ max_uses: 5 }, payment, fresh, now));
    expect(error.code).toBe('invalid_request');
    expect(error.description).toBe('this grant allows no amount');
  });

  it('allows a request without an amount when the envelope only fixes the currency', () => {
    expect(evaluateEnvelope({ amount: { currency: 'EUR' } }, {}, fresh, now)).toEqual({ allow: true });
    expect(evaluateEnvelope({ amount: { currency: 'EUR' } }, { amount: 1e6, currency: 'EUR' }, fresh, now)).toEqual({
      allow: true,
    });
  });

  it('refuses an amount above per_request_max with budget_exceeded', () => {
    expect(evaluateEnvelope(envelope, { amount: 200, currency: 'EUR' }, fresh, now).allow).toBe(false); // above approval
    const error = refusal(evaluateEnvelope(envelope, { amount: 200.01, currency: 'EUR', stepUpApproved: true }, fresh, now));
    expect(error).toBeInstanceOf(BudgetExceeded);
    expect(error.code).toBe('budget_exceeded');
    expect(error.description).toBe('amount 200.01 exceeds per_request_max 200');
  });

  it('refuses an amount that would bring the total above total_max with budget_exceeded', () => {
    expect(evaluateEnvelope(envelope, payment, { ...fresh, spent: 400 }, now)).toEqual({ allow: true });
    const error = refusal(evaluateEnvelope(envelope, { amount: 100.01, currency: 'EUR' }, { ...fresh, spent: 400 }, now));
    expect(error).toBeInstanceOf(BudgetExceeded);
    expect(error.code).toBe('budget_exceeded');
    expect(error.description).toBe('amount 100.01 would bring the total above total_max 500');
  });

  it('fits 0.1 + 0.2 into a total of 0.3, despite floating point', () => {
    const small: Envelope = { amount: { currency: 'EUR', total_max: 0.3 } };
    expect(evaluateEnvelope(small, { amount: 0.2, currency: 'EUR' }, { ...fresh, spent: 0.1 }, now)).toEqual({ allow: true });
    expect(evaluateEnvelope(small, { amount: 0.201, currency: 'EUR' }, { ...fresh, spent: 0.1 }, now).allow).toBe(false);
  });

  it('refuses an amount above approval_above with approval_required, until a human approves it', () => {
    expect(evaluateEnvelope(envelope, { amount: 150, currency: 'EUR' }, fresh, now)).toEqual({ allow: true });
    const error = refusal(evaluateEnvelope(envelope, { amount: 150.5, currency: 'EUR' }, fresh, now));
    expect(error).toBeInstanceOf(ApprovalRequired);
    expect(error.code).toBe('approval_required');
    expect(error.description).toBe('amount 150.5 is above approval_above 150: a human must approve this request');
    expect(evaluateEnvelope(envelope, { amount: 150.5, currency: 'EUR', stepUpApproved: true }, fresh, now)).toEqual({
      allow: true,
    });
  });

  it('checks the time window first, then max_uses, then rate, then the amount', () => {
    const everything = { uses: 100, spent: 500, rateCount: 60, rateWindowEndsAtMs: Number.MAX_SAFE_INTEGER };
    const request = { amount: 1000, currency: 'USD' };
    const saturday = at('2026-06-13T08:00:00Z');
    expect(refusal(evaluateEnvelope(envelope, request, everything, saturday)).code).toBe('outside_time_window');
    expect(refusal(evaluateEnvelope(envelope, request, everything, now)).code).toBe('budget_exceeded');
    expect(refusal(evaluateEnvelope(envelope, request, { ...everything, uses: 0 }, now)).code).toBe('rate_limited');
    expect(refusal(evaluateEnvelope(envelope, request, { ...everything, uses: 0, rateCount: 0 }, now)).code).toBe(
      'invalid_request',
    );
  });

  it('returns a fresh answer each time', () => {
    const first = evaluateEnvelope({}, {}, fresh, now);
    expect(first).not.toBe(evaluateEnvelope({}, {}, fresh, now));
  });
});

describe('describeEnvelope', () => {
  it('renders the envelope of ARCHITECTURE.md in plain words', () => {
    expect(
      describeEnvelope({
        rate: { limit: 60, window_s: 60 },
        time_windows: [window([...WEEKDAYS_ONLY], '09:00', '18:00')],
        amount: { currency: 'EUR', per_request_max: 200, total_max: 500, approval_above: 150 },
        max_uses: 100,
      }, at('2026-06-13T09:30:00Z')),
    ).toEqual([
      'At most 60 requests per minute',
      'Monday to Friday, 09:00–18:00 (Europe/Paris, UTC+01:00 or UTC+02:00 in summer time)',
      'Up to €200 per payment and €500 in total',
      'Asks you again for any payment above €150',
      'At most 100 uses',
    ]);
  });

  it('says nothing for an envelope without limits', () => {
    expect(describeEnvelope({})).toEqual([]);
  });

  it.each<[TimeWindow['days'], string]>([
    [['sat', 'sun'], 'Saturday and Sunday'],
    [['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], 'Every day'],
    [['sun', 'sat', 'fri', 'thu', 'wed', 'tue', 'mon', 'mon'], 'Every day'],
    [['wed'], 'Wednesday'],
    [['mon', 'wed', 'fri'], 'Monday, Wednesday, and Friday'],
    [['mon', 'tue', 'wed', 'fri'], 'Monday to Wednesday and Friday'],
    [['fri', 'sat', 'sun', 'mon'], 'Friday to Monday'],
    [['mon', 'wed', 'sun'], 'Monday, Wednesday, and Sunday'],
    [['thu', 'tue', 'wed'], 'Tuesday to Thursday'],
  ])('names the days %j as "%s"', (days, text) => {
    expect(describeEnvelope({ time_windows: [window(days, '09:00', '18:00', 'UTC')] })).toEqual([`${text}, 09:00–18:00 (UTC)`]);
  });

  it('says "the next day" for a window crossing midnight and "all day" for a whole day', () => {
    expect(
      describeEnvelope({ time_windows: [window(['fri'], '22:00', '06:00'), window(['sat', 'sun'], '00:00', '00:00', 'UTC')] }, at('2026-06-13T09:30:00Z')),
    ).toEqual(['Friday, 22:00 to 06:00 the next day (Europe/Paris, UTC+01:00 or UTC+02:00 in summer time)', 'Saturday and Sunday, all day (UTC)']);
  });

  it.each([
    ['Asia/Kolkata', 'Asia/Kolkata, UTC+05:30'],
    ['America/New_York', 'America/New_York, UTC−05:00 or UTC−04:00 in summer time'],
    ['Australia/Sydney', 'Australia/Sydney, UTC+10:00 or UTC+11:00 in summer time'],
    ['Europe/London', 'Europe/London, UTC+00:00 or UTC+01:00 in summer time'],
    ['America/Bogota', 'America/Bogota, UTC−05:00'],
    ['UTC', 'UTC'],
  ])('shows the UTC offsets of %s', (tz, text) => {
    expect(describeTimeZone(tz, at('2026-06-13T09:30:00Z'))).toBe(text);
  });

  it.each<[number, number, string]>([
    [1, 1, 'At most 1 request per second'],
    [100, 3600, 'At most 100 requests per hour'],
    [1000, 86400, 'At most 1,000 requests per day'],
    [10, 7200, 'At most 10 requests every 2 hours'],
    [10, 120, 'At most 10 requests every 2 minutes'],
    [10, 90, 'At most 10 requests every 90 seconds'],
  ])('renders a rate of %i per %is as "%s"', (limit, window_s, text) => {
    expect(describeEnvelope({ rate: { limit, window_s } })).toEqual([text]);
  });

  it('formats money with its currency, keeping every thousandth and dropping .00', () => {
    expect(describeEnvelope({ amount: { currency: 'USD', per_request_max: 19.5 } })).toEqual(['Up to $19.50 per payment']);
    expect(describeEnvelope({ amount: { currency: 'EUR', total_max: 0.125 } })).toEqual(['Up to €0.125 in total']);
    expect(describeEnvelope({ amount: { currency: 'JPY', total_max: 12000 } })).toEqual(['Up to ¥12,000 in total']);
    expect(describeEnvelope({ amount: { currency: 'KWD', total_max: 1.5 } })).toEqual(['Up to KWD\u00a01.500 in total']);
  });

  it('warns when the amount has no limit, and renders a lone approval threshold', () => {
    expect(describeEnvelope({ amount: { currency: 'GBP', approval_above: 20 } })).toEqual([
      'Payments in GBP, with no limit on the amount',
      'Asks you again for any payment above £20',
    ]);
  });

  it('writes a single use in the singular', () => {
    expect(describeEnvelope({ max_uses: 1 })).toEqual(['At most 1 use']);
  });
});
