import { base64url, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ApprovalDocumentSchema,
  ApprovalReceiptSchema,
  ReceiptInvalid,
  approvalChallenge,
  approvalDocumentText,
  approvalReceiptHash,
  parseApprovalDocument,
  parseStepUpDocument,
  stepUpDocumentText,
  verifyApprovalReceipt,
  verifyStepUpReceipt,
  type ApprovalDocument,
  type StepUpDocument,
  type ApprovalReceipt,
  type ReceiptInvalidReason,
  type VerifyReceiptOptions,
} from './approval.js';
import { canonicalJson, sha256, utf8 } from './encoding.js';
import { OAuthError } from './errors.js';

const RP_ID = 'writ.example';
const ORIGIN = 'https://writ.example';
const UP = 0x01;
const UV = 0x04;

const DOCUMENT: ApprovalDocument = {
  decision: 'approve',
  grant_id: 'grt_1',
  version: 3,
  subject: 'usr_1',
  agent: { client_id: 'agt_1', name: 'planner' },
  service: { id: 'svc_1', uri: 'https://flights.example' },
  authorization_details: [{ type: 'flight_booking', locations: ['https://flights.example'], actions: ['read', 'book'] }],
  envelope: { rate: { limit: 60, window_s: 60 }, amount: { currency: 'EUR', total_max: 500 } },
  purpose: 'Book my flight to Lisbon',
  delegation: { max_depth: 1 },
  expires_at: '2026-11-25T10:00:00.000Z',
  nonce: 'bm9uY2Utb2YtdGhlLWRvY3VtZW50',
};
const TEXT = approvalDocumentText(DOCUMENT);

// ---------------------------------------------------------------------------------------------
// A software authenticator: what a passkey does for navigator.credentials.get (WebAuthn §6.3.3).

type Alg = 'ES256' | 'EdDSA' | 'RS256';

/** What a test may change in the assertion it makes. */
interface Assertion {
  rpId?: string;
  flags?: number;
  counter?: number;
  clientData?: Record<string, unknown>;
}

