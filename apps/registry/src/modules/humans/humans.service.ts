import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { NotFoundException } from '@nestjs/common';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { isoBase64URL } from '@simplewebauthn/server/helpers';
import { approvalChallenge, type ApprovalReceipt, type Clock, InvalidRequest, randomId } from '@writ/core';
import {
  AddPasskeyOptionsSchema,
  type Confirmation,
  ConfirmationOptionsSchema,
  type ConfirmationPurpose,
  FinishSchema,
  humanError,
  NameSchema,
  RemovePasskeySchema,
  RenamePasskeySchema,
} from '@writ/contracts';
import type { JWK } from 'jose';
import type { z } from 'zod';
import type { RegistryConfig } from '../../config/config.js';
import type { Transaction } from '../../infra/transaction.js';
import type { AuditService } from '../audit/audit.service.js';
import { describeIssue } from '../validation.js';
import { type CeremonyEntity, type CeremonyKind, type HumanEntity, PasskeyEntity } from './human.entities.js';
import type { HumansRepository } from './humans.repository.js';
import {
  assertionCounter,
  checkClientData,
  checkCounter,
  coseToJwk,
  parseAuthenticationResponse,
  parseRegistrationResponse,
  secretHash,
  SUPPORTED_ALGORITHMS,
} from './webauthn.js';

/** The session cookie's name when the approval UI is served over plain http (local development). */
export const SESSION_COOKIE = 'writ_session';
/**
 * The session cookie's name when every UI origin is https. A `__Host-` cookie must be `Secure`,
 * `Path=/` and have no `Domain` (RFC 6265bis §4.1.3.2), so a sibling subdomain or a plain-http
 * page cannot plant or overwrite it (cookie tossing). Browsers refuse it without `Secure`, hence
 * the plain name on http://localhost.
 */
export const SECURE_SESSION_COOKIE = '__Host-writ_session';

/** The session cookie's name for these UI origins: `__Host-` whenever they are all https. */
export function sessionCookieName(uiOrigins: readonly string[]): string {
  return sessionCookieSecure(uiOrigins) ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
}

/** Whether the session cookie is `Secure`: every UI origin is https. */
export function sessionCookieSecure(uiOrigins: readonly string[]): boolean {
  return uiOrigins.length > 0 && uiOrigins.every((origin) => origin.startsWith('https:'));
}
/** A session lasts this long after sign-in. */
export const SESSION_TTL_MS = 12 * 3600_000;
/** A WebAuthn ceremony must be finished within this time. */
export const CEREMONY_TTL_MS = 5 * 60_000;

const PURPOSE_TEXT: Record<ConfirmationPurpose, string> = {
  add_passkey: 'add a passkey',
  enrollment_token: 'create an enrollment token',
  rename_passkey: 'rename a passkey',
  remove_passkey: 'remove a passkey',
};

/** A passkey as its owner sees it. */
export interface PasskeyView {
  id: string;
  label: string;
  created_at: string;
  last_used_at: string | null;
  backed_up: boolean;
  public_key: JWK;
}

export function passkeyView(p: PasskeyEntity): PasskeyView {
  return { id: p.id, label: p.label, created_at: p.created_at.toISOString(), last_used_at: p.last_used_at?.toISOString() ?? null, backed_up: p.backed_up, public_key: p.jwk };
}

/** 404 `not_found`: not one of the human's current passkeys (another's answers the same). */
export class PasskeyNotFound extends NotFoundException {
  constructor() {
    super('passkey not found');
  }
}

/** The first characters of a credential id: enough to tell passkeys apart in the audit chain. */
function shortId(credentialId: string): string {
  return credentialId.slice(0, 16);
}

/** A human as the API shows them. */
export interface HumanView {
  id: string;
  name: string;
}

/** A signed-in session: the cookie value (shown once, to set it) and its CSRF token. */
export interface StartedSession {
  human: HumanView;
  token: string;
  csrfToken: string;
  expiresAt: Date;
}

