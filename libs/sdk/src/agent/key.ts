import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject, sign } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomId } from '@writ/core';
import { z } from 'zod';

/**
 * The agent's ES256 key: one P-256 key pair that authenticates the agent to the registry
 * (`private_key_jwt`, RFC 7523), signs its self-signed subject and actor tokens, and signs its DPoP
 * proofs (RFC 9449), so every token the agent holds is bound to it (`cnf.jkt`). The private key
 * lives in a file the caller names, as a private JWK (RFC 7517), with the agent's registration
 * next to it in the same JSON object (member `writ`), so an agent restarts without enrolling again.
 */

/**
 * Where and as whom an agent is registered, as kept in its key file.
 *
 * @example
 * ```ts
 * const registration: AgentRegistration = {
 *   registry: 'https://registry.writ.example',
 *   client_id: 'agt_3kP0c9',
 *   client_name: 'Trip planner',
 *   registered_at: '2026-11-24T09:00:00.000Z',
 * };
 * ```
 */
export interface AgentRegistration {
  /** The registry's issuer URL, where the agent enrolled. */
  registry: string;
  /** The client_id the registry gave the agent (RFC 7591 §3.2.1). */
  client_id: string;
  client_name: string;
  /** ISO 8601. */
  registered_at: string;
}

/**
 * Why a key file was refused: `missing` (loading an agent that never enrolled here), `unreadable`
 * (permissions, a folder), `not_json`, `not_p256_private_jwk`, `inconsistent` (public members
 * of another key), `bad_registration`, `not_enrolled` (no registration, or one at another
 * registry), `changed` (the file now holds another key; the registration was not saved).
 *
 * @example
 * ```ts
 * const problem: AgentKeyFileProblem = 'not_p256_private_jwk';
 * ```
 */
export type AgentKeyFileProblem =
  | 'missing'
  | 'unreadable'
  | 'not_json'
  | 'not_p256_private_jwk'
  | 'inconsistent'
  | 'bad_registration'
  | 'not_enrolled'
  | 'changed';

/**
 * A key file that cannot be used: unreadable, not JSON, not a private P-256 JWK, a public part
 * that does not match the private one, an unreadable `writ` registration, or (when saving a
 * registration) a file that now holds another key. The file is never overwritten.
 *
 * @example
 * ```ts
 * try {
 *   await loadOrCreateAgentKey('./agent-key.json');
 * } catch (e) {
 *   if (e instanceof AgentKeyFileError) console.error(e.path, e.problem, e.message);
 * }
 * ```
 */
export class AgentKeyFileError extends Error {
  constructor(
    readonly path: string,
    readonly problem: AgentKeyFileProblem,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`agent key file ${path}: ${detail}`, options);
    this.name = 'AgentKeyFileError';
  }
}

/** RFC 7518 §6.2.1: P-256 coordinates and the private scalar are 32 bytes, base64url without padding. */
const COORDINATE = /^[A-Za-z0-9_-]{43}$/;

const RegistrationSchema = z.object({
  registry: z.url(),
  client_id: z.string().min(1).max(256),
  client_name: z.string().min(1).max(200),
  registered_at: z.string().min(1),
});

/**
 * The agent's public key as registered (RFC 7591 `jwks`): `kty`, `crv`, `x`, `y` of its P-256
 * key (which also go in every DPoP proof's `jwk` header), plus `kid`, `alg` and `use`.
 *
 * @example
 * ```ts
 * const jwk: AgentPublicJwk = agent.key.publicJwk; // { kty: 'EC', crv: 'P-256', x, y, kid, alg: 'ES256', use: 'sig' }
 * ```
 */
export interface AgentPublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  /** The RFC 7638 thumbprint, unless the file named another `kid`. */
  kid: string;
  alg: 'ES256';
  use: 'sig';
}

interface PrivateMembers {
  x: string;
  y: string;
  d: string;
  kid?: string;
}

/** The private half of each key, out of reach of callers (no getter, not enumerable). */
const privateKeys = new WeakMap<AgentKey, { keyObject: KeyObject; webKey: Promise<CryptoKey> }>();

/**
 * An agent's ES256 key pair. Make one with {@link loadOrCreateAgentKey} (kept in a file) or
 * {@link AgentKey.generate} (in memory only, for tests and short-lived agents). The private key
 * is never exposed; the SDK signs with it for you.
 *
 * @example
 * ```ts
 * const key = await loadOrCreateAgentKey('/var/lib/trip-planner/agent-key.json');
 * console.log(key.jkt, key.registration?.client_id);
 * ```
 */
export class AgentKey {
  /** The public key, as registered with the registry (RFC 7591 `jwks`). */
  readonly publicJwk: AgentPublicJwk;
  /** RFC 7638 thumbprint of the public key: the `cnf.jkt` of every token bound to it. */
  readonly jkt: string;

