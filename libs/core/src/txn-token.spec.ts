import { createHash, createPublicKey, type JsonWebKey, KeyObject, sign } from 'node:crypto';
import { base64url, createLocalJWKSet, decodeProtectedHeader, errors, exportSPKI, type JWTVerifyGetKey } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { b64, expectOAuthError, fixedClock, flipChar, makeKey, replacePart, signCompact, T0, T0_S, type TestKey } from '../test/fixtures.js';
import { OAuthError } from './errors.js';
import {
  ActSchema,
  JWT_TOKEN_TYPE,
  MAX_ACT_DEPTH,
  SELF_SIGNED_TOKEN_TYPE,
  TOKEN_EXCHANGE_GRANT,
  TXN_TOKEN_TYP,
  TXN_TOKEN_TYPE,
  TxnTokenClaimsSchema,
  actChain,
  actDepth,
  delegateAct,
  signTxnToken,
  tokenHash,
  verifyTxnToken,
  type Act,
  type TxnTokenClaims,
  type VerifyTxnTokenOptions,
} from './txn-token.js';

const ISSUER = 'https://registry.example';
const TRUST_DOMAIN = 'writ.example';
const KID = 'reg-2026-11';
const clock = fixedClock(T0);

let registry: TestKey;
let registryEd: TestKey;
let stranger: TestKey;
let rsa: TestKey;
let agentJkt: string;

beforeAll(async () => {
  [registry, registryEd, stranger, rsa] = await Promise.all([makeKey('ES256'), makeKey('EdDSA'), makeKey('ES256'), makeKey('RS256')]);
  agentJkt = (await makeKey('ES256')).jkt;
});

function claims(extra: Record<string, unknown> = {}): TxnTokenClaims {
  return {
    iss: ISSUER,
    iat: T0_S,
    exp: T0_S + 300,
    jti: 'trat-0001',
    aud: TRUST_DOMAIN,
    txn: 'txn-0001',
    sub: 'human-1',
    scope: 'read book',
    req_wl: 'agent-a',
    act: { sub: 'agent-a' },
    cnf: { jkt: agentJkt },
    tctx: {
      grant_id: 'grant-1',
      authorization_details: [{ type: 'hotel_booking', locations: ['https://hotels.example'], actions: ['read', 'book'] }],
      envelope: { rate: { limit: 60, window_s: 60 }, amount: { currency: 'EUR', per_request_max: 200 } },
      purpose: 'book a hotel in Lyon',
      approval: base64url.encode(createHash('sha256').update('receipt').digest()),
      depth: 0,
    },
    rctx: { req_ip: '203.0.113.9', authn: 'private_key_jwt' },
    ...extra,
  };
}

function without(object: Record<string, unknown>, key: string): Record<string, unknown> {
  const { [key]: _removed, ...rest } = object;
  return rest;
}

function header(extra: Record<string, unknown> = {}, key: TestKey = registry): Record<string, unknown> {
  return { typ: TXN_TOKEN_TYP, alg: key.alg, kid: KID, ...extra };
}

function handMade(h: Record<string, unknown> = header(), c: unknown = claims(), key: TestKey = registry): Promise<string> {
  return signCompact(h, c, { kind: 'key', key });
}

function verify(token: string, options: Partial<VerifyTxnTokenOptions> = {}) {
  return verifyTxnToken(token, { key: registry.publicKey, issuer: ISSUER, audience: TRUST_DOMAIN, clock, ...options });
}

async function rejects(token: string, description: string, options: Partial<VerifyTxnTokenOptions> = {}) {
  return expectOAuthError(verify(token, options), 'invalid_token', description, token.length > 0 ? [token] : []);
}

function nestedAct(depth: number): Act {
  let act: Act = { sub: 'agent-0' };
  for (let i = 1; i < depth; i++) act = { sub: `agent-${i}`, act };
  return act;
}

