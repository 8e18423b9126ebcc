import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '@writ/core';

/** A nonce is issued for one bucket of this many seconds and accepted in that bucket and the next. */
export const NONCE_BUCKET_S = 60;
const SECRET_BYTES = 32;
const BUCKET_BYTES = 4;
const MAC_BYTES = 32;
/** base64url of bucket || MAC: 36 bytes, so 48 characters and no padding. */
const NONCE = /^[A-Za-z0-9_-]{48}$/;

/**
 * RFC 9449 §8 server nonces that every process holding the same secret (registry processes
 * sharing a data dir; verifier replicas given the same `WRIT_VERIFIER_DPOP_NONCE_SECRET`) can
 * issue and check without shared state (docs/adr/0009-dpop-nonces.md): a nonce is
 * base64url(bucket || HMAC-SHA256(secret, bucket)), where bucket is the current 60 s time bucket
 * as a 32-bit big-endian number. A nonce is accepted in its own bucket and the next, so it lives
 * 60 to 120 s.
 */
export class DpopNonces {
  constructor(
    private readonly secret: Uint8Array,
    private readonly clock: Clock,
  ) {
    if (secret.length !== SECRET_BYTES) throw new TypeError(`the DPoP nonce secret must be ${SECRET_BYTES} bytes`);
  }

  /**
   * Reads the secret from `<dataDir>/keys/dpop-nonce-secret` (mode 0600, git-ignored, next to the
   * signing keys), creating it on first run. Processes starting together agree: the first to link
   * its file in place wins, the others read that one.
   */
  static open(dataDir: string, clock: Clock): DpopNonces {
    const dir = join(dataDir, 'keys');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'dpop-nonce-secret');
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, randomBytes(SECRET_BYTES), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    try {
      linkSync(tmp, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      unlinkSync(tmp);
    }
    const secret = readFileSync(file);
    if (secret.length !== SECRET_BYTES) throw new Error(`${file} must hold ${SECRET_BYTES} bytes; delete it to make a new one`);
    return new DpopNonces(secret, clock);
  }

  /** From a 32-byte secret given as base64url (configuration shared by replicas). */
  static fromSecret(secret: string, clock: Clock): DpopNonces {
    const bytes = Buffer.from(secret, 'base64url');
    if (bytes.length !== SECRET_BYTES || bytes.toString('base64url') !== secret) {
      throw new TypeError(`the DPoP nonce secret must be ${SECRET_BYTES} bytes in base64url (43 characters)`);
    }
    return new DpopNonces(bytes, clock);
  }

  /** A nonce for the current bucket, to send as `DPoP-Nonce`. */
  issue(): string {
    return this.nonceFor(this.bucket()).toString('base64url');
  }

  /** Whether a proof's `nonce` was issued by a process holding the secret in this bucket or the previous one. */
  readonly accepts = (nonce: string): boolean => {
    if (!NONCE.test(nonce)) return false;
    const presented = Buffer.from(nonce, 'base64url');
    const bucket = presented.readUInt32BE(0);
    const current = this.bucket();
    if (bucket !== current && bucket !== current - 1) return false;
    return timingSafeEqual(presented, this.nonceFor(bucket));
  };

  private bucket(): number {
    return Math.floor(this.clock.now() / 1000 / NONCE_BUCKET_S);
  }

  private nonceFor(bucket: number): Buffer {
    const prefix = Buffer.alloc(BUCKET_BYTES);
    prefix.writeUInt32BE(bucket);
    const mac = createHmac('sha256', this.secret).update(prefix).digest();
    return Buffer.concat([prefix, mac], BUCKET_BYTES + MAC_BYTES);
  }
}
