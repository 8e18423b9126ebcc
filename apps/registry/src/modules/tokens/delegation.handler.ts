import {
  assertNarrows,
  delegateAct,
  detailsSubsetViolation,
  InvalidAuthorizationDetails,
  InvalidDpopProof,
  InvalidGrant,
  InvalidRequest,
  InvalidToken,
  JWT_TOKEN_TYPE,
  type TxnTokenClaims,
  UnsupportedTokenType,
} from '@writ/core';
import { decodeJwt } from 'jose';
import type { AgentEntity } from '../agents/agent.entity.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import { verifyIssuedTxnToken } from './issued-tokens.js';
import { mintTxnToken, tokenResponse } from './mint-txn-token.js';
import { verifySelfSignedJwt } from './self-signed-jwt.js';
import {
  type DelegationDetails,
  type NarrowedContext,
  dpopProofUse,
  parseDelegationDetails,
  type SubjectTokenHandler,
  type TokenEndpointDeps,
  verifyTokenEndpointProof,
} from './token-endpoint.js';

/**
 * A hop (ARCHITECTURE.md "Delegating to the next agent") for a Txn-Token subject token: the
 * holder of a Txn-Token hands a narrower child token to another registered agent, which consented
 * with its actor token. The child keeps txn, sub, aud and iss, is bound to the new actor's
 * registered key, and never outlives its parent or the grant. The `token.delegated` event is
 * committed before the answer.
 */
export const delegateToken: SubjectTokenHandler = async (endpoint, request) => {
  const p = request.params;
  const subjectToken = p.subject_token!;
  if (p.actor_token === undefined || p.actor_token === '') throw new InvalidRequest('actor_token is required for delegation');
  if (p.actor_token_type !== JWT_TOKEN_TYPE) throw new UnsupportedTokenType(`actor_token_type must be ${JWT_TOKEN_TYPE}`);
  const details = parseDelegationDetails(p.request_details);

  // 1. The client: it must hold the subject token.
  const now = endpoint.clock.now();
  const holder = await endpoint.clientAuth.authenticateForm(p, now);

  // 2. The parent token, issued by this registry, held by the client and not revoked.
  const parent = await verifyParentToken(endpoint, subjectToken);
  if (parent.act.sub !== holder.client_id) throw new InvalidGrant('only the holder of the subject token can delegate');
  // ARCHITECTURE.md "Revocation": the parent's jti, txn, grant or any actor in its chain.
  if (endpoint.revocations && (await endpoint.revocations.isRevoked(parent))) throw new InvalidGrant('subject token is revoked');

  // 3. Proof of possession of the parent token's key (its cnf.jkt); the proof is single-use.
  const proof = await verifyTokenEndpointProof(endpoint, request.dpop, { accessToken: subjectToken, expectedJkt: parent.cnf.jkt });
  if (!(await endpoint.repository.rememberProof(dpopProofUse(proof), now))) throw new InvalidDpopProof('DPoP proof jti was already used');

  // 4. The new actor's consent, signed with its registered key.
  const actor = await verifyActorToken(endpoint, p.actor_token, now);

  // 5. The grant still stands, and its delegation policy allows this hop.
  const grant = await grantAllowingHop(endpoint, parent, actor);

  // 6. The child's capabilities and envelope: no wider than the parent's.
  const { authorizationDetails, envelope } = narrowedToParent(details, parent);

  // 7. The child token.
  const minted = await mintTxnToken(
    {
      iss: parent.iss,
      aud: parent.aud,
      txn: parent.txn,
      sub: parent.sub,
      requester: holder.client_id,
      act: delegateAct(parent.act, actor.client_id),
      jkt: actor.jkt,
      tctx: {
        grant_id: parent.tctx.grant_id,
        // The grant's service, as the parent names it: a hop never changes it (issue 16, finding 8).
        service: parent.tctx.service,
        authorization_details: authorizationDetails,
        envelope,
        purpose: parent.tctx.purpose,
        approval: parent.tctx.approval,
        parent: parent.jti,
        depth: parent.tctx.depth + 1,
      },
      notAfter: [parent.exp, Math.floor(grant.expires_at.getTime() / 1000)],
      expired: 'subject token is expired',
    },
    { keys: endpoint.keys, tokenTtlSeconds: endpoint.config.tokenTtlSeconds, now, ip: request.ip },
  );

  // 8. Recorded (and committed), linked to the parent's event, before it is handed out. The
  //    parent's event was committed before the parent was handed out, so it is there to link to.
  const { claims } = minted;
  await endpoint.audit.append({
    type: 'token.delegated',
    grant_id: grant.id,
    txn: claims.txn,
    parent_id: await endpoint.repository.tokenEventId(parent.txn, parent.jti),
    actor: holder.client_id,
    subject: parent.sub,
    data: { jti: claims.jti, parent_jti: parent.jti, actor: actor.client_id, token_hash: minted.hash, jkt: actor.jkt, exp: claims.exp, scope: claims.scope },
  });
  return tokenResponse(minted);
};

