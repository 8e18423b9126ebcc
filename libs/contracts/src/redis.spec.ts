import { describe, expect, it } from 'vitest';
import { parseRevocationMessage, queuedEventOfStreamEntry, queuedEventStreamFields, revocationMessage } from './redis.js';

describe('the revocation message', () => {
  const revocation = { kind: 'txn' as const, value: 'txn_1', grantIds: ['grt_1', 'grt_2'], expiresAtMs: Date.parse('2026-12-07T10:00:00.000Z') };

  it('is written as the registry has always written it, and read back the same', () => {
    const text = revocationMessage(revocation);
    expect(text).toBe('{"kind":"txn","value":"txn_1","grantIds":["grt_1","grt_2"],"expiresAt":"2026-12-07T10:00:00.000Z"}');
    expect(parseRevocationMessage(text)).toEqual(revocation);
  });

  it.each([
    ['not JSON', '{"kind":'],
    ['an unknown kind', '{"kind":"user","value":"u","grantIds":[],"expiresAt":"2026-12-07T10:00:00.000Z"}'],
    ['an expiry that is not a date-time', '{"kind":"grant","value":"g","grantIds":["g"],"expiresAt":"tomorrow"}'],
    ['grants that are not strings', '{"kind":"grant","value":"g","grantIds":[1],"expiresAt":"2026-12-07T10:00:00.000Z"}'],
  ])('is refused when it is %s', (_what, text) => {
    expect(parseRevocationMessage(text)).toBeUndefined();
  });
});

describe('a queued event in a stream entry', () => {
  it('is read back from the fields it is written with', () => {
    const event = { id: 'vd_1', body: '{"type":"verification"}', outcome: 'invalid_token' };
    expect(queuedEventOfStreamEntry('writ:verifier:events', '1-0', queuedEventStreamFields(event))).toEqual(event);
  });

  it("carries the step-up the decision script named, and its expiry when it is a positive time", () => {
    const fields = ['id', 'vd_2', 'body', '{}', 'outcome', 'approval_required', 'step_up', 'su_1', 'step_up_expires_at', '1700000000000'];
    expect(queuedEventOfStreamEntry('s', '1-0', fields)).toEqual({ id: 'vd_2', body: '{}', outcome: 'approval_required', stepUpId: 'su_1', stepUpExpiresAtMs: 1_700_000_000_000 });
    const odd = ['id', 'vd_3', 'body', '{}', 'outcome', 'allow', 'step_up', '', 'step_up_expires_at', 'soon'];
    expect(queuedEventOfStreamEntry('s', '1-0', odd)).toEqual({ id: 'vd_3', body: '{}', outcome: 'allow' });
  });

  it('without an id gets a stable one from its stream and entry id, so reading it twice appends it once', () => {
    const read = () => queuedEventOfStreamEntry('writ:{g:grt_1}:events', '17-2', ['body', '{}']);
    expect(read()).toEqual({ id: 'vev_writ:{g:grt_1}:events_17-2', body: '{}', outcome: 'unknown' });
    expect(read().id).toBe(read().id);
  });
});
