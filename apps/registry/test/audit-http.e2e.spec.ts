import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { formatVerifierKey, merkleLeafHash, openNote, parseCheckpoint, verifyConsistency, verifyInclusion } from '@writ/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { Database } from '../src/infra/database.service.js';
import { auditLogSigner } from '../src/modules/audit/audit-log-key.js';
import { verifyRemoteLog } from '../src/modules/audit/remote-verify.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { createRegistry } from '../src/registry.js';
import { cli } from './support/cli.js';
import { e2eStorage, type TestDatabase } from './support/databases.js';

const OPERATOR_TOKEN = 'audit-operator-token-0123456789abcdef';
const bytes = (base64: string) => new Uint8Array(Buffer.from(base64, 'base64'));

describe.each([e2eStorage])('the audit log over HTTP on $name', ({ create }) => {
  let app: NestFastifyApplication;
  let testDb: TestDatabase;
  let dataDir: string;
  let vkey: string;
  const hashes: string[] = [];

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-audit-http-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: 'https://registry.writ.test', WRIT_CHECKPOINT_EVERY: '4', WRIT_AUDIT_CHECKPOINT_SECONDS: '3600', WRIT_OPERATOR_TOKEN: OPERATOR_TOKEN });
    ({ app } = await createRegistry(config, { logger: false, database: testDb.target }));
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    vkey = auditLogSigner({ dataDir, origin: config.audit.origin }).vkey;
    const audit = app.get(AuditService);
    for (let i = 0; i < 9; i++) hashes.push((await audit.append({ type: 'admin.test', data: { i } })).hash);
  });

  afterAll(async () => {
    await app.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

  it("serves the latest checkpoint as a signed note, at its origin (the issuer's host + /audit), checked with the data folder's key", async () => {
    const res = await get('/audit/checkpoint');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    const { text } = await openNote({ note: res.body, verifiers: [vkey] });
    expect(parseCheckpoint(text)).toMatchObject({ origin: 'registry.writ.test/audit', size: 8 });
    expect(vkey.startsWith('registry.writ.test/audit+')).toBe(true);
  });

  it('proves an event included in the checkpoint, and the checkpoint consistent with a later tree', async () => {
    const { root: root8 } = parseCheckpoint((await openNote({ note: (await get('/audit/checkpoint')).body, verifiers: [vkey] })).text);
    const inclusion = await get('/audit/proof/inclusion?seq=3&size=8');
    expect(inclusion.statusCode).toBe(200);
    const { leaf_hash, proof } = inclusion.json<{ seq: number; size: number; leaf_hash: string; proof: string[] }>();
    expect(bytes(leaf_hash)).toEqual(new Uint8Array(merkleLeafHash(Buffer.from(hashes[2]!, 'hex'))));
    expect(verifyInclusion({ leafHash: bytes(leaf_hash), index: 2, size: 8, proof: proof.map(bytes), root: root8 })).toBe(true);

    const audit = app.get(AuditService);
    await audit.checkpoint();
    const { root: root9 } = parseCheckpoint((await openNote({ note: (await get('/audit/checkpoint')).body, verifiers: [vkey] })).text);
    const consistency = await get('/audit/proof/consistency?from=8&to=9');
    expect(consistency.statusCode).toBe(200);
    expect(consistency.json()).toMatchObject({ from: 8, to: 9 });
    const steps = consistency.json<{ proof: string[] }>().proof.map(bytes);
    expect(verifyConsistency({ oldSize: 8, newSize: 9, oldRoot: root8, newRoot: root9, proof: steps })).toBe(true);
  });

  it.each([
    ['/audit/proof/inclusion?size=8', 'seq is required'],
    ['/audit/proof/inclusion?seq=1', 'size is required'],
    ['/audit/proof/inclusion?seq=0&size=8', 'seq must be a whole number from 1 to 9007199254740991'],
    ['/audit/proof/inclusion?seq=-1&size=8', 'seq must be a whole number from 1 to 9007199254740991'],
    ['/audit/proof/inclusion?seq=01&size=8', 'seq must be a whole number from 1 to 9007199254740991'],
    ['/audit/proof/inclusion?seq=1.5&size=8', 'seq must be a whole number from 1 to 9007199254740991'],
    ['/audit/proof/inclusion?seq=1e3&size=8', 'seq must be a whole number from 1 to 9007199254740991'],
    ['/audit/proof/inclusion?seq=9007199254740992&size=8', 'seq must be a whole number from 1 to 9007199254740991'],
    ['/audit/proof/inclusion?seq=99999999999999999999&size=8', 'seq must be a whole number from 1 to 9007199254740991'],
    ['/audit/proof/inclusion?seq=1&seq=2&size=8', 'seq must be given once'],
    ['/audit/proof/inclusion?seq=1&size=8&x=1', 'unknown parameter "x"'],
    ['/audit/proof/inclusion?seq=9&size=8', 'seq must be at most size'],
    ['/audit/proof/inclusion?seq=1&size=10', "size must be at most the log's size, 9"],
    ['/audit/proof/consistency?to=8', 'from is required'],
    ['/audit/proof/consistency?from=0&to=8', 'from must be a whole number from 1 to 9007199254740991'],
    ['/audit/proof/consistency?from=8&to=4', 'from must be at most to'],
    ['/audit/proof/consistency?from=4&to=10', "to must be at most the log's size, 9"],
  ])('refuses %s with 400 invalid_request: %s', async (url, description) => {
    const res = await get(url);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'invalid_request', error_description: description });
  });

  it('answers GET /audit/verify to the operator only: 401 with a Bearer challenge without the token', async () => {
    const anonymous = await get('/audit/verify');
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(anonymous.json()).toEqual({ error: 'invalid_token', error_description: 'operator token is missing' });
    const wrong = await get('/audit/verify', { authorization: 'Bearer not-the-operator-token-0123456789abcdef' });
    expect(wrong.statusCode).toBe(401);
    const res = await get('/audit/verify', { authorization: `Bearer ${OPERATOR_TOKEN}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toMatchObject({ chain: { ok: true, lastSeq: 9 }, checkpoints: { failed: [] }, tree: { size: 9 }, anchors: [] });
  });
});

describe.each([e2eStorage])('a live registry checked from outside on $name', ({ create }) => {
  let app: NestFastifyApplication;
  let testDb: TestDatabase;
  let dataDir: string;
  let vkey: string;
  let saved: string;
  let url: string;

  /** `fetch` answered by the app in process, as the registry would over the network. */
  const viaApp: typeof fetch = async (input) => {
    const target = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const res = await app.inject({ method: 'GET', url: `${target.pathname}${target.search}` });
    return new Response(res.body, { status: res.statusCode, headers: { 'content-type': String(res.headers['content-type'] ?? '') } });
  };

  beforeAll(async () => {
    testDb = await create();
    dataDir = mkdtempSync(join(tmpdir(), 'writ-audit-remote-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: 'https://registry.writ.test', WRIT_CHECKPOINT_EVERY: '5', WRIT_AUDIT_CHECKPOINT_SECONDS: '3600' });
    ({ app } = await createRegistry(config, { logger: false, database: testDb.target }));
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
    vkey = auditLogSigner({ dataDir, origin: config.audit.origin }).vkey;
    const audit = app.get(AuditService);
    for (let i = 0; i < 10; i++) await audit.append({ type: 'admin.test', data: { i } });
    saved = (await get('/audit/checkpoint')).body;
    writeFileSync(join(dataDir, 'saved.txt'), saved);
    for (let i = 10; i < 13; i++) await audit.append({ type: 'admin.test', data: { i } });
    await audit.checkpoint();
  });

  afterAll(async () => {
    await app.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const get = (path: string) => app.inject({ method: 'GET', url: path });

  it('finds the log intact: its checkpoint extends the saved one, by a consistency proof it serves (CLI, over the network)', async () => {
    const printed = await cli(['audit', 'vkey'], { WRIT_DATA_DIR: dataDir, WRIT_ISSUER: 'https://registry.writ.test' });
    expect(printed).toMatchObject({ code: 0, stdout: `origin: registry.writ.test/audit\nvkey: ${vkey}\n` });
    const { code, stdout } = await cli(['audit', 'verify', '--checkpoint', join(dataDir, 'saved.txt'), '--registry', url, '--vkey', vkey], { WRIT_DATA_DIR: dataDir });
    expect(stdout).toBe('log intact: the registry\'s checkpoint of size 13 extends the saved checkpoint of size 10 (origin registry.writ.test/audit)\n');
    expect(code).toBe(0);
  }, 60_000);

  it('refuses a saved checkpoint the log key did not sign, with status 2', async () => {
    const other = formatVerifierKey({ name: 'registry.writ.test/audit', publicKey: randomBytes(32) });
    const result = await verifyRemoteLog({ checkpoint: saved, registry: 'https://registry.writ.test', vkey: other, fetch: viaApp });
    expect(result.status).toBe(2);
    expect(result.lines[0]).toMatch(/^the saved checkpoint is not a checkpoint signed by registry\.writ\.test\/audit: /);
  });

  it('says BROKEN, naming the sizes and the first missing seq, once the tail is deleted and the registry signs the shorter log', async () => {
    const db = app.get(Database);
    await db.dataSource.query('DELETE FROM audit_events WHERE seq > 7');
    await db.dataSource.query('DELETE FROM audit_merkle_nodes WHERE (idx + 1) * (1::bigint << level) > 7');
    await db.dataSource.query('DELETE FROM audit_checkpoints WHERE seq > 7');
    await app.get(AuditService).checkpoint();
    const result = await verifyRemoteLog({ checkpoint: saved, registry: 'https://registry.writ.test', vkey, fetch: viaApp });
    expect(result).toEqual({ status: 1, lines: ["BROKEN: the registry's latest checkpoint has size 7, below the saved checkpoint of size 10: seq 8 is missing"] });
  });

  it('says BROKEN when the log was rewritten and grew again past the saved size: no consistency proof holds', async () => {
    const audit = app.get(AuditService);
    for (let i = 0; i < 6; i++) await audit.append({ type: 'admin.rewritten', data: { i } });
    await audit.checkpoint();
    const result = await verifyRemoteLog({ checkpoint: saved, registry: 'https://registry.writ.test', vkey, fetch: viaApp });
    expect(result).toEqual({ status: 1, lines: ["BROKEN: the registry's checkpoint of size 13 does not extend the saved checkpoint of size 10: the consistency proof does not verify"] });
  });
});

describe.each([e2eStorage])('the checkpoint timer of a booted registry on $name', ({ create }) => {
  it('takes a checkpoint of the head within WRIT_AUDIT_CHECKPOINT_SECONDS while events arrive, and none when nothing arrived', async () => {
    const testDb = await create();
    const dataDir = mkdtempSync(join(tmpdir(), 'writ-audit-timer-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: 'https://registry.writ.test', WRIT_CHECKPOINT_EVERY: '1000', WRIT_AUDIT_CHECKPOINT_SECONDS: '1' });
    const { app } = await createRegistry(config, { logger: false, database: testDb.target });
    try {
      await app.init();
      const audit = app.get(AuditService);
      for (let i = 0; i < 3; i++) await audit.append({ type: 'admin.test', data: { i } });
      const deadline = Date.now() + 10_000;
      while ((await audit.latestCheckpoint())?.seq !== 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await audit.latestCheckpoint())?.seq).toBe(3);
      const db = app.get(Database);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(await db.dataSource.query('SELECT seq::int AS seq FROM audit_checkpoints ORDER BY seq')).toEqual([{ seq: 3 }]);
    } finally {
      await app.close();
      await testDb.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