/** What a passkey assertion proved. */
export interface VerifiedAssertion {
  passkey: PasskeyEntity;
  response: AuthenticationResponseJSON;
}

export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new InvalidRequest('request body must be a JSON object');
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new InvalidRequest(describeIssue(parsed.error, body).text);
  return parsed.data;
}

/**
 * The CSRF token of a session: derived from the session cookie (which scripts cannot read), so
 * it needs no storage and changes with every session.
 */
export function csrfTokenOf(sessionToken: string): string {
  return secretHash(`writ-csrf:${sessionToken}`);
}

/** Constant-time string comparison. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function view(human: HumanEntity): HumanView {
  return { id: human.id, name: human.name };
}

export interface HumansServiceOptions {
  repository: HumansRepository;
  audit: AuditService;
  clock: Clock;
  config: Pick<RegistryConfig, 'rp' | 'uiOrigins'>;
}

/**
 * Humans: passkey sign-up (a new account and its first passkey), sign-in with a discoverable
 * passkey, more passkeys per account, cookie sessions, and the single-use challenges of every
 * WebAuthn ceremony (including the approval decisions, which {@link ApprovalsService} builds).
 * User verification is always required; signature counters are checked and stored.
 */
export class HumansService {
  private readonly repository: HumansRepository;
  private readonly audit: AuditService;
  private readonly clock: Clock;
  private readonly config: HumansServiceOptions['config'];

  constructor(options: HumansServiceOptions) {
    this.repository = options.repository;
    this.audit = options.audit;
    this.clock = options.clock;
    this.config = options.config;
  }

  /** Sign-up, step 1: options for a new passkey of a new account named `name`. */
  async beginRegistration(body: unknown): Promise<{ ceremony: string; options: PublicKeyCredentialCreationOptionsJSON }> {
    const { name } = parseBody(NameSchema, body);
    const userId = randomBytes(32);
    const options = await this.registrationOptions(name, userId, []);
    const ceremony = await this.saveCeremony('register', options.challenge, { data: { name, user_id: isoBase64URL.fromBuffer(userId) } });
    return { ceremony, options };
  }

  /** Sign-up, step 2: the attestation creates the account, its passkey and a session. */
  async finishRegistration(body: unknown): Promise<StartedSession> {
    const input = parseBody(FinishSchema, body);
    const ceremony = await this.consume(input.ceremony, 'register', null);
    const name = String(ceremony.data.name);
    const webauthnUserId = String(ceremony.data.user_id);
    const now = this.clock.now();
    const id = `usr_${randomId()}`;
    const passkey = await this.verifyAttestation(input.response, ceremony.challenge, id, input.label);
    // The sign-up passkey is acknowledged by making it: only later ones are announced.
    const human = { id, name, webauthn_user_id: webauthnUserId, created_at: new Date(now), passkey_notice_at: passkey.created_at };
    return this.repository.transaction(async (tx) => {
      await this.repository.insertHuman(human, tx);
      await this.repository.insertPasskey(passkey, tx);
      await this.audit.append({ type: 'human.registered', actor: human.id, subject: human.id, data: { name, passkey: passkey.id.slice(0, 16) } }, tx);
      return this.startSession(tx, human);
    });
  }

  /** Sign-in, step 1: options for any of this RP's discoverable passkeys. */
  async beginLogin(): Promise<{ ceremony: string; options: PublicKeyCredentialRequestOptionsJSON }> {
    const options = await generateAuthenticationOptions({ rpID: this.config.rp.id, userVerification: 'required', timeout: CEREMONY_TTL_MS });
    const ceremony = await this.saveCeremony('login', options.challenge, {});
    return { ceremony, options };
  }

