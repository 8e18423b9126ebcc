import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { ChangeFeed, type ChangeRelay } from '../src/infra/change-feed.js';
import { AgentsService } from '../src/modules/agents/agents.service.js';
import { type GrantChange, GrantsService } from '../src/modules/grants/grants.service.js';
import { ServicesService } from '../src/modules/services/services.service.js';
import { createRegistry } from '../src/registry.js';
import { createPostgresDatabase, type TestDatabase } from './support/databases.js';
import { approveGrant } from './support/humans.js';
import { grantRequest } from './support/token-fixture.js';

describe('ChangeFeed', () => {
  /** A relay that delivers to every feed on it, like PostgreSQL NOTIFY to every listening process. */
  function localRelay(): ChangeRelay {
    const handlers = new Map<string, Set<(payload: string) => void>>();
    return {
      publish: (channel, payload) => queueMicrotask(() => handlers.get(channel)?.forEach((h) => h(payload))),
      subscribe: (channel, handler) => {
        if (!handlers.has(channel)) handlers.set(channel, new Set());
        handlers.get(channel)!.add(handler);
        return () => handlers.get(channel)!.delete(handler);
      },
    };
  }

  it('delivers a change once in its own process and once in each other process on the relay', async () => {
    const relay = localRelay();
    const [here, there] = [new ChangeFeed<{ id: string }>((c) => c.id, { via: relay, channel: 'c' }), new ChangeFeed<{ id: string }>((c) => c.id, { via: relay, channel: 'c' })];
    const seen: string[] = [];
    here.onChange((c) => seen.push(`here ${c.id}`));
    there.onChange((c) => seen.push(`there ${c.id}`));
    let woken = 0;
    const stop = there.wait('g1', () => (woken += 1));
    here.publish({ id: 'g1' });
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toEqual(['here g1', 'there g1']);
    expect(woken).toBe(1);
    stop();
    here.publish({ id: 'g1' });
    await new Promise((r) => setTimeout(r, 0));
    expect(woken).toBe(1);
  });
});

/**
 * Two registry processes on one PostgreSQL (as when the registry is scaled out): an agent's
 * long-poll served by one is woken by a decision the other commits, through LISTEN/NOTIFY.
 */
describe.runIf(process.env.DATABASE_URL)('two registry processes on one PostgreSQL', () => {
  let testDb: TestDatabase;
  let dataDir: string;
  let a: NestFastifyApplication;
  let b: NestFastifyApplication;

  beforeAll(async () => {
    testDb = await createPostgresDatabase(process.env.DATABASE_URL!);
    dataDir = mkdtempSync(join(tmpdir(), 'writ-replicas-'));
    const config = loadConfig({ WRIT_DATA_DIR: dataDir, WRIT_ISSUER: 'https://registry.writ.test', DATABASE_URL: (testDb.target as { url: string }).url });
    for (const which of ['a', 'b'] as const) {
      const { app } = await createRegistry(config, { logger: false, database: testDb.target });
      await app.init();
      if (which === 'a') a = app;
      else b = app;
    }
    await a.get(ServicesService).register({ uri: 'https://flights.example', display_name: 'Flights', catalogue: [{ type: 'flight_booking', actions: ['read', 'book'] }] });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await testDb?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('wakes a long-poll and the live inbox in one process when the other approves', async () => {
    const agents = a.get(AgentsService);
    const { token } = await agents.mintInitialAccessToken('alice');
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const { client_id: agentId } = await agents.register(token, { client_name: 'planner', jwks: { keys: [await exportJWK(publicKey)] } });
    const grant = await a.get(GrantsService).request(agentId, 'alice', grantRequest);

    const inbox: GrantChange[] = [];
    const stop = a.get(GrantsService).onChange((change) => inbox.push(change));
    // Waits up to 60 s: only a wake-up from the other process ends it within the test's 30 s.
    const waiting = a.get(GrantsService).waitForDecision(grant.id, agentId, 60_000);
    await new Promise((r) => setTimeout(r, 100));
    await approveGrant(b, grant.id, 'alice');
    expect(await waiting).toMatchObject({ id: grant.id, status: 'approved' });
    await expect.poll(() => inbox.map((c) => c.status)).toContain('approved');
    stop();
  });
});
