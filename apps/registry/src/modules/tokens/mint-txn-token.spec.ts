import { TXN_TOKEN_TYPE } from '@writ/core';
import { sha256Base64urlSync } from '@writ/server/node-crypto';
import { describe, expect, it } from 'vitest';
import { inMemoryKeys } from '../../testing/test-keys.js';
import { verifyIssuedTxnToken } from './issued-tokens.js';
import { mintTxnToken, tokenResponse, type TxnTokenDraft } from './mint-txn-token.js';

const NOW = Date.UTC(2026, 0, 1, 12);
const NOW_S = NOW / 1000;
const config = { issuer: 'https://registry.writ.test', trustDomain: 'writ.test' };
const JKT = 'x'.repeat(43);

function draft(overrides: Partial<TxnTokenDraft> = {}): TxnTokenDraft {
  return {
    iss: config.issuer,
    aud: config.trustDomain,
    txn: 'txn_1',
    sub: 'alice',
    requester: 'agt_alice',
    act: { sub: 'agt_alice' },
    jkt: JKT,
    tctx: {
      grant_id: 'grt_1',
      service: 'svc_flights',
      authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read'] }],
      envelope: { max_uses: 3 },
      purpose: 'Book my trip',
      approval: 'A'.repeat(43),
      depth: 0,
    },
    notAfter: [NOW_S + 3600],
    expired: 'grant is expired',
    ...overrides,
  };
}

describe('mintTxnToken', () => {
  it('signs the drafted claims with the active key, adding times, a fresh jti, the scope and the request context', async () => {
    const keys = await inMemoryKeys();
    const minted = await mintTxnToken(draft(), { keys, tokenTtlSeconds: 300, now: NOW, ip: '2001:db8::1' });
    const claims = await verifyIssuedTxnToken(minted.token, keys, config, { now: () => NOW });
    expect(claims).toEqual({ ...minted.claims });
    expect(claims).toMatchObject({
      iss: config.issuer,
      aud: 'writ.test',
      iat: NOW_S,
      exp: NOW_S + 300,
      txn: 'txn_1',
      sub: 'alice',
      scope: 'flight_booking:read',
      req_wl: 'agt_alice',
      act: { sub: 'agt_alice' },
      cnf: { jkt: JKT },
      tctx: draft().tctx,
      rctx: { req_ip: '2001:db8::1', authn: 'private_key_jwt' },
    });
    expect(claims.jti).toMatch(/^trt_[0-9a-f-]{36}$/);
    expect(minted.hash).toBe(sha256Base64urlSync(minted.token));
    expect(tokenResponse(minted)).toEqual({ access_token: minted.token, token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE, expires_in: 300 });
  });

  it('gives each token its own jti', async () => {
    const context = { keys: await inMemoryKeys(), tokenTtlSeconds: 300, now: NOW, ip: undefined };
    const [a, b] = await Promise.all([mintTxnToken(draft(), context), mintTxnToken(draft(), context)]);
    expect(a.claims.jti).not.toBe(b.claims.jti);
  });

  it('never outlives the earliest of its limits', async () => {
    const context = { keys: await inMemoryKeys(), tokenTtlSeconds: 300, now: NOW, ip: undefined };
    const minted = await mintTxnToken(draft({ notAfter: [NOW_S + 120, NOW_S + 60] }), context);
    expect(minted.claims.exp).toBe(NOW_S + 60);
    expect(tokenResponse(minted).expires_in).toBe(60);
  });

  it('mints nothing once a limit is reached, saying what ran out', async () => {
    const context = { keys: await inMemoryKeys(), tokenTtlSeconds: 300, now: NOW, ip: undefined };
    await expect(mintTxnToken(draft({ notAfter: [NOW_S], expired: 'subject token is expired' }), context)).rejects.toMatchObject({
      code: 'invalid_grant',
      description: 'subject token is expired',
    });
  });

  it('records the peer address only when it is an IP address', async () => {
    const context = { keys: await inMemoryKeys(), tokenTtlSeconds: 300, now: NOW };
    expect((await mintTxnToken(draft(), { ...context, ip: 'localhost' })).claims.rctx).toEqual({ authn: 'private_key_jwt' });
    expect((await mintTxnToken(draft(), { ...context, ip: undefined })).claims.rctx).toEqual({ authn: 'private_key_jwt' });
    expect((await mintTxnToken(draft(), { ...context, ip: '192.0.2.7' })).claims.rctx).toEqual({ req_ip: '192.0.2.7', authn: 'private_key_jwt' });
  });
});
