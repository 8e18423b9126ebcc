import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import {
  assertNarrows,
  AuthorizationDetailsSchema,
  canonicalJson,
  type Clock,
  detailsSubsetViolation,
  EnvelopeSchema,
  InvalidAuthorizationDetails,
  InvalidDpopProof,
  InvalidGrant,
  InvalidRequest,
  scopeOf,
  SELF_SIGNED_TOKEN_TYPE,
  sha256Base64url,
  signTxnToken,
  TOKEN_EXCHANGE_GRANT,
  tokenHash,
  TXN_TOKEN_TYPE,
  type TxnTokenClaims,
  UnsupportedGrantType,
  UnsupportedTokenType,
  verifyDpopProof,
} from '@writ/core';
import { errors, importJWK, type JWK, jwtVerify } from 'jose';
import { z } from 'zod';
import type { RegistryConfig } from '../../config/config.js';
import type { Database } from '../../infra/database.service.js';
import type { ClientAuthService } from '../agents/client-auth.service.js';
import type { AgentEntity } from '../agents/agent.entity.js';
import type { AuditService } from '../audit/audit.service.js';
import type { KeyStore } from '../keys/key-store.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import type { GrantsService } from '../grants/grants.service.js';
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

/** The self-signed subject token is a proof of the moment: it may live at most this long. */
const MAX_SUBJECT_TOKEN_LIFETIME_S = 300;
const CLOCK_SKEW_S = 5;
/** DPoP proofs older than this are refused by verifyDpopProof, so a jti is kept this long (plus skew). */
const DPOP_MAX_AGE_S = 300;
const SWEEP_BATCH = 100;