  /** Sign-in, step 2: the assertion names its passkey, whose human gets a session. */
  async finishLogin(body: unknown): Promise<StartedSession> {
    const input = parseBody(FinishSchema.omit({ label: true }), body);
    const ceremony = await this.consume(input.ceremony, 'login', null);
    const { passkey } = await this.verifyAssertion(input.response, { challenge: ceremony.challenge, humanId: null, what: 'this sign-in challenge' });
    return this.repository.transaction(async (tx) => {
      const human = await this.existingHuman(passkey.human_id, tx);
      await this.audit.append({ type: 'human.signed_in', actor: human.id, subject: human.id, data: { passkey: passkey.id.slice(0, 16) } }, tx);
      return this.startSession(tx, human);
    });
  }

  /**
   * A fresh passkey confirmation, step 1: request options over the human's passkeys, with user
   * verification required, whose challenge is stored (single use, {@link CEREMONY_TTL_MS}) with
   * its purpose and the session that asked for it.
   */
  async beginConfirmation(humanId: string, sessionToken: string, body: unknown): Promise<{ ceremony: string; options: PublicKeyCredentialRequestOptionsJSON }> {
    const { purpose } = parseBody(ConfirmationOptionsSchema, body ?? {});
    const passkeys = await this.passkeysOf(humanId);
    if (passkeys.length === 0) throw humanError('no_passkey');
    const options = await generateAuthenticationOptions({
      rpID: this.config.rp.id,
      allowCredentials: passkeys.map((p) => ({ id: p.id, transports: p.transports })),
      userVerification: 'required',
      timeout: CEREMONY_TTL_MS,
    });
    const ceremony = await this.saveCeremony('confirmation', options.challenge, { humanId, data: { purpose, session: secretHash(sessionToken) } });
    return { ceremony, options };
  }

  /**
   * A fresh passkey confirmation, step 2, checked as part of the action it allows: the ceremony
   * must be this human's and this session's, for `purpose`, unexpired (so the assertion is at most
   * {@link CEREMONY_TTL_MS} old), and it is deleted before the assertion is checked, so it is
   * compared once. The assertion must verify, with user verification, under one of the human's
   * current passkeys. A session cookie alone never passes (ADR 0018).
   */
  async confirm(humanId: string, sessionToken: string, purpose: ConfirmationPurpose, confirmation: Confirmation | undefined): Promise<PasskeyEntity> {
    if (confirmation === undefined) {
      throw humanError('confirmation_required', { purpose: PURPOSE_TEXT[purpose] });
    }
    const now = this.clock.now();
    const ceremony = await this.repository.transaction(async (tx) => {
      const row = await this.repository.lockCeremony(confirmation.ceremony, tx);
      if (!row || row.kind !== 'confirmation' || row.human_id !== humanId) throw humanError('confirmation_unknown');
      await this.repository.deleteCeremony(row.id, tx);
      return row;
    });
    if (ceremony.expires_at.getTime() <= now) throw humanError('confirmation_expired');
    if (ceremony.data.session !== secretHash(sessionToken)) throw humanError('confirmation_other_session');
    if (ceremony.data.purpose !== purpose) {
      throw humanError('confirmation_other_purpose', { made: PURPOSE_TEXT[ceremony.data.purpose as ConfirmationPurpose] ?? 'do something else', purpose: PURPOSE_TEXT[purpose] });
    }
    const { passkey } = await this.verifyAssertion(confirmation.response, { challenge: ceremony.challenge, humanId, what: 'this confirmation challenge' });
    return passkey;
  }

  /**
   * Another passkey for a signed-in human, step 1: only with a fresh confirmation from one of the
   * passkeys they already have, so a stolen session cookie cannot add the thief's (ADR 0018).
   */
  async beginAddPasskey(humanId: string, sessionToken: string, body: unknown): Promise<{ ceremony: string; options: PublicKeyCredentialCreationOptionsJSON }> {
    const { confirmation } = parseBody(AddPasskeyOptionsSchema, body ?? {});
    const confirmedWith = await this.confirm(humanId, sessionToken, 'add_passkey', confirmation);
    const human = await this.existingHuman(humanId);
    // Removed passkeys stay excluded too: their credentials are still registered.
    const existing = await this.repository.allPasskeys(humanId);
    const options = await this.registrationOptions(human.name, isoBase64URL.toBuffer(human.webauthn_user_id), existing);
    const ceremony = await this.saveCeremony('add_passkey', options.challenge, { humanId, data: { session: secretHash(sessionToken), confirmed_with: confirmedWith.id } });
    return { ceremony, options };
  }

