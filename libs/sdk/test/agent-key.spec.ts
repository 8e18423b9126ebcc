import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwkThumbprint } from '@writ/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentKey, AgentKeyFileError, loadOrCreateAgentKey, signJwt } from '../src/agent/key.js';
import { verifyJws } from '@writ/server/node-crypto';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'writ-agent-key-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `content` at `name` and expects loading it to fail with `problem`, leaving the file as it was. */
async function expectRefused(name: string, content: string, problem: string, message: RegExp): Promise<void> {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  const error = await loadOrCreateAgentKey(path).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(AgentKeyFileError);
  expect(error).toMatchObject({ path, problem });
  expect((error as Error).message).toMatch(message);
  expect(readFileSync(path, 'utf8')).toBe(content);
}

interface PrivateJwk {
  kty: string;
  crv: string;
  x: string;
  y: string;
  d: string;
}

function p256PrivateJwk(): PrivateJwk {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }) as PrivateJwk;
}

describe('loadOrCreateAgentKey', () => {
  it('creates a missing key file, and its folders, readable by the owner only', async () => {
    const path = join(dir, 'nested', 'agents', 'planner.json');
    const key = await loadOrCreateAgentKey(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'nested', 'agents')).mode & 0o777).toBe(0o700);
    const jwk = JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwk.d).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(key.path).toBe(path);
    expect(key.registration).toBeUndefined();
  });

  it('reads the same key back from the file it created', async () => {
    const path = join(dir, 'agent.json');
    const created = await loadOrCreateAgentKey(path);
    const read = await loadOrCreateAgentKey(path);
    expect(read.jkt).toBe(created.jkt);
    expect(read.publicJwk).toEqual(created.publicJwk);
  });

  it('gives the public key only, with its RFC 7638 thumbprint as kid and jkt', async () => {
    const key = await loadOrCreateAgentKey(join(dir, 'agent.json'));
    expect(Object.keys(key.publicJwk).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    expect(key.jkt).toBe(await jwkThumbprint(key.publicJwk));
    expect(key.publicJwk.kid).toBe(key.jkt);
    expect(JSON.stringify(key)).not.toContain('"d"');
  });

  it('reads a private P-256 JWK made elsewhere, keeping its kid', async () => {
    const path = join(dir, 'imported.json');
    const jwk = { ...p256PrivateJwk(), kid: 'planner-2026' };
    writeFileSync(path, JSON.stringify(jwk), { mode: 0o600 });
    const key = await loadOrCreateAgentKey(path);
    expect(key.publicJwk).toMatchObject({ x: jwk.x, y: jwk.y, kid: 'planner-2026' });
  });

  it('signs JWTs that verify with the public key', async () => {
    const key = await loadOrCreateAgentKey(join(dir, 'agent.json'));
    const jwt = signJwt(key, { kid: key.publicJwk.kid }, { iss: 'agt_1' });
    expect(verifyJws(jwt, key.publicJwk).payload).toEqual({ iss: 'agt_1' });
  });

  it('ends with one key when two processes create the file at once', async () => {
    const path = join(dir, 'race.json');
    const keys = await Promise.all([loadOrCreateAgentKey(path), loadOrCreateAgentKey(path), loadOrCreateAgentKey(path)]);
    expect(new Set(keys.map((k) => k.jkt)).size).toBe(1);
    const onDisk = await loadOrCreateAgentKey(path);
    expect(onDisk.jkt).toBe(keys[0].jkt);
  });

  it('refuses a file that is not JSON, and leaves it alone', async () => {
    await expectRefused('agent.json', 'not json at all\n', 'not_json', /agent\.json: is not JSON/);
  });

  it('refuses an empty file', async () => {
    await expectRefused('agent.json', '', 'not_json', /is not JSON/);
  });

  it('refuses a JSON value that is not an object', async () => {
    await expectRefused('agent.json', '["EC"]', 'not_p256_private_jwk', /is not a JSON object/);
  });

  it('refuses a public key: the private member d is missing', async () => {
    const { d: _d, ...publicOnly } = p256PrivateJwk();
    await expectRefused('agent.json', JSON.stringify(publicOnly), 'not_p256_private_jwk', /member d is missing: the file holds a public key only/);
  });

  it('refuses a key on another curve', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'jwk' });
    await expectRefused('agent.json', JSON.stringify(p384), 'not_p256_private_jwk', /kty must be "EC" and crv "P-256"/);
  });

  it('refuses an Ed25519 or RSA key', async () => {
    const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
    await expectRefused('ed.json', JSON.stringify(ed), 'not_p256_private_jwk', /kty must be "EC"/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    await expectRefused('rsa.json', JSON.stringify(rsa), 'not_p256_private_jwk', /kty must be "EC"/);
  });

  it('refuses a key whose public members belong to another key', async () => {
    const mixed = { ...p256PrivateJwk(), x: p256PrivateJwk().x };
    await expectRefused('agent.json', JSON.stringify(mixed), 'inconsistent', /(do not belong to its private key|not a valid P-256 key pair)/);
  });

  it('refuses a member of the wrong length or type', async () => {
    await expectRefused('short.json', JSON.stringify({ ...p256PrivateJwk(), d: 'abc' }), 'not_p256_private_jwk', /member d must be 32 bytes of base64url/);
    await expectRefused('number.json', JSON.stringify({ ...p256PrivateJwk(), x: 42 }), 'not_p256_private_jwk', /member x must be 32 bytes/);
  });

  it('refuses a key declared for another algorithm or use', async () => {
    await expectRefused('alg.json', JSON.stringify({ ...p256PrivateJwk(), alg: 'ES384' }), 'not_p256_private_jwk', /alg must be ES256/);
    await expectRefused('use.json', JSON.stringify({ ...p256PrivateJwk(), use: 'enc' }), 'not_p256_private_jwk', /use must be sig/);
  });

  it('refuses a registration member it cannot read', async () => {
    await expectRefused('agent.json', JSON.stringify({ ...p256PrivateJwk(), writ: { client_id: 42 } }), 'bad_registration', /member writ is not a registration/);
  });

  it('reports a path it cannot read (a folder) without touching it', async () => {
    const error = await loadOrCreateAgentKey(dir).catch((e: unknown) => e);
    expect(error).toMatchObject({ problem: 'unreadable' });
    expect((error as Error).message).toMatch(/cannot be read \(EISDIR\)/);
  });

  it('never puts a key member in an error message', async () => {
    const jwk = { ...p256PrivateJwk(), alg: 'RS256' };
    const path = join(dir, 'a.json');
    writeFileSync(path, JSON.stringify(jwk));
    const error = (await loadOrCreateAgentKey(path).catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/alg must be ES256/);
    expect(error.message).not.toContain(jwk.d);
    expect(error.message).not.toContain(jwk.x);
  });
});

describe('AgentKey.generate', () => {
  it('makes a key in memory only, different each time', () => {
    const a = AgentKey.generate();
    const b = AgentKey.generate();
    expect(a.path).toBeUndefined();
    expect(a.jkt).not.toBe(b.jkt);
  });
});
