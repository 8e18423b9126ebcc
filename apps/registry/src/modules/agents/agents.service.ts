import {
  agentText,
  type Clock,
  InvalidClientMetadata,
  jwkThumbprint,
  OAuthError,
  randomId,
  sha256Base64url,
} from '@writ/core';
import { MAX_ENROLLMENT_TOKEN_TTL_S } from '@writ/contracts';
import { importJWK, type JWK } from 'jose';
import { z } from 'zod';
import type { AuditService } from '../audit/audit.service.js';
import type { RevocationRecorder } from '../revocations/revocation-recorder.js';
import { describeIssue } from '../validation.js';
import type { AgentEntity } from './agent.entity.js';
import { InitialAccessTokenRejected } from './agents.errors.js';
import { type AgentsRepository, DuplicateAgentKey } from './agents.repository.js';

/** RFC 8693 §2.1: the one grant type agents use at the token endpoint. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Initial access tokens are short-lived (ARCHITECTURE.md, "Security defaults"): at most one day. */
export const MAX_INITIAL_ACCESS_TOKEN_TTL_S = MAX_ENROLLMENT_TOKEN_TTL_S;

/** RFC 7517 §9.2, RFC 7518 §6: members only a private or symmetric key carries. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/**
 * RFC 7591 §2 metadata Writ uses. Unknown fields are dropped, not refused (RFC 7591 §2: the
 * server ignores metadata it does not understand).
 */
export const RegistrationSchema = z.object({
  // Shown to the person on every card and approval: refused, never trimmed, when it holds a
  // control, format or invisible character or stray whitespace (ADR 0019).
  client_name: agentText(z.string().min(1).max(200)),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }),
  token_endpoint_auth_method: z.unknown().optional(),
  jwks_uri: z.unknown().optional(),
});

/** RFC 7591 §3.2.1: the client information response. */
export interface RegisteredClient {
  client_id: string;
  client_id_issued_at: number;
  client_name: string;
  jwks: { keys: JWK[] };
  token_endpoint_auth_method: 'private_key_jwt';
  grant_types: string[];
}

/** What `disable` did. */
export type DisableOutcome = 'disabled' | 'already_disabled' | 'unknown';

interface CheckedMetadata {
  client_name: string;
  jwk: JWK;
  jkt: string;
}

/** The first characters of a token's hash: enough to correlate audit events, useless to an attacker. */
function hashPrefix(tokenHash: string): string {
  return tokenHash.slice(0, 12);
}

export interface AgentsServiceOptions {
  repository: AgentsRepository;
  audit: AuditService;
  clock: Clock;
  /** Records and announces the `agent` revocation of a disabled agent (ADR 0008). */
  revocations: Pick<RevocationRecorder, 'record' | 'announce'>;
}

/**
 * Agents: one-time enrolment tokens minted for a human, RFC 7591 registration with the agent's
 * public key, and disabling. Every change appends its audit event in the same transaction.
 */
export class AgentsService {
  private readonly repository: AgentsRepository;
  private readonly audit: AuditService;
  private readonly clock: Clock;
  private readonly revocations: AgentsServiceOptions['revocations'];

  constructor(options: AgentsServiceOptions) {
    this.repository = options.repository;
    this.audit = options.audit;
    this.clock = options.clock;
    this.revocations = options.revocations;
  }