  /** Another passkey for a signed-in human, step 2, in the session that confirmed step 1. */
  async finishAddPasskey(humanId: string, sessionToken: string, body: unknown): Promise<PasskeyEntity> {
    const input = parseBody(FinishSchema, body);
    const ceremony = await this.consume(input.ceremony, 'add_passkey', humanId);
    const session = secretHash(sessionToken);
    if (ceremony.data.session !== session) throw humanError('ceremony_other_session');
    const passkey = await this.verifyAttestation(input.response, ceremony.challenge, humanId, input.label);
    passkey.added_in_session = session;
    await this.repository.transaction(async (tx) => {
      await this.repository.insertPasskey(passkey, tx);
      await this.audit.append(
        {
          type: 'human.passkey_added',
          actor: humanId,
          subject: humanId,
          data: { passkey: shortId(passkey.id), label: passkey.label, confirmed_with: shortId(String(ceremony.data.confirmed_with)) },
        },
        tx,
      );
    });
    return passkey;
  }

  /** Renames one of the human's passkeys, with a fresh confirmation. */
  async renamePasskey(humanId: string, sessionToken: string, passkeyId: string, body: unknown): Promise<PasskeyEntity> {
    const { label, confirmation } = parseBody(RenamePasskeySchema, body);
    await this.ownPasskey(humanId, passkeyId);
    const confirmedWith = await this.confirm(humanId, sessionToken, 'rename_passkey', confirmation);
    return this.repository.transaction(async (tx) => {
      const passkey = await this.repository.lockPasskey(passkeyId, tx);
      if (!passkey || passkey.human_id !== humanId || passkey.removed_at !== null) throw new PasskeyNotFound();
      const previous = passkey.label;
      passkey.label = label;
      await this.repository.updatePasskey(passkeyId, { label }, tx);
      await this.audit.append(
        { type: 'human.passkey_renamed', actor: humanId, subject: humanId, data: { passkey: shortId(passkeyId), from: previous, to: label, confirmed_with: shortId(confirmedWith.id) } },
        tx,
      );
      return passkey;
    });
  }

  /**
   * Removes one of the human's passkeys, with a fresh confirmation, never the last one (the
   * account would be lost). The row stays, marked removed: the receipts it signed still verify
   * offline with its public key, but it can neither sign in nor sign anything more.
   */
  async removePasskey(humanId: string, sessionToken: string, passkeyId: string, body: unknown): Promise<void> {
    const { confirmation } = parseBody(RemovePasskeySchema, body ?? {});
    await this.ownPasskey(humanId, passkeyId);
    const confirmedWith = await this.confirm(humanId, sessionToken, 'remove_passkey', confirmation);
    await this.repository.transaction(async (tx) => {
      // Every current passkey locked, so two removals at once cannot leave none.
      const current = await this.repository.lockCurrentPasskeys(humanId, tx);
      if (!current.some((p) => p.id === passkeyId)) throw new PasskeyNotFound();
      if (current.length <= 1) throw humanError('last_passkey');
      await this.repository.updatePasskey(passkeyId, { removed_at: new Date(this.clock.now()) }, tx);
      await this.audit.append({ type: 'human.passkey_removed', actor: humanId, subject: humanId, data: { passkey: shortId(passkeyId), confirmed_with: shortId(confirmedWith.id) } }, tx);
    });
  }

