import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import {
  assertNarrows,
  AuthorizationDetailsSchema,
  type Clock,
  detailsSubsetViolation,
  EnvelopeSchema,
  InvalidAuthorizationDetails,
  InvalidDpopProof,
  InvalidGrant,
  InvalidRequest,
  InvalidToken,
  JWT_TOKEN_TYPE,
  delegateAct,
  scopeOf,
  SELF_SIGNED_TOKEN_TYPE,
  signTxnToken,
  TOKEN_EXCHANGE_GRANT,
  TXN_TOKEN_TYPE,
  type TxnTokenClaims,
  UnsupportedGrantType,
  UnsupportedTokenType,
  verifyDpopProof,
} from '@writ/core';
import { decodeJwt } from 'jose';
import { CLOCK_SKEW_S, verifyIssuedTxnToken } from './issued-tokens.js';
import { z } from 'zod';
import type { RegistryConfig } from '../../config/config.js';
import type { Database } from '../../infra/database.service.js';
import { JtiStore, type PendingJti } from '../../infra/jti-store.js';
import { nodeSignatureVerifier, sha256Base64urlSync } from '@writ/server/node-crypto';
import { type SelfSignedJwt, verifySelfSignedJwt } from './self-signed-jwt.js';
import { assertionReplayed, type ClientAuthService } from '../agents/client-auth.service.js';
import { AgentEntity } from '../agents/agent.entity.js';
import type { AuditService } from '../audit/audit.service.js';
import type { KeyStore } from '../keys/key-store.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import type { GrantsService } from '../grants/grants.service.js';
import type { RevocationsService } from '../revocations/revocations.service.js';
import { describeIssue } from '../validation.js';

/** RFC 8693 §2.2.1 / RFC 9449 §5: what a successful token exchange answers. */
export interface TokenResponse {
  access_token: string;
  token_type: 'DPoP';
  issued_token_type: typeof TXN_TOKEN_TYPE;
  expires_in: number;
}

/** A token request as the controller received it: form parameters, the DPoP header, the peer. */
export interface TokenRequest {
  params: Record<string, string>;
  dpop: string | undefined;
  ip: string | undefined;
}

/** DPoP proofs older than this are refused by verifyDpopProof, so a jti is kept this long (plus skew). */
const DPOP_MAX_AGE_S = 300;

/** What a delegation asks for: a subset of the parent token's context (the grant is the parent's). */
export const DelegationDetailsSchema = z.strictObject({
  authorization_details: AuthorizationDetailsSchema.optional(),
  envelope: EnvelopeSchema.optional(),
});

export const RequestDetailsSchema = z.strictObject({
  grant_id: z.string().min(1).max(256),
  authorization_details: AuthorizationDetailsSchema.optional(),
  envelope: EnvelopeSchema.optional(),
});

/**
 * Issues root Txn-Tokens (ARCHITECTURE.md "Issuing a root token"): an RFC 8693 token exchange of
 * the agent's self-signed subject token, authenticated with `private_key_jwt`, bound with DPoP to
 * the proof key, for a subset of an approved grant. The `token.issued` audit event is committed
 * before the token is returned.
 */
export class TokensService {
  private readonly proofJtis: JtiStore;

  constructor(
    private readonly db: Database,
    private readonly audit: AuditService,
    private readonly clientAuth: ClientAuthService,
    private readonly grants: GrantsService,
    private readonly keys: KeyStore,
    private readonly clock: Clock,
    private readonly config: RegistryConfig,
    private readonly revocations?: RevocationsService,
    /** RFC 9449 §8: accepts a proof's server nonce; absent when `WRIT_DPOP_NONCE` is off. */
    private readonly dpopNonce?: (nonce: string) => boolean,
  ) {
    this.proofJtis = new JtiStore(db, { table: 'dpop_proof_jtis', key: 'jkt' });
  }

