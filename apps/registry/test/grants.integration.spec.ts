import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HumanApiError, type HumanErrorCode } from '@writ/contracts';
import { InvalidAuthorizationDetails, InvalidRequest, type OAuthError } from '@writ/core';
import { ServicesGrants1764000002000 } from '../../../migrations/1764000002000-services-grants.js';
import { Humans1764000005000 } from '../../../migrations/1764000005000-humans.js';
import { StepUps1764000006000 } from '../../../migrations/1764000006000-step-ups.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../src/infra/database.js';
import { Database } from '../src/infra/database.service.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { TypeOrmAuditRepository } from '../src/modules/audit/audit.repository.js';
import { GrantExpiryTimer } from '../src/modules/grants/grant-expiry.timer.js';
import { GrantsService } from '../src/modules/grants/grants.service.js';
import { TypeOrmGrantsRepository } from '../src/modules/grants/grants.repository.js';
import { KeyStore } from '../src/modules/keys/key-store.js';
import { ServicesService } from '../src/modules/services/services.service.js';
import { TypeOrmServicesRepository } from '../src/modules/services/services.repository.js';
import { storages, type TestDatabase } from './support/databases.js';

const T0 = Date.parse('2026-11-24T09:00:00Z');

const capability = { type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read', 'book'], identifier: 'bookings/*' };
const envelope = { rate: { limit: 60, window_s: 60 }, amount: { currency: 'EUR', per_request_max: 200, total_max: 500 } };
const body = (overrides: Record<string, unknown> = {}) => ({
  service: 'https://flights.example',
  authorization_details: [capability],
  envelope,
  purpose: 'Book the Lisbon trip',
  duration_s: 3600,
  ...overrides,
});

/** The error `promise` rejects with, checked to be a protocol error of that class. */
async function rejection(promise: Promise<unknown>, type: new (description: string) => OAuthError): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(type);
  return (error as OAuthError).description;
}

/** The description of the human API error `promise` rejects with; fails the test on any other outcome or code. */
async function humanRejection(promise: Promise<unknown>, code: HumanErrorCode): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HumanApiError);
  expect((error as HumanApiError).code).toBe(code);
  return (error as HumanApiError).description;
}

