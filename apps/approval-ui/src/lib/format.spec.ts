import { describe, expect, it } from 'vitest';
import {
  describeDelegation,
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
