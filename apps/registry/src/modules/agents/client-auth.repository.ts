import type { Database } from '../../infra/database.service.js';
import { JtiStore } from '../../infra/jti-store.js';
import type { AgentEntity } from './agent.entity.js';

/**
 * One use of a JWT an agent signed (client assertion, subject token, actor token): its `jti` in
 * the agent's one single-use space (ADR 0015), kept until `expiresAt`.
 */
export interface AgentJwtUse {
  clientId: string;
  jti: string;
  expiresAt: Date;
}

/** What client authentication reads and writes: the agents, and the single-use `jti`s of the JWTs they sign. */
export interface ClientAuthRepository {
  /** The agent registered as `clientId`, whatever its status. */
  findAgent(clientId: string): Promise<AgentEntity | undefined>;
  /**
   * Records each use; for each, whether it was fresh (not recorded, or recorded but expired). All
   * are recorded even when one is a replay: each was presented, and each is single-use.
   */
  rememberAgentJwts(uses: readonly AgentJwtUse[], now: number): Promise<boolean[]>;
}

/** The agent JWTs' single-use table (`client_assertion_jtis`), keyed by client_id. */
export function agentJwtJtiStore(db: Database): JtiStore {
  return new JtiStore(db, { table: 'client_assertion_jtis', key: 'client_id' });
}

/** {@link ClientAuthRepository} on the registry's database. */
export class TypeOrmClientAuthRepository implements ClientAuthRepository {
  private readonly jtis: JtiStore;

  constructor(private readonly db: Database) {
    this.jtis = agentJwtJtiStore(db);
  }

  async findAgent(clientId: string): Promise<AgentEntity | undefined> {
    // One plain statement: this lookup is on every authenticated call.
    const [agent] = await this.db.query<AgentEntity[]>('SELECT * FROM agents WHERE client_id = $1', [clientId]);
    return agent;
  }

  rememberAgentJwts(uses: readonly AgentJwtUse[], now: number): Promise<boolean[]> {
    if (uses.length === 0) return Promise.resolve([]);
    return JtiStore.rememberTogether(
      uses.map(({ clientId, jti, expiresAt }) => ({ store: this.jtis, key: clientId, jti, expiresAt })),
      now,
    );
  }
}