describe.each(storages)('services and grants on $name', ({ create }) => {
  /**
   * What the approval flow hands GrantsService once a passkey has signed the document: here the
   * state machine is tested alone; the whole flow is in approvals.e2e.spec.ts.
   */
  const signed = (durationS = 3600, version = 1) => ({ version, receiptHash: `receipt-v${version}`, record: () => Promise.resolve(), expiresAt: new Date(now + durationS * 1000) });

  let testDb: TestDatabase;
  let db: Database;
  let audit: AuditService;
  let services: ServicesService;
  let grants: GrantsService;
  let dataDir: string;
  let serviceId: string;
  let credential: string;
  let now = T0;
  const clock = { now: () => now };

  beforeAll(async () => {
    testDb = await create();
    db = new Database(await openDatabase(testDb.target), 'pgliteDir' in testDb.target);
    dataDir = mkdtempSync(join(tmpdir(), 'writ-grants-'));
    const keys = new KeyStore(dataDir, clock, 330);
    await keys.init();
    audit = new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock, checkpointEvery: 10 });
    services = new ServicesService({ repository: new TypeOrmServicesRepository(db), audit, clock });
    grants = new GrantsService({ repository: new TypeOrmGrantsRepository(db), audit, services, clock });
    ({
      service: { id: serviceId },
      credential,
    } = await services.register({
      uri: 'HTTPS://Flights.Example:443/',
      display_name: 'Flights',
      catalogue: [{ type: 'flight_booking', actions: ['read', 'book', 'cancel'] }],
    }));
    await services.register({ uri: 'https://hotels.example', display_name: 'Hotels', catalogue: [{ type: 'hotel_booking', actions: ['read'] }] });
  });

  afterAll(async () => {
    await db.close();
    await testDb.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe('service registration', () => {
    it('stores the normalised URI and a hash of the credential, never the credential', async () => {
      expect(await services.find('https://flights.example')).toMatchObject({ id: serviceId, uri: 'https://flights.example/' });
      expect(Buffer.from(credential, 'base64url')).toHaveLength(32);
      const rows = await db.dataSource.query<{ credential_hash: string }[]>('SELECT credential_hash FROM services WHERE id = $1', [serviceId]);
      expect(rows[0]!.credential_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(rows)).not.toContain(credential);
    });

    it('accepts its own credential only', async () => {
      expect(await services.verifyCredential(serviceId, credential)).toBe(true);
      expect(await services.verifyCredential(serviceId, `${credential}x`)).toBe(false);
      expect(await services.verifyCredential('svc_unknown', credential)).toBe(false);
    });

    it('refuses a second service at the same URI', async () => {
      const description = await rejection(
        services.register({ uri: 'https://flights.example/', display_name: 'Again', catalogue: [{ type: 't', actions: ['a'] }] }),
        InvalidRequest,
      );
      expect(description).toBe('a service is already registered at https://flights.example/');
    });

    it('refuses an unknown field in the registration', async () => {
      const description = await rejection(
        services.register({ uri: 'https://x.example', display_name: 'X', catalogue: [{ type: 't', actions: ['a'] }], secret: 'x' }),
        InvalidRequest,
      );
      expect(description).toBe("unknown field 'secret'");
    });
  });

  describe('request validation', () => {
    it.each([
      ['an unknown type', { authorization_details: [{ ...capability, type: 'hotel_booking' }] }, InvalidAuthorizationDetails, "capability 0 (hotel_booking): type 'hotel_booking' is not offered by https://flights.example/"],
      ['an action not offered', { authorization_details: [{ ...capability, actions: ['read', 'refund'] }] }, InvalidAuthorizationDetails, "capability 0 (flight_booking): action 'refund' is not offered by https://flights.example/"],
      ['a location of another service', { authorization_details: [{ ...capability, locations: ['https://hotels.example/rooms'] }] }, InvalidAuthorizationDetails, "capability 0 (flight_booking): location 'https://hotels.example/rooms' is not under https://flights.example/"],
      ['a look-alike host', { authorization_details: [{ ...capability, locations: ['https://flights.example.evil.com/'] }] }, InvalidAuthorizationDetails, "capability 0 (flight_booking): location 'https://flights.example.evil.com/' is not under https://flights.example/"],
      ['an unknown field', { colour: 'red' }, InvalidRequest, "unknown field 'colour'"],
      ['an unknown field in a capability', { authorization_details: [{ ...capability, scope: 'all' }] }, InvalidAuthorizationDetails, "unknown field 'scope' in authorization_details[0]"],
      ['a missing purpose', { purpose: undefined }, InvalidRequest, 'purpose is required'],
      ['an empty purpose', { purpose: '' }, InvalidRequest, 'purpose: purpose must not be empty'],
      // Refused, not trimmed to empty: the agent's words are stored and shown as sent (ADR 0019).
      ['a purpose of spaces', { purpose: '  ' }, InvalidRequest, 'purpose: starts or ends with whitespace (U+0020)'],
      ['a purpose over 500 characters', { purpose: 'x'.repeat(501) }, InvalidRequest, 'purpose: purpose must be at most 500 characters'],
      ['a duration over 30 days', { duration_s: 30 * 86_400 + 1 }, InvalidRequest, 'duration_s: duration_s must be at most 2592000 (30 days)'],
      ['a duration under a minute', { duration_s: 59 }, InvalidRequest, 'duration_s: duration_s must be at least 60'],
      ['an unknown service', { service: 'https://trains.example' }, InvalidRequest, "unknown service 'https://trains.example'"],
      ['a wrong envelope', { envelope: { max_uses: -1 } }, InvalidRequest, 'envelope.max_uses: Too small: expected number to be >0'],
    ])('refuses %s with its exact error', async (_name, overrides, type, expected) => {
      expect(await rejection(grants.request('agent-v', 'alice', body(overrides)), type)).toBe(expected);
    });

    it('refuses a body that is not an object', async () => {
      expect(await rejection(grants.request('agent-v', 'alice', [body()]), InvalidRequest)).toBe('request body must be a JSON object');
    });

    it('accepts the service by id as well as by URI, and records it pending for 15 minutes', async () => {
      const grant = await grants.request('agent-v', 'alice', body({ service: serviceId, delegation: { max_depth: 1 } }));
      expect(grant).toMatchObject({ status: 'pending', version: 1, owner: 'alice', service_id: serviceId, delegation: { max_depth: 1 } });
      expect(grant.expires_at.getTime()).toBe(now + 15 * 60_000);
    });
  });

  describe('pending limit', () => {
    it('refuses the 11th pending request of one agent, not another agent', async () => {
      for (let i = 0; i < 10; i++) await grants.request('agent-flood', 'alice', body());
      expect(await rejection(grants.request('agent-flood', 'alice', body()), InvalidRequest)).toBe('too many pending grant requests (limit 10)');
      await expect(grants.request('agent-other', 'alice', body())).resolves.toMatchObject({ status: 'pending' });
    });

    it('holds under concurrent requests', async () => {
      const results = await Promise.allSettled(Array.from({ length: 15 }, () => grants.request('agent-burst', 'alice', body())));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    });

    it('frees a slot when a request is decided', async () => {
      const [first] = await db.dataSource.query<{ id: string }[]>(`SELECT id FROM grants WHERE agent_id = 'agent-flood' LIMIT 1`);
      await grants.deny(first!.id, 'alice', signed());
      await expect(grants.request('agent-flood', 'alice', body())).resolves.toMatchObject({ status: 'pending' });
    });
  });

  describe('decisions', () => {
    it('approves as requested: runs for the duration from now, version bumped', async () => {
      const { id } = await grants.request('agent-d', 'alice', body());
      now += 30_000;
      const approved = await grants.approve(id, 'alice', {}, signed());
      expect(approved).toMatchObject({ status: 'approved', version: 2, authorization_details: [capability] });
      expect(approved.decided_at?.getTime()).toBe(now);
      expect(approved.expires_at.getTime()).toBe(now + 3600_000);
      const [event] = await db.dataSource.query<{ data: Record<string, unknown>; actor: string; subject: string }[]>(
        `SELECT data, actor, subject FROM audit_events WHERE grant_id = $1 AND type = 'grant.approved'`,
        [id],
      );
      expect(event).toMatchObject({ actor: 'alice', subject: 'alice', data: { narrowed: false, version: 2 } });
    });

    it('approves narrowed: fewer actions, a tighter envelope, a shorter duration', async () => {
      const { id } = await grants.request('agent-d', 'alice', body());
      const narrowed = { authorization_details: [{ ...capability, actions: ['read'] }], envelope: { ...envelope, max_uses: 3 }, duration_s: 600 };
      const approved = await grants.approve(id, 'alice', narrowed, signed(narrowed.duration_s ?? 3600));
      expect(approved).toMatchObject({ status: 'approved', ...narrowed });
      expect(approved.expires_at.getTime()).toBe(now + 600_000);
      const [event] = await db.dataSource.query<{ data: Record<string, unknown> }[]>(
        `SELECT data FROM audit_events WHERE grant_id = $1 AND type = 'grant.approved'`,
        [id],
      );
      expect(event!.data).toMatchObject({ narrowed: true, duration_s: 600 });
    });

    it.each([
      ['wider actions', { authorization_details: [{ ...capability, actions: ['read', 'cancel'] }] }, InvalidAuthorizationDetails, "capability 0 (flight_booking): action 'cancel' is not in the parent"],
      ['a wider envelope', { envelope: { ...envelope, rate: { limit: 120, window_s: 60 } } }, InvalidAuthorizationDetails, 'envelope is wider than its parent: rate 120/60s is wider than 60/60s'],
      ['a longer duration', { duration_s: 7200 }, InvalidRequest, 'duration_s 7200 is longer than the requested 3600'],
    ])('refuses a narrowing with %s and leaves the grant pending', async (_name, narrowed, type, expected) => {
      const { id } = await grants.request('agent-w', 'alice', body());
      expect(await rejection(grants.approve(id, 'alice', narrowed, signed()), type)).toBe(expected);
      expect(await grants.get(id)).toMatchObject({ status: 'pending', version: 1 });
    });

    it('refuses a signed decision made on an older version of the grant', async () => {
      const { id } = await grants.request('agent-d', 'alice', body());
      expect(await humanRejection(grants.approve(id, 'alice', {}, signed(3600, 7)), 'grant_changed')).toBe('grant changed after the approval document was issued (version 7, now 1)');
      expect(await humanRejection(grants.deny(id, 'alice', signed(3600, 0)), 'grant_changed')).toBe('grant changed after the approval document was issued (version 0, now 1)');
      expect(await grants.get(id)).toMatchObject({ status: 'pending', version: 1 });
    });

    it('refuses an approval by someone other than the owner, as if the grant did not exist', async () => {
      const { id } = await grants.request('agent-d', 'alice', body());
      expect(await humanRejection(grants.approve(id, 'mallory', {}, signed()), 'grant_not_found')).toBe('grant not found');
      expect(await humanRejection(grants.approve('grt_nope', 'alice', {}, signed()), 'grant_not_found')).toBe('grant not found');
      expect(await grants.get(id)).toMatchObject({ status: 'pending' });
    });

    it('refuses to approve twice, and to approve a denied grant', async () => {
      const { id } = await grants.request('agent-d', 'alice', body());
      await grants.approve(id, 'alice', {}, signed());
      expect(await humanRejection(grants.approve(id, 'alice', {}, signed()), 'grant_wrong_status')).toBe('grant is approved, not pending');
      const denied = await grants.request('agent-d', 'alice', body());
      expect(await grants.deny(denied.id, 'alice', signed())).toMatchObject({ status: 'denied', version: 2 });
      expect(await humanRejection(grants.approve(denied.id, 'alice', {}, signed()), 'grant_wrong_status')).toBe('grant is denied, not pending');
    });

    it('revokes an approved grant and a pending one, not a denied one', async () => {
      const { id } = await grants.request('agent-d', 'alice', body());
      await grants.approve(id, 'alice', {}, signed());
      const revoked = await grants.revoke(id, 'alice');
      expect(revoked).toMatchObject({ status: 'revoked', version: 3 });
      expect(revoked.revoked_at?.getTime()).toBe(now);
      const pending = await grants.request('agent-d', 'alice', body());
      await expect(grants.revoke(pending.id, 'alice')).resolves.toMatchObject({ status: 'revoked' });
      const denied = await grants.request('agent-d', 'alice', body());
      await grants.deny(denied.id, 'alice', signed());
      expect(await humanRejection(grants.revoke(denied.id, 'alice'), 'grant_wrong_status')).toBe('grant is denied, not approved or pending');
    });
  });

  describe('expiry', () => {
    it('expires pending requests after 15 minutes and approved grants after their duration (sweep)', async () => {
      const pending = await grants.request('agent-e', 'alice', body());
      const approved = await grants.request('agent-e', 'alice', body({ duration_s: 60 }));
      await grants.approve(approved.id, 'alice', {}, signed(60));
      now += 59_000;
      await grants.expireDue();
      expect(await grants.get(approved.id)).toMatchObject({ status: 'approved' });
      now += 1_000;
      expect(await grants.expireDue()).toBeGreaterThanOrEqual(1);
      const rows = await db.dataSource.query<{ status: string }[]>('SELECT status FROM grants WHERE id = $1', [approved.id]);
      expect(rows[0]!.status).toBe('expired');
      now += 15 * 60_000;
      await grants.expireDue();
      expect(await grants.get(pending.id)).toMatchObject({ status: 'expired', version: 2 });
      expect(await humanRejection(grants.approve(pending.id, 'alice', {}, signed()), 'grant_wrong_status')).toBe('grant is expired, not pending');
    });

    it('never reads an approved grant past its expiry as approved (lazy expiry, with its audit event)', async () => {
      const { id } = await grants.request('agent-e', 'alice', body({ duration_s: 60 }));
      await grants.approve(id, 'alice', {}, signed(60));
      now += 60_000;
      expect(await grants.get(id)).toMatchObject({ status: 'expired', version: 3 });
      const events = await db.dataSource.query<{ type: string }[]>('SELECT type FROM audit_events WHERE grant_id = $1 ORDER BY seq', [id]);
      expect(events.map((e) => e.type)).toEqual(['grant.requested', 'grant.approved', 'grant.expired']);
    });

    it('refuses to approve a pending request past its expiry, and records the expiry', async () => {
      const { id } = await grants.request('agent-e', 'alice', body());
      now += 15 * 60_000;
      expect(await humanRejection(grants.approve(id, 'alice', {}, signed()), 'grant_wrong_status')).toBe('grant is expired, not pending');
      const rows = await db.dataSource.query<{ status: string }[]>('SELECT status FROM grants WHERE id = $1', [id]);
      expect(rows[0]!.status).toBe('expired');
    });
  });

  it('expires due grants on its own, from the timer the app runs', async () => {
    const { id } = await grants.request('agent-t', 'alice', body());
    now += 15 * 60_000;
    const timer = new GrantExpiryTimer(grants, 20);
    timer.onModuleInit();
    try {
      await vi.waitFor(async () => {
        const rows = await db.dataSource.query<{ status: string }[]>('SELECT status FROM grants WHERE id = $1', [id]);
        expect(rows[0]!.status).toBe('expired');
      });
    } finally {
      timer.onModuleDestroy();
    }
  });

  describe('waiting for the decision', () => {
    it('resolves within 100 ms of the approval, without polling the database', async () => {
      const { id } = await grants.request('agent-w8', 'alice', body());
      const waiting = grants.waitForDecision(id, 'agent-w8', 10_000);
      await new Promise((r) => setTimeout(r, 50));
      const get = vi.spyOn(grants, 'get');
      const approvedAt = await grants.approve(id, 'alice', {}, signed()).then(() => performance.now());
      const decided = await waiting;
      const resolvedAt = performance.now();
      expect(decided).toMatchObject({ status: 'approved' });
      expect(resolvedAt - approvedAt).toBeLessThan(100);
      // One re-read after the wake-up: no loop.
      expect(get).toHaveBeenCalledTimes(1);
      get.mockRestore();
    });

    it('times out with the grant still pending', async () => {
      const { id } = await grants.request('agent-w8', 'alice', body());
      const started = performance.now();
      expect(await grants.waitForDecision(id, 'agent-w8', 150)).toMatchObject({ status: 'pending' });
      expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    });

    it("answers null for another agent's grant", async () => {
      const { id } = await grants.request('agent-w8', 'alice', body());
      expect(await grants.waitForDecision(id, 'agent-other', 1_000)).toBeNull();
      expect(await grants.getForAgent(id, 'agent-other')).toBeNull();
    });

    it('stops waiting when aborted', async () => {
      const { id } = await grants.request('agent-w8', 'alice', body());
      const controller = new AbortController();
      const waiting = grants.waitForDecision(id, 'agent-w8', 10_000, controller.signal);
      controller.abort(new Error('client went away'));
      await expect(waiting).rejects.toThrow('client went away');
    });
  });

  it('leaves an audit chain that verifies after all of it', async () => {
    const result = await audit.verify();
    expect(result.chain.ok).toBe(true);
    expect(result.checkpoints.failed).toEqual([]);
    const types = await db.dataSource.query<{ type: string }[]>('SELECT DISTINCT type FROM audit_events ORDER BY type');
    expect(types.map((t) => t.type)).toEqual(['grant.approved', 'grant.denied', 'grant.expired', 'grant.requested', 'grant.revoked', 'service.registered']);
  });
});

