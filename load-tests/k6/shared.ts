/**
 * What the k6 scripts share: the fixture `npm run bench:verify -- --k6-fixture` serves (tokens,
 * agent keys, the service provider's credential), and DPoP proofs signed per request with k6's
 * global Web Crypto (`crypto.subtle`, ECDSA P-256 / SHA-256), `ath` bound to the token.
 */
import { fail } from 'k6';
import { sha256 } from 'k6/crypto';
import { b64encode } from 'k6/encoding';
import http, { type RefinedResponse, type ResponseType } from 'k6/http';

/** One agent as the fixture gives it: a root token and the agent's key pair. */
export interface FixtureAgent {
  token: string;
  private_jwk: K6EcJwk;
  public_jwk: K6EcJwk;
}

export interface Fixture {
  verifier_url: string;
  floor_url: string;
  /** `Authorization` header of the service provider calling the verifier. */
  authorization: string;
  /** The agent request each verify call asks about. */
  request: { method: string; url: string; action: string; amount?: number; currency?: string };
  agents: FixtureAgent[];
}

/** A grant made for one revocation, with its token and agent keys. */
export interface RevocationSubject extends FixtureAgent {
  grant_id: string;
}

export function fixtureUrl(): string {
  const url = __ENV.WRIT_FIXTURE_URL;
  if (!url) fail('WRIT_FIXTURE_URL is not set: start `npm run bench:verify -- --k6-fixture` and use the URL it prints');
  return url;
}

/** The fixture, read once in setup(): k6 hands it to every VU. */
export function loadFixture(): Fixture {
  const res = http.get(`${fixtureUrl()}/fixture`);
  if (res.status !== 200) fail(`the fixture endpoint answered ${res.status}`);
  return res.json() as unknown as Fixture;
}

/** A k6 duration (`15s`, `1m`) from the environment, else `fallback`. */
export function durationOption(name: string, fallback: string): string {
  return __ENV[name] || fallback;
}

export function numberOption(name: string, fallback: number): number {
  const raw = __ENV[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) fail(`${name} must be a positive number`);
  return value;
}

function ascii(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function b64urlJson(value: object): string {
  return b64encode(JSON.stringify(value), 'rawurl');
}

/** DPoP proofs (RFC 9449 §4.2) of one agent for one token: fresh `jti` and `iat` each. */
export class ProofSigner {
  private readonly header: string;
  private readonly ath: string;
  private readonly key: Promise<K6CryptoKey>;

  constructor(agent: FixtureAgent) {
    this.header = b64urlJson({ typ: 'dpop+jwt', alg: 'ES256', jwk: agent.public_jwk });
    this.ath = sha256(agent.token, 'base64rawurl');
    this.key = crypto.subtle.importKey('jwk', agent.private_jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  }

  async proof(htm: string, htu: string): Promise<string> {
    const input = `${this.header}.${b64urlJson({ jti: crypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000), ath: this.ath })}`;
    const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, await this.key, ascii(input));
    return `${input}.${b64encode(signature, 'rawurl')}`;
  }
}

/** The `POST /v1/verify` body for `token` with a fresh proof for the fixture's agent request. */
export async function verifyBody(fixture: Fixture, token: string, signer: ProofSigner): Promise<string> {
  const { method, url } = fixture.request;
  return JSON.stringify({ token, dpop: await signer.proof(method, url), ...fixture.request });
}

export function verifyParams(fixture: Fixture, tags: Record<string, string> = {}): { headers: Record<string, string>; tags: Record<string, string> } {
  return { headers: { 'content-type': 'application/json', authorization: fixture.authorization }, tags };
}

/** What a verify answer decided: `allow`, the denial's `error`, or `http <status>` when it is not a decision. */
export function decision(res: RefinedResponse<ResponseType | undefined>): string {
  if (res.status !== 200) return `http ${res.status}`;
  let body: { allow?: unknown; error?: unknown };
  try {
    body = res.json() as { allow?: unknown; error?: unknown };
  } catch {
    return 'unreadable';
  }
  if (body.allow === true) return 'allow';
  return typeof body.error === 'string' ? body.error : 'unreadable';
}

/** The signers of one VU, one per fixture agent, made on its first iteration (key import is async). */
export function signersFor(fixture: Fixture, cache: { signers?: ProofSigner[] }): ProofSigner[] {
  cache.signers ??= fixture.agents.map((agent) => new ProofSigner(agent));
  return cache.signers;
}
