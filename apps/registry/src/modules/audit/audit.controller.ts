import { Controller, Get, Header, Inject } from '@nestjs/common';
import { AuditService, type AuditVerification } from './audit.service.js';

@Controller('audit')
export class AuditController {
  constructor(@Inject(AuditService) private readonly audit: AuditService) {}

  /**
   * Re-computes the chain from the first event and checks every signed checkpoint. Public: it
   * reveals whether the log is intact, not what it holds.
   */
  @Get('verify')
  @Header('cache-control', 'no-store')
  verify(): Promise<AuditVerification> {
    return this.audit.verify();
  }
}
