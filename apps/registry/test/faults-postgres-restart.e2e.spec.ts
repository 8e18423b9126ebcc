import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresServer, startPostgresServer } from '../../verifier/test/support/postgres-server.js';
import { Database } from '../src/infra/database.service.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { createPostgresDatabase } from './support/databases.js';
import { type Agent, createTokenFixture } from './support/token-fixture.js';
import { startTestWitness, type TestWitness } from './support/witness.js';

let server: PostgresServer;
let witness: TestWitness;

/**
 * Issue 19, goal 4, "PostgreSQL restarted": a PostgreSQL this test starts on a spare port is
 * stopped (every connection ends with an error, the idle ones in the pool and one the registry
 * holds checked out, as an audit append does) and started again. The registry process must live
 * through it: while the database is away its appends answer `503 temporarily_unavailable` and
 * `/readyz` says not ready, naming the database; once it is back both work again, without a
 * restart.
 */
describe('the registry while its PostgreSQL restarts', () => {
  const fx = createTokenFixture(
    { name: 'a PostgreSQL this test restarts', create: async () => createPostgresDatabase((server = await startPostgresServer()).url) },
    {
      dataDirPrefix: 'writ-faults-pg-',
      owners: ['alice'],
      get env() {
        return witness.env;
      },
    },
  );
  let alice: Agent;
  let registry: NestFastifyApplication;

  beforeAll(async () => {
    witness = await startTestWitness();
    const started = await fx.start();
    ({ app: registry, agents: { alice } } = started);
    witness.trust(started.dataDir);
  }, 60_000);
  afterAll(async () => {
    // Running again if a failure left it stopped (pg_ctl refuses to start a running one).
    await server?.start().catch(() => undefined);
    await fx.close();
    await witness?.close();
    await server?.destroy();
  });

  /** A token request (it appends `token.issued` to the audit chain), answered whatever its status. */
  async function askToken(grantId: string) {
    const res = await fx.post(await fx.rootTokenForm(alice, grantId), await fx.proof(alice));
    return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
  }

  it('survives the restart, answers 503 while the database is away, and appends again once it is back', { timeout: 60_000 }, async () => {
    const grantId = await fx.approvedGrant(alice);
    const readiness = async () => {
      const res = await registry.inject({ method: 'GET', url: '/readyz' });
      return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
    };
    expect((await askToken(grantId)).status).toBe(200);
    expect((await readiness()).status).toBe(200);
    // The witness holds a checkpoint of the chain from before the fault.
    await witness.cosignsHead(registry.get(Database));

    // A connection checked out of the registry's pool, idle between two statements, as the audit
    // append holds one: its 'error' event must not end the process.
    const held = await registry.get(Database).pgPool()!.connect();
    const inFlight = Array.from({ length: 5 }, () => askToken(grantId));
    await server.stop('fast');
    await Promise.all(inFlight);

    const down = await askToken(grantId);
    expect(down).toEqual({ status: 503, body: { error: 'temporarily_unavailable', error_description: 'the database cannot be reached: try again shortly' } });
    expect(await readiness()).toMatchObject({ status: 503, body: { ready: false, reasons: ['the database cannot be reached'] } });

    await server.start();
    await expect.poll(async () => (await askToken(grantId)).status, { timeout: 20_000, interval: 200 }).toBe(200);
    expect((await readiness()).status).toBe(200);
    held.release(true);
    expect((await registry.get(AuditService).verify()).chain).toMatchObject({ ok: true });
    // The witness cosigns the new head: only with a consistency proof from the one it held.
    await witness.cosignsHead(registry.get(Database));
  });
});