describe('constants', () => {
  it('uses the draft and RFC 8693 identifiers', () => {
    expect(TXN_TOKEN_TYP).toBe('txntoken+jwt');
    expect(TXN_TOKEN_TYPE).toBe('urn:ietf:params:oauth:token-type:txn_token');
    expect(SELF_SIGNED_TOKEN_TYPE).toBe('urn:ietf:params:oauth:token-type:self_signed');
    expect(JWT_TOKEN_TYPE).toBe('urn:ietf:params:oauth:token-type:jwt');
    expect(TOKEN_EXCHANGE_GRANT).toBe('urn:ietf:params:oauth:grant-type:token-exchange');
  });
});

describe('act chain helpers', () => {
  it('delegates with the new actor outermost', () => {
    const a: Act = { sub: 'agent-a' };
    const b = delegateAct(a, 'agent-b');
    const c = delegateAct(b, 'agent-c');
    expect(b).toEqual({ sub: 'agent-b', act: { sub: 'agent-a' } });
    expect(actChain(c)).toEqual(['agent-c', 'agent-b', 'agent-a']);
    expect(actDepth(c)).toBe(3);
  });

  it('refuses to delegate past the maximum depth', () => {
    expect(actDepth(delegateAct(nestedAct(MAX_ACT_DEPTH - 1), 'last'))).toBe(MAX_ACT_DEPTH);
    expect(() => delegateAct(nestedAct(MAX_ACT_DEPTH), 'one-too-many')).toThrow(new RangeError('act chain cannot be deeper than 16 actors'));
  });

  it('ActSchema accepts 16 actors and rejects 17, and a hostile 100 000-deep chain without recursion', () => {
    expect(ActSchema.safeParse(nestedAct(16)).success).toBe(true);
    const tooDeep = ActSchema.safeParse(nestedAct(17));
    expect(tooDeep.success).toBe(false);
    expect(tooDeep.error?.issues[0]?.message).toBe('act chain is deeper than 16 actors');
    expect(ActSchema.safeParse(nestedAct(100_000)).success).toBe(false);
  });
});

