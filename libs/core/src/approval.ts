import { base64url, type JWK } from 'jose';
import { z } from 'zod';
import { AuthorizationDetailsSchema, type AuthorizationDetails } from './capabilities.js';
import { canonicalJson, sha256, sha256Base64url, timingSafeEqual } from './encoding.js';
import { EnvelopeSchema, type Envelope } from './envelope.js';

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * Why a receipt (or an approval document) was refused. Stable codes callers can switch on; the
 * message says the detail and may change.
 *
 * @example
 * ```ts
 * const reason: ReceiptInvalidReason = 'challenge_mismatch';
 * ```
 */
export type ReceiptInvalidReason =
  | 'receipt_malformed'
  | 'document_malformed'
  | 'document_not_canonical'
  | 'grant_mismatch'
  | 'step_up_mismatch'
  | 'client_data_malformed'
  | 'wrong_type'
  | 'challenge_mismatch'
  | 'origin_not_allowed'
  | 'cross_origin'
  | 'authenticator_data_malformed'
  | 'rp_id_mismatch'
  | 'user_not_present'
  | 'user_not_verified'
  | 'key_not_public'
  | 'key_unsupported'
  | 'key_invalid'
  | 'signature_malformed'
  | 'signature_invalid';

/**
 * An approval receipt or document that does not check out. Not an OAuth error: this is the result
 * of an offline check (by the registry, a service provider or an auditor), so it carries no HTTP
 * status, only a stable `reason` code and a precise message.
 *
 * @example
 * ```ts
 * try {
 *   await verifyApprovalReceipt(receipt, { publicKey, rpId: 'writ.example', origins: ['https://writ.example'] });
 * } catch (e) {
 *   if (e instanceof ReceiptInvalid) console.log(`${e.reason}: ${e.message}`); // 'user_not_verified: authenticatorData flag UV ...'
 * }
 * ```
 */
export class ReceiptInvalid extends Error {
  constructor(
    /** The stable code of the failed check. */
    readonly reason: ReceiptInvalidReason,
    message: string,
  ) {
    super(message);
    this.name = 'ReceiptInvalid';
  }
}

// ---------------------------------------------------------------------------------------------
// The approval document

/** Bounds the work a receipt can make a verifier do; a real document is a few kilobytes. */
const MAX_DOCUMENT_LENGTH = 1 << 20;

const identifier = z.string().min(1).max(256);

/**
 * The approval document (docs/approval.md, "The approval document"): what the human signs with
 * their passkey. Strict: an unknown field is refused, since nobody would enforce it.
 *
 * @example
 * ```ts
 * const document = ApprovalDocumentSchema.parse(JSON.parse(text));
 * ```
 */
export const ApprovalDocumentSchema = z.strictObject({
  /** Signed too, so a receipt for a denial can never pass as an approval. */
  decision: z.enum(['approve', 'deny']),
  grant_id: identifier,
  /** The grant's version when the document was issued. */
  version: z.number().int().nonnegative(),
  /** The human (`sub` of the grant). */
  subject: identifier,
  agent: z.strictObject({ client_id: identifier, name: z.string().min(1).max(256) }),
  service: z.strictObject({ id: identifier, uri: z.string().min(1).max(2048) }),
  authorization_details: AuthorizationDetailsSchema,
  envelope: EnvelopeSchema,
  purpose: z.string().min(1).max(500),
  delegation: z.strictObject({
    max_depth: z.number().int().min(0).max(8),
    allowed_agents: z.array(identifier).min(1).max(64).optional(),
  }),
  expires_at: z.iso.datetime({ offset: true }),
  nonce: z.string().min(1).max(256),
});

/**
 * The approval document the human signs.
 *
 * @example
 * ```ts
 * const document: ApprovalDocument = {
 *   decision: 'approve', grant_id: 'grt_1', version: 1, subject: 'usr_1',
 *   agent: { client_id: 'agt_1', name: 'planner' }, service: { id: 'svc_1', uri: 'https://flights.example' },
 *   authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example'], actions: ['read'] }],
 *   envelope: { max_uses: 10 }, purpose: 'book my trip', delegation: { max_depth: 1 },
 *   expires_at: '2026-11-25T10:00:00.000Z', nonce: 'n-0S8FHk2b1x',
 * };
 * ```
 */
