import { InvalidAuthorizationDetails, InvalidRequest } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { capability, envelope, toAuthorizationDetails, toEnvelope } from '../src/agent/builders.js';

describe('capability()', () => {
  it('builds an RFC 9396 authorization_details object', () => {
    const built = capability('flight_booking').at('https://flights.example/api').actions('read', 'book').identifier('bookings/*').limit('max_passengers', 2).build();
    expect(built).toEqual({
      type: 'flight_booking',
      locations: ['https://flights.example/api'],
      actions: ['read', 'book'],
      identifier: 'bookings/*',
      limits: { max_passengers: 2 },
    });
  });

  it('is immutable: narrowing a template leaves the template as it was', () => {
    const template = capability('flight_booking').at('https://flights.example/api').actions('read', 'book');
    const readOnly = template.actions('read');
    expect(readOnly.build().actions).toEqual(['read']);
    expect(template.build().actions).toEqual(['read', 'book']);
  });

  it('serialises to the wire form', () => {
    const json = JSON.stringify([capability('payment').at('https://pay.example').actions('transact')]);
    expect(JSON.parse(json)).toEqual([{ type: 'payment', locations: ['https://pay.example'], actions: ['transact'] }]);
  });

  it('refuses what libs/core refuses, with invalid_authorization_details naming the problem', () => {
    expect(() => capability('flight_booking').actions('read').build()).toThrow(InvalidAuthorizationDetails);
    expect(() => capability('flight_booking').at('ftp://flights.example').actions('read').build()).toThrow(/locations\.0: location is an http or https URI/);
    expect(() => capability('flight_booking').at('https://flights.example').actions('Read').build()).toThrow(/actions\.0: action is a lowercase token/);
    expect(() => capability('flight_booking').at('https://flights.example').actions('read').identifier('bookings/../admin').build()).toThrow(/identifier/);
  });
});

describe('envelope()', () => {
  it('builds the behavioural envelope', () => {
    const built = envelope()
      .rate(60, 60)
      .during({ days: ['mon', 'fri'], start: '09:00', end: '18:00', tz: 'Europe/Paris' })
      .amount('EUR', { per_request_max: 200, total_max: 500, approval_above: 150 })
      .maxUses(100)
      .build();
    expect(built).toEqual({
      rate: { limit: 60, window_s: 60 },
      time_windows: [{ days: ['mon', 'fri'], start: '09:00', end: '18:00', tz: 'Europe/Paris' }],
      amount: { currency: 'EUR', per_request_max: 200, total_max: 500, approval_above: 150 },
      max_uses: 100,
    });
  });

  it('is empty, constraining nothing, when nothing is set', () => {
    expect(envelope().build()).toEqual({});
  });

  it('refuses what libs/core refuses, with invalid_request naming the problem', () => {
    expect(() => envelope().rate(0, 60).build()).toThrow(InvalidRequest);
    expect(() => envelope().amount('euro').build()).toThrow(/envelope\.amount\.currency: currency is an ISO 4217 code/);
    expect(() => envelope().during({ days: ['mon'], start: '09:00', end: '18:00', tz: 'Mars/Olympus' }).build()).toThrow(/tz is not a known IANA time zone/);
  });
});

describe('plain objects', () => {
  it('are accepted and checked like builders', () => {
    expect(toAuthorizationDetails([{ type: 'payment', locations: ['https://pay.example'], actions: ['transact'] }])).toHaveLength(1);
    expect(() => toAuthorizationDetails([])).toThrow(InvalidAuthorizationDetails);
    expect(() => toAuthorizationDetails([{ type: 'payment', locations: ['https://pay.example'], actions: ['transact'], extra: 1 } as never])).toThrow(/unrecognized key/i);
    expect(toEnvelope({ max_uses: 3 })).toEqual({ max_uses: 3 });
    expect(() => toEnvelope({ max_uses: -1 })).toThrow(InvalidRequest);
  });
});
