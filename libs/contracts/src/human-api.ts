import { AuthorizationDetailsSchema, EnvelopeSchema, humanText, identifierText } from '@writ/core';
import { z } from 'zod';

/*
 * The human API (docs/approval.md, "The human API"): what the approval UI sends to the registry's
 * `/auth/*` and `/me/*` routes and what it gets back, defined once. The registry validates request
 * bodies with these schemas and types its answers with them; the UI imports the same types; the
 * OpenAPI document's request and response schemas are generated from them.
 *
 * Request bodies are strict (an unknown field is refused, never ignored). Answer schemas are strict
 * too, so a field the registry sends but the contract does not name fails the OpenAPI test.
 */

// ---------------------------------------------------------------------------------------------
// Shared parts

/** A WebAuthn ceremony id the registry handed out with its options. */
const CeremonyId = identifierText(z.string().min(1).max(64));
/** A passkey's name, chosen by the person and shown to them: no control or format characters. */
const PasskeyLabel = humanText(z.string().trim().min(1, 'label must not be empty').max(64, 'label must be at most 64 characters'));

/** A grant's lifetime bounds, in seconds. */
export const MIN_DURATION_S = 60;
export const MAX_DURATION_S = 30 * 24 * 3600;

/** `duration_s` of a grant request or narrowing. */
export const DurationSchema = z
  .number()
  .int('duration_s must be a whole number of seconds')
  .min(MIN_DURATION_S, `duration_s must be at least ${MIN_DURATION_S}`)
  .max(MAX_DURATION_S, `duration_s must be at most ${MAX_DURATION_S} (30 days)`);

/** The longest an enrollment token (an initial access token) may live. */
export const MAX_ENROLLMENT_TOKEN_TTL_S = 86_400;

/**
 * What a fresh passkey confirmation is for (ADR 0018): each action that could hand the account to
 * whoever holds the session cookie. The confirmation names its purpose, so one made to rename a
 * passkey cannot add one.
 */
export const CONFIRMATION_PURPOSES = ['add_passkey', 'enrollment_token', 'rename_passkey', 'remove_passkey'] as const;
export type ConfirmationPurpose = (typeof CONFIRMATION_PURPOSES)[number];

export const GRANT_STATUSES = ['pending', 'approved', 'denied', 'revoked', 'expired'] as const;
export type GrantStatus = (typeof GRANT_STATUSES)[number];

export const STEP_UP_STATUSES = ['pending', 'approved', 'denied', 'expired'] as const;
export type StepUpStatus = (typeof STEP_UP_STATUSES)[number];

