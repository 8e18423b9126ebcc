import type { OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import type { AuditService } from './audit.service.js';
import type { CheckpointPublisher } from './checkpoint-publisher.js';

export interface AuditCheckpointTimerOptions {
  audit: Pick<AuditService, 'checkpoint'>;
  publisher: Pick<CheckpointPublisher, 'publish' | 'idle'>;
  /** `WRIT_AUDIT_CHECKPOINT_SECONDS`. */
  seconds: number;
  logger: { warn(message: string): void };
}

/**
 * Takes a checkpoint of the head at least every `seconds` while events arrive (issue 19: besides
 * every `checkpointEvery` events), then hands it to the witness publisher. A tick after which no
 * event arrived signs nothing: the head already has its checkpoint. Started when the app has
 * booted, stopped (and the tick in flight awaited) before the database closes.
 */
export class AuditCheckpointTimer implements OnApplicationBootstrap, OnModuleDestroy {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly options: AuditCheckpointTimerOptions) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      // A slow database must not stack ticks: one at a time.
      this.inFlight ??= this.tick().finally(() => (this.inFlight = undefined));
    }, this.options.seconds * 1000);
    this.timer.unref();
  }

  /** One checkpoint of the head (none when it has one) and its publication; never throws. */
  async tick(): Promise<void> {
    try {
      await this.options.audit.checkpoint();
    } catch (error) {
      this.options.logger.warn(`audit checkpoint: ${(error as Error).message}`);
      return;
    }
    await this.options.publisher.publish();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
    await this.options.publisher.idle();
  }
}