export interface ApprovalDocument {
  decision: 'approve' | 'deny';
  grant_id: string;
  version: number;
  subject: string;
  agent: { client_id: string; name: string };
  service: { id: string; uri: string };
  authorization_details: AuthorizationDetails;
  envelope: Envelope;
  purpose: string;
  delegation: { max_depth: number; allowed_agents?: string[] };
  /** ISO 8601: when the grant ends if approved; for a denial, when the request would have lapsed. */
  expires_at: string;
  nonce: string;
}

/**
 * The RFC 8785 canonical JSON text of an approval document: the exact text the human signs and
 * the receipt carries. Throws a `TypeError` naming the first problem when the document does not
 * match {@link ApprovalDocumentSchema}, so a document nobody could verify is never signed.
 *
 * @example
 * ```ts
 * const text = approvalDocumentText(document); // '{"agent":{"client_id":"agt_1","name":"planner"},...}'
 * ```
 */
export function approvalDocumentText(document: ApprovalDocument): string {
  const parsed = ApprovalDocumentSchema.safeParse(document);
  if (!parsed.success) throw new TypeError(`approval document is malformed: ${firstIssue(parsed.error)}`);
  return canonicalJson(parsed.data);
}

/**
 * Reads the document text of a receipt. Throws {@link ReceiptInvalid} with
 * `document_malformed` (not JSON, or not an approval document) or `document_not_canonical` (not
 * byte for byte its RFC 8785 form: other key order, whitespace, escapes, duplicate keys).
 *
 * @example
 * ```ts
 * parseApprovalDocument(receipt.document).grant_id; // 'grt_1'
 * parseApprovalDocument('{ "decision": "approve" }'); // throws ReceiptInvalid('document_not_canonical', ...)
 * ```
 */
export function parseApprovalDocument(text: string): ApprovalDocument {
  return readDocument(text, ApprovalDocumentSchema, 'approval document');
}