const RequestDetailsSchema = z.strictObject({
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
  constructor(
    private readonly db: Database,
    private readonly audit: AuditService,
    private readonly clientAuth: ClientAuthService,
    private readonly grants: GrantsService,
    private readonly keys: KeyStore,
    private readonly clock: Clock,
    private readonly config: RegistryConfig,
  ) {}

  async exchange(request: TokenRequest): Promise<TokenResponse> {
    const p = request.params;
    // 1. The request itself.
    if (p.grant_type === undefined) throw new InvalidRequest('grant_type is required');
    if (p.grant_type !== TOKEN_EXCHANGE_GRANT) throw new UnsupportedGrantType(`grant_type must be ${TOKEN_EXCHANGE_GRANT}`);
    if (p.requested_token_type !== TXN_TOKEN_TYPE) throw new InvalidRequest(`requested_token_type must be ${TXN_TOKEN_TYPE}`);
    if (p.subject_token === undefined || p.subject_token === '') throw new InvalidRequest('subject_token is required');
    if (p.subject_token_type === TXN_TOKEN_TYPE) throw new InvalidRequest('delegation is not implemented yet');
    if (p.subject_token_type !== SELF_SIGNED_TOKEN_TYPE) throw new UnsupportedTokenType(`subject_token_type must be ${SELF_SIGNED_TOKEN_TYPE}`);
    const details = parseRequestDetails(p.request_details);

    // 2. The client.
    const now = this.clock.now();
    const agent = await this.clientAuth.authenticate(
      { client_id: p.client_id, client_assertion_type: p.client_assertion_type, client_assertion: p.client_assertion },
      now,
    );

    // 3. Proof of possession of the key the token will be bound to; the proof is single-use.
    if (request.dpop === undefined || request.dpop === '') throw new InvalidDpopProof('DPoP proof is missing');
    const proof = await verifyDpopProof(request.dpop, {
      htm: 'POST',
      htu: `${this.config.issuer}/oauth/token`,
      clock: this.clock,
      maxAgeSeconds: DPOP_MAX_AGE_S,
    });
    if (!(await this.rememberProofJti(proof.jkt, proof.jti, proof.iat, now))) throw new InvalidDpopProof('DPoP proof jti was already used');

    // 4. The subject token: the agent's own statement, signed with its registered key.
    await this.verifySubjectToken(p.subject_token, agent, now);

    // 5. The grant, and the subset of it this transaction needs.
    const grant = await this.grants.getForAgent(details.grant_id, agent.client_id);
    if (!grant) throw new InvalidGrant('grant not found');
    if (grant.status !== 'approved') throw new InvalidGrant(`grant is ${grant.status}`);
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
        authorization_details: authorizationDetails,
        envelope,
        purpose: grant.purpose,
        approval: await approvalHash(grant),
        depth: 0,
      },
      rctx: { ...(request.ip !== undefined && isIP(request.ip) !== 0 ? { req_ip: request.ip } : {}), authn: 'private_key_jwt' },
    };
    const key = await this.keys.active();
    const token = await signTxnToken(claims, { privateKey: key.privateKey, kid: key.kid });

    // 7. Recorded (and committed) before it is handed out.
    const hash = await tokenHash(token);
    await this.db.transaction((manager) =>
      this.audit.append(
        {
          type: 'token.issued',
          grant_id: grant.id,
          txn: claims.txn,
          actor: agent.client_id,
          subject: grant.owner,
          data: { jti: claims.jti, token_hash: hash, jkt: proof.jkt, exp, scope: claims.scope },
        },
        manager,
      ),
    );
    return { access_token: token, token_type: 'DPoP', issued_token_type: TXN_TOKEN_TYPE, expires_in: exp - iat };
  }

  /** Verifies the self-signed subject token: iss = sub = client_id, aud = issuer, short-lived, signed by the agent's key. */
  private async verifySubjectToken(token: string, agent: AgentEntity, now: number): Promise<void> {
    const jwk: JWK = agent.jwks.keys[0]!;
    const alg = jwk.alg === 'EdDSA' ? 'EdDSA' : 'ES256';
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, await importJWK(jwk, alg), {
        algorithms: [alg],
        issuer: agent.client_id,
        subject: agent.client_id,
        audience: this.config.issuer,
        requiredClaims: ['exp'],
        currentDate: new Date(now),
        clockTolerance: CLOCK_SKEW_S,
      }));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw new InvalidGrant('subject token is expired');
      if (error instanceof errors.JWTClaimValidationFailed) throw new InvalidGrant(`subject token ${error.claim} claim is invalid`);
      if (error instanceof errors.JWSSignatureVerificationFailed) throw new InvalidGrant('subject token signature is invalid');
      throw new InvalidGrant('subject token is not a valid JWT');
    }
    const nowS = Math.floor(now / 1000);
    const exp = payload.exp as number;
    const iat = payload.iat;
    if (exp - nowS > MAX_SUBJECT_TOKEN_LIFETIME_S || (typeof iat === 'number' && exp - iat > MAX_SUBJECT_TOKEN_LIFETIME_S)) {
      throw new InvalidGrant('subject token lifetime is too long');
    }
  }

  /** Records the proof jti; false if it was already recorded and is still within its acceptance window. */
  private rememberProofJti(jkt: string, jti: string, iat: number, now: number): Promise<boolean> {
    const expiresAt = new Date((iat + DPOP_MAX_AGE_S + CLOCK_SKEW_S) * 1000);
    return this.db.transaction(async (manager) => {
      await manager.query(
        `DELETE FROM dpop_proof_jtis WHERE (jkt, jti) IN (
           SELECT jkt, jti FROM dpop_proof_jtis WHERE expires_at <= $1 LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED)`,
        [new Date(now)],
      );
      const inserted: unknown[] = await manager.query(
        `INSERT INTO dpop_proof_jtis (jkt, jti, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (jkt, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE dpop_proof_jtis.expires_at <= $4
         RETURNING jti`,
        [jkt, jti, expiresAt, new Date(now)],
      );
      return inserted.length === 1;
    });
  }
}

function parseRequestDetails(raw: string | undefined): z.infer<typeof RequestDetailsSchema> {
  if (raw === undefined || raw === '') throw new InvalidRequest('request_details is required');
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new InvalidRequest('request_details is not JSON');
  }
  const parsed = RequestDetailsSchema.safeParse(value);
  if (!parsed.success) {
    const { path, text } = describeIssue(parsed.error, value);
    if (path[0] === 'authorization_details') throw new InvalidAuthorizationDetails(`request_details.${text}`);
    throw new InvalidRequest(`request_details: ${text}`);
  }
  return parsed.data;
}

/**
 * What the human approved, as a hash. The grant has no stored approval receipt yet, so this is the
 * hash of the approved document's fields; it will be replaced by the receipt hash in the approval issue.
 */
function approvalHash(grant: GrantEntity): Promise<string> {
  return sha256Base64url(
    canonicalJson({ grant_id: grant.id, version: grant.version, authorization_details: grant.authorization_details, envelope: grant.envelope }),
  );
}
