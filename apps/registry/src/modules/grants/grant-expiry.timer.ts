import { Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { GrantsService } from './grants.service.js';

/** Expires due grants every few seconds while the app runs; the timer never keeps the process alive. */
export class GrantExpiryTimer implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('grants');
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly grants: GrantsService,
    private readonly everyMs = 5_000,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.sweep(), this.everyMs);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /** One sweep at a time: a slow one is not overlapped by the next tick. */
  private async sweep(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const n = await this.grants.expireDue();
      if (n > 0) this.logger.log(`${n} grant(s) expired`);
    } catch (error) {
      this.logger.error(error instanceof Error ? error.stack : String(error));
    } finally {
      this.running = false;
    }
  }
}
