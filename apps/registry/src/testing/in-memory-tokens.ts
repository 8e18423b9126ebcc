import type { AgentEntity } from '../modules/agents/agent.entity.js';
import type { GrantEntity } from '../modules/grants/grant.entity.js';
import type { AgentAndGrant, DpopProofUse, RootRequestFreshness, RootRequestUses, TokensRepository } from '../modules/tokens/tokens.repository.js';
import { InMemoryJtiSpace } from './in-memory-client-auth.js';

/** {@link TokensRepository} in memory, for tests of the token endpoint's rules that need no database. */
export class InMemoryTokensRepository implements TokensRepository {
  readonly agents: Map<string, AgentEntity>;
  readonly grants = new Map<string, GrantEntity>();
  /** The audit event id of each token issued or delegated, by `[txn, jti]`. */
  readonly tokenEvents = new Map<string, string>();
  readonly proofs = new InMemoryJtiSpace();
  private readonly agentJwts: InMemoryJtiSpace;

  constructor(
    /** Shared with the in-memory client-auth repository: the same agents and single-use space. */
    shared: { agents: Map<string, AgentEntity>; agentJwts: InMemoryJtiSpace },
  ) {
    this.agents = shared.agents;
    this.agentJwts = shared.agentJwts;
  }

  findAgentAndGrant(clientId: string, grantId: string): Promise<AgentAndGrant> {
    return Promise.resolve({ agent: this.agents.get(clientId), grant: this.grants.get(grantId) ?? null });
  }

  rememberRootRequest(uses: RootRequestUses, now: number): Promise<RootRequestFreshness> {
    const { assertion, proof, subject } = uses;
    return Promise.resolve({
      assertion: this.agentJwts.remember(assertion.clientId, assertion.jti, assertion.expiresAt, now),
      proof: this.proofs.remember(proof.jkt, proof.jti, proof.expiresAt, now),
      subject: this.agentJwts.remember(subject.clientId, subject.jti, subject.expiresAt, now),
    });
  }

  rememberProof(use: DpopProofUse, now: number): Promise<boolean> {
    return Promise.resolve(this.proofs.remember(use.jkt, use.jti, use.expiresAt, now));
  }

  tokenEventId(txn: string, jti: string): Promise<string | null> {
    return Promise.resolve(this.tokenEvents.get(JSON.stringify([txn, jti])) ?? null);
  }
}