  /**
   * The passkeys added since the human last acknowledged new ones, other than those added in
   * this very session: what "A passkey was added" warns about on their next visit.
   */
  async passkeyNotice(humanId: string, sessionToken: string): Promise<PasskeyEntity[]> {
    const human = await this.existingHuman(humanId);
    const session = secretHash(sessionToken);
    const rows = await this.passkeysOf(humanId);
    return rows.filter((p) => p.created_at.getTime() > human.passkey_notice_at.getTime() && p.added_in_session !== session);
  }

  /** The human has seen the notice: passkeys added until now are no longer announced. */
  async dismissPasskeyNotice(humanId: string): Promise<void> {
    await this.repository.setPasskeyNoticeAt(humanId, new Date(this.clock.now()));
  }

  /**
   * Sign out everywhere: every live session of the human ends, this one included. Needs no
   * passkey confirmation: it only takes access away (ADR 0018).
   */
  async endAllSessions(humanId: string): Promise<number> {
    return this.repository.transaction(async (tx) => {
      const ended = await this.repository.endAllSessions(humanId, new Date(this.clock.now()), tx);
      await this.audit.append({ type: 'human.signed_out_everywhere', actor: humanId, subject: humanId, data: { sessions: ended } }, tx);
      return ended;
    });
  }

  /** 404 for a passkey that is not the human's current one (another's answers the same). */
  private async ownPasskey(humanId: string, passkeyId: string): Promise<void> {
    if (!(await this.repository.ownsCurrentPasskey(humanId, passkeyId))) throw new PasskeyNotFound();
  }

  /** The human behind a session cookie, or null when it is unknown, ended or expired. */
  async session(token: string): Promise<{ human: HumanView; csrfToken: string } | null> {
    const row = await this.repository.sessionOfHuman(secretHash(token));
    if (!row || row.endedAt !== null || row.expiresAt.getTime() <= this.clock.now()) return null;
    return { human: view(row.human), csrfToken: csrfTokenOf(token) };
  }

  /** Ends a session (sign-out); an unknown one is already ended. */
  async endSession(token: string): Promise<void> {
    await this.repository.endSession(secretHash(token), new Date(this.clock.now()));
  }

  /** The human's current passkeys (not removed), oldest first. */
  passkeysOf(humanId: string): Promise<PasskeyEntity[]> {
    return this.repository.currentPasskeys(humanId);
  }

  /** A passkey by credential id, removed or not (what signed a receipt); null if unknown. */
  findPasskey(credentialId: string): Promise<PasskeyEntity | null> {
    return this.repository.findPasskey(credentialId);
  }

  /** Every human, newest first (for the operator). */
  list(): Promise<HumanEntity[]> {
    return this.repository.listHumans(1000);
  }

  /** A human by id, or null. */
  find(humanId: string): Promise<HumanEntity | null> {
    return this.repository.findHuman(humanId);
  }

  /** A human known to exist (a session's, a passkey's). */
  private async existingHuman(humanId: string, tx?: Transaction): Promise<HumanEntity> {
    const human = await this.repository.findHuman(humanId, tx);
    if (!human) throw new Error(`human ${humanId} is not stored`);
    return human;
  }

  /**
   * Stores a single-use challenge for a ceremony and answers its id. Expired ceremonies are swept
   * here, so unauthenticated sign-in attempts cannot grow the table without bound.
   */
  async saveCeremony(
    kind: CeremonyKind,
    challenge: string,
    extra: { humanId?: string; grantId?: string; document?: string; data?: Record<string, unknown> },
  ): Promise<string> {
    const now = this.clock.now();
    const id = `cer_${randomId()}`;
    await this.repository.deleteCeremoniesExpiredBefore(new Date(now - CEREMONY_TTL_MS));
    await this.repository.insertCeremony({
      id,
      kind,
      challenge,
      human_id: extra.humanId ?? null,
      grant_id: extra.grantId ?? null,
      document: extra.document ?? null,
      data: extra.data ?? {},
      expires_at: new Date(now + CEREMONY_TTL_MS),
      used_at: null,
    });
    return id;
  }

