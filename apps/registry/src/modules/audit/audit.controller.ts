import { Controller, Get, Header, Inject, NotFoundException, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiResponse } from '@nestjs/swagger';
import { AuditConsistencyProofSchema, AuditInclusionProofSchema, AuditVerificationSchema } from '@writ/contracts';
import type { MerkleHash } from '@writ/core';
import { ApiJsonResponse, ApiOAuthErrors, SECURITY } from '../../http/openapi.js';
import { OperatorGuard } from '../operator/operator.controller.js';
import { parsePositiveIntegers } from './audit-query.js';
import { AuditService, type AuditVerification } from './audit.service.js';
import { CheckpointPublisher } from './checkpoint-publisher.js';

const base64 = (hash: MerkleHash): string => Buffer.from(hash).toString('base64');

/**
 * The audit log as a transparency log (docs/audit.md): its latest checkpoint and the proofs an
 * outsider checks against it are public; re-verifying the database is the operator's.
 */
@Controller('audit')
export class AuditController {
  constructor(
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(CheckpointPublisher) private readonly publisher: CheckpointPublisher,
  ) {}

  /** C2SP tlog-checkpoint: the latest checkpoint, a signed note with its witnesses' cosignatures, at a stable URL witnesses and monitors poll. */
  @Get('checkpoint')
  @ApiOperation({ summary: "The audit log's latest checkpoint (C2SP tlog-checkpoint signed note)" })
  @ApiResponse({ status: 200, description: 'the signed note: origin, tree size, base64 root hash, a blank line, signature lines', content: { 'text/plain': { schema: { type: 'string' } } } })
  @ApiOAuthErrors(404)
  @Header('content-type', 'text/plain; charset=utf-8')
  @Header('cache-control', 'no-cache')
  async checkpoint(): Promise<string> {
    const note = await this.audit.publishedCheckpoint();
    if (note === undefined) throw new NotFoundException('the audit log has no checkpoint yet');
    return note;
  }

  @Get('proof/inclusion')
  @ApiOperation({ summary: 'RFC 9162 §2.1.3 inclusion proof of event seq in the tree of size events' })
  @ApiQuery({ name: 'seq', type: 'integer', required: true, description: "the event's seq (leaf seq - 1), 1 to size" })
  @ApiQuery({ name: 'size', type: 'integer', required: true, description: "the tree's size (a checkpoint's), at most the log's" })
  @ApiJsonResponse(200, '{seq, size, leaf_hash, proof}: base64 hashes', AuditInclusionProofSchema)
  @ApiOAuthErrors(400)
  @Header('cache-control', 'public, max-age=3600')
  async inclusion(@Query() query: unknown): Promise<{ seq: number; size: number; leaf_hash: string; proof: string[] }> {
    const { seq, size } = parsePositiveIntegers(query, ['seq', 'size'] as const);
    const answer = await this.audit.inclusionProof({ seq, size });
    return { seq, size, leaf_hash: base64(answer.leaf), proof: answer.proof.map(base64) };
  }

  @Get('proof/consistency')
  @ApiOperation({ summary: 'RFC 9162 §2.1.4 consistency proof between the trees of from and to events' })
  @ApiQuery({ name: 'from', type: 'integer', required: true, description: "the older tree's size, 1 to to" })
  @ApiQuery({ name: 'to', type: 'integer', required: true, description: "the newer tree's size, at most the log's" })
  @ApiJsonResponse(200, '{from, to, proof}: base64 hashes', AuditConsistencyProofSchema)
  @ApiOAuthErrors(400)
  @Header('cache-control', 'public, max-age=3600')
  async consistency(@Query() query: unknown): Promise<{ from: number; to: number; proof: string[] }> {
    const { from, to } = parsePositiveIntegers(query, ['from', 'to'] as const);
    const answer = await this.audit.consistencyProof({ from, to });
    return { from, to, proof: answer.proof.map(base64) };
  }

  /**
   * Re-verifies the log from the last verified head, against the checkpoints its witnesses last
   * cosigned (the operator's: it costs database work that grows with the log).
   */
  @Get('verify')
  @UseGuards(OperatorGuard)
  @ApiBearerAuth(SECURITY.operator)
  @ApiOperation({ summary: 'Verify the audit log from the last verified head (operator)' })
  @ApiJsonResponse(200, 'Whether the events link up and the checkpoints taken since check out', AuditVerificationSchema)
  @ApiOAuthErrors(401)
  @Header('cache-control', 'no-store')
  async verify(): Promise<AuditVerification> {
    const { anchors, failures } = await this.publisher.anchors(this.audit.log.origin);
    return this.audit.verify({ anchors, unavailable: failures });
  }
}
