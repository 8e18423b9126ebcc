import { IsNull } from 'typeorm';
import type { Database } from '../../infra/database.service.js';
import { databaseTransactions, entityManager, type Transaction, type TransactionRunner } from '../../infra/transaction.js';
import { ApprovalReceiptEntity, CeremonyEntity, HumanEntity, HumanSessionEntity, PasskeyEntity } from './human.entities.js';

/** What a passkey's use or management changes. */
export type PasskeyChange = Partial<Pick<PasskeyEntity, 'label' | 'counter' | 'last_used_at' | 'removed_at'>>;

/** A session row with its human, as the session cookie is checked. */
export interface SessionOfHuman {
  human: HumanEntity;
  expiresAt: Date;
  endedAt: Date | null;
}

/**
 * Humans, their passkeys, sessions and WebAuthn ceremonies, and the approval receipts their
 * passkeys signed: the only code that reads or writes those tables.
 */
export interface HumansRepository {
  readonly transaction: TransactionRunner;
  insertHuman(human: HumanEntity, tx?: Transaction): Promise<void>;
  findHuman(humanId: string, tx?: Transaction): Promise<HumanEntity | null>;
  /** Every human, newest first, at most `limit`. */
  listHumans(limit: number): Promise<HumanEntity[]>;
  setPasskeyNoticeAt(humanId: string, at: Date): Promise<void>;

  insertPasskey(passkey: PasskeyEntity, tx?: Transaction): Promise<void>;
  /** A passkey by credential id, removed or not. */
  findPasskey(credentialId: string): Promise<PasskeyEntity | null>;
  /** Whether any passkey, of anyone, has this credential id. */
  passkeyExists(credentialId: string): Promise<boolean>;
  /** The human's current (not removed) passkeys, oldest first. */
  currentPasskeys(humanId: string): Promise<PasskeyEntity[]>;
  /** Every passkey the human ever registered, removed ones too. */
  allPasskeys(humanId: string): Promise<PasskeyEntity[]>;
  /** Whether `credentialId` is one of the human's current passkeys. */
  ownsCurrentPasskey(humanId: string, credentialId: string): Promise<boolean>;
  /** The passkey, locked until `tx` ends. */
  lockPasskey(credentialId: string, tx: Transaction): Promise<PasskeyEntity | null>;
  /** Every current passkey of the human, locked until `tx` ends. */
  lockCurrentPasskeys(humanId: string, tx: Transaction): Promise<PasskeyEntity[]>;
  updatePasskey(credentialId: string, change: PasskeyChange, tx: Transaction): Promise<void>;

  insertSession(session: HumanSessionEntity, tx?: Transaction): Promise<void>;
  /** The session with this token hash and its human, in one statement; null if unknown. */
  sessionOfHuman(tokenHash: string): Promise<SessionOfHuman | null>;
  /** Ends the session with this token hash if it is live. */
  endSession(tokenHash: string, at: Date): Promise<void>;
  /** Ends every live session of the human; answers how many. */
  endAllSessions(humanId: string, at: Date, tx: Transaction): Promise<number>;

  insertCeremony(ceremony: CeremonyEntity): Promise<void>;
  /** Deletes the ceremonies that expired before `cutoff`. */
  deleteCeremoniesExpiredBefore(cutoff: Date): Promise<void>;
  /** The ceremony, locked until `tx` ends. */
  lockCeremony(ceremonyId: string, tx: Transaction): Promise<CeremonyEntity | null>;
  markCeremonyUsed(ceremonyId: string, at: Date, tx: Transaction): Promise<void>;
  deleteCeremony(ceremonyId: string, tx: Transaction): Promise<void>;

  insertApprovalReceipt(receipt: ApprovalReceiptEntity, tx: Transaction): Promise<void>;
  findApprovalReceipt(grantId: string, humanId: string): Promise<ApprovalReceiptEntity | null>;
}

export class TypeOrmHumansRepository implements HumansRepository {
  readonly transaction: TransactionRunner;

  constructor(private readonly db: Database) {
    this.transaction = databaseTransactions(db);
  }

  async insertHuman(human: HumanEntity, tx?: Transaction): Promise<void> {
    await this.manager(tx).getRepository(HumanEntity).insert(human);
  }

  findHuman(humanId: string, tx?: Transaction): Promise<HumanEntity | null> {
    return this.manager(tx).getRepository(HumanEntity).findOneBy({ id: humanId });
  }

  listHumans(limit: number): Promise<HumanEntity[]> {
    return this.manager().getRepository(HumanEntity).find({ order: { created_at: 'DESC' }, take: limit });
  }

  async setPasskeyNoticeAt(humanId: string, at: Date): Promise<void> {
    await this.manager().getRepository(HumanEntity).update({ id: humanId }, { passkey_notice_at: at });
  }

  async insertPasskey(passkey: PasskeyEntity, tx?: Transaction): Promise<void> {
    await this.manager(tx).getRepository(PasskeyEntity).insert(passkey);
  }