  /**
   * Uses a ceremony up: it must exist, be of `kind`, belong to `humanId` (null: to nobody yet),
   * be unused and unexpired. It is spent even if the response then fails, so a challenge is
   * never answered twice.
   */
  async consume(id: string, kind: CeremonyKind, humanId: string | null): Promise<CeremonyEntity> {
    const now = this.clock.now();
    return this.repository.transaction(async (tx) => {
      const ceremony = await this.repository.lockCeremony(id, tx);
      // Another human's ceremony, or one for something else, answers as an unknown one.
      if (!ceremony || ceremony.kind !== kind || ceremony.human_id !== humanId) throw humanError('ceremony_unknown');
      if (ceremony.used_at !== null) throw humanError('ceremony_used');
      if (ceremony.expires_at.getTime() <= now) throw humanError('ceremony_expired');
      await this.repository.markCeremonyUsed(id, new Date(now), tx);
      return ceremony;
    });
  }

  /**
   * Step 1 of a signed decision (a grant's or a step-up's): WebAuthn request options over the
   * human's passkeys whose challenge is the 32 bytes of SHA-256(`documentText`), so the signature
   * commits to the document, stored as a single-use ceremony with the document.
   */
  async beginSigning(
    kind: 'decision' | 'step_up_decision',
    humanId: string,
    documentText: string,
    extra: { grantId: string; data: Record<string, unknown> },
  ): Promise<{ ceremony: string; options: PublicKeyCredentialRequestOptionsJSON }> {
    const passkeys = await this.passkeysOf(humanId);
    if (passkeys.length === 0) throw humanError('no_passkey');
    const options = await generateAuthenticationOptions({
      rpID: this.config.rp.id,
      challenge: createHash('sha256').update(documentText).digest(),
      allowCredentials: passkeys.map((p) => ({ id: p.id, transports: p.transports })),
      userVerification: 'required',
      timeout: CEREMONY_TTL_MS,
    });
    const ceremony = await this.saveCeremony(kind, options.challenge, { humanId, grantId: extra.grantId, document: documentText, data: extra.data });
    return { ceremony, options };
  }

  /**
   * Step 2 of a signed decision: the document sent back must be exactly the one issued with the
   * (already consumed) ceremony, and the assertion must sign it with one of `humanId`'s passkeys.
   * Answers the passkey and the receipt, for the caller to check offline and apply.
   */
  async finishSigning(ceremony: CeremonyEntity, documentText: string, response: unknown, humanId: string, what: string): Promise<{ passkey: PasskeyEntity; receipt: ApprovalReceipt }> {
    if (documentText !== ceremony.document) throw humanError('document_changed', { document: what });
    const challenge = await approvalChallenge(documentText);
    // Always equal (the ceremony stored both); checked so the receipt's meaning never rests on storage alone.
    if (challenge !== ceremony.challenge) throw humanError('challenge_mismatch', { document: what });
    const { passkey, response: signed } = await this.verifyAssertion(response, { challenge, humanId, what: `this ${what}` });
    return {
      passkey,
      receipt: {
        document: documentText,
        credential_id: signed.id,
        authenticator_data: signed.response.authenticatorData,
        client_data_json: signed.response.clientDataJSON,
        signature: signed.response.signature,
        user_handle: signed.response.userHandle ?? null,
      },
    };
  }