export const AGENT_STATUSES = ['active', 'disabled'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

// ---------------------------------------------------------------------------------------------
// Requests

/** `POST /auth/register/options`: the new account's name. */
export const NameSchema = z.strictObject({ name: identifierText(z.string().trim().min(1, 'name must not be empty').max(64, 'name must be at most 64 characters')) });

/** Step 2 of a WebAuthn ceremony (`/auth/register/verify`, `/auth/login/verify` without `label`, `/me/passkeys/verify`). */
export const FinishSchema = z.strictObject({ ceremony: CeremonyId, response: z.unknown(), label: PasskeyLabel.optional() });

/** `POST /me/confirmation/options`: what the confirmation will allow. */
export const ConfirmationOptionsSchema = z.strictObject({ purpose: z.enum(CONFIRMATION_PURPOSES) });

/** A signed confirmation challenge, sent along with the action it allows. */
export const ConfirmationSchema = z.strictObject({ ceremony: CeremonyId, response: z.unknown() });
export type Confirmation = z.infer<typeof ConfirmationSchema>;

export const AddPasskeyOptionsSchema = z.strictObject({ confirmation: ConfirmationSchema.optional() });
export const RenamePasskeySchema = z.strictObject({ label: PasskeyLabel, confirmation: ConfirmationSchema.optional() });
export const RemovePasskeySchema = z.strictObject({ confirmation: ConfirmationSchema.optional() });

/** `POST /me/agents/enrollment-tokens`. */
export const EnrollmentSchema = z.strictObject({
  ttl_s: z.number().int().min(60).max(MAX_ENROLLMENT_TOKEN_TTL_S).optional(),
  confirmation: ConfirmationSchema.optional(),
});

/** `POST /me/grants/:id/revoke`, `POST /me/transactions/:txn/revoke`. */
export const RevokeSchema = z.strictObject({ reason: identifierText(z.string().trim().min(1).max(500)).optional() });

/** What the human may narrow before approving: each value a subset of the request's. */
export const GrantNarrowingSchema = z.strictObject({
  authorization_details: AuthorizationDetailsSchema.optional(),
  envelope: EnvelopeSchema.optional(),
  duration_s: DurationSchema.optional(),
});
export type GrantNarrowing = z.infer<typeof GrantNarrowingSchema>;

/** `POST /me/grants/:id/decision/options`. */
export const DecisionOptionsSchema = z.strictObject({
  decision: z.enum(['approve', 'deny']),
  narrowing: GrantNarrowingSchema.optional(),
});

/** `POST /me/grants/:id/decision`: the assertion over the approval document. */
export const DecisionSchema = z.strictObject({
  ceremony: CeremonyId,
  document: identifierText(z.string().min(2).max(64 * 1024)),
  response: z.unknown(),
});

/** `POST /me/step-ups/:id/decision/options`. */
export const StepUpDecisionOptionsSchema = z.strictObject({ decision: z.enum(['approve', 'deny']) });

/** `POST /me/step-ups/:id/decision`: the assertion over the step-up document. */
export const StepUpDecisionSchema = z.strictObject({
  ceremony: z.string().min(1).max(64),
  document: z.string().min(2).max(64 * 1024),
  response: z.unknown(),
});

// ---------------------------------------------------------------------------------------------
// Answers

const Timestamp = z.string().describe('an ISO 8601 instant');
/** A public JWK as stored with a passkey (EC P-256, OKP Ed25519 or RSA members). */
const PublicJwk = z.record(z.string(), z.unknown()).describe('a public JWK');
/** WebAuthn options as @simplewebauthn/server makes them (PublicKeyCredential{Creation,Request}OptionsJSON). */
const WebAuthnOptions = z.record(z.string(), z.unknown()).describe('WebAuthn options JSON (W3C WebAuthn Level 3, §5.4 and §5.5)');
const NamedAgent = z.strictObject({ client_id: z.string(), name: z.string() });
const NamedService = z.strictObject({ id: z.string(), uri: z.string(), name: z.string() });

export const HumanSchema = z.strictObject({ id: z.string(), name: z.string() });
export type Human = z.infer<typeof HumanSchema>;

/** `{human, csrf_token}`: the answer of sign-up, sign-in and `GET /auth/session`. */
export const SessionAnswerSchema = z.strictObject({ human: HumanSchema, csrf_token: z.string() });
export type SessionAnswer = z.infer<typeof SessionAnswerSchema>;

/** `{ceremony, options}`: a WebAuthn ceremony the registry started. */
export const CeremonyAnswerSchema = z.strictObject({ ceremony: z.string(), options: WebAuthnOptions });
export interface CeremonyAnswer<Options> {
  ceremony: string;
  options: Options;
}

/** `{sessions_ended}` of `POST /auth/logout-everywhere`. */
export const LogoutEverywhereAnswerSchema = z.strictObject({ sessions_ended: z.number().int() });
export type LogoutEverywhereAnswer = z.infer<typeof LogoutEverywhereAnswerSchema>;

/**
 * The agent that asks for a grant: its own name, its client id, when it was enrolled (null once
 * removed), and whether another of the person's agents has the same name.
 */
export const HumanGrantAgentSchema = z.strictObject({ client_id: z.string(), name: z.string(), enrolled_at: Timestamp.nullable(), name_shared: z.boolean() });
export type HumanGrantAgent = z.infer<typeof HumanGrantAgentSchema>;

/** The passkey that signed a grant's decision, by name (on one grant, ADR 0018). */
export const SignedWithPasskeySchema = z.strictObject({ credential_id: z.string(), label: z.string(), removed: z.boolean() });
export type SignedWithPasskey = z.infer<typeof SignedWithPasskeySchema>;

/** How far a grant may be delegated onwards, and to whom. */
export const DelegationSchema = z.strictObject({ max_depth: z.number().int(), allowed_agents: z.array(z.string()).optional() });
export type Delegation = z.infer<typeof DelegationSchema>;

/** A grant's id, state and version: the first fields of every view of a grant. */
export const GRANT_IDENTITY_FIELDS = {
  grant_id: z.string(),
  status: z.enum(GRANT_STATUSES),
  version: z.number().int(),
};

/** What a grant allows and its life: the fields every view of a grant shares after who and where. */
export const GRANT_TERMS_FIELDS = {
  authorization_details: AuthorizationDetailsSchema,
  envelope: EnvelopeSchema,
  purpose: z.string(),
  duration_s: z.number().int(),
  delegation: DelegationSchema.nullable(),
  requested_at: Timestamp,
  decided_at: Timestamp.nullable(),
  expires_at: Timestamp,
  revoked_at: Timestamp.nullable(),
};

/** A grant as its human sees it: the grant plus who asks and where, by name. */
export const HumanGrantSchema = z.strictObject({
  ...GRANT_IDENTITY_FIELDS,
  agent: HumanGrantAgentSchema,
  service: NamedService,
  ...GRANT_TERMS_FIELDS,
  receipt_hash: z.string().nullable(),
  /** On one grant (not in listings): the passkey that signed its decision. */
  signed_with: SignedWithPasskeySchema.nullable().optional(),
});
export type HumanGrant = z.infer<typeof HumanGrantSchema>;

export const GrantListAnswerSchema = z.strictObject({ grants: z.array(HumanGrantSchema) });
export type GrantListAnswer = z.infer<typeof GrantListAnswerSchema>;

/** `{ceremony, document, options}` of a decision's step 1: the document's canonical JSON text, and the options that sign it. */
export const DecisionOptionsAnswerSchema = z.strictObject({ ceremony: z.string(), document: z.string(), options: WebAuthnOptions });
export interface DecisionOptionsAnswer<Options> {
  ceremony: string;
  /** The document: its canonical JSON text. */
  document: string;
  options: Options;
}

export const DecisionAnswerSchema = z.strictObject({ grant: HumanGrantSchema, receipt_hash: z.string() });
export type DecisionAnswer = z.infer<typeof DecisionAnswerSchema>;

/** A receipt as a person stores it (libs/core's `ApprovalReceipt`). */
const ReceiptSchema = z.strictObject({
  document: z.string(),
  credential_id: z.string(),
  authenticator_data: z.string(),
  client_data_json: z.string(),
  signature: z.string(),
  user_handle: z.string().nullable(),
});

/** A step-up's receipt as its human downloads it: everything an offline check needs. */
export const StepUpReceiptExportSchema = z.strictObject({
  receipt: ReceiptSchema,
  hash: z.string(),
  public_key: PublicJwk,
  rp_id: z.string(),
  origins: z.array(z.string()),
});
export type StepUpReceiptExport = z.infer<typeof StepUpReceiptExportSchema>;

/** A grant's receipt as its owner downloads it, with the passkey that signed it (its receipts stay verifiable once removed, ADR 0018). */
export const ReceiptExportSchema = StepUpReceiptExportSchema.extend({
  passkey: z.strictObject({ id: z.string(), label: z.string(), removed_at: Timestamp.nullable() }),
});
export type ReceiptExport = z.infer<typeof ReceiptExportSchema>;

/** The query as sent and the fields the service provider bound: approved with the rest. */
export const StepUpBoundSchema = z.strictObject({ query: z.string().nullable(), fields: z.record(z.string(), z.string()) });
export type StepUpBound = z.infer<typeof StepUpBoundSchema>;

/** A payment above a grant's `approval_above` that waits for the person (docs/approval.md, "Step-up"). */
export const HumanStepUpSchema = z.strictObject({
  step_up_id: z.string(),
  status: z.enum(STEP_UP_STATUSES),
  grant_id: z.string(),
  txn: z.string(),
  agent: NamedAgent,
  service: NamedService,
  method: z.string(),
  /** Without query or fragment, as the verifier saw it. */
  url: z.string(),
  action: z.string(),
  resource: z.string().nullable(),
  amount: z.number(),
  currency: z.string(),
  /** Null before the service provider bound them. */
  bound: StepUpBoundSchema.nullable(),
  requested_at: Timestamp,
  expires_at: Timestamp,
  decided_at: Timestamp.nullable(),
  receipt_hash: z.string().nullable(),
});
export type HumanStepUp = z.infer<typeof HumanStepUpSchema>;

export const StepUpListAnswerSchema = z.strictObject({ step_ups: z.array(HumanStepUpSchema) });
export type StepUpListAnswer = z.infer<typeof StepUpListAnswerSchema>;

export const StepUpDecisionAnswerSchema = z.strictObject({ step_up: HumanStepUpSchema, receipt_hash: z.string() });
export type StepUpDecisionAnswer = z.infer<typeof StepUpDecisionAnswerSchema>;

/** A passkey as its owner sees it. */
export const PasskeySchema = z.strictObject({
  id: z.string(),
  label: z.string(),
  created_at: Timestamp,
  last_used_at: Timestamp.nullable(),
  backed_up: z.boolean(),
  public_key: PublicJwk,
});
export type Passkey = z.infer<typeof PasskeySchema>;

export const PasskeyListAnswerSchema = z.strictObject({ passkeys: z.array(PasskeySchema) });
export type PasskeyListAnswer = z.infer<typeof PasskeyListAnswerSchema>;
/** Passkeys added in another session since the person last acknowledged new ones. */
export const PasskeyNoticeAnswerSchema = z.strictObject({ added: z.array(PasskeySchema) });
export type PasskeyNoticeAnswer = z.infer<typeof PasskeyNoticeAnswerSchema>;

export const AgentSchema = z.strictObject({
  client_id: z.string(),
  name: z.string(),
  /** Whether another of the person's agents has the same name (NFKC, lower case). */
  name_shared: z.boolean(),
  status: z.enum(AGENT_STATUSES),
  created_at: Timestamp,
  disabled_at: Timestamp.nullable(),
  jkt: z.string(),
});
export type Agent = z.infer<typeof AgentSchema>;

export const AgentListAnswerSchema = z.strictObject({ agents: z.array(AgentSchema) });
export type AgentListAnswer = z.infer<typeof AgentListAnswerSchema>;

/** A one-time enrollment token: shown once. */
export const EnrollmentTokenSchema = z.strictObject({ token: z.string(), expires_at: Timestamp });
export type EnrollmentToken = z.infer<typeof EnrollmentTokenSchema>;

export const DisabledAgentAnswerSchema = z.strictObject({ client_id: z.string(), status: z.literal('disabled') });
export type DisabledAgentAnswer = z.infer<typeof DisabledAgentAnswerSchema>;

/** One verification decision on a hop, as the audit event recorded it (the amount as text). */
export const HopDecisionSchema = z.strictObject({
  at: Timestamp,
  allow: z.boolean(),
  outcome: z.string(),
  action: z.string().nullable(),
  resource: z.string().nullable(),
  amount: z.string().nullable(),
  currency: z.string().nullable(),
});
export type HopDecision = z.infer<typeof HopDecisionSchema>;

/** One token of a transaction: the root token or a delegation. */
export const HopSchema = z.strictObject({
  jti: z.string(),
  parent_jti: z.string().nullable(),
  agent: NamedAgent,
  issued_at: Timestamp,
  expires_at: Timestamp.nullable(),
  scope: z.string().nullable(),
  token_hash_prefix: z.string().nullable(),
  decisions: z.array(HopDecisionSchema),
});
export type Hop = z.infer<typeof HopSchema>;

/** An audit log position: an event's seq or a tree's size (docs/audit.md, "Events and the hash chain"). */
const AuditSeq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** A SHA-256 Merkle tree hash (RFC 9162 §2.1), standard base64 of its 32 bytes (docs/audit.md, "Proofs"). */
const AuditHashBase64 = z.string().regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, '32 bytes in standard base64');