describe('tokenHash', () => {
  it('is base64url SHA-256 of the token', async () => {
    expect(await tokenHash('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  });
});

describe('signTxnToken', () => {
  it('signs with typ txntoken+jwt, alg and kid', async () => {
    const token = await signTxnToken(claims(), { privateKey: registry.privateKey, kid: KID });
    expect(decodeProtectedHeader(token)).toEqual({ typ: 'txntoken+jwt', alg: 'ES256', kid: KID });
  });

  it('signs with a native signer that verifies like the Web Crypto path', async () => {
    const nodeKey = KeyObject.from(registry.privateKey);
    const token = await signTxnToken(claims(), { sign: (input) => sign('sha256', input, { key: nodeKey, dsaEncoding: 'ieee-p1363' }), kid: KID });
    expect(decodeProtectedHeader(token)).toEqual({ typ: 'txntoken+jwt', alg: 'ES256', kid: KID });
    await expect(verify(token)).resolves.toEqual(claims());
  });

  it('refuses to sign with neither a key nor a signer', async () => {
    await expect(signTxnToken(claims(), { kid: KID })).rejects.toThrow(new TypeError('signTxnToken needs a privateKey or a sign function'));
  });

  it('refuses invalid claims, naming the first bad one', async () => {
    await expect(signTxnToken(without(claims(), 'cnf') as TxnTokenClaims, { privateKey: registry.privateKey, kid: KID })).rejects.toThrow(
      new TypeError('transaction token claims are invalid: cnf'),
    );
    await expect(signTxnToken(claims({ exp: T0_S }), { privateKey: registry.privateKey, kid: KID })).rejects.toThrow(
      new TypeError('transaction token claims are invalid: exp'),
    );
  });
});

describe('verifyTxnToken: valid tokens', () => {
  it('round-trips an ES256 token signed by signTxnToken', async () => {
    const token = await signTxnToken(claims(), { privateKey: registry.privateKey, kid: KID });
    await expect(verify(token)).resolves.toEqual(claims());
  });

  it('round-trips an EdDSA token through a JWKS resolver', async () => {
    const jwks = createLocalJWKSet({ keys: [{ ...registryEd.publicJwk, kid: KID }, { ...registry.publicJwk, kid: 'older' }] });
    const token = await signTxnToken(claims(), { privateKey: registryEd.privateKey, kid: KID, alg: 'EdDSA' });
    await expect(verify(token, { key: jwks })).resolves.toMatchObject({ jti: 'trat-0001' });
  });

  it('accepts keys handed back by a resolver as a JWK or as a platform key object', async () => {
    const token = await handMade();
    await expect(verify(token, { key: () => registry.publicJwk })).resolves.toBeDefined();
    await expect(verify(token, { key: () => createPublicKey({ key: registry.publicJwk as JsonWebKey, format: 'jwk' }) })).resolves.toBeDefined();
  });

  it('accepts a delegated token: act of two, depth 1, parent set', async () => {
    const delegated = claims({ act: delegateAct({ sub: 'agent-a' }, 'agent-b'), req_wl: 'agent-b' });
    delegated.tctx = { ...delegated.tctx, depth: 1, parent: 'trat-0000' };
    const result = await verify(await signTxnToken(delegated, { privateKey: registry.privateKey, kid: KID }));
    expect(actChain(result.act)).toEqual(['agent-b', 'agent-a']);
  });

  it('ignores unknown claims and drops them from the result', async () => {
    const token = await handMade(header(), { ...claims(), extra: 'x', tctx: { ...claims().tctx, note: 'y' } });
    const result = await verify(token);
    expect(result).not.toHaveProperty('extra');
    expect(result.tctx).not.toHaveProperty('note');
  });

  it('accepts a token that expired less than maxSkewSeconds ago and an iat within the skew', async () => {
    await expect(verify(await handMade(header(), claims({ iat: T0_S - 300, exp: T0_S - 29 })))).resolves.toBeDefined();
    await expect(verify(await handMade(header(), claims({ iat: T0_S + 30, exp: T0_S + 330 })))).resolves.toBeDefined();
  });

  it('accepts a lifetime exactly at maxLifetimeSeconds', async () => {
    await expect(verify(await handMade(), { maxLifetimeSeconds: 300 })).resolves.toBeDefined();
  });
});

describe('verifyTxnToken: hostile tokens', () => {
  describe('structure', () => {
    it('rejects an empty token', async () => {
      await rejects('', 'token is missing');
    });

    it('rejects a token larger than 64 KiB', async () => {
      await rejects(`${'a'.repeat(70_000)}.b.c`, 'token is too large');
    });

    it('rejects two parts', async () => {
      const token = await handMade();
      await rejects(token.split('.').slice(0, 2).join('.'), 'token is malformed');
    });

    it('rejects a header that is not JSON', async () => {
      await rejects(replacePart(await handMade(), 0, b64('{"typ":')), 'token is malformed');
    });

    it('rejects a signature part that is not valid base64url', async () => {
      await rejects(replacePart(await handMade(), 2, 'A'), 'token is malformed');
    });

    it('rejects a signed payload that is not JSON', async () => {
      await rejects(await handMade(header(), 'not json'), 'token is malformed');
    });
  });

  describe('header', () => {
    it.each([
      ['JWT', { typ: 'JWT' }],
      ['at+jwt', { typ: 'at+jwt' }],
      ['application/txntoken+jwt', { typ: 'application/txntoken+jwt' }],
      ['TXNTOKEN+JWT', { typ: 'TXNTOKEN+JWT' }],
    ])('rejects typ %s', async (_typ, extra) => {
      await rejects(await handMade(header(extra)), 'token typ must be txntoken+jwt');
    });

    it('rejects a missing typ', async () => {
      await rejects(await handMade(without(header(), 'typ')), 'token typ must be txntoken+jwt');
    });

    it('rejects alg none', async () => {
      const token = await signCompact(header({ alg: 'none' }), claims(), { kind: 'none' });
      await rejects(`${token}AAAA`, 'token alg is not allowed');
    });

    it('rejects HS256 signed with the registry public key bytes as the HMAC secret', async () => {
      const secret = new TextEncoder().encode(await exportSPKI(registry.publicKey));
      const token = await signCompact(header({ alg: 'HS256' }), claims(), { kind: 'hmac', secret });
      await rejects(token, 'token alg is not allowed');
    });

    it('rejects RS256', async () => {
      await rejects(await handMade(header({}, rsa), claims(), rsa), 'token alg is not allowed', { key: rsa.publicKey });
    });

    it('rejects an alg the verifier narrowed away', async () => {
      const token = await handMade(header({}, registryEd), claims(), registryEd);
      await rejects(token, 'token alg is not allowed', { key: registryEd.publicKey, algorithms: ['ES256'] });
    });

    it('rejects a missing kid', async () => {
      await rejects(await handMade(without(header(), 'kid')), 'token kid header is missing');
    });

    it('rejects a critical header parameter it does not understand', async () => {
      await rejects(await handMade(header({ crit: ['x-writ'], 'x-writ': 1 })), 'token uses an unsupported header or algorithm');
    });
  });

  describe('key and signature', () => {
    it('rejects a token signed by another key', async () => {
      await rejects(await handMade(header(), claims(), stranger), 'token signature is invalid');
    });

    it('rejects a tampered payload', async () => {
      const token = await handMade();
      await rejects(replacePart(token, 1, b64(claims({ scope: 'read book pay' }))), 'token signature is invalid');
    });

    it('rejects a tampered signature', async () => {
      await rejects(flipChar(await handMade(), 2), 'token signature is invalid');
    });

    it('rejects an EdDSA token when the key is an EC key (wrong key type)', async () => {
      await rejects(await handMade(header({}, registryEd), claims(), registryEd), 'token alg does not match the verification key type');
    });

    it('rejects an ES256 token when the key is an Ed25519 key (wrong key type)', async () => {
      await rejects(await handMade(), 'token alg does not match the verification key type', { key: registryEd.publicKey });
    });

    it('rejects a resolver that hands back a shared secret', async () => {
      const resolver: JWTVerifyGetKey = () => new Uint8Array(32);
      await rejects(await handMade(), 'token alg does not match the verification key type', { key: resolver });
    });

    it('rejects a resolver JWK of the wrong key type', async () => {
      const resolver: JWTVerifyGetKey = () => registryEd.publicJwk;
      await rejects(await handMade(), 'token alg does not match the verification key type', { key: resolver });
    });

    it('rejects an unknown kid', async () => {
      const jwks = createLocalJWKSet({ keys: [{ ...registry.publicJwk, kid: 'another-kid' }] });
      await rejects(await handMade(), 'token signing key is unknown', { key: jwks });
    });

    it('rejects a kid that matches two keys', async () => {
      const jwks = createLocalJWKSet({ keys: [{ ...registry.publicJwk, kid: KID }, { ...stranger.publicJwk, kid: KID }] });
      await rejects(await handMade(), 'token kid matches more than one key', { key: jwks });
    });

    it('answers temporarily_unavailable when the key set cannot be fetched', async () => {
      const resolver: JWTVerifyGetKey = () => {
        throw new errors.JWKSTimeout();
      };
      await expectOAuthError(verify(await handMade(), { key: resolver }), 'temporarily_unavailable', 'token signing keys could not be fetched');
    });

    it('lets a broken resolver surface as a server fault, not as invalid_token', async () => {
      const resolver: JWTVerifyGetKey = () => {
        throw new Error('resolver bug');
      };
      const error = await verify(await handMade(), { key: resolver }).catch((e: unknown) => e);
      expect(error).not.toBeInstanceOf(OAuthError);
      expect(error).toEqual(new Error('resolver bug'));
    });
  });

  describe('iss, aud and times', () => {
    it('rejects another issuer', async () => {
      await rejects(await handMade(header(), claims({ iss: 'https://evil.example' })), 'token issuer is not trusted');
    });

    it('rejects the aud of another trust domain', async () => {
      await rejects(await handMade(header(), claims({ aud: 'other.example' })), 'token audience is not this trust domain');
    });

    it('rejects an aud array even when it contains the trust domain', async () => {
      await rejects(await handMade(header(), claims({ aud: [TRUST_DOMAIN, 'other.example'] })), 'token aud must be the trust domain, not an array');
    });

    it('rejects a missing aud', async () => {
      await rejects(await handMade(header(), without(claims(), 'aud')), 'token claims are invalid: aud is missing');
    });

    it('rejects an expired token', async () => {
      await rejects(await handMade(header(), claims({ iat: T0_S - 400, exp: T0_S - 31 })), 'token expired');
    });

    it('rejects an iat in the future beyond the skew', async () => {
      await rejects(await handMade(header(), claims({ iat: T0_S + 31, exp: T0_S + 331 })), 'token iat is in the future');
    });

    it('rejects exp equal to iat', async () => {
      await rejects(await handMade(header(), claims({ iat: T0_S, exp: T0_S })), 'token exp is not after iat');
    });

    it('rejects exp before iat', async () => {
      await rejects(await handMade(header(), claims({ iat: T0_S + 10, exp: T0_S + 5 })), 'token exp is not after iat');
    });

    it('rejects a token living longer than maxLifetimeSeconds', async () => {
      await rejects(await handMade(header(), claims({ exp: T0_S + 301 })), 'token lifetime exceeds the allowed maximum', { maxLifetimeSeconds: 300 });
    });

    it('rejects a token whose nbf is in the future', async () => {
      await rejects(await handMade(header(), claims({ nbf: T0_S + 60 })), 'token is not yet valid');
    });

    it('rejects a missing exp', async () => {
      await rejects(await handMade(header(), without(claims(), 'exp')), 'token claims are invalid: exp is missing');
    });

    it('rejects a non-numeric iat', async () => {
      await rejects(await handMade(header(), claims({ iat: String(T0_S) })), 'token claims are invalid: iat');
    });
  });

  describe('claims', () => {
    it.each(['cnf', 'tctx', 'txn', 'sub', 'act', 'jti', 'req_wl', 'scope'])('rejects a token without %s', async (claim) => {
      await rejects(await handMade(header(), without(claims(), claim)), `token claims are invalid: ${claim}`);
    });

    it('rejects an act chain deeper than 16 actors', async () => {
      const deep = claims({ act: nestedAct(17) });
      deep.tctx = { ...deep.tctx, depth: 15, parent: 'p' };
      await rejects(await handMade(header(), deep), 'token claims are invalid: act');
    });

    it('rejects a tctx.depth that does not match the act chain', async () => {
      await rejects(await handMade(header(), claims({ act: delegateAct({ sub: 'agent-a' }, 'agent-b') })), 'token claims are invalid: tctx.depth');
    });

    it('rejects a delegated token without tctx.parent', async () => {
      const delegated = claims({ act: delegateAct({ sub: 'agent-a' }, 'agent-b') });
      delegated.tctx = { ...delegated.tctx, depth: 1 };
      await rejects(await handMade(header(), delegated), 'token claims are invalid: tctx.parent');
    });

    it('rejects a cnf.jkt that is not a SHA-256 thumbprint', async () => {
      await rejects(await handMade(header(), claims({ cnf: { jkt: 'short' } })), 'token claims are invalid: cnf.jkt');
    });

    it('rejects authorization_details with an unknown member', async () => {
      const bad = claims();
      bad.tctx = { ...bad.tctx, authorization_details: [{ ...bad.tctx.authorization_details[0]!, extra: true } as never] };
      await rejects(await handMade(header(), bad), 'token claims are invalid: tctx.authorization_details.0');
    });

    it('rejects a scope that is not space-separated scope tokens', async () => {
      await rejects(await handMade(header(), claims({ scope: 'read  "book"' })), 'token claims are invalid: scope');
    });

    it('rejects an rctx.req_ip that is not an IP address', async () => {
      await rejects(await handMade(header(), claims({ rctx: { req_ip: 'localhost' } })), 'token claims are invalid: rctx.req_ip');
    });
  });
});

describe('TxnTokenClaimsSchema', () => {
  it('parses the claims of a root token', () => {
    expect(TxnTokenClaimsSchema.parse(claims())).toEqual(claims());
  });

  it('names (root) when the claims are not an object', async () => {
    await expect(signTxnToken('x' as unknown as TxnTokenClaims, { privateKey: registry.privateKey, kid: KID })).rejects.toThrow(
      new TypeError('transaction token claims are invalid: (root)'),
    );
  });
});