  /**
   * Verifies a passkey assertion against `challenge`: client data (type, challenge, origin),
   * then the library's checks (RP ID hash, user presence and verification, signature), then the
   * counter. The passkey must be `humanId`'s when given. Stores the new counter.
   */
  async verifyAssertion(raw: unknown, expected: { challenge: string; humanId: string | null; what: string }): Promise<VerifiedAssertion> {
    const response = parseAuthenticationResponse(raw);
    checkClientData(response.response.clientDataJSON, { type: 'webauthn.get', challenge: expected.challenge, origins: this.config.uiOrigins, what: expected.what });
    return this.repository.transaction(async (tx) => {
      const passkey = await this.repository.lockPasskey(response.id, tx);
      if (!passkey || (expected.humanId !== null && passkey.human_id !== expected.humanId)) throw humanError('passkey_unknown');
      if (passkey.removed_at !== null) throw humanError('passkey_removed');
      checkCounter(passkey.counter, assertionCounter(response.response.authenticatorData));
      let verification: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
      try {
        verification = await verifyAuthenticationResponse({
          response,
          expectedChallenge: expected.challenge,
          expectedOrigin: this.config.uiOrigins,
          expectedRPID: this.config.rp.id,
          credential: { id: passkey.id, publicKey: isoBase64URL.toBuffer(passkey.public_key), counter: passkey.counter, transports: passkey.transports },
          requireUserVerification: true,
        });
      } catch (error) {
        throw humanError('passkey_refused', { ceremony: 'assertion', reason: error instanceof Error ? error.message : String(error) });
      }
      if (!verification.verified) throw humanError('passkey_refused', { ceremony: 'assertion', reason: 'the signature does not verify' });
      passkey.counter = verification.authenticationInfo.newCounter;
      passkey.last_used_at = new Date(this.clock.now());
      await this.repository.updatePasskey(passkey.id, { counter: passkey.counter, last_used_at: passkey.last_used_at }, tx);
      return { passkey, response };
    });
  }

  private registrationOptions(name: string, userId: Uint8Array, exclude: PasskeyEntity[]): Promise<PublicKeyCredentialCreationOptionsJSON> {
    return generateRegistrationOptions({
      rpName: this.config.rp.name,
      rpID: this.config.rp.id,
      userName: name,
      userDisplayName: name,
      userID: userId as Uint8Array<ArrayBuffer>,
      attestationType: 'none',
      timeout: CEREMONY_TTL_MS,
      excludeCredentials: exclude.map((p) => ({ id: p.id, transports: p.transports })),
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
      supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
    });
  }

  /** Verifies a registration response and returns the passkey row to insert. */
  private async verifyAttestation(raw: unknown, challenge: string, humanId: string, label: string | undefined): Promise<PasskeyEntity> {
    const response = parseRegistrationResponse(raw);
    checkClientData(response.response.clientDataJSON, { type: 'webauthn.create', challenge, origins: this.config.uiOrigins, what: 'this registration challenge' });
    let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verification = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.config.uiOrigins,
        expectedRPID: this.config.rp.id,
        requireUserVerification: true,
        supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
      });
    } catch (error) {
      throw humanError('passkey_refused', { ceremony: 'registration', reason: error instanceof Error ? error.message : String(error) });
    }
    if (!verification.verified) throw humanError('passkey_refused', { ceremony: 'registration', reason: 'the attestation does not verify' });
    const { credential, credentialBackedUp } = verification.registrationInfo;
    if (await this.repository.passkeyExists(credential.id)) throw humanError('passkey_already_registered');
    const now = new Date(this.clock.now());
    return Object.assign(new PasskeyEntity(), {
      id: credential.id,
      human_id: humanId,
      public_key: isoBase64URL.fromBuffer(credential.publicKey),
      jwk: coseToJwk(credential.publicKey),
      counter: credential.counter,
      transports: credential.transports ?? [],
      backed_up: credentialBackedUp,
      label: label ?? `passkey added ${now.toISOString().slice(0, 10)}`,
      created_at: now,
      last_used_at: null,
      removed_at: null,
      added_in_session: null,
    });
  }

  private async startSession(tx: Transaction, human: HumanEntity): Promise<StartedSession> {
    const token = randomBytes(32).toString('base64url');
    const now = this.clock.now();
    const expiresAt = new Date(now + SESSION_TTL_MS);
    await this.repository.insertSession({ token_hash: secretHash(token), human_id: human.id, created_at: new Date(now), expires_at: expiresAt, ended_at: null }, tx);
    return { human: view(human), token, csrfToken: csrfTokenOf(token), expiresAt };
  }
}