  async exchange(request: TokenRequest): Promise<TokenResponse> {
    const p = request.params;
    // 1. The request itself.
    if (p.grant_type === undefined) throw new InvalidRequest('grant_type is required');
    if (p.grant_type !== TOKEN_EXCHANGE_GRANT) throw new UnsupportedGrantType(`grant_type must be ${TOKEN_EXCHANGE_GRANT}`);
    if (p.requested_token_type !== TXN_TOKEN_TYPE) throw new InvalidRequest(`requested_token_type must be ${TXN_TOKEN_TYPE}`);
    if (p.subject_token === undefined || p.subject_token === '') throw new InvalidRequest('subject_token is required');
    if (p.subject_token_type === TXN_TOKEN_TYPE) return this.delegate(request);
    if (p.subject_token_type !== SELF_SIGNED_TOKEN_TYPE) throw new UnsupportedTokenType(`subject_token_type must be ${SELF_SIGNED_TOKEN_TYPE}`);
    const details = parseRequestDetails(p.request_details);

    // 2. The client.
    const now = this.clock.now();
    // The agent and the grant it names are read in one statement: one round trip fewer per token.
    let grantRow: GrantEntity | null = null;
    const { agent, replay: assertionJti } = await this.clientAuth.authenticateDeferringReplay(
      { client_id: p.client_id, client_assertion_type: p.client_assertion_type, client_assertion: p.client_assertion },
      now,
      async (clientId) => {
        const [row] = await this.db.query<{ agent_row: AgentEntity | null; grant_row: GrantJson | null }[]>(
          `SELECT (SELECT to_jsonb(a) FROM agents a WHERE a.client_id = $1) AS agent_row,
                  (SELECT to_jsonb(g) FROM grants g WHERE g.id = $2) AS grant_row`,
          [clientId, details.grant_id],
        );
        grantRow = row?.grant_row ? reviveGrant(row.grant_row) : null;
        return row?.agent_row ?? undefined;
      },
    );

    // 3. Proof of possession of the key the token will be bound to. The assertion and the proof
    //    are single-use: both identifiers are recorded in one statement.
    if (request.dpop === undefined || request.dpop === '') throw new InvalidDpopProof('DPoP proof is missing');
    const proof = await verifyDpopProof(request.dpop, {
      htm: 'POST',
      htu: `${this.config.issuer}/oauth/token`,
      nonce: this.dpopNonce,
      verifySignature: nodeSignatureVerifier,
      clock: this.clock,
      maxAgeSeconds: DPOP_MAX_AGE_S,
    });

    // 4. The subject token: the agent's own statement, signed with its registered key.
    const subject = this.verifySubjectToken(p.subject_token, agent, now);
    // ADR 0015: the assertion's and the subject token's jtis share the agent's one single-use
    // space; the same jti twice in one request is a reuse (and is not inserted twice).
    if (subject.jti === assertionJti.jti) throw new InvalidGrant('subject token jti was already used');
    const [assertionFresh, proofFresh, subjectFresh] = await JtiStore.rememberTogether(
      [assertionJti, this.proofJtiEntry(proof.jkt, proof.jti, proof.iat), this.clientAuth.agentJwtJti(agent.client_id, subject.jti, subject.exp)],
      now,
    );
    if (!assertionFresh) throw assertionReplayed();
    if (!proofFresh) throw new InvalidDpopProof('DPoP proof jti was already used');
    if (!subjectFresh) throw new InvalidGrant('subject token jti was already used');

    // 5. The grant, and the subset of it this transaction needs.
    const settled = await this.grants.settle(grantRow);
    // Another agent's grant is indistinguishable from none.
    const grant = settled?.agent_id === agent.client_id ? settled : null;
    if (!grant) throw new InvalidGrant('grant not found');
    if (grant.status !== 'approved') throw new InvalidGrant(`grant is ${grant.status}`);
    // Every approval since the approval flow exists carries its receipt; one without is not trusted.
    if (grant.approval === null) throw new InvalidGrant('grant has no signed approval receipt');
    const authorizationDetails = details.authorization_details ?? grant.authorization_details;
    const violation = detailsSubsetViolation(authorizationDetails, grant.authorization_details);
    if (violation !== null) throw new InvalidAuthorizationDetails(violation);
    const envelope = details.envelope ?? grant.envelope;
    assertNarrows(envelope, grant.envelope);

    // 6. The token.
    const iat = Math.floor(now / 1000);
    const exp = Math.min(iat + this.config.tokenTtlSeconds, Math.floor(grant.expires_at.getTime() / 1000));
    if (exp <= iat) throw new InvalidGrant('grant is expired');
    const claims: TxnTokenClaims = {
      iss: this.config.issuer,
      aud: this.config.trustDomain,
      iat,
      exp,
      jti: `trt_${randomUUID()}`,
      txn: `txn_${randomUUID()}`,
      sub: grant.owner,
      scope: scopeOf(authorizationDetails),
      req_wl: agent.client_id,
      act: { sub: agent.client_id },
      cnf: { jkt: proof.jkt },
      tctx: {
        grant_id: grant.id,
        // Only the service the grant was approved for may honour it (issue 16, finding 8).
        service: grant.service_id,
        authorization_details: authorizationDetails,
        envelope,
        purpose: grant.purpose,
        approval: grant.approval,
        depth: 0,
      },
      rctx: { ...(request.ip !== undefined && isIP(request.ip) !== 0 ? { req_ip: request.ip } : {}), authn: 'private_key_jwt' },
    };
    const key = await this.keys.active();
    const token = await signTxnToken(claims, { sign: key.sign, kid: key.kid });

    // 7. Recorded (and committed) before it is handed out.
    const hash = sha256Base64urlSync(token);
    await this.audit.append({
      type: 'token.issued',
      grant_id: grant.id,
      txn: claims.txn,
      actor: agent.client_id,
      subject: grant.owner,
      data: { jti: claims.jti, token_hash: hash, jkt: proof.jkt, exp, scope: claims.scope },
    });
    return { access_token: token, token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE, expires_in: exp - iat };
  }