/** A signed document's text, read strictly: bounded, JSON, canonical, then `schema`. */
function readDocument<T>(text: string, schema: z.ZodType<T>, what: string): T {
  if (text.length > MAX_DOCUMENT_LENGTH) {
    throw new ReceiptInvalid('document_malformed', `${what} is longer than ${MAX_DOCUMENT_LENGTH} characters`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ReceiptInvalid('document_malformed', `${what} is not JSON`);
  }
  // The signature covers these exact bytes: only the one canonical text of a value is accepted,
  // so two different texts can never stand for the same approval.
  if (canonicalJson(value) !== text) {
    throw new ReceiptInvalid('document_not_canonical', `${what} is not in RFC 8785 canonical form`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ReceiptInvalid('document_malformed', `${what} is malformed: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// The step-up document

/**
 * The step-up document (docs/approval.md, "Step-up: approving one payment"): what the human signs
 * to approve or deny one request above the grant's `approval_above`, exactly as the verifier saw
 * it. `kind` keeps it apart from a grant's approval document: one can never pass for the other.
 * Strict: an unknown field is refused.
 *
 * @example
 * ```ts
 * const document = StepUpDocumentSchema.parse(JSON.parse(text));
 * ```
 */
export const StepUpDocumentSchema = z.strictObject({
  decision: z.enum(['approve', 'deny']),
  kind: z.literal('step_up'),
  step_up_id: identifier,
  grant_id: identifier,
  txn: identifier,
  /** The human (`sub` of the grant). */
  subject: identifier,
  /** The agent that made the request (the token's holder, `act.sub`). */
  agent: z.strictObject({ client_id: identifier, name: z.string().min(1).max(256) }),
  /** The service provider that asked the verifier. */
  service: z.strictObject({ id: identifier, uri: z.string().min(1).max(2048) }),
  method: z.string().min(1).max(32),
  /** The request's URL without query or fragment, as the verifier normalised it. */
  url: z.string().min(1).max(8192),
  action: z.string().min(1).max(128),
  resource: z.string().min(1).max(1024).nullable(),
  /** In currency units, as the service provider stated it. */
  amount: z.number().nonnegative(),
  currency: z.string().min(1).max(16),
  /**
   * What else the verifier fingerprinted (ADR 0014 amendment): the request URL's query exactly as
   * sent (null when none) and the request fields the service provider binds (a payee, say). Absent
   * only from documents signed before step-ups bound them.
   */
  bound: z
    .strictObject({
      query: z.string().max(8192).nullable(),
      fields: z.record(z.string().min(1).max(64), z.string().max(512)).refine((fields) => Object.keys(fields).length <= 16, 'at most 16 bound fields'),
    })
    .optional(),
  nonce: z.string().min(1).max(256),
});

/**
 * The document the human signs for one step-up.
 *
 * @example
 * ```ts
 * const document: StepUpDocument = {
 *   decision: 'approve', kind: 'step_up', step_up_id: 'su_1', grant_id: 'grt_1', txn: 'txn_1', subject: 'usr_1',
 *   agent: { client_id: 'agt_2', name: 'payment agent' }, service: { id: 'svc_1', uri: 'https://flights.example' },
 *   method: 'POST', url: 'https://flights.example/api/payments', action: 'pay', resource: null,
 *   amount: 150, currency: 'EUR', bound: { query: 'ref=trip-42', fields: { payee: 'acme' } }, nonce: 'n-0S8FHk2b1x',
 * };
 * ```
 */
export interface StepUpDocument {
  decision: 'approve' | 'deny';
  kind: 'step_up';
  step_up_id: string;
  grant_id: string;
  txn: string;
  subject: string;
  agent: { client_id: string; name: string };
  service: { id: string; uri: string };
  method: string;
  url: string;
  action: string;
  resource: string | null;
  amount: number;
  currency: string;
  /** The request's query and the fields its service provider binds (absent from older documents). */
  bound?: { query: string | null; fields: Record<string, string> };
  nonce: string;
}

/**
 * The RFC 8785 canonical JSON text of a step-up document: the exact text the human signs (its
 * SHA-256 is the WebAuthn challenge, {@link approvalChallenge}). Throws a `TypeError` naming the
 * first problem when the document does not match {@link StepUpDocumentSchema}.
 *
 * @example
 * ```ts
 * const text = stepUpDocumentText(document); // '{"action":"pay","agent":{...},"amount":150,...}'
 * ```
 */
export function stepUpDocumentText(document: StepUpDocument): string {
  const parsed = StepUpDocumentSchema.safeParse(document);
  if (!parsed.success) throw new TypeError(`step-up document is malformed: ${firstIssue(parsed.error)}`);
  return canonicalJson(parsed.data);
}

/**
 * Reads the document text of a step-up receipt, as strictly as {@link parseApprovalDocument}:
 * `document_malformed` (not JSON, or not a step-up document) or `document_not_canonical`.
 *
 * @example
 * ```ts
 * parseStepUpDocument(receipt.document).amount; // 150
 * ```
 */
export function parseStepUpDocument(text: string): StepUpDocument {
  return readDocument(text, StepUpDocumentSchema, 'step-up document');
}

/**
 * The WebAuthn challenge for an approval document: base64url (no padding) of the SHA-256 of its
 * UTF-8 text, so the passkey assertion signs the document itself.
 *
 * @example
 * ```ts
 * const options = { challenge: await approvalChallenge(approvalDocumentText(document)), ... };
 * ```
 */
export function approvalChallenge(documentText: string): Promise<string> {
  return sha256Base64url(documentText);
}

// ---------------------------------------------------------------------------------------------
// The receipt

/** WebAuthn §6.1: a credential id is at most 1023 bytes. */
const MAX_CREDENTIAL_ID_BYTES = 1023;
/** 37 bytes plus extensions; real ones are well under a kilobyte. */
const MAX_AUTHENTICATOR_DATA_BYTES = 16_384;
const MAX_CLIENT_DATA_BYTES = 16_384;
/** An RSA-8192 signature; ECDSA and Ed25519 ones are far shorter. */
const MAX_SIGNATURE_BYTES = 1024;
/** WebAuthn §5.4.3: a user handle is at most 64 bytes. */
const MAX_USER_HANDLE_BYTES = 64;

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Unpadded base64url in its one canonical spelling (unused trailing bits zero). */
function isCanonicalBase64url(value: string): boolean {
  if (!BASE64URL.test(value) || value.length % 4 === 1) return false;
  return base64url.encode(base64url.decode(value)) === value;
}

function base64urlField(maxBytes: number) {
  return z.string().superRefine((value, ctx) => {
    if (value.length === 0) ctx.addIssue({ code: 'custom', message: 'is empty' });
    else if (value.length > Math.ceil((maxBytes * 4) / 3)) ctx.addIssue({ code: 'custom', message: `is longer than ${maxBytes} bytes` });
    else if (!isCanonicalBase64url(value)) ctx.addIssue({ code: 'custom', message: 'is not unpadded base64url' });
  });
}

/**
 * A receipt (docs/approval.md, "The receipt"): the signed document and the WebAuthn assertion
 * over it, byte fields in unpadded base64url. Strict: an unknown field is refused.
 *
 * @example
 * ```ts
 * const receipt = ApprovalReceiptSchema.parse(body.receipt);
 * ```
 */
export const ApprovalReceiptSchema = z.strictObject({
  document: z.string().min(1).max(MAX_DOCUMENT_LENGTH),
  credential_id: base64urlField(MAX_CREDENTIAL_ID_BYTES),
  authenticator_data: base64urlField(MAX_AUTHENTICATOR_DATA_BYTES),
  client_data_json: base64urlField(MAX_CLIENT_DATA_BYTES),
  signature: base64urlField(MAX_SIGNATURE_BYTES),
  user_handle: base64urlField(MAX_USER_HANDLE_BYTES).nullable(),
});

/**
 * The receipt of a human's decision on a grant.
 *
 * @example
 * ```ts
 * const receipt: ApprovalReceipt = {
 *   document: approvalDocumentText(document), credential_id: response.id,
 *   authenticator_data: response.response.authenticatorData, client_data_json: response.response.clientDataJSON,
 *   signature: response.response.signature, user_handle: response.response.userHandle ?? null,
 * };
 * ```
 */
export interface ApprovalReceipt {
  /** The approval document's canonical JSON text, exactly as signed. */
  document: string;
  credential_id: string;
  authenticator_data: string;
  client_data_json: string;
  signature: string;
  user_handle: string | null;
}

/**
 * The hash of a receipt: base64url (no padding) of the SHA-256 of its RFC 8785 canonical JSON.
 * This is `tctx.approval` in every token of the grant.
 *
 * @example
 * ```ts
 * const approval = await approvalReceiptHash(receipt); // 'x4Jr0y...' (43 characters)
 * ```
 */
export function approvalReceiptHash(receipt: ApprovalReceipt): Promise<string> {
  return sha256Base64url(canonicalJson(receipt));
}

// ---------------------------------------------------------------------------------------------
// Verification

/**
 * Options for {@link verifyApprovalReceipt}.
 *
 * @example
 * ```ts
 * const options: VerifyReceiptOptions = { publicKey: passkey.public_key, rpId: 'writ.example', origins: ['https://writ.example'], grantId: 'grt_1' };
 * ```
 */
export interface VerifyReceiptOptions {
  /** The passkey's public key: EC P-256 (ES256), OKP Ed25519 (EdDSA) or RSA (RS256). */
  publicKey: JWK;
  /** The WebAuthn relying-party id the passkey is scoped to (`WRIT_RP_ID`). */
  rpId: string;
  /** The origins the approval UI is served from (`WRIT_UI_ORIGINS`). */
  origins: readonly string[];
  /** When given, the document must be about this grant. */
  grantId?: string;
}

/**
 * What a valid receipt proves: the human holding the passkey, verified by it, signed this document.
 *
 * @example
 * ```ts
 * const { document, signCount, origin } = await verifyApprovalReceipt(receipt, options);
 * ```
 */
export interface VerifiedApproval {
  document: ApprovalDocument;
  /** The authenticator's signature counter (0 when it keeps none). */
  signCount: number;
  userVerified: true;
  /** `clientDataJSON.origin`: where the human approved. */
  origin: string;
}

/** WebAuthn §6.1: rpIdHash (32), flags (1), signCount (4). */
const AUTHENTICATOR_DATA_MIN = 37;
/** WebAuthn §6.1 flags. */
const FLAG_UP = 0x01;
const FLAG_UV = 0x04;

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks a receipt offline, with the passkey's public key: that the human holding that passkey,
 * with user verification, signed exactly this document at one of `origins` for `rpId`. Checks, in
 * this order: the receipt's shape, the document (canonical, well-formed, of `grantId` when given),
 * `clientDataJSON` (type `webauthn.get`, challenge = {@link approvalChallenge} of the document,
 * origin, not cross-origin), `authenticatorData` (rpIdHash, UP and UV flags), then the signature
 * over `authenticatorData || SHA-256(clientDataJSON)` (WebAuthn §7.2). Throws
 * {@link ReceiptInvalid} at the first failed check.
 *
 * Does not look at `expires_at` or the grant's current state: a receipt stays the proof of what
 * was decided after the grant ends. Does not check the signature counter against an earlier one;
 * the registry does that when the assertion is made.
 *
 * @example
 * ```ts
 * const { document, signCount } = await verifyApprovalReceipt(receipt, {
 *   publicKey, rpId: 'writ.example', origins: ['https://writ.example'], grantId: 'grt_1',
 * });
 * document.decision; // 'approve'
 * ```
 */
export async function verifyApprovalReceipt(receipt: unknown, options: VerifyReceiptOptions): Promise<VerifiedApproval> {
  return verifySignedDocument(receipt, options, (text) => {
    const document = parseApprovalDocument(text);
    if (options.grantId !== undefined && document.grant_id !== options.grantId) {
      throw new ReceiptInvalid('grant_mismatch', `receipt is for grant ${quoted(document.grant_id)}, not ${quoted(options.grantId)}`);
    }
    return document;
  });
}

/**
 * Options for {@link verifyStepUpReceipt}: those of {@link verifyApprovalReceipt}, and the
 * step-up the receipt must be about.
 *
 * @example
 * ```ts
 * const options: VerifyStepUpReceiptOptions = { publicKey, rpId: 'writ.example', origins: ['https://writ.example'], stepUpId: 'su_1' };
 * ```
 */
export interface VerifyStepUpReceiptOptions extends Omit<VerifyReceiptOptions, 'grantId'> {
  /** When given, the document must be about this step-up. */
  stepUpId?: string;
}

/**
 * What a valid step-up receipt proves: the human holding the passkey, verified by it, signed this
 * decision on this one request.
 *
 * @example
 * ```ts
 * const { document } = await verifyStepUpReceipt(receipt, options); // document.amount, document.currency, ...
 * ```
 */
export interface VerifiedStepUpApproval extends Omit<VerifiedApproval, 'document'> {
  document: StepUpDocument;
}

/**
 * Checks a step-up receipt offline, exactly as {@link verifyApprovalReceipt} checks a grant's,
 * except that the document must be a {@link StepUpDocument} (of `stepUpId` when given: else
 * `step_up_mismatch`). The receipt has the same shape, and its hash is {@link approvalReceiptHash}.
 *
 * @example
 * ```ts
 * const { document } = await verifyStepUpReceipt(receipt, { publicKey, rpId: 'writ.example', origins: ['https://writ.example'], stepUpId: 'su_1' });
 * document.decision; // 'approve'
 * ```
 */
export async function verifyStepUpReceipt(receipt: unknown, options: VerifyStepUpReceiptOptions): Promise<VerifiedStepUpApproval> {
  return verifySignedDocument(receipt, options, (text) => {
    const document = parseStepUpDocument(text);
    if (options.stepUpId !== undefined && document.step_up_id !== options.stepUpId) {
      throw new ReceiptInvalid('step_up_mismatch', `receipt is for step-up ${quoted(document.step_up_id)}, not ${quoted(options.stepUpId)}`);
    }
    return document;
  });
}

/** The checks every receipt gets, in order, with `readDocument` reading (and checking) its document. */
async function verifySignedDocument<D>(
  receipt: unknown,
  options: Pick<VerifyReceiptOptions, 'publicKey' | 'rpId' | 'origins'>,
  readDocument: (text: string) => D,
): Promise<{ document: D; signCount: number; userVerified: true; origin: string }> {
  const parsed = ApprovalReceiptSchema.safeParse(receipt);
  if (!parsed.success) throw new ReceiptInvalid('receipt_malformed', `receipt is malformed: ${firstIssue(parsed.error)}`);
  const fields = parsed.data;

  const document = readDocument(fields.document);

  const clientDataBytes = bytesOf(fields.client_data_json);
  const clientData = readClientData(clientDataBytes);
  // WebAuthn §7.2 steps 11-13.
  if (clientData.type !== 'webauthn.get') {
    throw new ReceiptInvalid('wrong_type', `clientDataJSON type is ${quoted(clientData.type)}, not "webauthn.get"`);
  }
  if (!timingSafeEqual(clientData.challenge, await approvalChallenge(fields.document))) {
    throw new ReceiptInvalid('challenge_mismatch', 'clientDataJSON challenge is not the SHA-256 of the approval document');
  }
  if (!options.origins.includes(clientData.origin)) {
    throw new ReceiptInvalid('origin_not_allowed', `clientDataJSON origin ${quoted(clientData.origin)} is not an allowed origin`);
  }
  // The approval UI is never framed by another site: an assertion made in a cross-origin iframe
  // is not one the human made on the approval page.
  if (clientData.crossOrigin === true) {
    throw new ReceiptInvalid('cross_origin', 'clientDataJSON crossOrigin is true: the assertion was made in a cross-origin frame');
  }

  // WebAuthn §7.2 steps 15-17.
  const authenticatorData = bytesOf(fields.authenticator_data);
  if (authenticatorData.length < AUTHENTICATOR_DATA_MIN) {
    throw new ReceiptInvalid(
      'authenticator_data_malformed',
      `authenticatorData is ${authenticatorData.length} bytes, fewer than the ${AUTHENTICATOR_DATA_MIN} of rpIdHash, flags and signCount`,
    );
  }
  if (!bytesEqual(authenticatorData.subarray(0, 32), await sha256(options.rpId))) {
    throw new ReceiptInvalid('rp_id_mismatch', `authenticatorData rpIdHash is not the SHA-256 of the RP ID ${quoted(options.rpId)}`);
  }
  const flags = authenticatorData[32] ?? 0;
  if ((flags & FLAG_UP) === 0) throw new ReceiptInvalid('user_not_present', 'authenticatorData flag UP (user present) is not set');
  if ((flags & FLAG_UV) === 0) throw new ReceiptInvalid('user_not_verified', 'authenticatorData flag UV (user verified) is not set');

  // WebAuthn §7.2 steps 19-20: the signature is over authenticatorData || SHA-256(clientDataJSON).
  const key = await importPasskeyKey(options.publicKey);
  const signature = key.toWebCryptoSignature(bytesOf(fields.signature));
  const clientDataHash = await sha256(clientDataBytes);
  const signed = new Uint8Array(authenticatorData.length + clientDataHash.length);
  signed.set(authenticatorData);
  signed.set(clientDataHash, authenticatorData.length);
  if (!(await crypto.subtle.verify(key.algorithm, key.key, signature, signed))) {
    throw new ReceiptInvalid('signature_invalid', 'signature does not verify with the public key');
  }

  const signCount = new DataView(authenticatorData.buffer, authenticatorData.byteOffset, authenticatorData.byteLength).getUint32(33, false);
  return { document, signCount, userVerified: true, origin: clientData.origin };
}

interface ClientData {
  type: string;
  challenge: string;
  origin: string;
  crossOrigin?: boolean;
}

/** WebAuthn §5.8.1 CollectedClientData, read strictly as UTF-8 JSON. */
function readClientData(bytes: Uint8Array): ClientData {
  let value: unknown;
  try {
    value = JSON.parse(utf8Strict.decode(bytes));
  } catch {
    throw new ReceiptInvalid('client_data_malformed', 'clientDataJSON is not UTF-8 JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ReceiptInvalid('client_data_malformed', 'clientDataJSON is not a JSON object');
  }
  const data = value as Record<string, unknown>;
  for (const member of ['type', 'challenge', 'origin'] as const) {
    if (typeof data[member] !== 'string') throw new ReceiptInvalid('client_data_malformed', `clientDataJSON ${member} is not a string`);
  }
  if (data.crossOrigin !== undefined && typeof data.crossOrigin !== 'boolean') {
    throw new ReceiptInvalid('client_data_malformed', 'clientDataJSON crossOrigin is not a boolean');
  }
  return data as unknown as ClientData;
}

// ---------------------------------------------------------------------------------------------
// Keys and signatures

/** RFC 7517 §9.2 / RFC 7518 §6: members that only a private or symmetric key carries. */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** NIST SP 800-131A: RSA keys shorter than 2048 bits are no longer acceptable for signatures. */
const RSA_MIN_BITS = 2048;

interface PasskeyKey {
  key: CryptoKey;
  algorithm: AlgorithmIdentifier | EcdsaParams;
  /** The assertion's signature in the form Web Crypto verifies. */
  toWebCryptoSignature(signature: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer>;
}

const asIs = (signature: Uint8Array<ArrayBuffer>) => signature;

/**
 * Imports the passkey's public JWK for the one algorithm its type allows (COSE -7 ES256,
 * -8 EdDSA, -257 RS256). Only the public members are imported, so `key_ops`, `ext` or `use`
 * left on an exported key cannot get in the way.
 */
async function importPasskeyKey(jwk: JWK): Promise<PasskeyKey> {
  if (PRIVATE_JWK_MEMBERS.some((member) => member in jwk)) {
    throw new ReceiptInvalid('key_not_public', 'publicKey contains private key material: pass the public JWK only');
  }
  const { kty, crv, alg } = jwk;
  const wanted = kty === 'EC' && crv === 'P-256' ? 'ES256' : kty === 'OKP' && crv === 'Ed25519' ? 'EdDSA' : kty === 'RSA' ? 'RS256' : undefined;
  if (wanted === undefined) {
    throw new ReceiptInvalid(
      'key_unsupported',
      `publicKey ${describeKeyType(jwk)} is not supported: use EC P-256 (ES256), OKP Ed25519 (EdDSA) or RSA (RS256)`,
    );
  }
  if (alg !== undefined && alg !== wanted && !(wanted === 'EdDSA' && alg === 'Ed25519')) {
    throw new ReceiptInvalid('key_unsupported', `publicKey alg ${quoted(alg)} is not supported: this key signs with ${wanted}`);
  }
  try {
    switch (wanted) {
      case 'ES256': {
        const key = await crypto.subtle.importKey('jwk', { kty, crv, x: jwk.x, y: jwk.y }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
        return { key, algorithm: { name: 'ECDSA', hash: 'SHA-256' }, toWebCryptoSignature: derToP1363 };
      }
      case 'EdDSA': {
        const key = await crypto.subtle.importKey('jwk', { kty, crv, x: jwk.x }, { name: 'Ed25519' }, false, ['verify']);
        return { key, algorithm: { name: 'Ed25519' }, toWebCryptoSignature: checkEd25519Signature };
      }
      case 'RS256': {
        const bits = modulusBits(jwk.n);
        if (bits < RSA_MIN_BITS) {
          throw new ReceiptInvalid('key_unsupported', `publicKey RSA modulus is ${bits} bits, fewer than ${RSA_MIN_BITS}`);
        }
        const key = await crypto.subtle.importKey('jwk', { kty, n: jwk.n, e: jwk.e }, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
        return { key, algorithm: { name: 'RSASSA-PKCS1-v1_5' }, toWebCryptoSignature: asIs };
      }
    }
  } catch (error) {
    if (error instanceof ReceiptInvalid) throw error;
    throw new ReceiptInvalid('key_invalid', `publicKey is not a valid ${wanted} public key`);
  }
}

function describeKeyType(jwk: JWK): string {
  const kty = typeof jwk.kty === 'string' ? `kty ${quoted(jwk.kty)}` : 'without kty';
  return typeof jwk.crv === 'string' ? `${kty} crv ${quoted(jwk.crv)}` : kty;
}

function modulusBits(n: unknown): number {
  if (typeof n !== 'string' || !isCanonicalBase64url(n)) return 0;
  const bytes = base64url.decode(n);
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  const first = bytes[i];
  return first === undefined ? 0 : (bytes.length - i - 1) * 8 + (32 - Math.clz32(first));
}

/** RFC 8032 §5.1.6: an Ed25519 signature is exactly 64 bytes. */
function checkEd25519Signature(signature: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (signature.length !== 64) throw new ReceiptInvalid('signature_malformed', `EdDSA signature is ${signature.length} bytes, not 64`);
  return signature;
}

/** P-256 scalars are 32 bytes. */
const P256_SCALAR_BYTES = 32;

/**
 * WebAuthn §6.5.6 signs ES256 as an ASN.1 DER `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`
 * (RFC 3279 §2.2.3); Web Crypto verifies the IEEE P1363 form r || s. Read strictly (X.690 §10):
 * definite short-form lengths, minimal positive non-zero INTEGERs, nothing after, so one
 * signature has one encoding.
 */
function derToP1363(der: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const malformed = (detail: string) => new ReceiptInvalid('signature_malformed', `ES256 signature is not strict DER: ${detail}`);
  if (der[0] !== 0x30) throw malformed('it does not start with a SEQUENCE');
  const length = der[1];
  // The content is at most 2 * (2 + 33) = 70 bytes, so DER allows only the short form.
  if (length === undefined || length > 0x7f) throw malformed('the SEQUENCE length is not a short-form length');
  if (2 + length !== der.length) throw malformed(`the SEQUENCE holds ${length} bytes but ${der.length - 2} follow`);
  const out = new Uint8Array(2 * P256_SCALAR_BYTES);
  let offset = 2;
  for (const [name, at] of [['r', 0], ['s', P256_SCALAR_BYTES]] as const) {
    if (der[offset] !== 0x02) throw malformed(`${name} is not an INTEGER`);
    const size = der[offset + 1];
    if (size === undefined || size === 0 || size > 0x7f || offset + 2 + size > der.length) throw malformed(`${name} has an invalid length`);
    let value = der.subarray(offset + 2, offset + 2 + size);
    const lead = value[0] ?? 0;
    if ((lead & 0x80) !== 0) throw malformed(`${name} is negative`);
    if (lead === 0 && size > 1) {
      if (((value[1] ?? 0) & 0x80) === 0) throw malformed(`${name} is not minimally encoded`);
      value = value.subarray(1);
    }
    if (value.length > P256_SCALAR_BYTES) throw malformed(`${name} is longer than ${P256_SCALAR_BYTES} bytes`);
    if (value.every((byte) => byte === 0)) throw malformed(`${name} is zero`);
    out.set(value, at + P256_SCALAR_BYTES - value.length);
    offset += 2 + size;
  }
  if (offset !== der.length) throw malformed('bytes follow s');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** The bytes of a field the receipt schema has already checked is canonical base64url. */
function bytesOf(field: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(base64url.decode(field));
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** A value from the receipt, quoted for a message: JSON escapes keep control characters out. */
function quoted(value: string): string {
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}

/** One short sentence for the first zod issue: `unknown field 'x' in agent`, or `path: message`. */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'invalid';
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((key) => `'${key}'`).join(', ');
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${keys}${where ? ` in ${where}` : ''}`;
  }
  return where ? `${where}: ${issue.message}` : issue.message;
}
