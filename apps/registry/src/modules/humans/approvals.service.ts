import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import {
  type ApprovalDocument,
  approvalDocumentText,
  type ApprovalReceipt,
  approvalReceiptHash,
  type Clock,
  randomId,
  ReceiptInvalid,
  verifyApprovalReceipt,
} from '@writ/core';
import type { JWK } from 'jose';
import { DecisionOptionsSchema, DecisionSchema, humanError } from '@writ/contracts';
import type { RegistryConfig } from '../../config/config.js';
import type { Transaction } from '../../infra/transaction.js';
import type { AgentsService } from '../agents/agents.service.js';
import type { GrantEntity } from '../grants/grant.entity.js';
import type { GrantsService } from '../grants/grants.service.js';
import type { ServicesService } from '../services/services.service.js';
import type { HumansRepository } from './humans.repository.js';
import { type HumansService, parseBody } from './humans.service.js';

/** A receipt as its grant's owner downloads it: everything an offline check needs. */
export interface ReceiptExport {
  receipt: ApprovalReceipt;
  hash: string;
  public_key: JWK;
  rp_id: string;
  origins: string[];
  /**
   * Which of the person's passkeys signed it (the receipt's `credential_id`), by the name they
   * gave it, and when it was removed if it was: its receipts stay verifiable (ADR 0018).
   */
  passkey: { id: string; label: string; removed_at: string | null };
}

export interface ApprovalsServiceOptions {
  /** Where the approval receipts are kept. */
  repository: Pick<HumansRepository, 'insertApprovalReceipt' | 'findApprovalReceipt'>;
  humans: HumansService;
  grants: GrantsService;
  agents: AgentsService;
  services: ServicesService;
  clock: Clock;
  config: Pick<RegistryConfig, 'rp' | 'uiOrigins'>;
}

/**
 * What you see is what you sign (ARCHITECTURE.md "Human approval"): a decision on a grant is a
 * two-step WebAuthn ceremony. Step 1 builds the approval document (the grant, possibly narrowed,
 * and the decision) and makes SHA-256 of its canonical JSON the challenge. Step 2 takes the
 * assertion, checks it signs exactly that document, stores the receipt and applies the decision
 * in one transaction; the receipt's hash becomes `tctx.approval`.
 */
export class ApprovalsService {
  private readonly repository: Pick<HumansRepository, 'insertApprovalReceipt' | 'findApprovalReceipt'>;
  private readonly humans: HumansService;
  private readonly grants: GrantsService;
  private readonly agents: AgentsService;
  private readonly services: ServicesService;
  private readonly clock: Clock;
  private readonly config: ApprovalsServiceOptions['config'];

  constructor(options: ApprovalsServiceOptions) {
    this.repository = options.repository;
    this.humans = options.humans;
    this.grants = options.grants;
    this.agents = options.agents;
    this.services = options.services;
    this.clock = options.clock;
    this.config = options.config;
  }

  /** Step 1: the document for `decision` (with the narrowing applied) and the options that sign it. */
  async beginDecision(humanId: string, grantId: string, body: unknown): Promise<{ ceremony: string; document: string; options: PublicKeyCredentialRequestOptionsJSON }> {
    const input = parseBody(DecisionOptionsSchema, body);
    const grant = await this.ownPendingGrant(humanId, grantId);
    if (input.decision === 'deny' && input.narrowing !== undefined) throw humanError('denial_narrowed');
    const narrowed = this.grants.narrowed(grant, input.narrowing ?? {});
    const agent = await this.agents.find(grant.agent_id);
    const service = await this.services.find(grant.service_id);
    if (!agent || !service) throw humanError('parties_gone', { subject: 'grant' });
    const now = this.clock.now();
    const document: ApprovalDocument = {
      decision: input.decision,
      grant_id: grant.id,
      version: grant.version,
      subject: grant.owner,
      agent: { client_id: agent.client_id, name: agent.client_name },
      service: { id: service.id, uri: service.uri },
      authorization_details: narrowed.authorization_details,
      envelope: narrowed.envelope,
      purpose: grant.purpose,
      delegation: grant.delegation,
      // Approved, the grant ends exactly when the signed document says; denied, it says when the request would have lapsed.
      expires_at: (input.decision === 'approve' ? new Date(now + narrowed.duration_s * 1000) : grant.expires_at).toISOString(),
      nonce: randomId(),
    };
    const text = approvalDocumentText(document);
    const { ceremony, options } = await this.humans.beginSigning('decision', humanId, text, {
      grantId,
      data: { decision: input.decision, duration_s: narrowed.duration_s },
    });
    return { ceremony, document: text, options };
  }

  /** Step 2: the assertion over the document; the decision is applied with its receipt. */
  async finishDecision(humanId: string, grantId: string, body: unknown): Promise<{ grant: GrantEntity; receiptHash: string }> {
    const input = parseBody(DecisionSchema, body);
    const ceremony = await this.humans.consume(input.ceremony, 'decision', humanId);
    if (ceremony.grant_id !== grantId) throw humanError('ceremony_other_subject', { subject: 'grant' });
    const { passkey, receipt } = await this.humans.finishSigning(ceremony, input.document, input.response, humanId, 'approval document');
    // The receipt must stand on its own: checked the way anyone will check it later.
    let document: ApprovalDocument;
    try {
      ({ document } = await verifyApprovalReceipt(receipt, { publicKey: passkey.jwk, rpId: this.config.rp.id, origins: this.config.uiOrigins, grantId }));
    } catch (error) {
      if (error instanceof ReceiptInvalid) throw humanError('receipt_invalid', { receipt: 'approval', reason: error.message });
      throw error;
    }
    const receiptHash = await approvalReceiptHash(receipt);
    const signed = {
      version: document.version,
      receiptHash,
      record: (tx: Transaction) =>
        this.repository.insertApprovalReceipt(
          { grant_id: grantId, human_id: humanId, credential_id: passkey.id, decision: document.decision, receipt, hash: receiptHash, created_at: new Date(this.clock.now()) },
          tx,
        ),
    };
    const grant =
      document.decision === 'approve'
        ? await this.grants.approve(
            grantId,
            humanId,
            { authorization_details: document.authorization_details, envelope: document.envelope, duration_s: Number(ceremony.data.duration_s) },
            { ...signed, expiresAt: new Date(document.expires_at) },
          )
        : await this.grants.deny(grantId, humanId, signed);
    return { grant, receiptHash };
  }

  /** The stored receipt of one of `humanId`'s grants, with what an offline check needs; null if none. */
  async receipt(humanId: string, grantId: string): Promise<ReceiptExport | null> {
    const row = await this.repository.findApprovalReceipt(grantId, humanId);
    if (!row) return null;
    const passkey = await this.humans.findPasskey(row.credential_id);
    if (!passkey) throw new Error(`passkey ${row.credential_id} of the receipt of ${grantId} is not stored`);
    return {
      receipt: row.receipt,
      hash: row.hash,
      public_key: passkey.jwk,
      rp_id: this.config.rp.id,
      origins: this.config.uiOrigins,
      passkey: { id: passkey.id, label: passkey.label, removed_at: passkey.removed_at?.toISOString() ?? null },
    };
  }

  private async ownPendingGrant(humanId: string, grantId: string): Promise<GrantEntity> {
    const grant = await this.grants.get(grantId);
    // Another human's grant answers as an unknown one, so grant ids are not probeable.
    if (!grant || grant.owner !== humanId) throw humanError('grant_not_found');
    if (grant.status !== 'pending') throw humanError('grant_wrong_status', { status: grant.status, expected: 'pending' });
    return grant;
  }
}
