import type { AuthorizationDetails, Envelope } from '@writ/core';

/** The human API's shapes (docs/approval.md, "The human API"). */

export interface Human {
  id: string;
  name: string;
}

/** `{human, csrf_token}`: the answer of sign-up, sign-in and `GET /auth/session`. */
export interface SessionAnswer {
  human: Human;
  csrf_token: string;
}

/** `{ceremony, options}`: a WebAuthn ceremony the registry started. */
export interface CeremonyAnswer<Options> {
  ceremony: string;
  options: Options;
}

export type GrantStatus = 'pending' | 'approved' | 'denied' | 'revoked' | 'expired';

export interface Delegation {
  max_depth: number;
}

/**
 * The agent that asks for a grant: its own name, its client id, when it was enrolled (null once
 * removed), and whether another of the person's agents has the same name.
 */
export interface HumanGrantAgent {
  client_id: string;
  name: string;
  enrolled_at: string | null;
  name_shared: boolean;
}

export interface HumanGrant {
  grant_id: string;
  status: GrantStatus;
  version: number;
  agent: HumanGrantAgent;
  service: { id: string; uri: string; name: string | null };
  authorization_details: AuthorizationDetails;
  envelope: Envelope;
  purpose: string | null;
  duration_s: number;
  delegation: Delegation | null;
  requested_at: string;
  decided_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  receipt_hash: string | null;
  /** On one grant: the passkey that signed its decision. */
  signed_with?: SignedWithPasskey | null;
}

/** What the human may change before approving; each part only when it changed. */
export interface Narrowing {
  authorization_details?: AuthorizationDetails;
  envelope?: Envelope;
  duration_s?: number;
}

/** `{ceremony, document, options}` of `POST /me/grants/:id/decision/options`. */
export interface DecisionOptionsAnswer<Options> {
  ceremony: string;
  /** The approval document: its canonical JSON text (or, leniently, the object). */
  document: unknown;
  options: Options;
}

export interface DecisionAnswer {
  grant: HumanGrant;
  receipt_hash: string;
}

export type StepUpStatus = 'pending' | 'approved' | 'denied' | 'expired';

/** A payment above a grant's `approval_above` that waits for the person (docs/approval.md, "Step-up"). */
export interface HumanStepUp {
  step_up_id: string;
  status: StepUpStatus;
  grant_id: string;
  txn: string;
  agent: { client_id: string; name: string };
  service: { id: string; uri: string; name: string | null };
  method: string;
  /** Without query or fragment, as the verifier saw it. */
  url: string;
  action: string;
  resource: string | null;
  amount: number;
  currency: string;
  requested_at: string;
  expires_at: string;
  decided_at: string | null;
  receipt_hash: string | null;
}

export interface StepUpDecisionAnswer {
  step_up: HumanStepUp;
  receipt_hash: string;
}

export interface Passkey {
  id: string;
  label: string | null;
  created_at: string;
  last_used_at: string | null;
  backed_up: boolean;
}

/** The passkey that signed a grant's decision (on one grant, ADR 0018). */
export interface SignedWithPasskey {
  credential_id: string;
  label: string;
  removed: boolean;
}

export interface Agent {
  client_id: string;
  name: string;
  /** Whether another of the person's agents has the same name (NFKC, lower case). */
  name_shared: boolean;
  status: string;
  created_at: string;
  disabled_at: string | null;
  jkt: string | null;
}

export interface EnrollmentToken {
  token: string;
  expires_at: string;
}

export interface HopDecision {
  at: string;
  allow: boolean;
  outcome: string;
  action: string | null;
  resource: string | null;
  /** As the audit event recorded it (the registry sends text). */
  amount: string | number | null;
  currency: string | null;
}

export interface Hop {
  jti: string;
  parent_jti: string | null;
  agent: { client_id: string; name: string };
  issued_at: string;
  expires_at: string | null;
  scope: string | null;
  token_hash_prefix: string | null;
  decisions: HopDecision[];
}

export interface ChainStatus {
  ok: boolean;
  count: number;
  brokenSeq?: number;
  reason?: string;
}

export interface Transaction {
  txn: string;
  grant_id: string | null;
  chain: ChainStatus;
  hops: Hop[];
}

/** One line of `GET /me/transactions`: `hops` and `decisions` may be lists or counts. */
export interface TransactionSummary {
  txn: string;
  grant_id: string | null;
  started_at: string;
  hops: number | unknown[];
  decisions: number | unknown[];
}
