import { canonicalJson, linkAuditEvent } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { copyValue, dataOfEventText } from './audit.repository.js';

const draft = (actor: string | null, data: Record<string, unknown>) => ({
  id: 'evt_1',
  at: '2026-12-07T23:00:00.000Z',
  type: 'verification.allowed',
  actor,
  subject: null,
  grant_id: 'g_1',
  txn: null,
  parent_id: null,
  data,
});

describe('COPY text format of audit events', () => {
  it('escapes backslash, tab, newline and carriage return, writes NULL as \\N, and leaves the rest as it is', () => {
    expect(copyValue(null)).toBe('\\N');
    expect(copyValue('\\N')).toBe('\\\\N');
    expect(copyValue('a\tb\nc\rd\\e')).toBe('a\\tb\\nc\\rd\\\\e');
    expect(copyValue('\\.')).toBe('\\\\.');
    expect(copyValue('☃ "quoted" \u0085 \u2028')).toBe('☃ "quoted" \u0085 \u2028');
  });

  it('cuts data out of the text that was hashed, byte for byte its canonical JSON, whatever the other members hold', async () => {
    const cases = [
      draft(null, {}),
      draft('agent:a,"data":{"x":1}', { a: 1 }),
      draft('x\\",\\"data\\":', { nested: { grant_id: 'inner', deeper: [{ grant_id: 2 }] }, text: ',"grant_id":"fake"' }),
      draft('agent', { '\u20ac': 'é', b: [1.5, 0, 1e21, null, true], a: { z: 1, y: '\t\n' } }),
    ];
    for (const unlinked of cases) {
      const { json, event } = await linkAuditEvent(null, unlinked);
      expect(dataOfEventText(json)).toBe(canonicalJson(event.data));
      expect(JSON.parse(dataOfEventText(json))).toEqual(event.data);
    }
  });

  it('refuses a text that is not an event in canonical member order', () => {
    expect(() => dataOfEventText('{"grant_id":null,"data":{}}')).toThrow('an audit event text without data and grant_id members in canonical order');
    expect(() => dataOfEventText('{}')).toThrow('an audit event text without data and grant_id members in canonical order');
  });
});