/**
 * The registry's last verification of the whole audit log, as it holds it (issue 19): opening a
 * page never re-verifies. `verified`: intact up to event `size`, whose tree root is `root`, when
 * `at`. `broken`: the verification of `at` found event `seq` wrong or missing; `verified` is the
 * last head found intact before, if any. `unverified`: the log has not been verified yet.
 */
export const AuditVerdictSchema = z.discriminatedUnion('status', [
  z.strictObject({ status: z.literal('unverified') }),
  z.strictObject({ status: z.literal('verified'), size: AuditSeq, root: AuditHashBase64, at: Timestamp }),
  z.strictObject({
    status: z.literal('broken'),
    seq: AuditSeq,
    reason: z.string(),
    at: Timestamp,
    verified: z.strictObject({ size: AuditSeq, at: Timestamp }).nullable(),
  }),
]);
export type AuditVerdict = z.infer<typeof AuditVerdictSchema>;

/** The latest signed checkpoint (C2SP tlog-checkpoint): its size, base64 root and the signed note as it is. */
export const AuditCheckpointViewSchema = z.strictObject({ size: AuditSeq, root: AuditHashBase64, note: z.string() });
export type AuditCheckpointView = z.infer<typeof AuditCheckpointViewSchema>;

/**
 * One event of a transaction in the audit log: its leaf hash (RFC 9162 §2.1: SHA-256 of 0x00 and
 * the event hash's 32 bytes) and its inclusion proof (§2.1.3.1) in the tree of the checkpoint's
 * size; `proof` is null while the event is past the latest checkpoint.
 */
