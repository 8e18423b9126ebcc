import { Column, Entity, PrimaryColumn } from 'typeorm';

/** RFC 7591 §3: a one-time, short-lived token that lets one agent register for `owner`. */
@Entity('initial_access_tokens')
export class InitialAccessTokenEntity {
  /** SHA-256 (base64url) of the token; the token itself is never stored. */
  @PrimaryColumn('text') token_hash: string;
  @Column('text') owner: string;
  @Column('timestamptz') expires_at: Date;
  @Column('timestamptz', { nullable: true }) used_at: Date | null;
}
