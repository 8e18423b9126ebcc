import { CLIENT_ASSERTION_TYP, InvalidClient, typMatches } from '@writ/core';
import { decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import { algsOf, JwsError, verifyJws } from '@writ/server/node-crypto';
import type { AgentEntity } from './agent.entity.js';
import type { AgentJwtUse, ClientAuthRepository } from './client-auth.repository.js';

/** RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion. */
export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** An assertion is a few hundred characters; this bounds the work an attacker can make us do. */
const MAX_ASSERTION_LENGTH = 8192;
/** An assertion is good for a single call: it may live at most this long. */
export const MAX_ASSERTION_LIFETIME_S = 300;
/** Tolerated clock difference for `iat` and `nbf` in the future. */
const CLOCK_SKEW_S = 5;
/** The longest `jti` accepted in any JWT an agent signs. */
export const MAX_JTI_LENGTH = 256;
/** RFC 7515 §7.1: a compact JWS is three base64url parts. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** What an agent presents to authenticate (RFC 7523 §2.2, RFC 6749 §2.3). */
export interface ClientAssertionParams {
  client_id?: string | undefined;
  client_assertion_type?: string | undefined;
  client_assertion?: string | undefined;
}

/** The `private_key_jwt` parameters of an OAuth endpoint's form (RFC 6749 §2.3, RFC 7523 §2.2); the rest are the endpoint's. */
export function clientAssertionOf(form: Readonly<Record<string, string>>): ClientAssertionParams {
  return { client_id: form.client_id, client_assertion_type: form.client_assertion_type, client_assertion: form.client_assertion };
}

/** What {@link ClientAuthService} needs. */
export interface ClientAuthOptions {
  repository: ClientAuthRepository;
  /** `config.issuer`: the only accepted audience. */
  issuer: string;
}

/** An authenticated agent, and the use of its assertion's `jti` that is still to be recorded. */
export interface DeferredClientAuth {
  agent: AgentEntity;
  replay: AgentJwtUse;
}

/**
 * RFC 7523 §2.2 and §3 client authentication with `private_key_jwt`: the agent signs a short
 * JWT with its registered key; `typ` = `client-authentication+jwt` (draft-ietf-oauth-rfc7523bis
 * §4), `iss` = `sub` = client_id, `aud` = this issuer (one string), `exp` soon, `jti` used once.
 * Fails with {@link InvalidClient} (401) and a precise description.
 *
 * It also owns the one single-use `jti` space of every JWT an agent signs (ADR 0015): client
 * assertions, subject tokens and actor tokens are recorded under the agent's client_id in the
 * same table, so a `jti` used for one kind can never be used again for any kind
 * ({@link agentJwtUse}).
 */
export class ClientAuthService {
  private readonly repository: ClientAuthRepository;
  private readonly issuer: string;

  constructor(options: ClientAuthOptions) {
    this.repository = options.repository;
    this.issuer = options.issuer;
  }

  /**
   * The single-use entry of a JWT the agent `clientId` signed, whatever its kind: one key per
   * agent, no per-kind prefix (ADR 0015). Kept until the JWT expires, plus clock skew.
   */
  agentJwtUse(clientId: string, jti: string, exp: number): AgentJwtUse {
    return { clientId, jti, expiresAt: new Date((exp + CLOCK_SKEW_S) * 1000) };
  }

  /** The agent registered as `clientId`, whatever its status (as an actor token names one). */
  findAgent(clientId: string): Promise<AgentEntity | undefined> {
    return this.repository.findAgent(clientId);
  }

  /** Records one use of a JWT an agent signed; false if its `jti` was already used. */
  async rememberAgentJwt(use: AgentJwtUse, now: number): Promise<boolean> {
    const [fresh] = await this.repository.rememberAgentJwts([use], now);
    return fresh!;
  }

  /**
   * The step in front of every OAuth endpoint an agent calls (token, RFC 7662 introspection,
   * RFC 7009 revocation): authenticates the client named by the form's `private_key_jwt`
   * parameters and returns the active agent.
   */
  authenticateForm(form: Readonly<Record<string, string>>, now: number): Promise<AgentEntity> {
    return this.authenticate(clientAssertionOf(form), now);
  }

  /** Authenticates the call and returns the active agent; `now` is in milliseconds since the epoch. */
  async authenticate(params: ClientAssertionParams, now: number): Promise<AgentEntity> {
    const { agent, replay } = await this.authenticateDeferringReplay(params, now);
    if (!(await this.rememberAgentJwt(replay, now))) throw assertionReplayed();
    return agent;
  }

  /**
   * Every check of {@link authenticate} but the single use of the `jti`, which the caller must
   * record (in the same statement as its other single-use identifiers) and refuse with
   * {@link assertionReplayed} if it was already used.
   */
  async authenticateDeferringReplay(
    params: ClientAssertionParams,
    now: number,
    /** Reads the agent row; the token endpoint reads the grant in the same statement. */
    loadAgent: (clientId: string) => Promise<AgentEntity | undefined> = (clientId) => this.repository.findAgent(clientId),
  ): Promise<DeferredClientAuth> {
    const assertion = params.client_assertion;
    if (assertion === undefined || assertion === '') throw new InvalidClient('client assertion is missing');
    if (params.client_assertion_type !== JWT_BEARER_ASSERTION_TYPE) {
      throw new InvalidClient(`client_assertion_type must be ${JWT_BEARER_ASSERTION_TYPE}`);
    }
    if (assertion.length > MAX_ASSERTION_LENGTH || !COMPACT_JWS.test(assertion)) {
      throw new InvalidClient('client assertion is not a compact JWS');
    }
    // draft-ietf-oauth-rfc7523bis §4, RFC 8725 §3.11: explicitly typed, so that no other JWT the
    // agent signs (its subject or actor token, ADR 0015) passes for its client assertion.
    let typ: unknown;
    try {
      ({ typ } = decodeProtectedHeader(assertion));
    } catch {
      throw new InvalidClient('client assertion header is not a JOSE header');
    }
    if (!typMatches(typ, CLIENT_ASSERTION_TYP)) throw new InvalidClient(`client assertion typ must be ${CLIENT_ASSERTION_TYP}`);
    // Read before the signature is checked, to find the key; trusted once it verifies (same bytes).
    let claims: Record<string, unknown>;
    try {
      claims = decodeJwt(assertion);
    } catch {
      throw new InvalidClient('client assertion payload is not a JWT claims set');
    }

    // RFC 7523 §3 (1), (2): iss and sub are the client_id; RFC 7521 §4.2: and equal the client_id parameter.
    const { iss, sub } = claims;
    if (typeof iss !== 'string' || iss !== sub || (params.client_id !== undefined && params.client_id !== iss)) {
      throw new InvalidClient('client assertion iss and sub must equal client_id');
    }
    const agent = await loadAgent(iss);
    if (!agent) throw new InvalidClient('unknown client');

    // RFC 7523 §3 (9): signed with the registered key. Checked before the status, so a caller
    // without the key learns nothing about the agent.
    verifySignature(assertion, agent.jwks.keys[0]!);
    if (agent.status !== 'active') throw new InvalidClient('client is disabled');

    // RFC 7523 §3 (3), draft-ietf-oauth-rfc7523bis: the audience is this authorization
    // server's issuer identifier, as one string: an array could name other servers too, each of
    // which could then replay the assertion here.
    const { aud } = claims;
    if (Array.isArray(aud)) throw new InvalidClient('client assertion aud must be a single string, not an array');
    if (aud !== this.issuer) throw new InvalidClient('client assertion audience is not this issuer');
    // RFC 7523 §3 (4): exp is required and in the future.
    const nowS = Math.floor(now / 1000);
    const { exp, iat, nbf, jti } = claims;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new InvalidClient('client assertion exp claim is required');
    if (exp <= nowS) throw new InvalidClient('client assertion is expired');
    if (iat !== undefined && (typeof iat !== 'number' || !Number.isFinite(iat))) throw new InvalidClient('client assertion iat claim must be a number');
    if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) throw new InvalidClient('client assertion nbf claim must be a number');
    if (iat !== undefined && iat > nowS + CLOCK_SKEW_S) throw new InvalidClient('client assertion iat is in the future');
    if (nbf !== undefined && nbf > nowS + CLOCK_SKEW_S) throw new InvalidClient('client assertion is not yet valid');
    // RFC 7523 §3 (4): the server may reject a JWT with an unreasonably far expiry.
    if (exp - nowS > MAX_ASSERTION_LIFETIME_S || (iat !== undefined && exp - iat > MAX_ASSERTION_LIFETIME_S)) {
      throw new InvalidClient('client assertion lifetime is too long');
    }
    // RFC 7523 §3 (7): the jti is used once; it is kept until the assertion expires.
    if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) {
      throw new InvalidClient(`client assertion jti is required (1 to ${MAX_JTI_LENGTH} characters)`);
    }
    return { agent, replay: this.agentJwtUse(agent.client_id, jti, exp) };
  }
}

/** RFC 7523 §3 (7): the error for a client assertion whose `jti` was already used. */
export function assertionReplayed(): InvalidClient {
  return new InvalidClient('client assertion jti was already used');
}

/** Verifies the JWS with the agent's key, accepting only that key's algorithm. */
function verifySignature(assertion: string, jwk: JWK): void {
  try {
    verifyJws(assertion, jwk);
  } catch (error) {
    if (error instanceof JwsError && error.reason === 'alg') throw new InvalidClient(`client assertion alg must be ${algsOf(jwk).join(' or ')}, the registered key's algorithm`);
    throw new InvalidClient('client assertion signature is invalid');
  }
}