  /**
   * Mints an initial access token that lets one agent register for `owner`: 256 random bits,
   * base64url, returned this once (only its SHA-256 is stored), single-use, expiring after
   * `ttlSeconds`. Appends `agent.enrollment_token_minted` (with a hash prefix, never the token).
   */
  async mintInitialAccessToken(owner: string, ttlSeconds = 600, by = owner): Promise<{ token: string; expiresAt: Date }> {
    if (owner.trim() === '' || owner.length > 256) throw new RangeError('owner must be 1 to 256 characters');
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_INITIAL_ACCESS_TOKEN_TTL_S) {
      throw new RangeError(`ttl must be an integer number of seconds from 1 to ${MAX_INITIAL_ACCESS_TOKEN_TTL_S}`);
    }
    const token = randomId(32);
    const tokenHash = await sha256Base64url(token);
    const expiresAt = new Date(this.clock.now() + ttlSeconds * 1000);
    await this.repository.transaction(async (tx) => {
      await this.repository.insertInitialAccessToken({ token_hash: tokenHash, owner, expires_at: expiresAt, used_at: null }, tx);
      await this.audit.append(
        {
          type: 'agent.enrollment_token_minted',
          actor: by,
          subject: owner,
          data: { owner, token_hash_prefix: hashPrefix(tokenHash), expires_at: expiresAt.toISOString() },
        },
        tx,
      );
    });
    return { token, expiresAt };
  }

  /**
   * RFC 7591 §3.1: registers an agent with its one public key, consuming the initial access
   * token in the same transaction (a concurrent second use waits on the row lock, then fails).
   * A request with bad metadata leaves the token unused.
   *
   * @throws InitialAccessTokenRejected (401 invalid_token) when the token is missing, unknown, used or expired.
   * @throws InvalidClientMetadata (400, RFC 7591 §3.2.2) when the metadata is not acceptable.
   */
  async register(initialAccessToken: string | undefined, metadata: unknown): Promise<RegisteredClient> {
    if (initialAccessToken === undefined || initialAccessToken === '') {
      throw new InitialAccessTokenRejected('initial access token is missing');
    }
    const tokenHash = await sha256Base64url(initialAccessToken);
    // Checked before the transaction (no side effect, some crypto), reported after the token:
    // an unauthenticated caller learns nothing about its metadata.
    const checked = await checkMetadata(metadata).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => {
        if (error instanceof OAuthError) return { ok: false as const, error };
        throw error;
      },
    );
    const now = this.clock.now();
    try {
      return await this.repository.transaction(async (tx) => {
        // Locked: a concurrent registration with the same token waits here, then sees used_at.
        const row = await this.repository.lockInitialAccessToken(tokenHash, tx);
        if (!row) throw new InitialAccessTokenRejected('initial access token is unknown');
        if (row.used_at !== null) throw new InitialAccessTokenRejected('initial access token was already used');
        if (row.expires_at.getTime() <= now) throw new InitialAccessTokenRejected('initial access token is expired');
        if (!checked.ok) throw checked.error;
        const { client_name, jwk, jkt } = checked.value;

        if (await this.repository.keyRegistered(jkt, tx)) throw new InvalidClientMetadata('jwks key is already registered to another agent');
        await this.repository.markInitialAccessTokenUsed(tokenHash, new Date(now), tx);
        const agent: AgentEntity = {
          client_id: `agt_${randomId()}`,
          client_name,
          owner: row.owner,
          jwks: { keys: [jwk] },
          jkt,
          status: 'active',
          created_at: new Date(now),
          disabled_at: null,
        };
        await this.repository.insert(agent, tx);
        await this.audit.append(
          {
            type: 'agent.registered',
            actor: row.owner,
            subject: agent.client_id,
            data: { client_id: agent.client_id, client_name, owner: row.owner, jkt, token_hash_prefix: hashPrefix(tokenHash) },
          },
          tx,
        );
        return {
          client_id: agent.client_id,
          client_id_issued_at: Math.floor(now / 1000),
          client_name,
          jwks: agent.jwks,
          token_endpoint_auth_method: 'private_key_jwt' as const,
          grant_types: [TOKEN_EXCHANGE_GRANT],
        };
      });
    } catch (error) {
      // Two registrations of one key with two tokens at once: the unique index decides.
      if (error instanceof DuplicateAgentKey) throw new InvalidClientMetadata('jwks key is already registered to another agent');
      throw error;
    }
  }

  /**
   * Disables an agent: its calls are refused from now on, and so are the tokens it holds or handed
   * on (issue 16, 5). In one transaction: the status, `agent.disabled`, and an `agent` revocation
   * (its row and `revocation.agent` event) on every grant the agent holds or held a live token on,
   * until the last token issued before now expires (a disabled agent gets no new one). The
   * revocation is announced to the verifiers once committed, like every other (ADR 0008).
   */
  async disable(clientId: string, by: string): Promise<DisableOutcome> {
    const now = this.clock.now();
    const outcome = await this.repository.transaction(async (tx) => {
      const agent = await this.repository.lock(clientId, tx);
      if (!agent) return 'unknown' as const;
      if (agent.status === 'disabled') return 'already_disabled' as const;
      await this.repository.markDisabled(clientId, new Date(now), tx);
      await this.audit.append({ type: 'agent.disabled', actor: by, subject: clientId, data: { client_id: clientId, owner: agent.owner } }, tx);
      const revocation = await this.revocations.record(tx, { kind: 'agent', value: clientId, by, reason: 'agent disabled', subject: agent.owner }, now);
      return revocation;
    });
    if (typeof outcome === 'string') return outcome;
    this.revocations.announce(outcome);
    return 'disabled';
  }

  /** The agent with this client_id, whatever its status. */
  find(clientId: string): Promise<AgentEntity | null> {
    return this.repository.find(clientId);
  }
}

