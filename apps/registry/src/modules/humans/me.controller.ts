import { Body, Controller, Get, Header, HttpCode, Inject, NotFoundException, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { BeforeApplicationShutdown } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiResponse, ApiSecurity } from '@nestjs/swagger';
import {
  AddPasskeyOptionsSchema,
  type AgentListAnswer,
  AgentListAnswerSchema,
  CeremonyAnswerSchema,
  ConfirmationOptionsSchema,
  type DecisionAnswer,
  DecisionAnswerSchema,
  DecisionOptionsAnswerSchema,
  DecisionOptionsSchema,
  DecisionSchema,
  type DisabledAgentAnswer,
  DisabledAgentAnswerSchema,
  EnrollmentSchema,
  type EnrollmentToken,
  EnrollmentTokenSchema,
  FinishSchema,
  type GrantListAnswer,
  GRANT_STATUSES,
  GrantListAnswerSchema,
  type HumanGrant,
  HumanGrantSchema,
  type Passkey,
  type PasskeyListAnswer,
  PasskeyListAnswerSchema,
  type PasskeyNoticeAnswer,
  PasskeyNoticeAnswerSchema,
  PasskeySchema,
  type ReceiptExport,
  ReceiptExportSchema,
  RemovePasskeySchema,
  RenamePasskeySchema,
  RevokeSchema,
  type Transaction,
  type TransactionListAnswer,
  TransactionListAnswerSchema,
  type TransactionRevokedAnswer,
  TransactionRevokedAnswerSchema,
  TransactionSchema,
} from '@writ/contracts';
import { InvalidRequest } from '@writ/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { CurrentHuman, CurrentSessionToken, HumanSessionGuard } from '../../http/human-session.guard.js';
import { ApiEventStreamResponse, ApiHumanErrors, ApiJsonBody, ApiJsonResponse, SECURITY } from '../../http/openapi.js';
import { Limited, RequestLimits } from '../../http/rate-limit.js';
import { AgentsService } from '../agents/agents.service.js';
import { GrantsService } from '../grants/grants.service.js';
import { RevocationsService } from '../revocations/revocations.service.js';
import { StepUpsService } from '../step-ups/step-ups.service.js';
import { ApprovalsService } from './approvals.service.js';
import { HumanViewsService } from './human-views.service.js';
import { type HumanView, HumansService, parseBody, passkeyView } from './humans.service.js';

/** How often an idle event stream gets a comment line, so proxies keep it open. */
const KEEPALIVE_MS = 15_000;

/**
 * The live streams of `GET /me/events`, ended when the app shuts down (an open stream would
 * otherwise keep the HTTP server from closing).
 */
export class EventStreams implements BeforeApplicationShutdown {
  private readonly open = new Set<ServerResponse>();

  add(stream: ServerResponse): void {
    this.open.add(stream);
    stream.once('close', () => this.open.delete(stream));
  }

  beforeApplicationShutdown(): void {
    for (const stream of this.open) stream.end();
    this.open.clear();
  }
}

/** The signed-in human's API: their grants and decisions, agents, passkeys and transactions. */
@Controller('me')
@UseGuards(HumanSessionGuard)
@ApiSecurity(SECURITY.session)
export class MeController {
  constructor(
    @Inject(HumansService) private readonly humans: HumansService,
    @Inject(ApprovalsService) private readonly approvals: ApprovalsService,
    @Inject(HumanViewsService) private readonly views: HumanViewsService,
    @Inject(GrantsService) private readonly grants: GrantsService,
    @Inject(AgentsService) private readonly agents: AgentsService,
    @Inject(EventStreams) private readonly streams: EventStreams,
    @Inject(RevocationsService) private readonly revocations: RevocationsService,
    @Inject(StepUpsService) private readonly stepUps: StepUpsService,
    @Inject(RequestLimits) private readonly limits: RequestLimits,
  ) {}

  @Get('grants')
  @ApiOperation({ summary: "The human's grants, newest first, optionally of one status" })
  @ApiQuery({ name: 'status', required: false, schema: { type: 'string', enum: [...GRANT_STATUSES] } })
  @ApiJsonResponse(200, '{grants}', GrantListAnswerSchema)
  @ApiHumanErrors(400, 401)
  @Header('cache-control', 'no-store')
  async listGrants(@CurrentHuman() human: HumanView, @Query('status') status: string | undefined): Promise<GrantListAnswer> {
    return { grants: await this.views.listGrants(human.id, status === '' ? undefined : status) };
  }