interface Authenticator {
  alg: Alg;
  publicJwk: JWK;
  privateJwk: JWK;
  /** The raw Web Crypto signature (P1363 r || s for ES256) over `data`. */
  rawSign(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>>;
  sign(document: string, assertion?: Assertion): Promise<ApprovalReceipt>;
}

const KEY_PARAMS: Record<Alg, { generate: EcKeyGenParams | RsaHashedKeyGenParams | Algorithm; sign: Algorithm | EcdsaParams }> = {
  ES256: { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  EdDSA: { generate: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
  RS256: {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

/** X.690 DER of a non-negative integer given as big-endian bytes: minimal, with a 0x00 pad when the top bit is set. */
function derInteger(bytes: Uint8Array): number[] {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const value = [...bytes.subarray(start)];
  if ((value[0] ?? 0) & 0x80) value.unshift(0);
  return [0x02, value.length, ...value];
}

function derSequence(...parts: number[][]): Uint8Array<ArrayBuffer> {
  const content = parts.flat();
  return new Uint8Array([0x30, content.length, ...content]);
}

/** WebAuthn §6.5.6: ES256 assertions carry the DER form of the ECDSA signature. */
function p1363ToDer(raw: Uint8Array): Uint8Array<ArrayBuffer> {
  return derSequence(derInteger(raw.subarray(0, 32)), derInteger(raw.subarray(32)));
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

async function softwareAuthenticator(alg: Alg): Promise<Authenticator> {
  const params = KEY_PARAMS[alg];
  const pair = (await crypto.subtle.generateKey(params.generate, true, ['sign', 'verify'])) as CryptoKeyPair;
  const publicJwk = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as JWK;
  const privateJwk = (await crypto.subtle.exportKey('jwk', pair.privateKey)) as JWK;
  const rawSign = async (data: Uint8Array<ArrayBuffer>) => new Uint8Array(await crypto.subtle.sign(params.sign, pair.privateKey, data));
  const credentialId = crypto.getRandomValues(new Uint8Array(16));
  const userHandle = crypto.getRandomValues(new Uint8Array(32));
  return {
    alg,
    publicJwk,
    privateJwk,
    rawSign,
    async sign(document, assertion = {}) {
      // WebAuthn §6.1: rpIdHash (32) || flags (1) || signCount (4, big-endian).
      const authenticatorData = new Uint8Array(37);
      authenticatorData.set(await sha256(assertion.rpId ?? RP_ID));
      authenticatorData[32] = assertion.flags ?? UP | UV;
      new DataView(authenticatorData.buffer).setUint32(33, assertion.counter ?? 42, false);
      const clientDataJson = utf8(
        JSON.stringify({
          type: 'webauthn.get',
          challenge: await approvalChallenge(document),
          origin: ORIGIN,
          crossOrigin: false,
          ...assertion.clientData,
        }),
      );
      const raw = await rawSign(concat(authenticatorData, await sha256(clientDataJson)));
      return {
        document,
        credential_id: base64url.encode(credentialId),
        authenticator_data: base64url.encode(authenticatorData),
        client_data_json: base64url.encode(clientDataJson),
        signature: base64url.encode(alg === 'ES256' ? p1363ToDer(raw) : raw),
        user_handle: base64url.encode(userHandle),
      };
    },
  };
}

const ALGS = ['ES256', 'EdDSA', 'RS256'] as const;

/** The human's passkey for each algorithm, and another passkey of the same kind. */
let authenticators: Record<Alg, Authenticator>;
let others: Record<Alg, Authenticator>;

beforeAll(async () => {
  const made = await Promise.all([...ALGS, ...ALGS].map(softwareAuthenticator));
  authenticators = { ES256: made[0]!, EdDSA: made[1]!, RS256: made[2]! };
  others = { ES256: made[3]!, EdDSA: made[4]!, RS256: made[5]! };
});

function optionsFor(authenticator: Authenticator, extra: Partial<VerifyReceiptOptions> = {}): VerifyReceiptOptions {
  return { publicKey: authenticator.publicJwk, rpId: RP_ID, origins: ['http://localhost:3000', ORIGIN], ...extra };
}

async function expectInvalid(promise: Promise<unknown>, reason: ReceiptInvalidReason, message: string): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ReceiptInvalid);
  expect({ reason: (error as ReceiptInvalid).reason, message: (error as ReceiptInvalid).message }).toEqual({ reason, message });
}

/** Re-encodes a receipt field's bytes after `change`. */
function withBytes(receipt: ApprovalReceipt, field: 'authenticator_data' | 'signature', change: (bytes: Uint8Array) => Uint8Array): ApprovalReceipt {
  return { ...receipt, [field]: base64url.encode(change(base64url.decode(receipt[field]))) };
}

// ---------------------------------------------------------------------------------------------

describe('approvalDocumentText', () => {
  it('is the RFC 8785 text, whatever order the document was written in', () => {
    const reordered = Object.fromEntries(Object.entries(DOCUMENT).reverse()) as unknown as ApprovalDocument;
    expect(approvalDocumentText(reordered)).toBe(TEXT);
    expect(TEXT).toBe(canonicalJson(DOCUMENT));
    expect(TEXT.startsWith('{"agent":{"client_id":"agt_1","name":"planner"},"authorization_details":[')).toBe(true);
  });

  it('refuses to write a document nobody could verify', () => {
    expect(() => approvalDocumentText({ ...DOCUMENT, extra: 1 } as ApprovalDocument)).toThrow(new TypeError("approval document is malformed: unknown field 'extra'"));
    expect(() => approvalDocumentText({ ...DOCUMENT, decision: 'maybe' } as unknown as ApprovalDocument)).toThrow(
      'approval document is malformed: decision: Invalid option: expected one of "approve"|"deny"',
    );
  });
});

describe('parseApprovalDocument', () => {
  it('reads back the document it was written from', () => {
    expect(parseApprovalDocument(TEXT)).toEqual(DOCUMENT);
    const delegated = { ...DOCUMENT, decision: 'deny' as const, delegation: { max_depth: 2, allowed_agents: ['agt_2'] } };
    expect(parseApprovalDocument(approvalDocumentText(delegated))).toEqual(delegated);
  });

  it.each([
    ['whitespace', JSON.stringify(DOCUMENT, null, 2)],
    ['another key order', JSON.stringify(DOCUMENT)],
    ['a duplicate key', TEXT.replace('{"agent"', '{"decision":"deny","agent"')],
    ['an escaped character JCS writes plainly', TEXT.replace('planner', 'pl\\u0061nner')],
  ])('refuses a document text with %s as not canonical', (_name, text) => {
    expect(() => parseApprovalDocument(text)).toThrow(new ReceiptInvalid('document_not_canonical', 'approval document is not in RFC 8785 canonical form'));
    try {
      parseApprovalDocument(text);
    } catch (e) {
      expect((e as ReceiptInvalid).reason).toBe('document_not_canonical');
    }
  });

  it.each([
    ['text that is not JSON', TEXT.slice(0, -1), 'approval document is not JSON'],
    ['an unknown field', canonicalJson({ ...DOCUMENT, approved_by: 'me' }), "approval document is malformed: unknown field 'approved_by'"],
    ['an unknown field deep inside', canonicalJson({ ...DOCUMENT, agent: { ...DOCUMENT.agent, admin: true } }), "approval document is malformed: unknown field 'admin' in agent"],
    ['a missing nonce', canonicalJson({ ...DOCUMENT, nonce: undefined }), 'approval document is malformed: nonce: Invalid input: expected string, received undefined'],
    ['a negative version', canonicalJson({ ...DOCUMENT, version: -1 }), 'approval document is malformed: version: Too small: expected number to be >=0'],
    ['an expiry that is not a date', canonicalJson({ ...DOCUMENT, expires_at: 'tomorrow' }), 'approval document is malformed: expires_at: Invalid ISO datetime'],
    ['an array', '[]', 'approval document is malformed: Invalid input: expected object, received array'],
    ['a text over 1 MiB', `"${'a'.repeat(1 << 20)}"`, 'approval document is longer than 1048576 characters'],
  ])('refuses %s as malformed', (_name, text, message) => {
    let error: unknown;
    try {
      parseApprovalDocument(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ReceiptInvalid);
    expect([(error as ReceiptInvalid).reason, (error as ReceiptInvalid).message]).toEqual(['document_malformed', message]);
  });

  it('is strict about capabilities and envelope as their own schemas are', () => {
    expect(ApprovalDocumentSchema.safeParse({ ...DOCUMENT, envelope: { rate: { limit: 0, window_s: 60 } } }).success).toBe(false);
    expect(ApprovalDocumentSchema.safeParse({ ...DOCUMENT, authorization_details: [] }).success).toBe(false);
  });
});

describe('approvalChallenge', () => {
  it('is the base64url SHA-256 of the UTF-8 document text', async () => {
    expect(await approvalChallenge('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
    expect(await approvalChallenge(TEXT)).toBe(base64url.encode(await sha256(utf8(TEXT))));
  });
});

describe('approvalReceiptHash', () => {
  const receipt: ApprovalReceipt = {
    document: TEXT,
    credential_id: 'Y3JlZA',
    authenticator_data: 'YXV0aA',
    client_data_json: 'Y2xpZW50',
    signature: 'c2ln',
    user_handle: 'dXNlcg',
  };

  it('is the base64url SHA-256 of the receipt in canonical JSON, whatever the key order', async () => {
    const hash = await approvalReceiptHash(receipt);
    expect(hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(hash).toBe(base64url.encode(await sha256(canonicalJson(receipt))));
    const reversed = Object.fromEntries(Object.entries(receipt).reverse()) as unknown as ApprovalReceipt;
    expect(await approvalReceiptHash(reversed)).toBe(hash);
  });

  it.each([
    ['document', TEXT.replace('planner', 'plotter')],
    ['credential_id', 'Y3JlZQ'],
    ['authenticator_data', 'YXV0aQ'],
    ['client_data_json', 'Y2xpZW51'],
    ['signature', 'c2lo'],
    ['user_handle', null],
  ] as const)('changes when %s changes', async (field, value) => {
    expect(await approvalReceiptHash({ ...receipt, [field]: value })).not.toBe(await approvalReceiptHash(receipt));
  });
});

describe('ReceiptInvalid', () => {
  it('is a plain Error with a stable reason, not an OAuth error', () => {
    const error = new ReceiptInvalid('signature_invalid', 'signature does not verify with the public key');
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(OAuthError);
    expect(error.name).toBe('ReceiptInvalid');
    expect(error.reason).toBe('signature_invalid');
  });
});

describe('verifyApprovalReceipt', () => {
  it.each(ALGS)('accepts a valid %s receipt and returns the document, sign count and origin', async (alg) => {
    const authenticator = authenticators[alg];
    const receipt = await authenticator.sign(TEXT, { counter: 7 });
    expect(ApprovalReceiptSchema.parse(receipt)).toEqual(receipt);
    expect(await verifyApprovalReceipt(receipt, optionsFor(authenticator, { grantId: 'grt_1' }))).toEqual({
      document: DOCUMENT,
      signCount: 7,
      userVerified: true,
      origin: ORIGIN,
    });
  });

  it('reads the sign count as a 32-bit big-endian number, and accepts a null user handle', async () => {
    const receipt = { ...(await authenticators.EdDSA.sign(TEXT, { counter: 0xfedcba98 })), user_handle: null };
    expect((await verifyApprovalReceipt(receipt, optionsFor(authenticators.EdDSA))).signCount).toBe(0xfedcba98);
  });

  it('accepts a public JWK that names its algorithm', async () => {
    const receipt = await authenticators.EdDSA.sign(TEXT);
    for (const alg of ['EdDSA', 'Ed25519']) {
      const publicKey = { ...authenticators.EdDSA.publicJwk, alg };
      await expect(verifyApprovalReceipt(receipt, optionsFor(authenticators.EdDSA, { publicKey }))).resolves.toMatchObject({ signCount: 42 });
    }
    const es = await authenticators.ES256.sign(TEXT);
    const publicKey = { ...authenticators.ES256.publicJwk, alg: 'ES256', use: 'sig', kid: 'passkey-1' };
    await expect(verifyApprovalReceipt(es, optionsFor(authenticators.ES256, { publicKey }))).resolves.toMatchObject({ signCount: 42 });
  });

  it('accepts ES256 signatures whose r or s is shorter than 32 bytes (DER drops leading zero bytes)', async () => {
    const authenticator = authenticators.ES256;
    /** The byte length of the value of the DER INTEGER at `offset`, without its 0x00 sign pad. */
    const valueLength = (der: Uint8Array, offset: number) => der[offset + 1]! - (der[offset + 2] === 0 ? 1 : 0);
    // About one signature in 128 has a leading zero byte in r or s: make them until one does.
    for (let counter = 0; counter < 5000; counter++) {
      const receipt = await authenticator.sign(TEXT, { counter });
      const der = base64url.decode(receipt.signature);
      if (valueLength(der, 2) === 32 && valueLength(der, 4 + der[3]!) === 32) continue;
      await expect(verifyApprovalReceipt(receipt, optionsFor(authenticator))).resolves.toMatchObject({ signCount: counter });
      return;
    }
    throw new Error('no short signature in 5000 tries');
  });

  describe('refuses, with its reason and message,', () => {
    it('a value that is not a receipt', async () => {
      const options = optionsFor(authenticators.ES256);
      await expectInvalid(verifyApprovalReceipt('receipt', options), 'receipt_malformed', 'receipt is malformed: Invalid input: expected object, received string');
      await expectInvalid(verifyApprovalReceipt(null, options), 'receipt_malformed', 'receipt is malformed: Invalid input: expected object, received null');
    });

    it('a receipt with an unknown or a missing field', async () => {
      const receipt = await authenticators.ES256.sign(TEXT);
      const options = optionsFor(authenticators.ES256);
      await expectInvalid(verifyApprovalReceipt({ ...receipt, approved: true }, options), 'receipt_malformed', "receipt is malformed: unknown field 'approved'");
      const { user_handle: _dropped, ...withoutHandle } = receipt;
      await expectInvalid(verifyApprovalReceipt(withoutHandle, options), 'receipt_malformed', 'receipt is malformed: user_handle: Invalid input: expected string, received undefined');
    });

    it.each([
      ['padded', (s: string) => `${s}=`, 'is not unpadded base64url'],
      ['standard base64', (s: string) => `${s.slice(0, -1)}+`, 'is not unpadded base64url'],
      ['not canonical (unused bits set)', () => 'AB', 'is not unpadded base64url'],
      ['empty', () => '', 'is empty'],
      ['too long', () => 'A'.repeat(1368), 'is longer than 1024 bytes'],
    ])('a receipt whose signature is %s', async (_name, change, detail) => {
      const receipt = await authenticators.ES256.sign(TEXT);
      await expectInvalid(
        verifyApprovalReceipt({ ...receipt, signature: change(receipt.signature) }, optionsFor(authenticators.ES256)),
        'receipt_malformed',
        `receipt is malformed: signature: ${detail}`,
      );
    });

    it('a receipt whose document was changed after signing', async () => {
      const receipt = await authenticators.ES256.sign(TEXT);
      const changed = approvalDocumentText({ ...DOCUMENT, envelope: { ...DOCUMENT.envelope, amount: { currency: 'EUR', total_max: 5000 } } });
      await expectInvalid(
        verifyApprovalReceipt({ ...receipt, document: changed }, optionsFor(authenticators.ES256)),
        'challenge_mismatch',
        'clientDataJSON challenge is not the SHA-256 of the approval document',
      );
    });

    it("a receipt for another grant, when the grant id is given (and it is that grant's own receipt otherwise)", async () => {
      const other = await authenticators.ES256.sign(approvalDocumentText({ ...DOCUMENT, grant_id: 'grt_2' }));
      await expectInvalid(verifyApprovalReceipt(other, optionsFor(authenticators.ES256, { grantId: 'grt_1' })), 'grant_mismatch', 'receipt is for grant "grt_2", not "grt_1"');
      await expect(verifyApprovalReceipt(other, optionsFor(authenticators.ES256, { grantId: 'grt_2' }))).resolves.toMatchObject({ document: { grant_id: 'grt_2' } });
    });

    it('a signed document that is not canonical', async () => {
      const receipt = await authenticators.ES256.sign(JSON.stringify(DOCUMENT, null, 1));
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)), 'document_not_canonical', 'approval document is not in RFC 8785 canonical form');
    });

    it('a signed document that is not an approval document', async () => {
      const receipt = await authenticators.ES256.sign(canonicalJson({ ...DOCUMENT, decision: 'approve_all' }));
      await expectInvalid(
        verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)),
        'document_malformed',
        'approval document is malformed: decision: Invalid option: expected one of "approve"|"deny"',
      );
    });

    it.each([
      ['not JSON', utf8('{"type":'), 'clientDataJSON is not UTF-8 JSON'],
      ['not UTF-8', new Uint8Array([0x22, 0xff, 0x22]), 'clientDataJSON is not UTF-8 JSON'],
      ['an array', utf8('[]'), 'clientDataJSON is not a JSON object'],
      ['without a challenge', utf8('{"type":"webauthn.get","origin":"https://writ.example"}'), 'clientDataJSON challenge is not a string'],
    ])('clientDataJSON that is %s', async (_name, bytes, message) => {
      const receipt = { ...(await authenticators.ES256.sign(TEXT)), client_data_json: base64url.encode(bytes) };
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)), 'client_data_malformed', message);
    });

    it('clientDataJSON whose crossOrigin is not a boolean', async () => {
      const receipt = await authenticators.ES256.sign(TEXT, { clientData: { crossOrigin: 'true' } });
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)), 'client_data_malformed', 'clientDataJSON crossOrigin is not a boolean');
    });

