import { Column, Entity, PrimaryColumn } from 'typeorm';

/** bigint comes back from PostgreSQL as a string; sequence numbers stay well below 2^53. */
const bigintAsNumber = { to: (v: number) => v, from: (v: string | number) => Number(v) };

@Entity('audit_events')
export class AuditEventEntity {
  @PrimaryColumn({ type: 'bigint', transformer: bigintAsNumber }) seq: number;
  @Column('text') id: string;
  @Column('text') at: string;
  @Column('text') type: string;
  @Column('text', { nullable: true }) actor: string | null;
  @Column('text', { nullable: true }) subject: string | null;
  @Column('text', { nullable: true }) grant_id: string | null;
  @Column('text', { nullable: true }) txn: string | null;
  @Column('text', { nullable: true }) parent_id: string | null;
  @Column('jsonb') data: Record<string, unknown>;
  @Column('char', { length: 64 }) prev_hash: string;
  @Column('char', { length: 64 }) hash: string;
}

@Entity('audit_checkpoints')
export class AuditCheckpointEntity {
  @PrimaryColumn({ type: 'bigint', transformer: bigintAsNumber }) seq: number;
  @Column('char', { length: 64 }) hash: string;
  @Column('text') at: string;
  @Column('text') kid: string;
  @Column('text') jws: string;
}
