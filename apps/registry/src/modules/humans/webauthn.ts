import { createHash } from 'node:crypto';
import { humanError } from '@writ/contracts';
import { InvalidRequest } from '@writ/core';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { cose, decodeCredentialPublicKey, isoBase64URL, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import type { JWK } from 'jose';
import { z } from 'zod';

/** The signature algorithms a passkey may use: EdDSA, ES256, RS256 (COSE ids), the WebAuthn L3 defaults minus the rare ones. */
export const SUPPORTED_ALGORITHMS = [cose.COSEALG.EdDSA, cose.COSEALG.ES256, cose.COSEALG.RS256];

const b64u = z.string().min(1).max(16_384).regex(/^[A-Za-z0-9_-]+$/, 'must be base64url');

/**
 * The shape of a `PublicKeyCredential` as `@simplewebauthn/browser` serialises it. Checked here
 * so that a malformed body is a 400 with a clear message, never an exception deep in a library.
 */
const AuthenticationResponseSchema = z.object({
  id: b64u,
  rawId: b64u,
  type: z.literal('public-key'),
  response: z.object({
    authenticatorData: b64u,
    clientDataJSON: b64u,
    signature: b64u,
    userHandle: b64u.optional().nullable(),
  }),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.string().optional().nullable(),
});

const RegistrationResponseSchema = z.object({
  id: b64u,
  rawId: b64u,
  type: z.literal('public-key'),
  response: z.object({
    attestationObject: b64u,
    clientDataJSON: b64u,
    transports: z.array(z.string().max(32)).max(16).optional(),
    publicKeyAlgorithm: z.number().optional(),
    publicKey: b64u.optional(),
    authenticatorData: b64u.optional(),
  }),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.string().optional().nullable(),
});

export function parseAuthenticationResponse(value: unknown): AuthenticationResponseJSON {
  const parsed = AuthenticationResponseSchema.safeParse(value);
  if (!parsed.success) throw new InvalidRequest(`response is not a WebAuthn assertion: ${describe(parsed.error)}`);
  return parsed.data as AuthenticationResponseJSON;
}

export function parseRegistrationResponse(value: unknown): RegistrationResponseJSON {
  const parsed = RegistrationResponseSchema.safeParse(value);
  if (!parsed.success) throw new InvalidRequest(`response is not a WebAuthn attestation: ${describe(parsed.error)}`);
  return parsed.data as RegistrationResponseJSON;
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.join('.') || 'response'}: ${issue.message}`;
}

/** The parts of `clientDataJSON` the registry checks itself, before the library does the rest. */
interface ClientData {
  type: string;
  challenge: string;
  origin: string;
  crossOrigin?: boolean;
}

/**
 * Checks the client data's type, challenge and origin with messages a person can act on; the
 * library then re-checks them along with the signature, the RP ID hash and the flags.
 */
export function checkClientData(clientDataJSON: string, expected: { type: 'webauthn.create' | 'webauthn.get'; challenge: string; origins: readonly string[]; what: string }): void {
  let data: ClientData;
  try {
    data = JSON.parse(isoBase64URL.toUTF8String(clientDataJSON)) as ClientData;
  } catch {
    throw new InvalidRequest('clientDataJSON is not JSON');
  }
  if (typeof data !== 'object' || data === null) throw new InvalidRequest('clientDataJSON is not a JSON object');
  if (data.type !== expected.type) throw humanError('passkey_wrong_type', { type: String(data.type), expected: expected.type });
  if (data.challenge !== expected.challenge) throw humanError('passkey_wrong_challenge', { what: expected.what });
  if (typeof data.origin !== 'string' || !expected.origins.includes(data.origin)) {
    throw humanError('passkey_wrong_origin', { origin: String(data.origin) });
  }
  if (data.crossOrigin === true) throw humanError('passkey_cross_origin');
}

/** The signature counter in an assertion's authenticatorData. */
export function assertionCounter(authenticatorData: string): number {
  try {
    return parseAuthenticatorData(isoBase64URL.toBuffer(authenticatorData)).counter;
  } catch {
    throw new InvalidRequest('authenticatorData is malformed');
  }
}

/**
 * WebAuthn §6.1.1: a counter that does not grow, on an authenticator that keeps one (non-zero),
 * means the credential may have been cloned. Zero on both sides is an authenticator without one.
 */
export function checkCounter(stored: number, received: number): void {
  if ((received !== 0 || stored !== 0) && received <= stored) {
    throw humanError('passkey_counter', { received, stored });
  }
}

/** A COSE public key (as registered) as a public JWK, for offline receipt checks. */
export function coseToJwk(publicKey: Uint8Array): JWK {
  const key = decodeCredentialPublicKey(publicKey as Uint8Array<ArrayBuffer>);
  const alg = key.get(cose.COSEKEYS.alg);
  const b = (value: unknown): string => {
    if (!(value instanceof Uint8Array)) throw new InvalidRequest('passkey public key is malformed');
    return isoBase64URL.fromBuffer(value as Uint8Array<ArrayBuffer>);
  };
  if (cose.isCOSEPublicKeyEC2(key) && alg === cose.COSEALG.ES256 && key.get(cose.COSEKEYS.crv) === cose.COSECRV.P256) {
    return { kty: 'EC', crv: 'P-256', x: b(key.get(cose.COSEKEYS.x)), y: b(key.get(cose.COSEKEYS.y)), alg: 'ES256' };
  }
  if (cose.isCOSEPublicKeyOKP(key) && alg === cose.COSEALG.EdDSA && key.get(cose.COSEKEYS.crv) === cose.COSECRV.ED25519) {
    return { kty: 'OKP', crv: 'Ed25519', x: b(key.get(cose.COSEKEYS.x)), alg: 'EdDSA' };
  }
  if (cose.isCOSEPublicKeyRSA(key) && alg === cose.COSEALG.RS256) {
    return { kty: 'RSA', n: b(key.get(cose.COSEKEYS.n)), e: b(key.get(cose.COSEKEYS.e)), alg: 'RS256' };
  }
  throw new InvalidRequest(`passkey algorithm ${String(alg)} is not supported: use ES256, EdDSA or RS256`);
}

/** SHA-256 of a secret, base64url: what is stored instead of a session cookie. */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}
