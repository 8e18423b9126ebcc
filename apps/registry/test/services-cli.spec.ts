import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@writ/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, type CliStorage, cliStorage } from './support/cli.js';
import { openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import { KeyStore } from '../src/modules/keys/key-store.js';
import { ServicesService } from '../src/modules/services/services.service.js';
import { TypeOrmServicesRepository } from '../src/modules/services/services.repository.js';

describe('services register (CLI)', () => {
  let dataDir: string;
  let storage: CliStorage;
  let env: Record<string, string>;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'writ-services-cli-'));
    storage = await cliStorage(dataDir);
    env = { WRIT_DATA_DIR: dataDir, ...storage.env };
  });

  afterAll(async () => {
    await storage.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('registers a service, prints its credential once, and the credential verifies', async () => {
    const catalogue = JSON.stringify([{ type: 'flight_booking', actions: ['read', 'book'] }]);
    const { code, stdout } = await cli(['services', 'register', '--uri', 'https://Flights.example/', '--name', 'Flights', '--catalogue', catalogue], env);
    expect(code).toBe(0);
    const id = /service registered: (svc_\S+) at https:\/\/flights\.example\//.exec(stdout)?.[1];
    const credential = /not shown again\): (\S+)/.exec(stdout)?.[1];
    expect(id).toBeDefined();
    expect(credential).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const db = new Database(await openDatabase(storage.target), true);
    try {
      const keys = new KeyStore(dataDir, systemClock, 330);
      await keys.init();
      const audit = new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock: systemClock, checkpointEvery: 100 });
      expect(await new ServicesService({ repository: new TypeOrmServicesRepository(db), audit, clock: systemClock }).verifyCredential(id!, credential!)).toBe(true);
      const events = await db.dataSource.query<{ type: string; actor: string }[]>('SELECT type, actor FROM audit_events');
      expect(events).toEqual([{ type: 'service.registered', actor: 'cli' }]);
    } finally {
      await db.close();
    }
  }, 60_000);

  it('refuses a catalogue that is not JSON, and a catalogue entry with an unknown field', async () => {
    const bad = await cli(['services', 'register', '--uri', 'https://a.example', '--name', 'A', '--catalogue', '[{'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--catalogue is not JSON');
    const extra = await cli(['services', 'register', '--uri', 'https://a.example', '--name', 'A', '--catalogue', '[{"type":"t","actions":["a"],"x":1}]'], env);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain("services register: unknown field 'x' in catalogue[0]");
  }, 60_000);
});
