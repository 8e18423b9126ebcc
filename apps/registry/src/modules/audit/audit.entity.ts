import { Column, Entity, PrimaryColumn } from 'typeorm';

/** bigint comes back from PostgreSQL as a string; sequence numbers stay well below 2^53. */
const bigintAsNumber = { to: (v: number) => v, from: (v: string | number) => Number(v) };

@Entity('audit_events')
export class AuditEventEntity {
  @PrimaryColumn({ type: 'bigint', transformer: bigintAsNumber }) seq: number;
  // Compared byte by byte (migration 1764000021000): equality is all any query asks of these three.
  @Column({ type: 'text', collation: 'C' }) id: string;
  @Column('text') at: string;
  @Column('text') type: string;
  @Column('text', { nullable: true }) actor: string | null;
  @Column('text', { nullable: true }) subject: string | null;
  @Column({ type: 'text', nullable: true, collation: 'C' }) grant_id: string | null;
  @Column({ type: 'text', nullable: true, collation: 'C' }) txn: string | null;
  @Column('text', { nullable: true }) parent_id: string | null;
  @Column('jsonb') data: Record<string, unknown>;
  @Column('char', { length: 64 }) prev_hash: string;
  @Column('char', { length: 64 }) hash: string;
}

/**
 * A checkpoint of the chain at `seq`: a C2SP tlog-checkpoint signed note (`note`), or, for those
 * taken before issue 19, a JWS over `{seq, hash, at}` (`kid`, `jws`). The Merkle tree's nodes,
 * witnesses' cosignatures and the verified head are kept in tables read with SQL only
 * (migrations/1764000019000-audit-merkle-tree.ts).
 */
@Entity('audit_checkpoints')
export class AuditCheckpointEntity {
  @PrimaryColumn({ type: 'bigint', transformer: bigintAsNumber }) seq: number;
  @Column('char', { length: 64 }) hash: string;
  @Column('text') at: string;
  @Column('text', { nullable: true }) kid: string | null;
  @Column('text', { nullable: true }) jws: string | null;
  @Column('text', { nullable: true }) note: string | null;
}
