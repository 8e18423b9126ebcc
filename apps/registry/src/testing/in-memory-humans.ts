import type { Transaction } from '../infra/transaction.js';
import type { ApprovalReceiptEntity, CeremonyEntity, HumanEntity, HumanSessionEntity, PasskeyEntity } from '../modules/humans/human.entities.js';
import type { HumansRepository, PasskeyChange, SessionOfHuman } from '../modules/humans/humans.repository.js';
import { copy, type InMemoryStore } from './in-memory-store.js';

/** Humans, passkeys, sessions, ceremonies and approval receipts in memory, for unit tests. */
export class InMemoryHumansRepository implements HumansRepository {
  constructor(private readonly store: InMemoryStore) {}

  get transaction() {
    return this.store.transaction;
  }

  private get humans(): Map<string, HumanEntity> {
    return this.store.table('humans');
  }

  private get passkeys(): Map<string, PasskeyEntity> {
    return this.store.table('passkeys');
  }

  /** Sessions by token hash (what a test inspects). */
  get sessions(): Map<string, HumanSessionEntity> {
    return this.store.table('human_sessions');
  }

  /** Ceremonies by id (what a test inspects). */
  get ceremonies(): Map<string, CeremonyEntity> {
    return this.store.table('ceremonies');
  }

  private get receipts(): Map<string, ApprovalReceiptEntity> {
    return this.store.table('approval_receipts');
  }

  insertHuman(human: HumanEntity): Promise<void> {
    return insert(this.humans, human.id, human);
  }

  findHuman(humanId: string): Promise<HumanEntity | null> {
    return found(this.humans.get(humanId));
  }

  listHumans(limit: number): Promise<HumanEntity[]> {
    return Promise.resolve([...this.humans.values()].sort((a, b) => b.created_at.getTime() - a.created_at.getTime()).slice(0, limit).map(copy));
  }

  setPasskeyNoticeAt(humanId: string, at: Date): Promise<void> {
    const human = this.humans.get(humanId);
    if (human) human.passkey_notice_at = at;
    return Promise.resolve();
  }

  insertPasskey(passkey: PasskeyEntity): Promise<void> {
    return insert(this.passkeys, passkey.id, passkey);
  }

  findPasskey(credentialId: string): Promise<PasskeyEntity | null> {
    return found(this.passkeys.get(credentialId));
  }

  passkeyExists(credentialId: string): Promise<boolean> {
    return Promise.resolve(this.passkeys.has(credentialId));
  }

  currentPasskeys(humanId: string): Promise<PasskeyEntity[]> {
    return Promise.resolve(this.current(humanId).sort((a, b) => a.created_at.getTime() - b.created_at.getTime()).map(copy));
  }

  allPasskeys(humanId: string): Promise<PasskeyEntity[]> {
    return Promise.resolve([...this.passkeys.values()].filter((p) => p.human_id === humanId).map(copy));
  }

  ownsCurrentPasskey(humanId: string, credentialId: string): Promise<boolean> {
    return Promise.resolve(this.current(humanId).some((p) => p.id === credentialId));
  }

  /** In-memory transactions run one at a time: reading is locking. */
  lockPasskey(credentialId: string, _tx: Transaction): Promise<PasskeyEntity | null> {
    return this.findPasskey(credentialId);
  }

  lockCurrentPasskeys(humanId: string, _tx: Transaction): Promise<PasskeyEntity[]> {
    return Promise.resolve(this.current(humanId).map(copy));
  }

  updatePasskey(credentialId: string, change: PasskeyChange): Promise<void> {
    const passkey = this.passkeys.get(credentialId);
    if (passkey) Object.assign(passkey, copy(change));
    return Promise.resolve();
  }

  insertSession(session: HumanSessionEntity): Promise<void> {
    return insert(this.sessions, session.token_hash, session);
  }

  sessionOfHuman(tokenHash: string): Promise<SessionOfHuman | null> {
    const session = this.sessions.get(tokenHash);
    const human = session && this.humans.get(session.human_id);
    return Promise.resolve(session && human ? { human: copy(human), expiresAt: session.expires_at, endedAt: session.ended_at } : null);
  }

  endSession(tokenHash: string, at: Date): Promise<void> {
    const session = this.sessions.get(tokenHash);
    if (session && session.ended_at === null) session.ended_at = at;
    return Promise.resolve();
  }

  endAllSessions(humanId: string, at: Date, _tx: Transaction): Promise<number> {
    const live = [...this.sessions.values()].filter((s) => s.human_id === humanId && s.ended_at === null);
    for (const session of live) session.ended_at = at;
    return Promise.resolve(live.length);
  }

  insertCeremony(ceremony: CeremonyEntity): Promise<void> {
    return insert(this.ceremonies, ceremony.id, ceremony);
  }

  deleteCeremoniesExpiredBefore(cutoff: Date): Promise<void> {
    for (const [id, ceremony] of this.ceremonies) if (ceremony.expires_at < cutoff) this.ceremonies.delete(id);
    return Promise.resolve();
  }

  lockCeremony(ceremonyId: string, _tx: Transaction): Promise<CeremonyEntity | null> {
    return found(this.ceremonies.get(ceremonyId));
  }

  markCeremonyUsed(ceremonyId: string, at: Date, _tx: Transaction): Promise<void> {
    const ceremony = this.ceremonies.get(ceremonyId);
    if (ceremony) ceremony.used_at = at;
    return Promise.resolve();
  }

  deleteCeremony(ceremonyId: string, _tx: Transaction): Promise<void> {
    this.ceremonies.delete(ceremonyId);
    return Promise.resolve();
  }

  insertApprovalReceipt(receipt: ApprovalReceiptEntity, _tx: Transaction): Promise<void> {
    return insert(this.receipts, receipt.grant_id, receipt);
  }

  findApprovalReceipt(grantId: string, humanId: string): Promise<ApprovalReceiptEntity | null> {
    const receipt = this.receipts.get(grantId);
    return found(receipt?.human_id === humanId ? receipt : undefined);
  }

  private current(humanId: string): PasskeyEntity[] {
    return [...this.passkeys.values()].filter((p) => p.human_id === humanId && p.removed_at === null);
  }
}

function insert<K, V>(table: Map<K, V>, key: K, row: V): Promise<void> {
  if (table.has(key)) return Promise.reject(new Error(`duplicate key ${String(key)}`));
  table.set(key, copy(row));
  return Promise.resolve();
}

function found<T>(row: T | undefined): Promise<T | null> {
  return Promise.resolve(row === undefined ? null : copy(row));
}