/** RFC 7591 §2 metadata as Writ accepts it: a name and exactly one public EC P-256 or Ed25519 key. */
async function checkMetadata(metadata: unknown): Promise<CheckedMetadata> {
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new InvalidClientMetadata('registration request must be a JSON object');
  }
  const raw = metadata as Record<string, unknown>;
  // RFC 7591 §2: the key is passed by value; a URI would make the registry fetch attacker-chosen URLs.
  if (raw.jwks_uri !== undefined) throw new InvalidClientMetadata('jwks_uri is not supported: register the public key in jwks');
  if (raw.token_endpoint_auth_method !== undefined && raw.token_endpoint_auth_method !== 'private_key_jwt') {
    throw new InvalidClientMetadata('token_endpoint_auth_method must be private_key_jwt');
  }
  const parsed = RegistrationSchema.safeParse(metadata);
  if (!parsed.success) throw new InvalidClientMetadata(describeIssue(parsed.error, metadata).text);
  const { keys } = parsed.data.jwks;
  if (keys.length !== 1) throw new InvalidClientMetadata('jwks must contain exactly one key');
  const { jwk, jkt } = await publicSigningKey(keys[0]!);
  return { client_name: parsed.data.client_name, jwk, jkt };
}

/** The registered form of the agent's key: public members, its `kid` (or the thumbprint), alg and use. */
async function publicSigningKey(raw: Record<string, unknown>): Promise<{ jwk: JWK; jkt: string }> {
  if (raw.kty === 'oct') throw new InvalidClientMetadata('jwks key must be an asymmetric public key, not a symmetric (kty oct) key');
  if (PRIVATE_JWK_MEMBERS.some((member) => member in raw)) throw new InvalidClientMetadata('jwks key contains private key material');
  let alg: 'ES256' | 'EdDSA' | 'Ed25519';
  let jwk: JWK;
  if (raw.kty === 'EC' && raw.crv === 'P-256' && typeof raw.x === 'string' && typeof raw.y === 'string') {
    alg = 'ES256';
    jwk = { kty: 'EC', crv: 'P-256', x: raw.x, y: raw.y };
  } else if (raw.kty === 'OKP' && raw.crv === 'Ed25519' && typeof raw.x === 'string') {
    alg = 'EdDSA';
    jwk = { kty: 'OKP', crv: 'Ed25519', x: raw.x };
  } else {
    throw new InvalidClientMetadata('jwks key must be an EC P-256 or OKP Ed25519 public key');
  }
  // RFC 9864 §2.2: an Ed25519 key may name its algorithm fully specified; it signs under either name.
  if (alg === 'EdDSA' && raw.alg === 'Ed25519') alg = 'Ed25519';
  if (raw.alg !== undefined && raw.alg !== alg) throw new InvalidClientMetadata(`jwks key alg must be ${alg} for this key type`);
  if (raw.use !== undefined && raw.use !== 'sig') throw new InvalidClientMetadata('jwks key use must be sig');
  try {
    // Web Crypto refuses a point that is not on the curve or a key of the wrong length.
    await importJWK(jwk, alg);
  } catch {
    throw new InvalidClientMetadata('jwks key is not a valid public key');
  }
  const jkt = await jwkThumbprint(jwk);
  const kid = typeof raw.kid === 'string' && raw.kid !== '' && raw.kid.length <= 256 ? raw.kid : jkt;
  return { jwk: { ...jwk, kid, alg, use: 'sig' }, jkt };
}