export const AuditEventInclusionSchema = z.strictObject({
  seq: AuditSeq,
  type: z.string(),
  leaf_hash: AuditHashBase64,
  proof: z.array(AuditHashBase64).nullable(),
});
export type AuditEventInclusion = z.infer<typeof AuditEventInclusionSchema>;

/** A transaction's place in the audit log: the cached verdict, the latest checkpoint and its events' proofs. */
export const TransactionAuditSchema = z.strictObject({
  verdict: AuditVerdictSchema,
  checkpoint: AuditCheckpointViewSchema.nullable(),
  events: z.array(AuditEventInclusionSchema),
  /** Events of the transaction left out of `events` (only the first ones are listed). */
  omitted: z.number().int().min(0),
});
export type TransactionAudit = z.infer<typeof TransactionAuditSchema>;

export const TransactionSchema = z.strictObject({ txn: z.string(), grant_id: z.string().nullable(), audit: TransactionAuditSchema, hops: z.array(HopSchema) });
export type Transaction = z.infer<typeof TransactionSchema>;

/** One line of `GET /me/transactions`. */
export const TransactionSummarySchema = z.strictObject({ txn: z.string(), grant_id: z.string().nullable(), started_at: Timestamp, hops: z.number().int(), decisions: z.number().int() });
export type TransactionSummary = z.infer<typeof TransactionSummarySchema>;

export const TransactionListAnswerSchema = z.strictObject({ transactions: z.array(TransactionSummarySchema) });
export type TransactionListAnswer = z.infer<typeof TransactionListAnswerSchema>;

export const TransactionRevokedAnswerSchema = z.strictObject({ txn: z.string(), revoked: z.literal(true) });
export type TransactionRevokedAnswer = z.infer<typeof TransactionRevokedAnswerSchema>;
