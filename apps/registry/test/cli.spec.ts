import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@writ/core';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliProcess, type CliStorage, cliStorage } from './support/cli.js';
import { openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { TypeOrmAgentsRepository } from '../src/modules/agents/agents.repository.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import { auditLogSigner } from '../src/modules/audit/audit-log-key.js';
import { KeyStore } from '../src/modules/keys/key-store.js';
import { InProcessRevocationBus } from '../src/modules/revocations/revocation-bus.js';
import { RevocationRecorder } from '../src/modules/revocations/revocation-recorder.js';
import { TypeOrmRevocationsRepository } from '../src/modules/revocations/revocations.repository.js';

describe('registry CLI', () => {
  let dataDir: string;
  let storage: CliStorage;
  let env: Record<string, string>;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'writ-cli-'));
    storage = await cliStorage(dataDir);
    env = { WRIT_DATA_DIR: dataDir, WRIT_CHECKPOINT_EVERY: '4', ...storage.env };
    const db = new Database(await openDatabase(storage.target), true);
    const keys = new KeyStore(dataDir, systemClock, 330);
    await keys.init();
    const audit = new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock: systemClock, checkpointEvery: 4, log: auditLogSigner({ dataDir, origin: '127.0.0.1:4000/audit' }) });
    for (let i = 0; i < 9; i++) await audit.append({ type: 'grant.requested', grant_id: `g_${i}`, data: { i } });
    await db.close();
  }, 60_000);

  afterAll(async () => {
    await storage.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  // These two run the CLI as its own process (cli.ts, as `npm run registry` does); the others run
  // the same commands in this process.
  it('verifies the chain in the database, with its checkpoints', async () => {
    const { code, stdout } = await cliProcess(['audit', 'verify'], env);
    expect(stdout).toContain('chain intact: 9 events, head seq 9');
    expect(stdout).toContain('checkpoints: 2 verified, 0 failed');
    expect(code).toBe(0);
  }, 60_000);

  it('exports JSON Lines that verify offline, and names the seq of an edited line', async () => {
    const file = join(dataDir, 'chain.jsonl');
    const exported = await cli(['audit', 'export', '--out', file], env);
    expect(exported.stdout).toContain(`exported 9 events to ${file}`);
    expect((await cli(['audit', 'verify', '--file', file], env)).stdout).toContain('chain intact: 9 events');

    const lines = readFileSync(file, 'utf8').trim().split('\n');
    lines[5] = lines[5]!.replace('"grant.requested"', '"grant.approved"');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const { code, stdout } = await cli(['audit', 'verify', '--file', file], env);
    expect(stdout.trim()).toBe('chain BROKEN at seq 6: hash does not match the event content (5 events verified before it)');
    expect(code).toBe(1);
  }, 60_000);

  it('rotates the signing key', async () => {
    const { code, stdout } = await cli(['keys', 'rotate'], env);
    expect(stdout).toMatch(/^signing key rotated: active \S+; \S+ stays in JWKS for 330 s/);
    expect(code).toBe(0);
  }, 60_000);

  it('refuses an unknown command with the usage and status 2', async () => {
    const { code, stderr } = await cli(['audit', 'delete'], env);
    expect(stderr).toContain('unknown command: audit delete');
    expect(stderr).toContain('Usage: npm run registry -- <command>');
    expect(code).toBe(2);
  }, 60_000);

  it('stops with a clear message on bad configuration', async () => {
    const { code, stderr } = await cliProcess(['audit', 'verify'], { ...env, DATABASE_URL: 'mysql://nope' });
    expect(stderr.trim()).toBe('Invalid configuration:\n  DATABASE_URL: must be a postgres:// or postgresql:// URL');
    expect(code).toBe(1);
  }, 60_000);

  /** Set by the mint-token test, disabled by the next one. */
  let clientId: string;

  it('mints a one-time initial access token with which one agent registers', async () => {
    const minted = await cli(['agents', 'mint-token', '--owner', 'user:alice', '--ttl', '120'], env);
    expect(minted.code).toBe(0);
    const match = /^initial access token for user:alice \(single use, not shown again\): ([A-Za-z0-9_-]{43})\nexpires at (\S+)\n$/.exec(minted.stdout);
    expect(match).not.toBeNull();
    const [, token, expiresAt] = match!;
    expect(Math.abs(Date.parse(expiresAt!) - (Date.now() + 120_000))).toBeLessThan(15_000);

    const db = new Database(await openDatabase(storage.target), true);
    try {
      const keys = new KeyStore(dataDir, systemClock, 330);
      await keys.init();
      const audit = new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock: systemClock, checkpointEvery: 4, log: auditLogSigner({ dataDir, origin: '127.0.0.1:4000/audit' }) });
      const agents = new AgentsService({ repository: new TypeOrmAgentsRepository(db), audit, clock: systemClock, revocations: new RevocationRecorder({ repository: new TypeOrmRevocationsRepository(db), audit, bus: new InProcessRevocationBus(), clock: systemClock, config: { tokenTtlSeconds: 300 } }) });
      const metadata = { client_name: 'CLI agent', jwks: { keys: [await exportJWK((await generateKeyPair('ES256')).publicKey)] } };
      clientId = (await agents.register(token, metadata)).client_id;
      expect(await agents.find(clientId)).toMatchObject({ owner: 'user:alice', status: 'active' });
      await expect(agents.register(token, metadata)).rejects.toThrow('initial access token was already used');
    } finally {
      await db.close();
    }
  }, 60_000);

  it('disables an agent once, refuses an unknown one, and the chain still verifies', async () => {
    expect(await cli(['agents', 'disable', clientId], env)).toMatchObject({ code: 0, stdout: `agent ${clientId} disabled\n` });
    expect(await cli(['agents', 'disable', clientId], env)).toMatchObject({ code: 0, stdout: `agent ${clientId} was already disabled\n` });
    expect(await cli(['agents', 'disable', 'agt_nobody'], env)).toMatchObject({ code: 1, stderr: 'agents disable: unknown agent agt_nobody\n' });
    const verified = await cli(['audit', 'verify'], env);
    expect(verified.stdout).toMatch(/^chain intact: \d+ events/);
    expect(verified.code).toBe(0);
  }, 60_000);

  it('refuses mint-token without an owner or with a ttl out of range, with status 2', async () => {
    expect(await cli(['agents', 'mint-token'], env)).toMatchObject({ code: 2, stderr: 'agents mint-token needs --owner <sub>\n' });
    expect(await cli(['agents', 'mint-token', '--owner', 'user:alice', '--ttl', '0'], env)).toMatchObject({
      code: 2,
      stderr: '--ttl must be a whole number of seconds from 1 to 86400\n',
    });
  }, 60_000);
});