/** Verifies a Txn-Token this registry issued, as the subject token of a delegation. */
async function verifyParentToken(endpoint: TokenEndpointDeps, token: string): Promise<TxnTokenClaims> {
  try {
    return await verifyIssuedTxnToken(token, endpoint.keys, endpoint.config, endpoint.clock);
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
async function verifyActorToken(endpoint: TokenEndpointDeps, token: string, now: number): Promise<AgentEntity> {
  let unverified: Record<string, unknown>;
  try {
    unverified = decodeJwt(token);
  } catch {
    throw new InvalidGrant('actor token is not a valid JWT');
  }
  const { iss, sub } = unverified;
  if (typeof iss !== 'string' || iss === '' || iss !== sub) throw new InvalidGrant('actor token iss and sub must be the actor client_id');
  const actor = await endpoint.clientAuth.findAgent(iss);
  if (!actor) throw new InvalidGrant('actor is not a registered agent');
  const { jti, exp } = verifySelfSignedJwt(token, actor.jwks.keys[0]!, { kind: 'actor', clientId: actor.client_id, audience: endpoint.config.issuer, now });
  if (actor.status !== 'active') throw new InvalidGrant('actor is disabled');
  if (!(await endpoint.clientAuth.rememberAgentJwt(endpoint.clientAuth.agentJwtUse(actor.client_id, jti, exp), now))) {
    throw new InvalidGrant('actor token jti was already used');
  }
  return actor;
}

/** The parent's grant, still approved, whose delegation policy allows one more hop, to `actor`. */
async function grantAllowingHop(endpoint: TokenEndpointDeps, parent: TxnTokenClaims, actor: AgentEntity): Promise<GrantEntity> {
  const grant = await endpoint.grants.get(parent.tctx.grant_id);
  if (!grant) throw new InvalidGrant('grant not found');
  if (grant.status !== 'approved') throw new InvalidGrant(`grant is ${grant.status}`);
  if (parent.tctx.depth + 1 > grant.delegation.max_depth) throw new InvalidGrant('delegation depth limit reached');
  if (grant.delegation.allowed_agents !== undefined && !grant.delegation.allowed_agents.includes(actor.client_id)) {
    throw new InvalidGrant("actor is not allowed by the grant's delegation policy");
  }
  // By default a grant stays with the person who approved it: only their own agents, which
  // they see and can disable, may spend it; another person's agent only when the approved
  // document names it in delegation.allowed_agents (ARCHITECTURE.md "Delegating to the next agent").
  if (grant.delegation.allowed_agents === undefined && actor.owner !== grant.owner) {
    throw new InvalidGrant("actor belongs to another person than the grant's owner, and the grant's delegation.allowed_agents does not name it");
  }
  return grant;
}

/** The capabilities and envelope asked for, no wider than the parent's (the parent's own when not asked). */
function narrowedToParent(details: DelegationDetails, parent: TxnTokenClaims): NarrowedContext {
  const authorizationDetails = details.authorization_details ?? parent.tctx.authorization_details;
  const violation = detailsSubsetViolation(authorizationDetails, parent.tctx.authorization_details);
  if (violation !== null) throw new InvalidAuthorizationDetails(violation);
  const envelope = details.envelope ?? parent.tctx.envelope;
  assertNarrows(envelope, parent.tctx.envelope);
  return { authorizationDetails, envelope };
}