  /**
   * A hop (ARCHITECTURE.md "Delegating to the next agent"): the holder of a Txn-Token hands a
   * narrower child token to another registered agent, which consented with its actor token. The
   * child keeps txn, sub, aud and iss, is bound to the new actor's registered key, and never
   * outlives its parent or the grant. The `token.delegated` event is committed before the answer.
   */
  private async delegate(request: TokenRequest): Promise<TokenResponse> {
    const p = request.params;
    const subjectToken = p.subject_token!;
    if (p.actor_token === undefined || p.actor_token === '') throw new InvalidRequest('actor_token is required for delegation');
    if (p.actor_token_type !== JWT_TOKEN_TYPE) throw new UnsupportedTokenType(`actor_token_type must be ${JWT_TOKEN_TYPE}`);
    const details = parseDelegationDetails(p.request_details);

    // 1. The client: it must hold the subject token.
    const now = this.clock.now();
    const holder = await this.clientAuth.authenticate(
      { client_id: p.client_id, client_assertion_type: p.client_assertion_type, client_assertion: p.client_assertion },
      now,
    );

    // 2. The parent token, issued by this registry.
    const parent = await this.verifyParentToken(subjectToken);
    if (parent.act.sub !== holder.client_id) throw new InvalidGrant('only the holder of the subject token can delegate');
    // ARCHITECTURE.md "Revocation": the parent's jti, txn, grant or any actor in its chain.
    if (this.revocations && (await this.revocations.isRevoked(parent))) throw new InvalidGrant('subject token is revoked');

    // 3. Proof of possession of the parent token's key; the proof is single-use. RFC 9449 §4.2
    //    asks for ath only at protected resources, so a generic client sends none here: the key
    //    (the parent's cnf.jkt) binds the proof to the token, and an ath that is sent must match.
    if (request.dpop === undefined || request.dpop === '') throw new InvalidDpopProof('DPoP proof is missing');
    const proof = await verifyDpopProof(request.dpop, {
      htm: 'POST',
      htu: `${this.config.issuer}/oauth/token`,
      accessToken: subjectToken,
      athOptional: true,
      expectedJkt: parent.cnf.jkt,
      nonce: this.dpopNonce,
      verifySignature: nodeSignatureVerifier,
      clock: this.clock,
      maxAgeSeconds: DPOP_MAX_AGE_S,
    });
    if (!(await this.rememberProofJti(proof.jkt, proof.jti, proof.iat, now))) throw new InvalidDpopProof('DPoP proof jti was already used');

    // 4. The new actor's consent, signed with its registered key.
    const actor = await this.verifyActorToken(p.actor_token, now);

    // 5. The grant still stands, and its delegation policy allows this hop.
    const grant = await this.grants.get(parent.tctx.grant_id);
    if (!grant) throw new InvalidGrant('grant not found');
    if (grant.status !== 'approved') throw new InvalidGrant(`grant is ${grant.status}`);
    const depth = parent.tctx.depth + 1;
    if (depth > grant.delegation.max_depth) throw new InvalidGrant('delegation depth limit reached');
    if (grant.delegation.allowed_agents !== undefined && !grant.delegation.allowed_agents.includes(actor.client_id)) {
      throw new InvalidGrant("actor is not allowed by the grant's delegation policy");
    }
    // By default a grant stays with the person who approved it: only their own agents, which
    // they see and can disable, may spend it; another person's agent only when the approved
    // document names it in delegation.allowed_agents (ARCHITECTURE.md "Delegating to the next agent").
    if (grant.delegation.allowed_agents === undefined && actor.owner !== grant.owner) {
      throw new InvalidGrant("actor belongs to another person than the grant's owner, and the grant's delegation.allowed_agents does not name it");
    }

    // 6. The child's capabilities and envelope: no wider than the parent's.
    const authorizationDetails = details.authorization_details ?? parent.tctx.authorization_details;
    const violation = detailsSubsetViolation(authorizationDetails, parent.tctx.authorization_details);
    if (violation !== null) throw new InvalidAuthorizationDetails(violation);
    const envelope = details.envelope ?? parent.tctx.envelope;
    assertNarrows(envelope, parent.tctx.envelope);

    // 7. The child token.
    const iat = Math.floor(now / 1000);
    const exp = Math.min(iat + this.config.tokenTtlSeconds, parent.exp, Math.floor(grant.expires_at.getTime() / 1000));
    if (exp <= iat) throw new InvalidGrant('subject token is expired');
    const claims: TxnTokenClaims = {
      iss: parent.iss,
      aud: parent.aud,
      iat,
      exp,
      jti: `trt_${randomUUID()}`,
      txn: parent.txn,
      sub: parent.sub,
      scope: scopeOf(authorizationDetails),
      req_wl: holder.client_id,
      act: delegateAct(parent.act, actor.client_id),
      cnf: { jkt: actor.jkt },
      tctx: {
        grant_id: parent.tctx.grant_id,
        // The grant's service, as the parent names it: a hop never changes it (issue 16, finding 8).
        service: parent.tctx.service,
        authorization_details: authorizationDetails,
        envelope,
        purpose: parent.tctx.purpose,
        approval: parent.tctx.approval,
        parent: parent.jti,
        depth,
      },
      rctx: { ...(request.ip !== undefined && isIP(request.ip) !== 0 ? { req_ip: request.ip } : {}), authn: 'private_key_jwt' },
    };
    const key = await this.keys.active();
    const token = await signTxnToken(claims, { sign: key.sign, kid: key.kid });

    // 8. Recorded (and committed), linked to the parent's event, before it is handed out.
    const hash = sha256Base64urlSync(token);
    // The parent's event was committed before the parent was handed out, so it is there to link to.
    const rows = await this.db.query<{ id: string }[]>(
      `SELECT id FROM audit_events WHERE type IN ('token.issued', 'token.delegated') AND txn = $1 AND data->>'jti' = $2 ORDER BY seq LIMIT 1`,
      [parent.txn, parent.jti],
    );
    await this.audit.append({
      type: 'token.delegated',
      grant_id: grant.id,
      txn: claims.txn,
      parent_id: rows[0]?.id ?? null,
      actor: holder.client_id,
      subject: parent.sub,
      data: { jti: claims.jti, parent_jti: parent.jti, actor: actor.client_id, token_hash: hash, jkt: actor.jkt, exp, scope: claims.scope },
    });
    return { access_token: token, token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE, expires_in: exp - iat };
  }

