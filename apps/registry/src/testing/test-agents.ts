import { randomUUID } from 'node:crypto';
import { CLIENT_ASSERTION_TYP, createDpopProof, jwkThumbprint } from '@writ/core';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import type { AgentEntity } from '../modules/agents/agent.entity.js';

/** A registered agent as unit tests hold it: its row, and the private key it signs with. */
export interface TestAgent {
  entity: AgentEntity;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** An active agent `clientId` of `owner`, with a fresh ES256 key registered. */
export async function testAgent(clientId: string, owner: string): Promise<TestAgent> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const entity: AgentEntity = {
    client_id: clientId,
    client_name: `agent of ${owner}`,
    owner,
    jwks: { keys: [publicJwk] },
    jkt: await jwkThumbprint(publicJwk),
    status: 'active',
    created_at: new Date(0),
    disabled_at: null,
  };
  return { entity, privateKey, publicJwk };
}

/** What a JWT an agent signs about itself says besides iss = sub = its client_id. */
export interface AgentJwtClaims {
  /** The registry's issuer identifier. */
  audience: string;
  /** Milliseconds since the epoch: `iat`, and `exp` a minute later. */
  now: number;
  /** The kind (ADR 0015): a client assertion unless told otherwise. */
  typ?: string;
  jti?: string;
}

/** A JWT `agent` signs about itself: a client assertion, subject token or actor token. */
export function agentJwt(agent: TestAgent, claims: AgentJwtClaims): Promise<string> {
  const iat = Math.floor(claims.now / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', typ: claims.typ ?? CLIENT_ASSERTION_TYP })
    .setIssuer(agent.entity.client_id)
    .setSubject(agent.entity.client_id)
    .setAudience(claims.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 60)
    .setJti(claims.jti ?? randomUUID())
    .sign(agent.privateKey);
}

/** A DPoP proof by `agent` for POST `htu` at `now`, bound to `accessToken` if given. */
export function agentProof(agent: TestAgent, htu: string, now: number, accessToken?: string): Promise<string> {
  return createDpopProof({ privateKey: agent.privateKey, publicJwk: agent.publicJwk, htm: 'POST', htu, clock: { now: () => now }, ...(accessToken ? { accessToken } : {}) });
}