  private constructor(
    members: PrivateMembers,
    keyObject: KeyObject,
    jkt: string,
    /** The file the key is kept in, if any. */
    readonly path: string | undefined,
    /** The registration kept with the key, if the agent has enrolled. */
    readonly registration: AgentRegistration | undefined,
  ) {
    this.jkt = jkt;
    this.publicJwk = { kty: 'EC', crv: 'P-256', x: members.x, y: members.y, kid: members.kid ?? jkt, alg: 'ES256', use: 'sig' };
    const jwk = { kty: 'EC', crv: 'P-256', x: members.x, y: members.y, d: members.d };
    privateKeys.set(this, {
      keyObject,
      // Web Crypto, for libs/core's createDpopProof (which runs in browsers too). Not extractable.
      webKey: crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']),
    });
  }

  /**
   * A fresh key pair in memory only: nothing is written, so an agent using it must enroll again
   * after a restart.
   *
   * @example
   * ```ts
   * const key = AgentKey.generate();
   * const agent = await WritAgent.enroll({ registryUrl, enrollmentToken, name: 'one-off', key });
   * ```
   */
  static generate(): AgentKey {
    return AgentKey.fromMembers(generateMembers(), undefined, undefined);
  }

  /** @internal Builds a key from checked members (the key file functions use it). */
  static fromMembers(members: PrivateMembers, path: string | undefined, registration: AgentRegistration | undefined): AgentKey {
    const keyObject = createPrivateKey({ key: { kty: 'EC', crv: 'P-256', x: members.x, y: members.y, d: members.d }, format: 'jwk' });
    return new AgentKey(members, keyObject, thumbprint(members), path, registration);
  }

  /** @internal The same key with its registration, once enrolled. */
  withRegistration(registration: AgentRegistration): AgentKey {
    const { keyObject } = material(this);
    const jwk = keyObject.export({ format: 'jwk' }) as { x: string; y: string; d: string };
    return new AgentKey({ x: jwk.x, y: jwk.y, d: jwk.d, kid: this.publicJwk.kid }, keyObject, this.jkt, this.path, registration);
  }
}

/** @internal The private key of `key`, for the SDK's own signatures. */
export function material(key: AgentKey): { keyObject: KeyObject; webKey: Promise<CryptoKey> } {
  const found = privateKeys.get(key);
  if (found === undefined) throw new TypeError('not an AgentKey made by loadOrCreateAgentKey or AgentKey.generate');
  return found;
}

