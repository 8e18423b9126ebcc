import { Controller, Get, Header, Inject } from '@nestjs/common';
import { ApiOperation } from '@nestjs/swagger';
import { AuditVerificationSchema } from '@writ/contracts';
import { ApiJsonResponse } from '../../http/openapi.js';
import { AuditService, type AuditVerification } from './audit.service.js';

@Controller('audit')
export class AuditController {
  constructor(@Inject(AuditService) private readonly audit: AuditService) {}

  /**
   * Re-computes the chain from the first event and checks every signed checkpoint. Public: it
   * reveals whether the log is intact, not what it holds.
   */
  @Get('verify')
  @ApiOperation({ summary: 'Verify the audit chain and its signed checkpoints' })
  @ApiJsonResponse(200, 'Whether the chain links up from its first event, and how its signed checkpoints fared', AuditVerificationSchema)
  @Header('cache-control', 'no-store')
  verify(): Promise<AuditVerification> {
    return this.audit.verify();
  }
}
