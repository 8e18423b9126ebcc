import { describe, expect, it } from 'vitest';
import {
  describeDelegation,
  describePayee,
  describePaymentRequest,
  describeStepUpStatus,
  formatAmount,
  formatDuration,
  formatRelative,
  prettyDocument,
  routeParam,
  serviceLabel,
  summarise,
} from './format';

describe('formatDuration', () => {
  it('says a duration in at most two units, largest first', () => {
    expect(formatDuration(60)).toBe('1 minute');
    expect(formatDuration(3600)).toBe('1 hour');
    expect(formatDuration(5400)).toBe('1 hour and 30 minutes');
    expect(formatDuration(90)).toBe('1 minute and 30 seconds');
    expect(formatDuration(2 * 86_400 + 3 * 3600 + 5)).toBe('2 days and 3 hours');
    expect(formatDuration(0)).toBe('0 seconds');
  });
});

describe('formatRelative', () => {
  const now = Date.parse('2026-11-25T10:00:00Z');
  it('says how far ahead or behind an instant is', () => {
    expect(formatRelative('2026-11-25T10:04:30Z', now)).toBe('in 4 minutes');
    expect(formatRelative('2026-11-25T08:00:00Z', now)).toBe('2 hours ago');
    expect(formatRelative('2026-11-25T10:00:20Z', now)).toBe('in less than a minute');
    expect(formatRelative(null, now)).toBe('never');
  });
});

describe('describeDelegation', () => {
  it('says whether and how far the agent may pass access on', () => {
    expect(describeDelegation(null)).toBe('It may not pass this access on to other agents.');
    expect(describeDelegation({ max_depth: 0 })).toBe('It may not pass this access on to other agents.');
    expect(describeDelegation({ max_depth: 1 })).toMatch(/^It may pass this access on to one more agent/);
    expect(describeDelegation({ max_depth: 3 })).toMatch(/up to 3 more agents/);
  });
});

describe('serviceLabel', () => {
  it('names a service by its name, or its URI when it has none', () => {
    expect(serviceLabel({ id: 's', uri: 'https://flights.example', name: 'Flights' })).toBe('Flights');
    expect(serviceLabel({ id: 's', uri: 'https://flights.example', name: null })).toBe('https://flights.example');
    expect(serviceLabel({ id: 's', uri: 'https://flights.example', name: ' ' })).toBe('https://flights.example');
  });
});

describe('summarise', () => {
  it('keeps the first lines and counts the rest', () => {
    expect(summarise(['a', 'b'])).toBe('a; b');
    expect(summarise(['a', 'b', 'c', 'd'])).toBe('a; b; and 2 more');
  });
});

describe('prettyDocument', () => {
  it('indents the canonical JSON text of a document, and leaves other text alone', () => {
    expect(prettyDocument('{"a":1,"b":[2]}')).toBe('{\n  "a": 1,\n  "b": [\n    2\n  ]\n}');
    expect(prettyDocument({ a: 1 })).toBe('{\n  "a": 1\n}');
    expect(prettyDocument('not json')).toBe('not json');
  });
});

describe('routeParam', () => {
  it('decodes a route segment once, and keeps text that does not decode', () => {
    expect(routeParam('grt_1')).toBe('grt_1');
    expect(routeParam('a%20b')).toBe('a b');
    expect(routeParam('100%')).toBe('100%');
    expect(routeParam(undefined)).toBe('');
  });
});

describe('payments', () => {
  const stepUp = {
    step_up_id: 'su_1',
    status: 'pending' as const,
    grant_id: 'grt_1',
    txn: 'txn_1',
    agent: { client_id: 'agt_2', name: 'payment agent' },
    service: { id: 'svc_1', uri: 'https://flights.example/', name: 'Flights' },
    method: 'POST',
    url: 'https://flights.example/api/bookings',
    action: 'book',
    resource: null,
    amount: 1250.5,
    currency: 'EUR',
    requested_at: '2026-11-25T10:00:00Z',
    expires_at: '2026-11-25T10:15:00Z',
    bound: null,
    decided_at: null,
    receipt_hash: null,
  };

  it('says an amount with its currency, as stated, to the thousandth', () => {
    expect(formatAmount(150, 'EUR')).toBe('150 EUR');
    expect(formatAmount(1250.5, 'USD')).toBe('1,250.5 USD');
    expect(formatAmount(0.125, 'EUR')).toBe('0.125 EUR');
  });

  it('says where the money goes and what the request does', () => {
    expect(describePayee(stepUp)).toBe('Flights, at https://flights.example/api/bookings');
    expect(describePayee({ ...stepUp, resource: 'flight/AF123' })).toBe('Flights, at https://flights.example/api/bookings, resource flight/AF123');
    expect(describePaymentRequest(stepUp)).toBe(
      'payment agent wants to “book” at Flights, paying 1,250.5 EUR, with the request POST https://flights.example/api/bookings, in transaction txn_1.',
    );
    expect(describeStepUpStatus('approved')).toBe('Payment approved');
  });
});
