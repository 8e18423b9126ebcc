import { Body, Controller, Get, Header, HttpCode, Inject, NotFoundException, Param, Post, Query, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiSecurity } from '@nestjs/swagger';
import {
  DecisionOptionsAnswerSchema,
  type HumanStepUp,
  HumanStepUpSchema,
  type StepUpDecisionAnswer,
  StepUpDecisionAnswerSchema,
  StepUpDecisionOptionsSchema,
  StepUpDecisionSchema,
  type StepUpListAnswer,
  StepUpListAnswerSchema,
  type StepUpReceiptExport,
  StepUpReceiptExportSchema,
  STEP_UP_STATUSES,
} from '@writ/contracts';
import { CurrentHuman, HumanSessionGuard } from '../../http/human-session.guard.js';
import { Limited } from '../../http/rate-limit.js';
import { ApiHumanErrors, ApiJsonBody, ApiJsonResponse, SECURITY } from '../../http/openapi.js';
import type { HumanView } from '../humans/humans.service.js';
import { StepUpsService } from './step-ups.service.js';

/** The human's side of step-ups: the payments waiting for them, and their signed decisions. */
@Controller('me/step-ups')
@UseGuards(HumanSessionGuard)
@ApiSecurity(SECURITY.session)
export class MeStepUpsController {
  constructor(@Inject(StepUpsService) private readonly stepUps: StepUpsService) {}

  @Get()
  @ApiOperation({ summary: "The human's step-ups (requests above a grant's approval_above), newest first, optionally of one status" })
  @ApiQuery({ name: 'status', required: false, schema: { type: 'string', enum: [...STEP_UP_STATUSES] } })
  @ApiJsonResponse(200, '{step_ups}', StepUpListAnswerSchema)
  @ApiHumanErrors(400, 401)
  @Header('cache-control', 'no-store')
  async list(@CurrentHuman() human: HumanView, @Query('status') status: string | undefined): Promise<StepUpListAnswer> {
    return { step_ups: await this.stepUps.listForHuman(human.id, status === '' ? undefined : status) };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One of the human’s step-ups: the exact request, who made it and where' })
  @ApiJsonResponse(200, 'The step-up', HumanStepUpSchema)
  @ApiHumanErrors(401, 404)
  @Header('cache-control', 'no-store')
  async get(@CurrentHuman() human: HumanView, @Param('id') id: string): Promise<HumanStepUp> {
    const stepUp = await this.stepUps.getForHuman(human.id, id);
    if (!stepUp) throw new NotFoundException('step-up not found');
    return stepUp;
  }

  @Post(':id/decision/options')
  @Limited('ceremony-per-account')
  @ApiOperation({ summary: 'Decide on a step-up, step 1: the step-up document and the WebAuthn options that sign it' })
  @ApiJsonBody(StepUpDecisionOptionsSchema)
  @ApiJsonResponse(200, '{ceremony, document, options}', DecisionOptionsAnswerSchema)
  @ApiHumanErrors(400, 401, 403, 429)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  decisionOptions(@CurrentHuman() human: HumanView, @Param('id') id: string, @Body() body: unknown) {
    return this.stepUps.beginDecision(human.id, id, body);
  }

  @Post(':id/decision')
  @ApiOperation({ summary: 'Decide on a step-up, step 2: the passkey assertion over the document; an approval reaches the verifiers' })
  @ApiJsonBody(StepUpDecisionSchema)
  @ApiJsonResponse(200, '{step_up, receipt_hash}', StepUpDecisionAnswerSchema)
  @ApiHumanErrors(503)
  @ApiHumanErrors(400, 401, 403)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async decide(@CurrentHuman() human: HumanView, @Param('id') id: string, @Body() body: unknown): Promise<StepUpDecisionAnswer> {
    const { stepUp, receiptHash } = await this.stepUps.finishDecision(human.id, id, body);
    return { step_up: stepUp, receipt_hash: receiptHash };
  }

  @Get(':id/receipt')
  @ApiOperation({ summary: 'The signed receipt of the decision on a step-up, with what an offline check needs' })
  @ApiJsonResponse(200, '{receipt, hash, public_key, rp_id, origins}', StepUpReceiptExportSchema)
  @ApiHumanErrors(401, 404)
  @Header('cache-control', 'no-store')
  async receipt(@CurrentHuman() human: HumanView, @Param('id') id: string): Promise<StepUpReceiptExport> {
    const receipt = await this.stepUps.receipt(human.id, id);
    if (!receipt) throw new NotFoundException('no decision has been signed for this step-up');
    return receipt;
  }
}