    it('an assertion of type webauthn.create (a registration, not an approval)', async () => {
      const receipt = await authenticators.ES256.sign(TEXT, { clientData: { type: 'webauthn.create' } });
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)), 'wrong_type', 'clientDataJSON type is "webauthn.create", not "webauthn.get"');
    });

    it('an assertion whose challenge is not the document hash', async () => {
      const receipt = await authenticators.ES256.sign(TEXT, { clientData: { challenge: await approvalChallenge(`${TEXT} `) } });
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)), 'challenge_mismatch', 'clientDataJSON challenge is not the SHA-256 of the approval document');
    });

    it('an assertion made at another origin', async () => {
      const receipt = await authenticators.ES256.sign(TEXT, { clientData: { origin: 'https://writ.example.evil' } });
      await expectInvalid(
        verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)),
        'origin_not_allowed',
        'clientDataJSON origin "https://writ.example.evil" is not an allowed origin',
      );
    });

    it('an assertion made in a cross-origin frame', async () => {
      const receipt = await authenticators.ES256.sign(TEXT, { clientData: { crossOrigin: true } });
      await expectInvalid(
        verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)),
        'cross_origin',
        'clientDataJSON crossOrigin is true: the assertion was made in a cross-origin frame',
      );
    });

    it('truncated authenticatorData', async () => {
      const receipt = withBytes(await authenticators.ES256.sign(TEXT), 'authenticator_data', (bytes) => bytes.subarray(0, 36));
      await expectInvalid(
        verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)),
        'authenticator_data_malformed',
        'authenticatorData is 36 bytes, fewer than the 37 of rpIdHash, flags and signCount',
      );
    });

    it('an assertion for another relying party', async () => {
      const receipt = await authenticators.ES256.sign(TEXT, { rpId: 'evil.example' });
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)), 'rp_id_mismatch', 'authenticatorData rpIdHash is not the SHA-256 of the RP ID "writ.example"');
    });

    it('an assertion without user presence', async () => {
      const receipt = await authenticators.ES256.sign(TEXT, { flags: UV });
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)), 'user_not_present', 'authenticatorData flag UP (user present) is not set');
    });

    it('an assertion without user verification', async () => {
      const receipt = await authenticators.ES256.sign(TEXT, { flags: UP });
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)), 'user_not_verified', 'authenticatorData flag UV (user verified) is not set');
    });

    it.each(ALGS)('a %s signature made by another passkey', async (alg) => {
      const receipt = await others[alg].sign(TEXT);
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators[alg])), 'signature_invalid', 'signature does not verify with the public key');
    });

    it.each(ALGS)('a %s signature that does not match the signed bytes', async (alg) => {
      const authenticator = authenticators[alg];
      // The counter changed after signing: the signature covers authenticatorData.
      const receipt = withBytes(await authenticator.sign(TEXT, { counter: 1 }), 'authenticator_data', (bytes) => {
        const copy = new Uint8Array(bytes);
        copy[36] = 2;
        return copy;
      });
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticator)), 'signature_invalid', 'signature does not verify with the public key');
    });

    it('an ES256 signature with a flipped bit, still in valid DER', async () => {
      const authenticator = authenticators.ES256;
      const receipt = await authenticator.sign(TEXT);
      const signed = concat(base64url.decode(receipt.authenticator_data), await sha256(base64url.decode(receipt.client_data_json)));
      const raw = await authenticator.rawSign(signed);
      raw[63]! ^= 0x01;
      const tampered = { ...receipt, signature: base64url.encode(p1363ToDer(raw)) };
      await expectInvalid(verifyApprovalReceipt(tampered, optionsFor(authenticator)), 'signature_invalid', 'signature does not verify with the public key');
    });

    describe('an ES256 signature that is not strict DER:', () => {
      let receipt: ApprovalReceipt;
      let r: number[];
      let s: number[];

      beforeAll(async () => {
        receipt = await authenticators.ES256.sign(TEXT);
        const signed = concat(base64url.decode(receipt.authenticator_data), await sha256(base64url.decode(receipt.client_data_json)));
        const raw = await authenticators.ES256.rawSign(signed);
        r = derInteger(raw.subarray(0, 32));
        s = derInteger(raw.subarray(32));
      });

      const integer = (...bytes: number[]) => [0x02, bytes.length, ...bytes];
      const overlong = (encoded: number[]) => [0x02, encoded[1]! + 1, 0x00, ...encoded.slice(2)];

      it.each<[string, () => Uint8Array, string | (() => string)]>([
        ['a SET instead of a SEQUENCE', () => new Uint8Array([0x31, ...derSequence(r, s).subarray(1)]), 'it does not start with a SEQUENCE'],
        ['a long-form length', () => new Uint8Array([0x30, 0x81, r.length + s.length, ...r, ...s]), 'the SEQUENCE length is not a short-form length'],
        ['a byte after the SEQUENCE', () => new Uint8Array([...derSequence(r, s), 0x00]), () => `the SEQUENCE holds ${r.length + s.length} bytes but ${r.length + s.length + 1} follow`],
        ['a byte after s inside the SEQUENCE', () => derSequence(r, s, [0x00]), 'bytes follow s'],
        ['no s', () => derSequence(r), 's is not an INTEGER'],
        ['r as a BIT STRING', () => derSequence([0x03, ...r.slice(1)], s), 'r is not an INTEGER'],
        ['r of length zero', () => derSequence([0x02, 0x00], s), 'r has an invalid length'],
        ['s running past the end', () => derSequence(r, [0x02, s[1]! + 1, ...s.slice(2)]), 's has an invalid length'],
        ['r with a redundant leading zero byte', () => derSequence(overlong(r), s), 'r is not minimally encoded'],
        ['s with a redundant leading zero byte', () => derSequence(r, overlong(s)), 's is not minimally encoded'],
        ['a negative s', () => derSequence(r, integer(0x80, ...s.slice(-31))), 's is negative'],
        ['a zero r', () => derSequence(integer(0x00), s), 'r is zero'],
        ['an r of 33 bytes', () => derSequence(integer(0x01, ...new Array<number>(32).fill(0x11)), s), 'r is longer than 32 bytes'],
        ['the raw P1363 form', () => new Uint8Array(64).fill(0x30), 'the SEQUENCE holds 48 bytes but 62 follow'],
      ])('%s', async (_name, der, detail) => {
        await expectInvalid(
          verifyApprovalReceipt({ ...receipt, signature: base64url.encode(der()) }, optionsFor(authenticators.ES256)),
          'signature_malformed',
          `ES256 signature is not strict DER: ${typeof detail === 'string' ? detail : detail()}`,
        );
      });
    });

    it('an EdDSA signature that is not 64 bytes', async () => {
      const receipt = withBytes(await authenticators.EdDSA.sign(TEXT), 'signature', (bytes) => bytes.subarray(0, 63));
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.EdDSA)), 'signature_malformed', 'EdDSA signature is 63 bytes, not 64');
    });

    it.each(ALGS)('a private %s JWK as the public key', async (alg) => {
      const authenticator = authenticators[alg];
      const receipt = await authenticator.sign(TEXT);
      await expectInvalid(
        verifyApprovalReceipt(receipt, optionsFor(authenticator, { publicKey: authenticator.privateJwk })),
        'key_not_public',
        'publicKey contains private key material: pass the public JWK only',
      );
    });

    it('a symmetric key', async () => {
      const receipt = await authenticators.ES256.sign(TEXT);
      await expectInvalid(
        verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256, { publicKey: { kty: 'oct', k: 'c2VjcmV0' } })),
        'key_not_public',
        'publicKey contains private key material: pass the public JWK only',
      );
    });

    it.each<[string, JWK, ReceiptInvalidReason, string]>([
      [
        'a P-384 key',
        { kty: 'EC', crv: 'P-384', x: 'AA', y: 'AA' },
        'key_unsupported',
        'publicKey kty "EC" crv "P-384" is not supported: use EC P-256 (ES256), OKP Ed25519 (EdDSA) or RSA (RS256)',
      ],
      ['an X25519 key', { kty: 'OKP', crv: 'X25519', x: 'AA' }, 'key_unsupported', 'publicKey kty "OKP" crv "X25519" is not supported: use EC P-256 (ES256), OKP Ed25519 (EdDSA) or RSA (RS256)'],
      ['a key without kty', { x: 'AA' }, 'key_unsupported', 'publicKey without kty is not supported: use EC P-256 (ES256), OKP Ed25519 (EdDSA) or RSA (RS256)'],
      ['an RSA key for PS256', { kty: 'RSA', alg: 'PS256', n: 'AQAB', e: 'AQAB' }, 'key_unsupported', 'publicKey alg "PS256" is not supported: this key signs with RS256'],
      ['an RSA key of 1024 bits', { kty: 'RSA', n: base64url.encode(new Uint8Array(128).fill(0xc3)), e: 'AQAB' }, 'key_unsupported', 'publicKey RSA modulus is 1024 bits, fewer than 2048'],
      ['an RSA key whose modulus is not base64url', { kty: 'RSA', n: 'not base64url!', e: 'AQAB' }, 'key_unsupported', 'publicKey RSA modulus is 0 bits, fewer than 2048'],
      ['an EC point that is not on P-256', { kty: 'EC', crv: 'P-256', x: base64url.encode(new Uint8Array(32).fill(1)), y: base64url.encode(new Uint8Array(32).fill(1)) }, 'key_invalid', 'publicKey is not a valid ES256 public key'],
      ['an Ed25519 key of the wrong size', { kty: 'OKP', crv: 'Ed25519', x: 'AAAA' }, 'key_invalid', 'publicKey is not a valid EdDSA public key'],
    ])('%s', async (_name, publicKey, reason, message) => {
      const receipt = await authenticators.ES256.sign(TEXT);
      await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256, { publicKey })), reason, message);
    });

    it('checks in order: a receipt wrong in every way is refused for its shape first, then its document, then its assertion', async () => {
      const receipt = await authenticators.ES256.sign(TEXT, { rpId: 'evil.example', flags: 0, clientData: { type: 'webauthn.create', origin: 'https://evil.example' } });
      const options = optionsFor(authenticators.ES256, { publicKey: authenticators.ES256.privateJwk, grantId: 'grt_9' });
      await expectInvalid(verifyApprovalReceipt({ ...receipt, extra: 1 }, options), 'receipt_malformed', "receipt is malformed: unknown field 'extra'");
      await expectInvalid(verifyApprovalReceipt(receipt, options), 'grant_mismatch', 'receipt is for grant "grt_1", not "grt_9"');
      await expectInvalid(verifyApprovalReceipt(receipt, { ...options, grantId: undefined }), 'wrong_type', 'clientDataJSON type is "webauthn.create", not "webauthn.get"');
    });
  });
});