  /** Verifies a Txn-Token this registry issued, as the subject token of a delegation. */
  private async verifyParentToken(token: string): Promise<TxnTokenClaims> {
    try {
      return await verifyIssuedTxnToken(token, this.keys, this.config, this.clock);
    } catch (error) {
      if (!(error instanceof InvalidToken)) throw error;
      if (error.message === 'token expired') throw new InvalidGrant('subject token is expired');
      throw new InvalidGrant(`subject ${error.message}`);
    }
  }

  /**
   * Verifies the actor token: typ writ-actor+jwt, iss = sub = a registered, active agent,
   * aud = issuer, short-lived, signed by that agent's key; its jti is spent in the agent's one
   * single-use space (ADR 0015).
   */
  private async verifyActorToken(token: string, now: number): Promise<AgentEntity> {
    let unverified: Record<string, unknown>;
    try {
      unverified = decodeJwt(token);
    } catch {
      throw new InvalidGrant('actor token is not a valid JWT');
    }
    const { iss, sub } = unverified;
    if (typeof iss !== 'string' || iss === '' || iss !== sub) throw new InvalidGrant('actor token iss and sub must be the actor client_id');
    const actor = await this.db.dataSource.getRepository(AgentEntity).findOneBy({ client_id: iss });
    if (!actor) throw new InvalidGrant('actor is not a registered agent');
    const { jti, exp } = verifySelfSignedJwt(token, actor.jwks.keys[0]!, { kind: 'actor', clientId: actor.client_id, audience: this.config.issuer, now });
    if (actor.status !== 'active') throw new InvalidGrant('actor is disabled');
    const { store, key, expiresAt } = this.clientAuth.agentJwtJti(actor.client_id, jti, exp);
    if (!(await store.remember(key, jti, expiresAt, now))) throw new InvalidGrant('actor token jti was already used');
    return actor;
  }