describe.each(storages)('services and grants migration on $name', ({ create }) => {
  it('goes down and up again', async () => {
    const testDb = await create();
    const db = new Database(await openDatabase(testDb.target), 'pgliteDir' in testDb.target);
    try {
      const tables = () =>
        db.dataSource.query<{ table_name: string }[]>(
          `SELECT table_name FROM information_schema.tables WHERE table_name IN ('services', 'grants') ORDER BY table_name`,
        );
      expect(await tables()).toHaveLength(2);
      // Run directly, so a later migration does not change what is undone; the humans and step-ups
      // migrations refer to grants, so they are undone first and redone last, and go down and up themselves.
      const migration = new ServicesGrants1764000002000();
      const humans = new Humans1764000005000();
      const stepUps = new StepUps1764000006000();
      const runner = db.dataSource.createQueryRunner();
      try {
        await stepUps.down(runner);
        await humans.down(runner);
        await migration.down(runner);
        expect(await tables()).toHaveLength(0);
        await migration.up(runner);
        await humans.up(runner);
        await stepUps.up(runner);
      } finally {
        await runner.release();
      }
      expect((await tables()).map((t) => t.table_name)).toEqual(['grants', 'services']);
    } finally {
      await db.close();
      await testDb.drop();
    }
  });
});

