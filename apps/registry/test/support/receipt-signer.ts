import { approvalChallenge, approvalDocumentText, sha256, utf8, type ApprovalDocument, type ApprovalReceipt } from '@writ/core';
import { base64url, type JWK } from 'jose';

/** WebAuthn §6.1 flags: user present, user verified. */
export const FLAG_UP = 0x01;
export const FLAG_UV = 0x04;

/** An approval document for tests; `overrides` replace top-level fields. */
export function approvalDocument(overrides: Partial<ApprovalDocument> = {}): ApprovalDocument {
  return {
    decision: 'approve',
    grant_id: 'grt_receipt_1',
    version: 2,
    subject: 'usr_alice',
    agent: { client_id: 'agt_planner', name: 'planner' },
    service: { id: 'svc_flights', uri: 'https://flights.example' },
    authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example'], actions: ['read', 'book'] }],
    envelope: { rate: { limit: 60, window_s: 60 }, amount: { currency: 'EUR', per_request_max: 200, total_max: 500 } },
    purpose: 'Book my flight to Lisbon',
    delegation: { max_depth: 1 },
    expires_at: '2026-11-26T09:00:00.000Z',
    nonce: 'Zm9yLXRoZS1yZWNlaXB0LWNsaQ',
    ...overrides,
  };
}

/** What one assertion may differ in, to build receipts a verifier must refuse. */
export interface ReceiptAssertion {
  rpId?: string;
  flags?: number;
  counter?: number;
  /** Members that replace or extend the client data (`type`, `origin`, `challenge`, `crossOrigin`). */
  clientData?: Record<string, unknown>;
}

export type ReceiptSignerAlg = 'ES256' | 'EdDSA' | 'RS256';

const PARAMS: Record<ReceiptSignerAlg, { generate: EcKeyGenParams | RsaHashedKeyGenParams | Algorithm; sign: Algorithm | EcdsaParams }> = {
  ES256: { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  EdDSA: { generate: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
  RS256: {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

/** X.690 DER INTEGER of big-endian unsigned bytes: minimal, with a 0x00 pad when the top bit is set. */
function derInteger(bytes: Uint8Array): number[] {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const value = [...bytes.subarray(start)];
  if ((value[0] ?? 0) & 0x80) value.unshift(0);
  return [0x02, value.length, ...value];
}

/** WebAuthn §6.5.6: an ES256 assertion signature is DER `SEQUENCE { r, s }`; Web Crypto gives r || s. */
function p1363ToDer(raw: Uint8Array): Uint8Array {
  const content = [...derInteger(raw.subarray(0, 32)), ...derInteger(raw.subarray(32))];
  return new Uint8Array([0x30, content.length, ...content]);
}

/**
 * A software passkey that signs approval documents as a browser's `navigator.credentials.get`
 * would (WebAuthn §6.3.3), and returns the receipt the registry stores.
 */
export class ReceiptSigner {
  private constructor(
    readonly alg: ReceiptSignerAlg,
    private readonly privateKey: CryptoKey,
    /** The passkey's public key, as `GET /me/passkeys` shows it. */
    readonly publicJwk: JWK,
    readonly rpId: string,
    readonly origin: string,
    private readonly credentialId = crypto.getRandomValues(new Uint8Array(16)),
    private readonly userHandle = crypto.getRandomValues(new Uint8Array(32)),
  ) {}

  static async create(options: { alg?: ReceiptSignerAlg; rpId?: string; origin?: string } = {}): Promise<ReceiptSigner> {
    const alg = options.alg ?? 'ES256';
    const pair = (await crypto.subtle.generateKey(PARAMS[alg].generate, true, ['sign', 'verify'])) as CryptoKeyPair;
    const { kty, crv, x, y, n, e } = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as JWK;
    const publicJwk = Object.fromEntries(Object.entries({ kty, crv, x, y, n, e, alg }).filter(([, v]) => v !== undefined)) as JWK;
    return new ReceiptSigner(alg, pair.privateKey, publicJwk, options.rpId ?? 'localhost', options.origin ?? 'http://localhost:3000');
  }

  /** Signs a document (or a document text, as is) and returns its receipt. */
  async sign(document: ApprovalDocument | string, assertion: ReceiptAssertion = {}): Promise<ApprovalReceipt> {
    const text = typeof document === 'string' ? document : approvalDocumentText(document);
    // WebAuthn §6.1: rpIdHash (32) || flags (1) || signCount (4, big-endian).
    const authenticatorData = new Uint8Array(37);
    authenticatorData.set(await sha256(assertion.rpId ?? this.rpId));
    authenticatorData[32] = assertion.flags ?? FLAG_UP | FLAG_UV;
    new DataView(authenticatorData.buffer).setUint32(33, assertion.counter ?? 1, false);
    const clientDataJson = utf8(
      JSON.stringify({ type: 'webauthn.get', challenge: await approvalChallenge(text), origin: this.origin, crossOrigin: false, ...assertion.clientData }),
    );
    const clientDataHash = await sha256(clientDataJson);
    const signed = new Uint8Array(authenticatorData.length + clientDataHash.length);
    signed.set(authenticatorData);
    signed.set(clientDataHash, authenticatorData.length);
    const raw = new Uint8Array(await crypto.subtle.sign(PARAMS[this.alg].sign, this.privateKey, signed));
    return {
      document: text,
      credential_id: base64url.encode(this.credentialId),
      authenticator_data: base64url.encode(authenticatorData),
      client_data_json: base64url.encode(clientDataJson),
      signature: base64url.encode(this.alg === 'ES256' ? p1363ToDer(raw) : raw),
      user_handle: base64url.encode(this.userHandle),
    };
  }
}