  @Get('grants/:id')
  @ApiOperation({ summary: 'One of the human’s grants' })
  @ApiJsonResponse(200, 'The grant, with its agent and service by name', HumanGrantSchema)
  @ApiHumanErrors(401, 404)
  @Header('cache-control', 'no-store')
  async grant(@CurrentHuman() human: HumanView, @Param('id') id: string): Promise<HumanGrant> {
    const grant = await this.views.grant(human.id, id);
    if (!grant) throw new NotFoundException('grant not found');
    return grant;
  }

  @Post('grants/:id/decision/options')
  @Limited('ceremony-per-account')
  @ApiOperation({ summary: 'Decide on a grant, step 1: the approval document and the WebAuthn options that sign it' })
  @ApiJsonBody(DecisionOptionsSchema)
  @ApiJsonResponse(200, '{ceremony, document, options}', DecisionOptionsAnswerSchema)
  @ApiHumanErrors(400, 401, 403, 429)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  decisionOptions(@CurrentHuman() human: HumanView, @Param('id') id: string, @Body() body: unknown) {
    return this.approvals.beginDecision(human.id, id, body);
  }

  @Post('grants/:id/decision')
  @ApiOperation({ summary: 'Decide on a grant, step 2: the passkey assertion over the document applies the decision' })
  @ApiJsonBody(DecisionSchema)
  @ApiJsonResponse(200, '{grant, receipt_hash}', DecisionAnswerSchema)
  @ApiHumanErrors(400, 401, 403)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async decide(@CurrentHuman() human: HumanView, @Param('id') id: string, @Body() body: unknown): Promise<DecisionAnswer> {
    const { grant, receiptHash } = await this.approvals.finishDecision(human.id, id, body);
    return { grant: await this.views.describe(grant), receipt_hash: receiptHash };
  }

  @Get('grants/:id/receipt')
  @ApiOperation({ summary: 'The signed receipt of the decision on a grant, with what an offline check needs' })
  @ApiJsonResponse(200, '{receipt, hash, public_key, rp_id, origins}', ReceiptExportSchema)
  @ApiHumanErrors(401, 404)
  @Header('cache-control', 'no-store')
  async receipt(@CurrentHuman() human: HumanView, @Param('id') id: string): Promise<ReceiptExport> {
    const receipt = await this.approvals.receipt(human.id, id);
    if (!receipt) throw new NotFoundException('no decision has been signed for this grant');
    return receipt;
  }

  @Post('grants/:id/revoke')
  @ApiOperation({ summary: 'Revoke one of the human’s grants: every verifier denies it from now on' })
  @ApiJsonBody(RevokeSchema)
  @ApiJsonResponse(200, 'The revoked grant', HumanGrantSchema)
  @ApiHumanErrors(400, 401, 403)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async revoke(@CurrentHuman() human: HumanView, @Param('id') id: string, @Body() body: unknown): Promise<HumanGrant> {
    const { reason } = parseBody(RevokeSchema, body ?? {});
    const grant = await this.grants.revoke(id, human.id, reason ?? null);
    return this.views.describe(grant);
  }

  /**
   * Server-sent events: `event: grant` with `{grant_id, status, version}` whenever one of the
   * human's grants is requested or changes, and `event: step_up` with `{step_up_id, status}`
   * whenever one of their step-ups arrives or is decided, so the inbox updates without polling.
   */
  @Get('events')
  @ApiOperation({ summary: 'A text/event-stream of changes to the human’s grants and step-ups' })
  @ApiEventStreamResponse('`event: grant` with {grant_id, status, version} and `event: step_up` with {step_up_id, status}, as they happen')
  @ApiHumanErrors(401, 429)
  events(@CurrentHuman() human: HumanView, @CurrentSessionToken() sessionToken: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    // Before the answer starts: past the session's cap this is a 429 with Retry-After (ADR 0020).
    const release = this.limits.holdEventStream(sessionToken);
    reply.hijack();
    const stream = reply.raw;
    stream.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    stream.write('retry: 3000\n: connected\n\n');
    this.streams.add(stream);
    const offGrants = this.grants.onChange((change) => {
      if (change.owner !== human.id) return;
      stream.write(`event: grant\ndata: ${JSON.stringify({ grant_id: change.grant_id, status: change.status, version: change.version })}\n\n`);
    });
    const offStepUps = this.stepUps.onChange((change) => {
      if (change.owner !== human.id) return;
      stream.write(`event: step_up\ndata: ${JSON.stringify({ step_up_id: change.step_up_id, status: change.status })}\n\n`);
    });
    const keepalive = setInterval(() => stream.write(': keepalive\n\n'), KEEPALIVE_MS);
    keepalive.unref();
    const stop = () => {
      offGrants();
      offStepUps();
      clearInterval(keepalive);
      release();
    };
    request.raw.once('close', stop);
    stream.once('close', stop);
  }

