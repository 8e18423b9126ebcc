import type { Database } from '../../infra/database.service.js';
import { JtiStore } from '../../infra/jti-store.js';
import type { AgentEntity } from '../agents/agent.entity.js';
import { type AgentJwtUse, agentJwtJtiStore } from '../agents/client-auth.repository.js';
import type { GrantEntity } from '../grants/grant.entity.js';

/** RFC 9449 §11.1: one use of a DPoP proof, its `jti` under its key's thumbprint, kept until `expiresAt`. */
export interface DpopProofUse {
  jkt: string;
  jti: string;
  expiresAt: Date;
}

/** The three single-use identifiers of a root token request. */
export interface RootRequestUses {
  /** The client assertion's `jti`, in the agent's single-use space. */
  assertion: AgentJwtUse;
  /** The DPoP proof's `jti`. */
  proof: DpopProofUse;
  /** The self-signed subject token's `jti`, in the agent's single-use space. */
  subject: AgentJwtUse;
}

/** For each identifier of a root token request, whether it was fresh. */
export type RootRequestFreshness = Record<keyof RootRequestUses, boolean>;

/** The agent a root token request authenticates as, and the grant it names. */
export interface AgentAndGrant {
  agent: AgentEntity | undefined;
  grant: GrantEntity | null;
}

/** What the token endpoint reads and writes besides the services it calls. */
export interface TokensRepository {
  /** The agent `clientId` and the grant `grantId`, read together (one round trip per root token). */
  findAgentAndGrant(clientId: string, grantId: string): Promise<AgentAndGrant>;
  /**
   * Records the root request's three identifiers together (one statement on the database); for
   * each, whether it was fresh. All are recorded even when one is a replay.
   */
  rememberRootRequest(uses: RootRequestUses, now: number): Promise<RootRequestFreshness>;
  /** Records a DPoP proof's use; false if its `jti` was already used under its key and is still within its acceptance window. */
  rememberProof(use: DpopProofUse, now: number): Promise<boolean>;
  /** The id of the audit event that issued (or delegated) token `jti` in transaction `txn`, or null. */
  tokenEventId(txn: string, jti: string): Promise<string | null>;
}

/** A grant row as `to_jsonb` gives it: timestamps are ISO strings. */
type GrantJson = Omit<GrantEntity, 'requested_at' | 'decided_at' | 'expires_at' | 'revoked_at'> & {
  requested_at: string;
  decided_at: string | null;
  expires_at: string;
  revoked_at: string | null;
};

/** An agent row as `to_jsonb` gives it. */
type AgentJson = Omit<AgentEntity, 'created_at' | 'disabled_at'> & { created_at: string; disabled_at: string | null };

function date(value: string | null): Date | null {
  return value === null ? null : new Date(value);
}

function reviveGrant(row: GrantJson): GrantEntity {
  return { ...row, requested_at: new Date(row.requested_at), decided_at: date(row.decided_at), expires_at: new Date(row.expires_at), revoked_at: date(row.revoked_at) };
}

function reviveAgent(row: AgentJson): AgentEntity {
  return { ...row, created_at: new Date(row.created_at), disabled_at: date(row.disabled_at) };
}

/** {@link TokensRepository} on the registry's database. */
export class TypeOrmTokensRepository implements TokensRepository {
  private readonly proofJtis: JtiStore;
  /**
   * The agent JWTs' table, which ClientAuthRepository owns: the root request records its client
   * assertion and subject token there in the same statement as its proof.
   */
  private readonly agentJwtJtis: JtiStore;

  constructor(private readonly db: Database) {
    this.proofJtis = new JtiStore(db, { table: 'dpop_proof_jtis', key: 'jkt' });
    this.agentJwtJtis = agentJwtJtiStore(db);
  }

  async findAgentAndGrant(clientId: string, grantId: string): Promise<AgentAndGrant> {
    const [row] = await this.db.query<{ agent_row: AgentJson | null; grant_row: GrantJson | null }[]>(
      `SELECT (SELECT to_jsonb(a) FROM agents a WHERE a.client_id = $1) AS agent_row,
              (SELECT to_jsonb(g) FROM grants g WHERE g.id = $2) AS grant_row`,
      [clientId, grantId],
    );
    return { agent: row?.agent_row ? reviveAgent(row.agent_row) : undefined, grant: row?.grant_row ? reviveGrant(row.grant_row) : null };
  }

  async rememberRootRequest(uses: RootRequestUses, now: number): Promise<RootRequestFreshness> {
    const [assertion, proof, subject] = await JtiStore.rememberTogether(
      [
        { store: this.agentJwtJtis, key: uses.assertion.clientId, jti: uses.assertion.jti, expiresAt: uses.assertion.expiresAt },
        { store: this.proofJtis, key: uses.proof.jkt, jti: uses.proof.jti, expiresAt: uses.proof.expiresAt },
        { store: this.agentJwtJtis, key: uses.subject.clientId, jti: uses.subject.jti, expiresAt: uses.subject.expiresAt },
      ],
      now,
    );
    return { assertion: assertion!, proof: proof!, subject: subject! };
  }

  rememberProof(use: DpopProofUse, now: number): Promise<boolean> {
    return this.proofJtis.remember(use.jkt, use.jti, use.expiresAt, now);
  }

  async tokenEventId(txn: string, jti: string): Promise<string | null> {
    const rows = await this.db.query<{ id: string }[]>(
      `SELECT id FROM audit_events WHERE type IN ('token.issued', 'token.delegated') AND txn = $1 AND data->>'jti' = $2 ORDER BY seq LIMIT 1`,
      [txn, jti],
    );
    return rows[0]?.id ?? null;
  }
}
