import { describe, expect, it } from 'vitest';
import { VerifyAnswerSchema, VerifyRequestSchema } from './verify.js';

const request = { token: 'a.b.c', dpop: 'd.e.f', method: 'POST', url: 'https://pay.example/charge?to=acme', action: 'charge' };

function firstIssue(input: unknown): { path: PropertyKey[]; message: string } | undefined {
  const parsed = VerifyRequestSchema.safeParse(input);
  return parsed.success ? undefined : parsed.error.issues[0];
}

describe('VerifyRequestSchema', () => {
  it('accepts a request with every optional field', () => {
    const full = { ...request, resource: 'invoice:7', amount: 12.5, currency: 'EUR', bind: { fields: { payee: 'Acme', 'to.iban': 'FR76 3000' } } };
    expect(VerifyRequestSchema.parse(full)).toEqual(full);
  });

  it('refuses an unknown field, at the top and inside bind', () => {
    expect(firstIssue({ ...request, extra: 1 })?.message).toMatch(/Unrecognized key/);
    expect(firstIssue({ ...request, bind: { fields: {}, other: 1 } })?.message).toMatch(/Unrecognized key/);
  });

  it('refuses a method that is not an HTTP token', () => {
    expect(firstIssue({ ...request, method: 'PO ST' })?.message).toBe('method is an HTTP method token');
  });

  it('refuses a resource that a server could read as another place, naming the field', () => {
    expect(firstIssue({ ...request, resource: 'bookings/%2e%2e/admin' })?.path).toEqual(['resource']);
  });

  it('refuses a NUL or a lone surrogate in a recorded text', () => {
    expect(firstIssue({ ...request, action: 'charge\u0000' })?.path).toEqual(['action']);
    expect(firstIssue({ ...request, url: 'https://pay.example/\ud800' })?.path).toEqual(['url']);
  });

  it('refuses more than 16 bound fields and names a bound field whose name is not a token', () => {
    const seventeen = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`f${i}`, 'x']));
    expect(firstIssue({ ...request, bind: { fields: seventeen } })?.message).toBe('at most 16 bound fields');
    expect(firstIssue({ ...request, bind: { fields: { 'pay ee': 'x' } } })?.path).toEqual(['bind', 'fields', 'pay ee']);
  });
});

describe('VerifyAnswerSchema', () => {
  const allow = { allow: true, sub: 'user_1', act: { sub: 'agt_b', act: { sub: 'agt_a' } }, txn: 'txn_1', grant_id: 'grt_1', jti: 'tok_1', scope: 'book', remaining: { uses: 9 } };

  it("reads an allow answer and leaves out what it does not know (the verifier's capability)", () => {
    expect(VerifyAnswerSchema.parse({ ...allow, capability: { type: 'x', locations: ['https://a.example'], actions: ['book'] } })).toEqual(allow);
  });

  it('reads a denial with its challenge, retry and nonce', () => {
    const deny = { allow: false, error: 'rate_limited', error_description: 'rate limit of 1 per 60s reached', status: 429, retry_after: 3, www_authenticate: 'DPoP error="rate_limited"', dpop_nonce: 'n-1' };
    expect(VerifyAnswerSchema.parse(deny)).toEqual(deny);
  });

  it('refuses a denial with a code the verifier never answers, or a header a server could not send', () => {
    const deny = { allow: false, error: 'revoked', error_description: 'the grant was revoked', status: 401 };
    expect(VerifyAnswerSchema.safeParse({ ...deny, error: 'server_error' }).success).toBe(false);
    expect(VerifyAnswerSchema.safeParse({ ...deny, error_description: 'line\nbreak' }).success).toBe(false);
    expect(VerifyAnswerSchema.safeParse({ ...deny, status: 200 }).success).toBe(false);
  });
});
