import { Column, Entity, PrimaryColumn } from 'typeorm';

/** One capability type a service accepts, with the actions it offers for it. */
export interface CatalogueEntry {
  type: string;
  actions: string[];
}

@Entity('services')
export class ServiceEntity {
  @PrimaryColumn('text') id: string;
  /** Normalised with `normaliseLocation`. */
  @Column('text') uri: string;
  @Column('text') display_name: string;
  @Column('jsonb') catalogue: CatalogueEntry[];
  /** SHA-256 (hex) of the verifier-call secret. */
  @Column('char', { length: 64 }) credential_hash: string;
  @Column('timestamptz') created_at: Date;
}
