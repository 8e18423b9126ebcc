import type { OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import type { AuditVerdict } from '@writ/contracts';
import type { Clock } from '@writ/core';
import type { AuditRepository } from '../audit/audit.repository.js';
import type { AuditAnchor, AuditService, AuditVerification } from '../audit/audit.service.js';

export interface AuditVerdictsOptions {
  audit: Pick<AuditService, 'verify'>;
  /** Where `verify` keeps the last head it found intact (its own, the CLI's, the operator's). */
  repository: Pick<AuditRepository, 'verifiedHead'>;
  /** The witnesses' latest cosigned checkpoints; a witness that did not answer is left out. */
  anchors?: () => Promise<AuditAnchor[]>;
  /** `WRIT_AUDIT_VERIFY_SECONDS`: a background verification at most this often; 0: never. */
  seconds: number;
  clock: Clock;
  logger: { warn(message: string): void };
}

/** How long a shutdown waits for a background verification in flight. */
const SHUTDOWN_WAIT_MS = 5000;

/** A verification that found the log broken, as this process last saw it. */
interface Broken {
  seq: number;
  reason: string;
  at: string;
}

/**
 * The registry's verdict on the audit log, as a page shows it (issue 19, goal 2): never a
 * verification per request. The verdict is the last head `verify` found intact (stored, so the
 * CLI's and the operator's runs count too), unless this process's own later run found the log
 * broken. In the background, `verify` runs from that head (incremental) at most every `seconds`,
 * one run at a time, started when the app has booted and awaited before the database closes.
 */
export class AuditVerdicts implements OnApplicationBootstrap, OnModuleDestroy {
  private broken: Broken | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly options: AuditVerdictsOptions) {}

  onApplicationBootstrap(): void {
    if (this.options.seconds <= 0) return;
    this.timer = setInterval(() => this.tick(), this.options.seconds * 1000);
    this.timer.unref();
    this.tick();
  }

  /**
   * Stops the timer and waits for a run in flight, at most {@link SHUTDOWN_WAIT_MS}: a first run
   * over a long log can take minutes, and must not hold up a shutdown (it then fails, logged).
   */
  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    if (!this.inFlight) return;
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([this.inFlight, new Promise<void>((resolve) => (timeout = setTimeout(resolve, SHUTDOWN_WAIT_MS).unref()))]);
    clearTimeout(timeout);
  }

  /** Starts a background verification unless one is running; never throws. */
  private tick(): void {
    this.inFlight ??= this.refresh()
      .then(() => undefined)
      .catch((error: unknown) => this.options.logger.warn(`audit verification: ${(error as Error).message}`))
      .finally(() => (this.inFlight = undefined));
  }

  /** Verifies the log now, from the last verified head, and answers the verdict it leaves. */
  async refresh(): Promise<AuditVerdict> {
    const anchors = this.options.anchors ? await this.options.anchors() : [];
    const result = await this.options.audit.verify({ anchors });
    const failure = firstFailure(result);
    this.broken = failure && { ...failure, at: new Date(this.options.clock.now()).toISOString() };
    return this.current();
  }

  /** The last verdict: one read of the stored verified head, no verification. */
  async current(): Promise<AuditVerdict> {
    const head = await this.options.repository.verifiedHead();
    const verified = head && { size: head.size, at: new Date(head.at).toISOString() };
    // A head stored after this process saw the log broken (the operator's run, after a restore) wins.
    if (this.broken && (!verified || Date.parse(verified.at) <= Date.parse(this.broken.at))) {
      return { status: 'broken', seq: this.broken.seq, reason: this.broken.reason, at: this.broken.at, verified: verified ?? null };
    }
    if (!head || !verified) return { status: 'unverified' };
    return { status: 'verified', size: head.size, root: Buffer.from(head.root).toString('base64'), at: verified.at };
  }
}

/**
 * The lowest seq at which a verification failed, and why: the chain, a checkpoint, or an anchor
 * the log does not extend; undefined when everything held.
 */
export function firstFailure(result: AuditVerification): { seq: number; reason: string } | undefined {
  const failures: { seq: number; reason: string }[] = [];
  if (!result.chain.ok) failures.push({ seq: result.chain.brokenSeq, reason: result.chain.reason });
  for (const c of result.checkpoints.failed) failures.push({ seq: c.seq, reason: `checkpoint of size ${c.seq}: ${c.reason}` });
  // An anchor that names no seq (unreadable, or of another log) puts the whole log in doubt: from seq 1.
  for (const a of result.anchors) if (!a.ok) failures.push({ seq: a.missingSeq ?? Math.max(1, a.size), reason: `${a.source}: ${a.reason ?? 'the log does not extend it'}` });
  return failures.sort((a, b) => a.seq - b.seq)[0];
}
