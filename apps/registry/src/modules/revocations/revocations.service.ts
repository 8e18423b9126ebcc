import { actChain, type Clock, InvalidToken, TXN_TOKEN_TYPE, type TxnTokenClaims } from '@writ/core';
import { CLOCK_SKEW_S, verifyIssuedTxnToken } from '../tokens/issued-tokens.js';
import type { RegistryConfig } from '../../config/config.js';
import type { ClientAuthService } from '../agents/client-auth.service.js';
import type { GrantsService } from '../grants/grants.service.js';
import type { KeyStore } from '../keys/key-store.js';
import type { RevocationKind } from './revocation.entity.js';
import type { RevocationRecord, RevocationRecorder } from './revocation-recorder.js';
import type { RevocationsRepository } from './revocations.repository.js';

/** RFC 7662 §2.2: what introspection answers for a token that is active. */
export interface ActiveIntrospection {
  active: true;
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  txn: string;
  scope: string;
  client_id: string;
  cnf: { jkt: string };
  act: TxnTokenClaims['act'];
  token_type: typeof TXN_TOKEN_TYPE;
  grant_id: string;
}

export type Introspection = ActiveIntrospection | { active: false };

/** What {@link RevocationsService} needs. */
export interface RevocationsOptions {
  /** Where revocations are looked up. */
  repository: Pick<RevocationsRepository, 'anyRevoked'>;
  clientAuth: ClientAuthService;
  grants: Pick<GrantsService, 'get' | 'revokeRecorded'>;
  keys: Pick<KeyStore, 'jwks'>;
  recorder: RevocationRecorder;
  clock: Clock;
  config: Pick<RegistryConfig, 'issuer' | 'trustDomain'>;
}

/**
 * Records revocations (ARCHITECTURE.md "Revocation"): durably, with one `revocation.<kind>` audit
 * event in the same transaction, then announced on the revocation bus once committed (both through
 * the {@link RevocationRecorder}).
 */
export class RevocationsService {
  private readonly repository: RevocationsOptions['repository'];
  private readonly clientAuth: ClientAuthService;
  private readonly grants: RevocationsOptions['grants'];
  private readonly keys: RevocationsOptions['keys'];
  private readonly recorder: RevocationRecorder;
  private readonly clock: Clock;
  private readonly config: RevocationsOptions['config'];

  constructor(options: RevocationsOptions) {
    this.repository = options.repository;
    this.clientAuth = options.clientAuth;
    this.grants = options.grants;
    this.keys = options.keys;
    this.recorder = options.recorder;
    this.clock = options.clock;
    this.config = options.config;
  }

  /**
   * Revokes a grant (which also ends it, see GrantsService.revokeRecorded), a transaction (its whole
   * token tree), a token (by jti) or an agent (every token it appears in). `expiresAt` is when nothing
   * it could affect is alive any more; by default, the longest a token issued now could live (for a
   * grant, no later than the grant's own end).
   */
  async revoke(kind: RevocationKind, value: string, by: string | null, reason: string | null = null, expiresAt?: Date): Promise<void> {
    if (kind === 'grant') return this.grants.revokeRecorded(value, by, reason, expiresAt);
    await this.record({ kind, value, by, reason, ...(expiresAt ? { expiresAt } : {}) });
  }

  /** Whether any of the token's jti, txn, grant or actors is revoked. */
  isRevoked(claims: Pick<TxnTokenClaims, 'jti' | 'txn' | 'act' | 'tctx'>): Promise<boolean> {
    const pairs: [RevocationKind, string][] = [
      ['token', claims.jti],
      ['txn', claims.txn],
      ['grant', claims.tctx.grant_id],
      ...actChain(claims.act).map((sub): [RevocationKind, string] => ['agent', sub]),
    ];
    return this.repository.anyRevoked(pairs);
  }

  /** RFC 7009 §2.1: the client revokes a token it holds or requested; anything else is silently ignored (§2.2). */
  async revokeToken(params: Record<string, string>): Promise<void> {
    const client = await this.clientAuth.authenticateForm(params, this.clock.now());
    const claims = await this.verify(params.token);
    if (!claims) return;
    if (claims.act.sub !== client.client_id && claims.req_wl !== client.client_id) return;
    await this.record({
      kind: 'token',
      value: claims.jti,
      by: client.client_id,
      reason: 'revoked by client',
      expiresAt: new Date((claims.exp + CLOCK_SKEW_S) * 1000),
      grantIds: [claims.tctx.grant_id],
    });
  }

  /** RFC 7662 §2: whether the token is active, and if so its claims. */
  async introspect(params: Record<string, string>): Promise<Introspection> {
    const caller = await this.clientAuth.authenticateForm(params, this.clock.now());
    const claims = await this.verify(params.token);
    if (!claims) return { active: false };
    // RFC 7662 §4: the server decides who may learn about a token. A token's subject, actors,
    // transaction and grant are told only to its holder (act.sub) and the agents it came through
    // (its act chain); anyone else gets the answer for an unknown token, so learns nothing.
    if (!actChain(claims.act).includes(caller.client_id)) return { active: false };
    if (await this.isRevoked(claims)) return { active: false };
    const grant = await this.grants.get(claims.tctx.grant_id);
    if (grant?.status !== 'approved') return { active: false };
    return {
      active: true,
      iss: claims.iss,
      sub: claims.sub,
      aud: claims.aud,
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      txn: claims.txn,
      scope: claims.scope,
      client_id: claims.req_wl,
      cnf: claims.cnf,
      act: claims.act,
      token_type: TXN_TOKEN_TYPE,
      grant_id: claims.tctx.grant_id,
    };
  }

  /** Writes the row and its event in one transaction; announces only once committed. */
  private async record(record: RevocationRecord): Promise<void> {
    const event = await this.recorder.transaction((tx) => this.recorder.record(tx, record));
    this.recorder.announce(event);
  }

  /** A Txn-Token this registry issued, still within its lifetime; null for anything else. */
  private async verify(token: string | undefined): Promise<TxnTokenClaims | null> {
    if (token === undefined || token === '') return null;
    try {
      return await verifyIssuedTxnToken(token, this.keys, this.config, this.clock);
    } catch (error) {
      if (error instanceof InvalidToken) return null;
      throw error;
    }
  }
}