// ---------------------------------------------------------------------------------------------

const STEP_UP: StepUpDocument = {
  decision: 'approve',
  kind: 'step_up',
  step_up_id: 'su_1',
  grant_id: 'grt_1',
  txn: 'txn_1',
  subject: 'usr_1',
  agent: { client_id: 'agt_2', name: 'payment agent' },
  service: { id: 'svc_1', uri: 'https://flights.example' },
  method: 'POST',
  url: 'https://flights.example/api/payments',
  action: 'pay',
  resource: null,
  amount: 150.5,
  currency: 'EUR',
  nonce: 'c3RlcC11cC1ub25jZQ',
};
const STEP_UP_TEXT = stepUpDocumentText(STEP_UP);

describe('step-up documents', () => {
  it('are the RFC 8785 text, read back as written', () => {
    const reordered = Object.fromEntries(Object.entries(STEP_UP).reverse()) as unknown as StepUpDocument;
    expect(stepUpDocumentText(reordered)).toBe(STEP_UP_TEXT);
    expect(STEP_UP_TEXT).toBe(canonicalJson(STEP_UP));
    expect(parseStepUpDocument(STEP_UP_TEXT)).toEqual(STEP_UP);
  });

  it('refuse to write or read what is not a step-up document, and one kind never reads as the other', () => {
    expect(() => stepUpDocumentText({ ...STEP_UP, amount: -1 })).toThrow(new TypeError('step-up document is malformed: amount: Too small: expected number to be >=0'));
    expect(() => parseStepUpDocument(TEXT)).toThrow(ReceiptInvalid);
    expect(() => parseApprovalDocument(STEP_UP_TEXT)).toThrow(ReceiptInvalid);
    expect(() => parseStepUpDocument(JSON.stringify(STEP_UP, null, 1))).toThrow(new ReceiptInvalid('document_not_canonical', 'step-up document is not in RFC 8785 canonical form'));
    expect(() => parseStepUpDocument('{')).toThrow(new ReceiptInvalid('document_malformed', 'step-up document is not JSON'));
  });
});