  findPasskey(credentialId: string): Promise<PasskeyEntity | null> {
    return this.manager().getRepository(PasskeyEntity).findOneBy({ id: credentialId });
  }

  passkeyExists(credentialId: string): Promise<boolean> {
    return this.manager().getRepository(PasskeyEntity).existsBy({ id: credentialId });
  }

  currentPasskeys(humanId: string): Promise<PasskeyEntity[]> {
    return this.manager().getRepository(PasskeyEntity).find({ where: { human_id: humanId, removed_at: IsNull() }, order: { created_at: 'ASC' } });
  }

  allPasskeys(humanId: string): Promise<PasskeyEntity[]> {
    return this.manager().getRepository(PasskeyEntity).findBy({ human_id: humanId });
  }

  ownsCurrentPasskey(humanId: string, credentialId: string): Promise<boolean> {
    return this.manager().getRepository(PasskeyEntity).existsBy({ id: credentialId, human_id: humanId, removed_at: IsNull() });
  }

  lockPasskey(credentialId: string, tx: Transaction): Promise<PasskeyEntity | null> {
    return entityManager(tx).getRepository(PasskeyEntity).findOne({ where: { id: credentialId }, lock: { mode: 'pessimistic_write' } });
  }

  lockCurrentPasskeys(humanId: string, tx: Transaction): Promise<PasskeyEntity[]> {
    return entityManager(tx).getRepository(PasskeyEntity).find({ where: { human_id: humanId, removed_at: IsNull() }, lock: { mode: 'pessimistic_write' } });
  }

  async updatePasskey(credentialId: string, change: PasskeyChange, tx: Transaction): Promise<void> {
    await entityManager(tx).getRepository(PasskeyEntity).update({ id: credentialId }, change);
  }

  async insertSession(session: HumanSessionEntity, tx?: Transaction): Promise<void> {
    await this.manager(tx).getRepository(HumanSessionEntity).insert(session);
  }

  async sessionOfHuman(tokenHash: string): Promise<SessionOfHuman | null> {
    const [row] = await this.db.query<(HumanEntity & { expires_at: Date | string; ended_at: Date | string | null })[]>(
      'SELECT h.*, s.expires_at, s.ended_at FROM human_sessions s JOIN humans h ON h.id = s.human_id WHERE s.token_hash = $1',
      [tokenHash],
    );
    if (!row) return null;
    const { expires_at, ended_at, ...human } = row;
    return { human, expiresAt: new Date(expires_at), endedAt: ended_at === null ? null : new Date(ended_at) };
  }

  async endSession(tokenHash: string, at: Date): Promise<void> {
    await this.manager().getRepository(HumanSessionEntity).update({ token_hash: tokenHash, ended_at: IsNull() }, { ended_at: at });
  }

  async endAllSessions(humanId: string, at: Date, tx: Transaction): Promise<number> {
    const result = await entityManager(tx).getRepository(HumanSessionEntity).update({ human_id: humanId, ended_at: IsNull() }, { ended_at: at });
    return result.affected ?? 0;
  }

  async insertCeremony(ceremony: CeremonyEntity): Promise<void> {
    // TypeORM's insert type cannot follow a jsonb Record<string, unknown>: the row is a whole entity.
    await this.manager().getRepository(CeremonyEntity).insert(ceremony as never);
  }

  async deleteCeremoniesExpiredBefore(cutoff: Date): Promise<void> {
    await this.manager().getRepository(CeremonyEntity).createQueryBuilder().delete().where('expires_at < :cutoff', { cutoff }).execute();
  }

  lockCeremony(ceremonyId: string, tx: Transaction): Promise<CeremonyEntity | null> {
    return entityManager(tx).getRepository(CeremonyEntity).findOne({ where: { id: ceremonyId }, lock: { mode: 'pessimistic_write' } });
  }

  async markCeremonyUsed(ceremonyId: string, at: Date, tx: Transaction): Promise<void> {
    await entityManager(tx).getRepository(CeremonyEntity).update({ id: ceremonyId }, { used_at: at });
  }

  async deleteCeremony(ceremonyId: string, tx: Transaction): Promise<void> {
    await entityManager(tx).getRepository(CeremonyEntity).delete({ id: ceremonyId });
  }

  async insertApprovalReceipt(receipt: ApprovalReceiptEntity, tx: Transaction): Promise<void> {
    await entityManager(tx).getRepository(ApprovalReceiptEntity).insert(receipt);
  }

  findApprovalReceipt(grantId: string, humanId: string): Promise<ApprovalReceiptEntity | null> {
    return this.manager().getRepository(ApprovalReceiptEntity).findOneBy({ grant_id: grantId, human_id: humanId });
  }

  private manager(tx?: Transaction) {
    return tx ? entityManager(tx) : this.db.dataSource.manager;
  }
}