  /** Verifies the self-signed subject token: typ writ-subject+jwt, iss = sub = client_id, aud = issuer, short-lived, with a jti, signed by the agent's key. */
  private verifySubjectToken(token: string, agent: AgentEntity, now: number): SelfSignedJwt {
    return verifySelfSignedJwt(token, agent.jwks.keys[0]!, { kind: 'subject', clientId: agent.client_id, audience: this.config.issuer, now });
  }

  /** Records the proof jti; false if it was already recorded and is still within its acceptance window. */
  private rememberProofJti(jkt: string, jti: string, iat: number, now: number): Promise<boolean> {
    const { key, expiresAt } = this.proofJtiEntry(jkt, jti, iat);
    return this.proofJtis.remember(key, jti, expiresAt, now);
  }

  /** A proof jti is kept for as long as the proof could be accepted. */
  private proofJtiEntry(jkt: string, jti: string, iat: number): PendingJti {
    return { store: this.proofJtis, key: jkt, jti, expiresAt: new Date((iat + DPOP_MAX_AGE_S + CLOCK_SKEW_S) * 1000) };
  }
}

/** A grant row as `to_jsonb` gives it: timestamps are ISO strings. */
type GrantJson = Omit<GrantEntity, 'requested_at' | 'decided_at' | 'expires_at' | 'revoked_at'> & {
  requested_at: string;
  decided_at: string | null;
  expires_at: string;
  revoked_at: string | null;
};

function reviveGrant(row: GrantJson): GrantEntity {
  const date = (v: string | null): Date | null => (v === null ? null : new Date(v));
  return { ...row, requested_at: new Date(row.requested_at), decided_at: date(row.decided_at), expires_at: new Date(row.expires_at), revoked_at: date(row.revoked_at) };
}

function parseDelegationDetails(raw: string | undefined): z.infer<typeof DelegationDetailsSchema> {
  return raw === undefined || raw === '' ? {} : parseDetails(raw, DelegationDetailsSchema);
}

function parseRequestDetails(raw: string | undefined): z.infer<typeof RequestDetailsSchema> {
  if (raw === undefined || raw === '') throw new InvalidRequest('request_details is required');
  return parseDetails(raw, RequestDetailsSchema);
}

/** The `request_details` JSON against `schema`; a capability error is invalid_authorization_details (RFC 9396 §5). */
function parseDetails<S extends z.ZodType>(raw: string, schema: S): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new InvalidRequest('request_details is not JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const { path, text } = describeIssue(parsed.error, value);
    if (path[0] === 'authorization_details') throw new InvalidAuthorizationDetails(`request_details.${text}`);
    throw new InvalidRequest(`request_details: ${text}`);
  }
  return parsed.data;
}