describe('verifyStepUpReceipt', () => {
  it.each(ALGS)('accepts a valid %s receipt over a step-up document', async (alg) => {
    const authenticator = authenticators[alg];
    const receipt = await authenticator.sign(STEP_UP_TEXT, { counter: 9 });
    expect(await verifyStepUpReceipt(receipt, { ...optionsFor(authenticator), stepUpId: 'su_1' })).toEqual({ document: STEP_UP, signCount: 9, userVerified: true, origin: ORIGIN });
  });

  it('refuses a receipt for another step-up, a grant approval, a changed amount and another key', async () => {
    const receipt = await authenticators.ES256.sign(STEP_UP_TEXT);
    await expectInvalid(verifyStepUpReceipt(receipt, { ...optionsFor(authenticators.ES256), stepUpId: 'su_2' }), 'step_up_mismatch', 'receipt is for step-up "su_1", not "su_2"');
    const grantReceipt = await authenticators.ES256.sign(TEXT);
    await expectInvalid(verifyStepUpReceipt(grantReceipt, optionsFor(authenticators.ES256)), 'document_malformed', 'step-up document is malformed: kind: Invalid input: expected "step_up"');
    // A step-up receipt is no grant approval either.
    await expectInvalid(verifyApprovalReceipt(receipt, optionsFor(authenticators.ES256)), 'document_malformed', 'approval document is malformed: version: Invalid input: expected number, received undefined');
    const changed = { ...receipt, document: stepUpDocumentText({ ...STEP_UP, amount: 15 }) };
    await expectInvalid(verifyStepUpReceipt(changed, optionsFor(authenticators.ES256)), 'challenge_mismatch', 'clientDataJSON challenge is not the SHA-256 of the approval document');
    await expectInvalid(verifyStepUpReceipt(receipt, optionsFor(others.ES256)), 'signature_invalid', 'signature does not verify with the public key');
  });
});
