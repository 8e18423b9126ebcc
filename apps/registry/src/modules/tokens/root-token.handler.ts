import { randomUUID } from 'node:crypto';
import { assertNarrows, detailsSubsetViolation, InvalidAuthorizationDetails, InvalidDpopProof, InvalidGrant, type VerifiedDpopProof } from '@writ/core';
import type { AgentEntity } from '../agents/agent.entity.js';
import { assertionReplayed, clientAssertionOf } from '../agents/client-auth.service.js';
import type { AgentJwtUse } from '../agents/client-auth.repository.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import { mintTxnToken, tokenResponse } from './mint-txn-token.js';
import { type SelfSignedJwt, verifySelfSignedJwt } from './self-signed-jwt.js';
import {
  dpopProofUse,
  type NarrowedContext,
  parseRequestDetails,
  type RequestDetails,
  type SubjectTokenHandler,
  type TokenEndpointDeps,
  verifyTokenEndpointProof,
} from './token-endpoint.js';

/**
 * Issues a root Txn-Token (ARCHITECTURE.md "Issuing a root token") for a self-signed subject
 * token: an RFC 8693 token exchange of the agent's own statement, authenticated with
 * `private_key_jwt`, bound with DPoP to the proof key, for a subset of an approved grant. The
 * `token.issued` audit event is committed before the token is returned.
 */
export const issueRootToken: SubjectTokenHandler = async (endpoint, request) => {
  const p = request.params;
  // 1. The request itself (the shared checks are done): which grant, and which subset of it.
  const details = parseRequestDetails(p.request_details);

  // 2. The client; the grant it names is read in the same statement.
  const now = endpoint.clock.now();
  const { agent, grantRow, assertion } = await authenticateReadingGrant(endpoint, p, details.grant_id, now);

  // 3. Proof of possession of the key the token will be bound to.
  const proof = await verifyTokenEndpointProof(endpoint, request.dpop);

  // 4. The subject token: the agent's own statement, signed with its registered key. The
  //    assertion, the proof and the subject token are single-use: recorded in one statement.
  const subject = verifySubjectToken(endpoint, p.subject_token!, agent, now);
  await spendRootRequest(endpoint, { agent, assertion, proof, subject }, now);

  // 5. The grant, and the subset of it this transaction needs.
  const grant = await approvedGrantOf(endpoint, grantRow, agent);
  const { authorizationDetails, envelope } = narrowedToGrant(details, grant);

  // 6. The token.
  const minted = await mintTxnToken(
    {
      iss: endpoint.config.issuer,
      aud: endpoint.config.trustDomain,
      txn: `txn_${randomUUID()}`,
      sub: grant.owner,
      requester: agent.client_id,
      act: { sub: agent.client_id },
      jkt: proof.jkt,
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
      notAfter: [Math.floor(grant.expires_at.getTime() / 1000)],
      expired: 'grant is expired',
    },
    { keys: endpoint.keys, tokenTtlSeconds: endpoint.config.tokenTtlSeconds, now, ip: request.ip },
  );

  // 7. Recorded (and committed) before it is handed out.
  const { claims } = minted;
  await endpoint.audit.append({
    type: 'token.issued',
    grant_id: grant.id,
    txn: claims.txn,
    actor: agent.client_id,
    subject: grant.owner,
    data: { jti: claims.jti, token_hash: minted.hash, jkt: proof.jkt, exp: claims.exp, scope: claims.scope },
  });
  return tokenResponse(minted);
};

/** The authenticated agent, the grant row its request names (as read, not yet settled), and its assertion's use, still to record. */
interface AuthenticatedRootClient {
  agent: AgentEntity;
  grantRow: GrantEntity | null;
  assertion: AgentJwtUse;
}

/**
 * Client authentication (RFC 7523 §2.2), reading the agent and the grant it names in one
 * statement: one round trip fewer per token. The assertion's `jti` is recorded with the
 * request's other single-use identifiers ({@link spendRootRequest}).
 */
async function authenticateReadingGrant(endpoint: TokenEndpointDeps, params: Readonly<Record<string, string>>, grantId: string, now: number): Promise<AuthenticatedRootClient> {
  let grantRow: GrantEntity | null = null;
  const { agent, replay } = await endpoint.clientAuth.authenticateDeferringReplay(clientAssertionOf(params), now, async (clientId) => {
    const read = await endpoint.repository.findAgentAndGrant(clientId, grantId);
    grantRow = read.grant;
    return read.agent;
  });
  return { agent, grantRow, assertion: replay };
}

/** Verifies the self-signed subject token: typ writ-subject+jwt, iss = sub = client_id, aud = issuer, short-lived, with a jti, signed by the agent's key. */
function verifySubjectToken(endpoint: TokenEndpointDeps, token: string, agent: AgentEntity, now: number): SelfSignedJwt {
  return verifySelfSignedJwt(token, agent.jwks.keys[0]!, { kind: 'subject', clientId: agent.client_id, audience: endpoint.config.issuer, now });
}

/**
 * Records the assertion's, the proof's and the subject token's `jti`s in one statement, and
 * refuses a reuse of any, in that order. ADR 0015: the assertion's and the subject token's jtis
 * share the agent's one single-use space; the same jti twice in one request is a reuse (and is
 * not recorded twice).
 */
async function spendRootRequest(
  endpoint: TokenEndpointDeps,
  used: { agent: AgentEntity; assertion: AgentJwtUse; proof: VerifiedDpopProof; subject: SelfSignedJwt },
  now: number,
): Promise<void> {
  if (used.subject.jti === used.assertion.jti) throw new InvalidGrant('subject token jti was already used');
  const fresh = await endpoint.repository.rememberRootRequest(
    { assertion: used.assertion, proof: dpopProofUse(used.proof), subject: endpoint.clientAuth.agentJwtUse(used.agent.client_id, used.subject.jti, used.subject.exp) },
    now,
  );
  if (!fresh.assertion) throw assertionReplayed();
  if (!fresh.proof) throw new InvalidDpopProof('DPoP proof jti was already used');
  if (!fresh.subject) throw new InvalidGrant('subject token jti was already used');
}

/** An approved grant: it carries the hash of its signed approval receipt. */
type ApprovedGrant = GrantEntity & { approval: string };

/** An approved grant of this agent's, with its signed approval, brought up to date (expired when due). */
async function approvedGrantOf(endpoint: TokenEndpointDeps, grantRow: GrantEntity | null, agent: AgentEntity): Promise<ApprovedGrant> {
  const settled = await endpoint.grants.settle(grantRow);
  // Another agent's grant is indistinguishable from none.
  const grant = settled?.agent_id === agent.client_id ? settled : null;
  if (!grant) throw new InvalidGrant('grant not found');
  if (grant.status !== 'approved') throw new InvalidGrant(`grant is ${grant.status}`);
  // Every approval since the approval flow exists carries its receipt; one without is not trusted.
  if (grant.approval === null) throw new InvalidGrant('grant has no signed approval receipt');
  return { ...grant, approval: grant.approval };
}

/** The capabilities and envelope asked for, no wider than the grant's (the grant's own when not asked). */
function narrowedToGrant(details: RequestDetails, grant: GrantEntity): NarrowedContext {
  const authorizationDetails = details.authorization_details ?? grant.authorization_details;
  const violation = detailsSubsetViolation(authorizationDetails, grant.authorization_details);
  if (violation !== null) throw new InvalidAuthorizationDetails(violation);
  const envelope = details.envelope ?? grant.envelope;
  assertNarrows(envelope, grant.envelope);
  return { authorizationDetails, envelope };
}
