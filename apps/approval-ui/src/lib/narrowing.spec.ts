import { describe, expect, it } from 'vitest';
import type { HumanGrant } from '@writ/contracts';
import { buildNarrowing, initialInput, KEEP_ONE_CAPABILITY, limitFields, tooHighMessage } from './narrowing';

type Requested = Pick<HumanGrant, 'authorization_details' | 'envelope' | 'duration_s'>;

const flights = { type: 'flight_booking', locations: ['https://flights.example'], actions: ['read', 'write'] };
const payments = { type: 'payment', locations: ['https://pay.example'], actions: ['transact'] };

const grant: Requested = {
  authorization_details: [flights, payments],
  envelope: {
    rate: { limit: 60, window_s: 60 },
    time_windows: [{ days: ['mon', 'tue'], start: '09:00', end: '18:00', tz: 'Europe/Paris' }],
    amount: { currency: 'EUR', per_request_max: 200, total_max: 500, approval_above: 150 },
    max_uses: 100,
  },
  duration_s: 3600,
};

function withValues(values: Record<string, string>, keep = [true, true]) {
  return { keep, values: { ...initialInput(grant).values, ...values } };
}

describe('limitFields', () => {
  it('offers only the limits the request sets, plus the duration', () => {
    const bare: Requested = { authorization_details: [flights], envelope: {}, duration_s: 600 };
    expect(limitFields(bare).map((field) => field.label)).toEqual(['Duration in minutes']);
    expect(limitFields(grant).map((field) => field.label)).toEqual([
      'Requests allowed per window',
      'Most per request',
      'Most in total',
      'Most uses',
      'Duration in minutes',
    ]);
  });

  it('starts every field at the requested value', () => {
    expect(initialInput(grant)).toEqual({
      keep: [true, true],
      values: { rateLimit: '60', perRequestMax: '200', totalMax: '500', maxUses: '100', durationMinutes: '60' },
    });
  });
});

describe('buildNarrowing', () => {
  it('sends no narrowing when nothing changed', () => {
    expect(buildNarrowing(grant, initialInput(grant))).toEqual({ ok: true, narrowing: undefined });
  });

  it('sends only the kept capabilities, unchanged, when one is unchecked', () => {
    const result = buildNarrowing(grant, withValues({}, [false, true]));
    expect(result).toEqual({ ok: true, narrowing: { authorization_details: [payments] } });
  });

  it('sends the whole requested envelope with only the lowered numbers changed', () => {
    const result = buildNarrowing(grant, withValues({ rateLimit: '10', totalMax: '250.5', maxUses: '5' }));
    expect(result).toEqual({
      ok: true,
      narrowing: {
        envelope: {
          rate: { limit: 10, window_s: 60 },
          time_windows: grant.envelope.time_windows,
          amount: { currency: 'EUR', per_request_max: 200, total_max: 250.5, approval_above: 150 },
          max_uses: 5,
        },
      },
    });
    // The request itself is left as it was.
    expect(grant.envelope.rate?.limit).toBe(60);
  });

  it('sends duration_s in seconds when the duration is shortened', () => {
    expect(buildNarrowing(grant, withValues({ durationMinutes: '15' }))).toEqual({
      ok: true,
      narrowing: { duration_s: 900 },
    });
  });

  it('treats a value typed as the requested one (with spaces) as unchanged', () => {
    expect(buildNarrowing(grant, withValues({ maxUses: ' 100 ', durationMinutes: '60.0' }))).toEqual({
      ok: true,
      narrowing: undefined,
    });
  });

  it('refuses a value above the requested one, with the message that says so', () => {
    const result = buildNarrowing(grant, withValues({ maxUses: '101', perRequestMax: '200.01', durationMinutes: '61' }));
    expect(result).toEqual({
      ok: false,
      errors: {
        maxUses: 'Most uses cannot be more than 100, the value requested. You can lower it, not raise it.',
        perRequestMax: 'Most per request cannot be more than 200, the value requested. You can lower it, not raise it.',
        durationMinutes: 'Duration in minutes cannot be more than 60, the value requested. You can lower it, not raise it.',
      },
    });
    expect(tooHighMessage('Requests allowed per window', 60)).toBe(
      'Requests allowed per window cannot be more than 60, the value requested. You can lower it, not raise it.',
    );
  });

  it('refuses empty, non-numeric, fractional counts and values under the minimum', () => {
    const result = buildNarrowing(
      grant,
      withValues({ rateLimit: '', maxUses: '2.5', totalMax: '-1', perRequestMax: 'abc', durationMinutes: '0' }),
    );
    expect(result).toEqual({
      ok: false,
      errors: {
        rateLimit: 'Requests allowed per window needs a number.',
        perRequestMax: 'Most per request needs a number.',
        totalMax: 'Most in total must be at least 0.',
        maxUses: 'Most uses must be a whole number.',
        durationMinutes: 'Duration in minutes must be more than 0.',
      },
    });
    expect(buildNarrowing(grant, withValues({ rateLimit: '0' }))).toEqual({
      ok: false,
      errors: { rateLimit: 'Requests allowed per window must be at least 1.' },
    });
  });

  it('accepts an amount lowered to 0 (no money at all)', () => {
    const result = buildNarrowing(grant, withValues({ totalMax: '0' }));
    expect(result.ok && result.narrowing?.envelope?.amount?.total_max).toBe(0);
  });

  it('refuses to drop every capability', () => {
    expect(buildNarrowing(grant, withValues({}, [false, false]))).toEqual({
      ok: false,
      errors: { capabilities: KEEP_ONE_CAPABILITY },
    });
  });

  it('combines every change in one narrowing', () => {
    const result = buildNarrowing(grant, withValues({ perRequestMax: '50', durationMinutes: '30' }, [true, false]));
    expect(result).toEqual({
      ok: true,
      narrowing: {
        authorization_details: [flights],
        envelope: { ...grant.envelope, amount: { ...grant.envelope.amount, per_request_max: 50 } },
        duration_s: 1800,
      },
    });
  });

  it('compares a duration that is not whole minutes in seconds', () => {
    const odd: Requested = { authorization_details: [flights], envelope: {}, duration_s: 90 };
    expect(initialInput(odd).values.durationMinutes).toBe('1.5');
    expect(buildNarrowing(odd, { keep: [true], values: { durationMinutes: '1.5' } })).toEqual({
      ok: true,
      narrowing: undefined,
    });
    expect(buildNarrowing(odd, { keep: [true], values: { durationMinutes: '1' } })).toEqual({
      ok: true,
      narrowing: { duration_s: 60 },
    });
  });
});