  @Get('agents')
  @ApiOperation({ summary: 'The human’s agents' })
  @ApiJsonResponse(200, '{agents}', AgentListAnswerSchema)
  @ApiHumanErrors(401)
  @Header('cache-control', 'no-store')
  async listAgents(@CurrentHuman() human: HumanView): Promise<AgentListAnswer> {
    return { agents: await this.views.agents(human.id) };
  }

  @Post('agents/enrollment-tokens')
  @ApiOperation({ summary: 'Mint a one-time enrollment token that lets one new agent register for this human (needs a fresh passkey confirmation)' })
  @ApiJsonBody(EnrollmentSchema)
  @ApiJsonResponse(201, '{token, expires_at}: shown once', EnrollmentTokenSchema)
  @ApiHumanErrors(400, 401, 403)
  @HttpCode(201)
  @Header('cache-control', 'no-store')
  async enrollmentToken(@CurrentHuman() human: HumanView, @CurrentSessionToken() session: string, @Body() body: unknown): Promise<EnrollmentToken> {
    const { ttl_s, confirmation } = parseBody(EnrollmentSchema, body ?? {});
    // An agent enrolled here acts for the person: a stolen session cookie alone must not make one (ADR 0018).
    await this.humans.confirm(human.id, session, 'enrollment_token', confirmation);
    const { token, expiresAt } = await this.agents.mintInitialAccessToken(human.id, ttl_s ?? 600, human.id);
    return { token, expires_at: expiresAt.toISOString() };
  }

  @Post('agents/:id/disable')
  @ApiOperation({ summary: 'Disable one of the human’s agents: its calls are refused from now on' })
  @ApiJsonResponse(200, '{client_id, status}', DisabledAgentAnswerSchema)
  @ApiHumanErrors(401, 403, 404)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async disableAgent(@CurrentHuman() human: HumanView, @Param('id') id: string): Promise<DisabledAgentAnswer> {
    const agent = await this.agents.find(id);
    if (!agent || agent.owner !== human.id) throw new NotFoundException('agent not found');
    await this.agents.disable(id, human.id);
    return { client_id: id, status: 'disabled' };
  }

  @Post('confirmation/options')
  @Limited('ceremony-per-account')
  @ApiOperation({ summary: 'A fresh passkey confirmation, step 1: WebAuthn request options over the human’s passkeys, for one purpose' })
  @ApiJsonBody(ConfirmationOptionsSchema)
  @ApiJsonResponse(200, '{ceremony, options}: sign the challenge and send {ceremony, response} as `confirmation` with the action', CeremonyAnswerSchema)
  @ApiHumanErrors(400, 401, 403, 429)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  confirmationOptions(@CurrentHuman() human: HumanView, @CurrentSessionToken() session: string, @Body() body: unknown) {
    return this.humans.beginConfirmation(human.id, session, body);
  }

  @Get('passkeys')
  @ApiOperation({ summary: 'The human’s current passkeys, with when they were added and last used, and their public keys' })
  @ApiJsonResponse(200, '{passkeys}', PasskeyListAnswerSchema)
  @ApiHumanErrors(401)
  @Header('cache-control', 'no-store')
  async passkeys(@CurrentHuman() human: HumanView): Promise<PasskeyListAnswer> {
    return { passkeys: (await this.humans.passkeysOf(human.id)).map(passkeyView) };
  }

  @Get('passkeys/notice')
  @ApiOperation({ summary: 'Passkeys added (in another session) since the human last acknowledged new ones' })
  @ApiJsonResponse(200, '{added}', PasskeyNoticeAnswerSchema)
  @ApiHumanErrors(401)
  @Header('cache-control', 'no-store')
  async passkeyNotice(@CurrentHuman() human: HumanView, @CurrentSessionToken() session: string): Promise<PasskeyNoticeAnswer> {
    return { added: (await this.humans.passkeyNotice(human.id, session)).map(passkeyView) };
  }

  @Post('passkeys/notice/dismiss')
  @ApiOperation({ summary: 'Acknowledge the passkeys added so far: they are no longer announced' })
  @ApiResponse({ status: 204, description: 'Acknowledged' })
  @ApiHumanErrors(401, 403)
  @HttpCode(204)
  @Header('cache-control', 'no-store')
  async dismissPasskeyNotice(@CurrentHuman() human: HumanView): Promise<void> {
    await this.humans.dismissPasskeyNotice(human.id);
  }

