import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type VerificationEventHead, type VerificationEventRequest, VerificationEvents } from './verifier-event.js';

/** Texts a JSON writer gets wrong when it concatenates by hand: quotes, escapes, separators, lone surrogates. */
const HOSTILE = ['"', '\\', '","verifier":"evil', '}}', '\u0000', '\n\r\t', '\u2028\u2029', '\ud800', 'a\udc00b', '\ud83d\ude00', '</script>', ''];

const head: VerificationEventHead = { actor: 'agt_a', service: 'svc_hotels', grantId: 'grt_1', txn: 'txn_1', jti: 'tok_1' };
const request: VerificationEventRequest = {
  method: 'POST',
  url: 'https://hotels.example/rooms/42/book',
  action: 'book',
  proofJti: 'p-1',
  proofJkt: 'jkt-1',
  atMs: 1_700_000_000_123,
};

/** The event as one JSON.stringify of the whole object would write it: the reference. */
function reference(verifier: string, h: VerificationEventHead, r: VerificationEventRequest): string {
  const data: Record<string, unknown> = { service: h.service, jti: h.jti, method: r.method, url: r.url, action: r.action, proof_jti: r.proofJti, proof_jkt: r.proofJkt, at_ms: r.atMs };
  if (r.resource !== undefined) data.resource = r.resource;
  if (r.amount !== undefined) {
    data.amount = r.amount;
    if (r.currency !== undefined) data.currency = r.currency;
  }
  if (r.chargedMinor !== undefined) data.charged_minor = r.chargedMinor;
  if (r.bound !== undefined) data.bound = r.bound;
  data.verifier = verifier;
  return JSON.stringify({ type: 'verification', actor: h.actor, subject: h.service, grant_id: h.grantId, txn: h.txn, data });
}

function decision(verifier: string, h: VerificationEventHead, r: VerificationEventRequest): string {
  const events = new VerificationEvents(verifier);
  return events.decision(events.head(h), r);
}

describe('VerificationEvents.decision', () => {
  it('writes a plain request as JSON.stringify of the whole event, fields in their order', () => {
    const body = decision('verifier-1', head, request);
    expect(body).toBe(reference('verifier-1', head, request));
    expect(Object.keys((JSON.parse(body) as { data: object }).data)).toEqual(['service', 'jti', 'method', 'url', 'action', 'proof_jti', 'proof_jkt', 'at_ms', 'verifier']);
  });

  it('writes every optional field, in order, when the request has it', () => {
    const full: VerificationEventRequest = { ...request, resource: 'room:42', amount: 180.5, currency: 'EUR', chargedMinor: 180_500, bound: { query: 'to=alice&x=1', fields: { payee: 'Alice', 'to.iban': 'FR76' } } };
    const body = decision('verifier-1', head, full);
    expect(body).toBe(reference('verifier-1', head, full));
    expect(JSON.parse(body).data).toMatchObject({ resource: 'room:42', amount: 180.5, currency: 'EUR', charged_minor: 180_500, bound: { query: 'to=alice&x=1', fields: { payee: 'Alice' } } });
  });

  it('records a currency only with an amount', () => {
    const body = JSON.parse(decision('v', head, { ...request, currency: 'EUR' }));
    expect(body.data).not.toHaveProperty('currency');
    expect(body.data).not.toHaveProperty('amount');
  });

  it('keeps a null query of a bound request as null', () => {
    const body = JSON.parse(decision('v', head, { ...request, bound: { query: null, fields: {} } }));
    expect(body.data.bound).toEqual({ query: null, fields: {} });
  });

  it.each(HOSTILE)('round-trips the hostile text %j in every field', (text) => {
    const h: VerificationEventHead = { actor: text, service: text, grantId: text, txn: text, jti: text };
    const r: VerificationEventRequest = { method: text, url: text, action: text, proofJti: text, proofJkt: text, atMs: 1, resource: text, amount: 1, currency: text, chargedMinor: 1000, bound: { query: text, fields: { [text]: text } } };
    const body = decision(text, h, r);
    expect(body).toBe(reference(text, h, r));
    const parsed = JSON.parse(body) as { actor: string; data: { verifier: string; method: string; bound: { fields: Record<string, string> } } };
    expect(parsed.actor).toBe(text);
    expect(parsed.data.verifier).toBe(text);
    expect(parsed.data.method).toBe(text);
    expect(parsed.data.bound.fields[text]).toBe(text);
    // One event, one `data`: a text that looks like JSON never adds a member.
    expect(Object.keys(parsed.data)).toHaveLength(14);
  });

  it('equals JSON.stringify of the whole event for any texts and numbers', () => {
    const text = fc.string({ unit: 'binary', maxLength: 24 });
    const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
    fc.assert(
      fc.property(
        text,
        fc.record({ actor: text, service: text, grantId: text, txn: text, jti: text }),
        fc.record({
          method: text,
          url: text,
          action: text,
          proofJti: text,
          proofJkt: text,
          atMs: fc.nat(),
          resource: optional(text),
          amount: optional(fc.double({ noNaN: true, noDefaultInfinity: true })),
          currency: optional(text),
          chargedMinor: optional(fc.nat()),
          bound: optional(fc.record({ query: fc.option(text, { nil: null }), fields: fc.dictionary(text, text, { maxKeys: 3 }) })),
        }),
        (verifier, h, r) => {
          const body = decision(verifier, h, r);
          expect(body).toBe(reference(verifier, h, r));
          expect(JSON.parse(body)).toEqual(JSON.parse(reference(verifier, h, r)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reuses one head for many requests of the token at that service', () => {
    const events = new VerificationEvents('verifier-1');
    const fixed = events.head(head);
    const first = JSON.parse(events.decision(fixed, request));
    const second = JSON.parse(events.decision(fixed, { ...request, proofJti: 'p-2', atMs: 2 }));
    expect([first.grant_id, second.grant_id]).toEqual(['grt_1', 'grt_1']);
    expect([first.data.proof_jti, second.data.proof_jti]).toEqual(['p-1', 'p-2']);
  });
});

describe('VerificationEvents.unverified', () => {
  it('names no actor, grant or transaction, and the token by the first 16 characters of its hash', () => {
    const events = new VerificationEvents('verifier-1');
    const body = events.unverified({ service: 'svc_hotels', method: 'GET', url: 'https://hotels.example/rooms', action: 'search', tokenHash: 'abcdefghijklmnopqrstuvwxyz', errorDescription: 'token expired' });
    expect(JSON.parse(body)).toEqual({
      type: 'verification',
      actor: null,
      subject: 'svc_hotels',
      grant_id: null,
      txn: null,
      data: { service: 'svc_hotels', method: 'GET', url: 'https://hotels.example/rooms', action: 'search', token: 'abcdefghijklmnop', error_description: 'token expired', verifier: 'verifier-1' },
    });
  });

  it.each(HOSTILE)('round-trips the hostile text %j', (text) => {
    const body = new VerificationEvents(text).unverified({ service: text, method: text, url: text, action: text, tokenHash: text, errorDescription: text });
    const parsed = JSON.parse(body);
    expect(parsed.data).toEqual({ service: text, method: text, url: text, action: text, token: text.slice(0, 16), error_description: text, verifier: text });
  });
});