describe.each(storages)('step-ups migration on $name', ({ create }) => {
  it('goes down and up again: the step_ups table, and the step-up decision ceremonies', async () => {
    const testDb = await create();
    const db = new Database(await openDatabase(testDb.target), 'pgliteDir' in testDb.target);
    try {
      const tables = async () => (await db.dataSource.query<unknown[]>(`SELECT 1 FROM information_schema.tables WHERE table_name = 'step_ups'`)).length;
      const ceremony = (kind: string) =>
        db.dataSource.query(`INSERT INTO webauthn_ceremonies (id, kind, challenge, data, expires_at) VALUES ($1, $2, 'c', '{}', now())`, [`cer_${kind}_${Date.now()}`, kind]);
      expect(await tables()).toBe(1);
      await ceremony('step_up_decision');
      const runner = db.dataSource.createQueryRunner();
      try {
        await new StepUps1764000006000().down(runner);
        expect(await tables()).toBe(0);
        await expect(ceremony('step_up_decision')).rejects.toThrow(/webauthn_ceremonies_kind_check/);
        await ceremony('decision');
        await new StepUps1764000006000().up(runner);
      } finally {
        await runner.release();
      }
      expect(await tables()).toBe(1);
      await ceremony('step_up_decision');
    } finally {
      await db.close();
      await testDb.drop();
    }
  });
});
