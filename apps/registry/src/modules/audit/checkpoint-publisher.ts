import { parseVerifierKey } from '@writ/core';
import { latestWitnessed, submitCheckpoint } from '@writ/server';
import type { AuditCheckpoint, AuditRepository } from './audit.repository.js';
import type { AuditAnchor, AuditService } from './audit.service.js';

/** A witness the log pushes its checkpoints to (`WRIT_AUDIT_WITNESSES`). */
export interface AuditWitness {
  /** Its tlog-witness URL prefix, no trailing `/`. */
  url: string;
  /** Its C2SP note verifier key (cosignature/v1, type 0x04). */
  vkey: string;
}

/** Where the publisher says what failed: never a note's signature, only sizes, statuses and reasons. */
export interface PublisherLogger {
  warn(message: string): void;
}

export interface CheckpointPublisherOptions {
  audit: Pick<AuditService, 'latestCheckpoint' | 'consistencyProof' | 'whenCheckpointed'>;
  repository: Pick<AuditRepository, 'addCosignature'>;
  witnesses: AuditWitness[];
  logger: PublisherLogger;
  /** Now, in milliseconds (the cosignature row's `at`). */
  now: () => number;
  /** The witness client's calls (replaced in tests). */
  submit?: typeof submitCheckpoint;
  latest?: typeof latestWitnessed;
}

/**
 * Pushes each new checkpoint to every witness (C2SP tlog-witness §add-checkpoint) with a
 * consistency proof from the size that witness last cosigned, and keeps the cosignature next to
 * the checkpoint. A witness that answers 409 with its size gets one more try from that size. A
 * failure is logged and the witness is tried again with the next checkpoint: publishing runs
 * beside the appends and never holds one up.
 */
export class CheckpointPublisher {
  private readonly witnesses: (AuditWitness & { name: string })[];
  /** The size each witness last cosigned, as far as this process knows (undefined: not asked yet). */
  private readonly sizes = new Map<string, number>();
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly options: CheckpointPublisherOptions) {
    this.witnesses = options.witnesses.map((w) => ({ ...w, name: parseVerifierKey(w.vkey).name }));
    if (this.witnesses.length > 0) options.audit.whenCheckpointed(() => void this.publish());
  }

  /** Publishes the latest checkpoint to the witnesses that lack it; one run at a time, never throws. */
  publish(): Promise<void> {
    if (this.witnesses.length === 0) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.publishLatest();
        } while (this.again);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** Resolves once no publication is running (at shutdown, before the database closes). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** The latest checkpoint each witness cosigned for this log: anchors `verify` must find the log extends. */
  async anchors(origin: string): Promise<{ anchors: AuditAnchor[]; failures: { source: string; reason: string }[] }> {
    const latest = this.options.latest ?? latestWitnessed;
    const anchors: AuditAnchor[] = [];
    const failures: { source: string; reason: string }[] = [];
    for (const w of this.witnesses) {
      const answer = await latest({ url: w.url, origin, vkey: w.vkey });
      if (answer.ok) anchors.push({ source: `witness ${w.name}`, note: answer.note });
      // 404: the witness never cosigned this log; anything else cannot be told apart from hiding.
      else if (answer.status !== 404) failures.push({ source: `witness ${w.name}`, reason: `${w.url} answered ${answer.status}: ${answer.reason}` });
    }
    return { anchors, failures };
  }

  private async publishLatest(): Promise<void> {
    let checkpoint: AuditCheckpoint | undefined;
    try {
      checkpoint = await this.options.audit.latestCheckpoint();
    } catch (error) {
      this.options.logger.warn(`audit checkpoint publishing: cannot read the latest checkpoint: ${(error as Error).message}`);
      return;
    }
    if (!checkpoint?.note) return;
    for (const witness of this.witnesses) {
      if ((this.sizes.get(witness.name) ?? -1) >= checkpoint.seq) continue;
      try {
        await this.pushTo(witness, checkpoint as AuditCheckpoint & { note: string });
      } catch (error) {
        this.options.logger.warn(`audit checkpoint ${checkpoint.seq} to witness ${witness.name}: ${(error as Error).message}`);
      }
    }
  }

  /** One submission, and a second from the size a 409 names. */
  private async pushTo(witness: AuditWitness & { name: string }, checkpoint: AuditCheckpoint & { note: string }): Promise<void> {
    const submit = this.options.submit ?? submitCheckpoint;
    let oldSize = this.sizes.get(witness.name) ?? 0;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (oldSize > checkpoint.seq) {
        // The witness cosigned a larger tree than the log has now: the log lost its tail.
        this.options.logger.warn(`audit checkpoint ${checkpoint.seq}: witness ${witness.name} holds size ${oldSize}, beyond the log: the log was truncated`);
        return;
      }
      const proof = oldSize === 0 ? [] : (await this.options.audit.consistencyProof({ from: oldSize, to: checkpoint.seq })).proof;
      const answer = await submit({ url: witness.url, note: checkpoint.note, oldSize, proof, vkey: witness.vkey });
      if (answer.ok) {
        await this.options.repository.addCosignature({ seq: checkpoint.seq, witness: witness.name, line: answer.cosignature.trimEnd(), at: new Date(this.options.now()).toISOString() });
        this.sizes.set(witness.name, checkpoint.seq);
        return;
      }
      if (answer.witnessSize === undefined || attempt === 1) {
        this.options.logger.warn(`audit checkpoint ${checkpoint.seq} to witness ${witness.name} (${witness.url}): ${answer.status} ${answer.reason}; retried with the next checkpoint`);
        return;
      }
      oldSize = answer.witnessSize;
    }
  }
}