  @Post('passkeys/options')
  @Limited('ceremony-per-account')
  @ApiOperation({ summary: 'Add a passkey, step 1: WebAuthn creation options (needs a fresh passkey confirmation)' })
  @ApiJsonBody(AddPasskeyOptionsSchema)
  @ApiJsonResponse(200, '{ceremony, options}', CeremonyAnswerSchema)
  @ApiHumanErrors(400, 401, 403, 429)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  addPasskeyOptions(@CurrentHuman() human: HumanView, @CurrentSessionToken() session: string, @Body() body: unknown) {
    return this.humans.beginAddPasskey(human.id, session, body);
  }

  @Post('passkeys/verify')
  @ApiOperation({ summary: 'Add a passkey, step 2: the attestation registers it' })
  @ApiJsonBody(FinishSchema)
  @ApiJsonResponse(200, 'The new passkey', PasskeySchema)
  @ApiHumanErrors(400, 401, 403)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async addPasskey(@CurrentHuman() human: HumanView, @CurrentSessionToken() session: string, @Body() body: unknown): Promise<Passkey> {
    return passkeyView(await this.humans.finishAddPasskey(human.id, session, body));
  }

  @Post('passkeys/:id/rename')
  @ApiOperation({ summary: 'Rename one of the human’s passkeys (needs a fresh passkey confirmation)' })
  @ApiJsonBody(RenamePasskeySchema)
  @ApiJsonResponse(200, 'The renamed passkey', PasskeySchema)
  @ApiHumanErrors(400, 401, 403, 404)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async renamePasskey(@CurrentHuman() human: HumanView, @CurrentSessionToken() session: string, @Param('id') id: string, @Body() body: unknown): Promise<Passkey> {
    return passkeyView(await this.humans.renamePasskey(human.id, session, id, body));
  }

  @Post('passkeys/:id/remove')
  @ApiOperation({ summary: 'Remove one of the human’s passkeys, never the last (needs a fresh passkey confirmation); its receipts still verify' })
  @ApiJsonBody(RemovePasskeySchema)
  @ApiResponse({ status: 204, description: 'Removed' })
  @ApiHumanErrors(400, 401, 403, 404)
  @HttpCode(204)
  @Header('cache-control', 'no-store')
  async removePasskey(@CurrentHuman() human: HumanView, @CurrentSessionToken() session: string, @Param('id') id: string, @Body() body: unknown): Promise<void> {
    await this.humans.removePasskey(human.id, session, id, body);
  }

  @Get('transactions')
  @ApiOperation({ summary: 'The transactions on the human’s grants, newest first' })
  @ApiQuery({ name: 'grant_id', required: false })
  @ApiJsonResponse(200, '{transactions}', TransactionListAnswerSchema)
  @ApiHumanErrors(401)
  @Header('cache-control', 'no-store')
  async transactions(@CurrentHuman() human: HumanView, @Query('grant_id') grantId: string | undefined): Promise<TransactionListAnswer> {
    if (grantId !== undefined && grantId.length > 128) throw new InvalidRequest('grant_id is too long');
    return { transactions: await this.views.transactions(human.id, grantId === '' ? undefined : grantId) };
  }

  @Post('transactions/:txn/revoke')
  @ApiOperation({ summary: 'Revoke one of the human’s transactions: every token of its tree is denied from now on' })
  @ApiJsonBody(RevokeSchema)
  @ApiJsonResponse(200, '{txn, revoked: true}', TransactionRevokedAnswerSchema)
  @ApiHumanErrors(400, 401, 403, 404)
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async revokeTransaction(@CurrentHuman() human: HumanView, @Param('txn') txn: string, @Body() body: unknown): Promise<TransactionRevokedAnswer> {
    const { reason } = parseBody(RevokeSchema, body ?? {});
    if (!(await this.views.ownsTransaction(human.id, txn))) throw new NotFoundException('transaction not found');
    await this.revocations.revoke('txn', txn, human.id, reason ?? null);
    return { txn, revoked: true };
  }

  @Get('transactions/:txn')
  @ApiOperation({ summary: 'One transaction as a tree of hops with every verification decision, the registry’s last verdict on the audit log and each event’s inclusion proof in the latest checkpoint' })
  @ApiJsonResponse(200, 'The transaction', TransactionSchema)
  @ApiHumanErrors(401, 404)
  @Header('cache-control', 'no-store')
  async transaction(@CurrentHuman() human: HumanView, @Param('txn') txn: string): Promise<Transaction> {
    const view = await this.views.transaction(human.id, txn);
    if (!view) throw new NotFoundException('transaction not found');
    return view;
  }
}