/** @internal Signs a JWT (compact JWS, ES256 with an IEEE P1363 signature, RFC 7518 §3.4) with the agent key. */
export function signJwt(key: AgentKey, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${Buffer.from(JSON.stringify({ ...header, alg: 'ES256' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), { key: material(key).keyObject, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

function generateMembers(): PrivateMembers {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' }) as { x: string; y: string; d: string };
  return { x: jwk.x, y: jwk.y, d: jwk.d };
}

/** RFC 7638 §3.2: SHA-256 over the required members of an EC key, in lexicographic order. */
function thumbprint(members: PrivateMembers): string {
  const canonical = JSON.stringify({ crv: 'P-256', kty: 'EC', x: members.x, y: members.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

/** A key file's content: the private JWK, and the registration when the agent has enrolled. */
interface KeyFileContent {
  members: PrivateMembers;
  registration: AgentRegistration | undefined;
}

/** Reads and checks a key file's text; every problem names what is wrong, never a key member's value. */
function parseKeyFile(path: string, text: string): KeyFileContent {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AgentKeyFileError(path, 'not_json', 'is not JSON (expected a private P-256 JWK)', { cause: error });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AgentKeyFileError(path, 'not_p256_private_jwk', 'is not a JSON object (expected a private P-256 JWK)');
  }
  const jwk = value as Record<string, unknown>;
  const refuse = (detail: string): never => {
    throw new AgentKeyFileError(path, 'not_p256_private_jwk', `is not a private P-256 JWK: ${detail}`);
  };
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') refuse('kty must be "EC" and crv "P-256" (ES256)');
  for (const member of ['x', 'y'] as const) {
    if (typeof jwk[member] !== 'string' || !COORDINATE.test(jwk[member])) refuse(`member ${member} must be 32 bytes of base64url`);
  }
  if (jwk.d === undefined) refuse('member d is missing: the file holds a public key only');
  if (typeof jwk.d !== 'string' || !COORDINATE.test(jwk.d)) refuse('member d must be 32 bytes of base64url');
  if (jwk.alg !== undefined && jwk.alg !== 'ES256') refuse('alg must be ES256');
  if (jwk.use !== undefined && jwk.use !== 'sig') refuse('use must be sig');
  if (jwk.kid !== undefined && (typeof jwk.kid !== 'string' || jwk.kid === '' || jwk.kid.length > 256)) refuse('kid must be a string of 1 to 256 characters');
  const members: PrivateMembers = { x: jwk.x as string, y: jwk.y as string, d: jwk.d as string, ...(typeof jwk.kid === 'string' && { kid: jwk.kid }) };

  // The public members must be the private key's: a mismatch would register one key and sign with another.
  let derived: JsonWebKey;
  try {
    const keyObject = createPrivateKey({ key: { kty: 'EC', crv: 'P-256', x: members.x, y: members.y, d: members.d }, format: 'jwk' });
    derived = createPublicKey(keyObject).export({ format: 'jwk' });
  } catch (error) {
    throw new AgentKeyFileError(path, 'inconsistent', 'is not a valid P-256 key pair', { cause: error });
  }
  if (derived.x !== members.x || derived.y !== members.y) throw new AgentKeyFileError(path, 'inconsistent', 'its public members x and y do not belong to its private key d');

  let registration: AgentRegistration | undefined;
  if (jwk.writ !== undefined) {
    const parsed = RegistrationSchema.safeParse(jwk.writ);
    if (!parsed.success) throw new AgentKeyFileError(path, 'bad_registration', 'member writ is not a registration (registry, client_id, client_name, registered_at)');
    registration = parsed.data;
  }
  return { members, registration };
}

async function readKeyFile(path: string): Promise<KeyFileContent | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentKeyFileError(path, 'unreadable', `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
  return parseKeyFile(path, text);
}

function fileText(members: PrivateMembers, registration: AgentRegistration | undefined): string {
  const jwk = { kty: 'EC', crv: 'P-256', x: members.x, y: members.y, d: members.d, ...(members.kid !== undefined && { kid: members.kid }), alg: 'ES256', use: 'sig' };
  return `${JSON.stringify(registration === undefined ? jwk : { ...jwk, writ: registration }, null, 2)}\n`;
}

/** A temporary file next to `path`, mode 0600, holding `text`. */
async function writeTemporary(path: string, text: string): Promise<string> {
  const temporary = `${path}.${process.pid}.${randomId(6)}.tmp`;
  await writeFile(temporary, text, { mode: 0o600, flag: 'wx' });
  // The umask may have cleared bits, never added any; chmod makes it exactly 0600.
  await chmod(temporary, 0o600);
  return temporary;
}

/** @internal Reads an existing key file (never creates one): {@link AgentKeyFileError} `missing` when there is none. */
export async function readAgentKey(path: string): Promise<AgentKey> {
  const existing = await readKeyFile(path);
  if (existing === undefined) throw new AgentKeyFileError(path, 'missing', 'does not exist');
  return AgentKey.fromMembers(existing.members, path, existing.registration);
}

/**
 * Reads the agent's key from `path`, or creates it there. A missing file is created with a fresh
 * P-256 key pair, mode 0600 (its folder too, mode 0700, when missing); two processes creating
 * it at once end up with the same key (the file appears whole, by an exclusive link, and the
 * loser reads the winner's). An existing file is read and checked: a private P-256 JWK whose
 * public members match its private key, with an optional `writ` registration. Anything else throws
 * {@link AgentKeyFileError} and the file is left as it is, never overwritten.
 *
 * @example
 * ```ts
 * import { loadOrCreateAgentKey } from '@writ/sdk/agent';
 *
 * const key = await loadOrCreateAgentKey(`${process.env.HOME}/.config/trip-planner/agent-key.json`);
 * console.log(key.registration ? `enrolled as ${key.registration.client_id}` : 'not enrolled yet');
 * ```
 */
export async function loadOrCreateAgentKey(path: string): Promise<AgentKey> {
  const existing = await readKeyFile(path);
  if (existing !== undefined) return AgentKey.fromMembers(existing.members, path, existing.registration);

  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new AgentKeyFileError(path, 'unreadable', `its folder cannot be created (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
  const members = generateMembers();
  let temporary: string;
  try {
    temporary = await writeTemporary(path, fileText(members, undefined));
  } catch (error) {
    throw new AgentKeyFileError(path, 'unreadable', `cannot be written (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
  try {
    // link() fails if the file appeared meanwhile: then the other process's key is the key.
    await link(temporary, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new AgentKeyFileError(path, 'unreadable', `cannot be created (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
    }
    const theirs = await readKeyFile(path);
    if (theirs === undefined) throw new AgentKeyFileError(path, 'unreadable', 'disappeared while it was being created');
    return AgentKey.fromMembers(theirs.members, path, theirs.registration);
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
  return AgentKey.fromMembers(members, path, undefined);
}

/**
 * @internal Records the registration in the key's file, replacing the file in one rename (mode
 * 0600) after checking it still holds this very key; a file that changed is left alone.
 */
export async function saveRegistration(key: AgentKey, registration: AgentRegistration): Promise<AgentKey> {
  const path = key.path;
  if (path === undefined) return key.withRegistration(registration);
  const current = await readKeyFile(path);
  if (current === undefined || thumbprint(current.members) !== key.jkt) {
    throw new AgentKeyFileError(path, 'changed', `no longer holds the key the agent enrolled with; its registration (${registration.client_id}) was not saved`);
  }
  const temporary = await writeTemporary(path, fileText(current.members, registration));
  try {
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new AgentKeyFileError(path, 'unreadable', `cannot be replaced (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
  return key.withRegistration(registration);
}
