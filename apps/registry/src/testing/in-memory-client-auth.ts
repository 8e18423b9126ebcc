import type { AgentEntity } from '../modules/agents/agent.entity.js';
import type { AgentJwtUse, ClientAuthRepository } from '../modules/agents/client-auth.repository.js';

/**
 * Single-use identifiers kept in memory, with the semantics of the database table: an identifier
 * is fresh when absent or past its expiry, and recording it (again) sets its expiry.
 */
export class InMemoryJtiSpace {
  private readonly expiries = new Map<string, number>();

  /** Records `jti` under `key` until `expiresAt`; false if it is already recorded and not expired. */
  remember(key: string, jti: string, expiresAt: Date, now: number): boolean {
    const id = JSON.stringify([key, jti]);
    const recorded = this.expiries.get(id);
    if (recorded !== undefined && recorded > now) return false;
    this.expiries.set(id, expiresAt.getTime());
    return true;
  }
}

/** {@link ClientAuthRepository} in memory, for tests of the rules that need no database. */
export class InMemoryClientAuthRepository implements ClientAuthRepository {
  readonly agents = new Map<string, AgentEntity>();

  constructor(
    /** Shared with an in-memory tokens repository, which records agent JWTs in the same space. */
    readonly agentJwts: InMemoryJtiSpace = new InMemoryJtiSpace(),
  ) {}

  findAgent(clientId: string): Promise<AgentEntity | undefined> {
    return Promise.resolve(this.agents.get(clientId));
  }

  rememberAgentJwts(uses: readonly AgentJwtUse[], now: number): Promise<boolean[]> {
    return Promise.resolve(uses.map(({ clientId, jti, expiresAt }) => this.agentJwts.remember(clientId, jti, expiresAt, now)));
  }
}
