import { humanError } from '@writ/contracts';
import { InvalidAuthorizationDetails, InvalidRequest } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import { ServicesService } from '../services/services.service.js';
import type { GrantChange, SignedDecision } from './grants.service.js';
import { GrantsService } from './grants.service.js';

const T0 = Date.UTC(2026, 10, 24, 9);
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

async function grantsFixture(options: { withRecorder?: boolean; pendingLimit?: number } = {}) {
  const registry = await inMemoryRegistry(T0);
  const { repositories, audit, clock, recorder } = registry;
  const services = new ServicesService({ repository: repositories.services, audit, clock });
  await services.register({ uri: 'https://flights.example', display_name: 'Flights', catalogue: [{ type: 'flight_booking', actions: ['read', 'book', 'cancel'] }] });
  const grants = new GrantsService({
    repository: repositories.grants,
    audit,
    services,
    clock,
    pendingTtlMs: 60_000,
    ...(options.pendingLimit !== undefined ? { pendingLimit: options.pendingLimit } : {}),
    ...(options.withRecorder === false ? {} : { recordRevocation: recorder.recordGrant }),
  });
  const receipts: string[] = [];
  /** A decision as the approval flow hands it over; its receipt is "written" when recorded. */
  const signed = (version = 1, expiresAt = T0 + 3_600_000): SignedDecision & { expiresAt: Date } => ({
    version,
    receiptHash: `receipt-v${version}`,
    record: () => Promise.resolve(void receipts.push(`receipt-v${version}`)),
    expiresAt: new Date(expiresAt),
  });
  const types = (grantId: string) => repositories.audit.events.filter((e) => e.grant_id === grantId).map((e) => e.type);
  return { ...registry, grants, signed, receipts, types };
}

describe('GrantsService (in memory)', () => {
  describe('request', () => {
    it('records a pending request that lapses after the pending lifetime, with grant.requested', async () => {
      const { grants, types } = await grantsFixture();
      const grant = await grants.request('agt_a', 'alice', body());
      expect(grant).toMatchObject({ agent_id: 'agt_a', owner: 'alice', status: 'pending', version: 1, delegation: { max_depth: 0 }, expires_at: new Date(T0 + 60_000) });
      expect(types(grant.id)).toEqual(['grant.requested']);
      expect(await grants.get(grant.id)).toEqual(grant);
    });

    it('refuses an unknown service, a capability the service does not offer, and a dot segment', async () => {
      const { grants } = await grantsFixture();
      await expect(grants.request('agt_a', 'alice', body({ service: 'https://hotels.example' }))).rejects.toThrow(new InvalidRequest("unknown service 'https://hotels.example'"));
      await expect(grants.request('agt_a', 'alice', body({ authorization_details: [{ ...capability, actions: ['refund'] }] }))).rejects.toThrow(
        new InvalidAuthorizationDetails("capability 0 (flight_booking): action 'refund' is not offered by https://flights.example/"),
      );
      await expect(grants.request('agt_a', 'alice', body({ authorization_details: [{ ...capability, locations: ['https://flights.example/api/../admin'] }] }))).rejects.toThrow(
        InvalidAuthorizationDetails,
      );
      await expect(grants.request('agt_a', 'alice', [])).rejects.toThrow(new InvalidRequest('request body must be a JSON object'));
    });

    it('refuses a request beyond the pending limit of one agent, not of another', async () => {
      const { grants, clock } = await grantsFixture({ pendingLimit: 2 });
      await grants.request('agt_a', 'alice', body());
      await grants.request('agt_a', 'alice', body());
      await expect(grants.request('agt_a', 'alice', body())).rejects.toThrow(new InvalidRequest('too many pending grant requests (limit 2)'));
      await expect(grants.request('agt_b', 'alice', body())).resolves.toMatchObject({ status: 'pending' });
      clock.advance(60_000);
      await expect(grants.request('agt_a', 'alice', body())).resolves.toMatchObject({ status: 'pending' });
    });
  });

  describe('decisions', () => {
    it('approves a pending grant, narrowed, until the signed expiry, writing the receipt in the same transaction', async () => {
      const { grants, signed, receipts, types } = await grantsFixture();
      const { id } = await grants.request('agt_a', 'alice', body());
      const approved = await grants.approve(id, 'alice', { authorization_details: [{ ...capability, actions: ['read'] }] }, signed());
      expect(approved).toMatchObject({ status: 'approved', version: 2, approval: 'receipt-v1', expires_at: new Date(T0 + 3_600_000), decided_at: new Date(T0) });
      expect(approved.authorization_details[0]!.actions).toEqual(['read']);
      expect(receipts).toEqual(['receipt-v1']);
      expect(types(id)).toEqual(['grant.requested', 'grant.approved']);
    });

    it('refuses another human, a grant changed since the document, a wider narrowing and a lapsed signature, writing nothing', async () => {
      const { grants, signed, receipts, types } = await grantsFixture();
      const { id } = await grants.request('agt_a', 'alice', body());
      await expect(grants.approve(id, 'mallory', {}, signed())).rejects.toThrow(humanError('grant_not_found'));
      await expect(grants.approve(id, 'alice', {}, signed(2))).rejects.toThrow(humanError('grant_changed', { signed: 2, current: 1 }));
      await expect(grants.approve(id, 'alice', { duration_s: 7200 }, signed())).rejects.toThrow(new InvalidRequest('duration_s 7200 is longer than the requested 3600'));
      await expect(grants.approve(id, 'alice', { authorization_details: [{ ...capability, actions: ['cancel'] }] }, signed())).rejects.toThrow(InvalidAuthorizationDetails);
      await expect(grants.approve(id, 'alice', {}, signed(1, T0))).rejects.toThrow(humanError('approval_run_out'));
      expect(receipts).toEqual([]);
      expect(types(id)).toEqual(['grant.requested']);
      expect(await grants.get(id)).toMatchObject({ status: 'pending', version: 1 });
    });

    it('denies a pending grant once; a decided grant cannot be decided again', async () => {
      const { grants, signed } = await grantsFixture();
      const { id } = await grants.request('agt_a', 'alice', body());
      expect(await grants.deny(id, 'alice', signed())).toMatchObject({ status: 'denied', version: 2 });
      await expect(grants.approve(id, 'alice', {}, signed(2))).rejects.toThrow(humanError('grant_wrong_status', { status: 'denied', expected: 'pending' }));
    });

    it('expires a due grant before deciding: the expiry is kept, the decision refused', async () => {
      const { grants, signed, clock, types } = await grantsFixture();
      const { id } = await grants.request('agt_a', 'alice', body());
      clock.advance(60_000);
      await expect(grants.approve(id, 'alice', {}, signed())).rejects.toThrow(humanError('grant_wrong_status', { status: 'expired', expected: 'pending' }));
      expect(types(id)).toEqual(['grant.requested', 'grant.expired']);
      expect(await grants.get(id)).toMatchObject({ status: 'expired', version: 2 });
    });
  });

  describe('expiry', () => {
    it('is applied on read: a grant past its expiry is never returned live', async () => {
      const { grants, clock, types } = await grantsFixture();
      const { id } = await grants.request('agt_a', 'alice', body());
      clock.advance(59_999);
      expect(await grants.get(id)).toMatchObject({ status: 'pending' });
      clock.advance(1);
      expect(await grants.get(id)).toMatchObject({ status: 'expired' });
      expect(await grants.getForAgent(id, 'agt_b')).toBeNull();
      expect(types(id)).toEqual(['grant.requested', 'grant.expired']);
    });

    it('sweeps every due live grant once, each with grant.expired', async () => {
      const { grants, signed, clock } = await grantsFixture();
      const a = await grants.request('agt_a', 'alice', body());
      const b = await grants.request('agt_b', 'alice', body());
      await grants.approve(b.id, 'alice', {}, signed(1, T0 + 120_000));
      const c = await grants.request('agt_c', 'alice', body());
      await grants.deny(c.id, 'alice', signed());
      clock.advance(60_000);
      expect(await grants.expireDue()).toBe(1);
      expect(await grants.expireDue()).toBe(0);
      expect(await grants.expireDue(T0 + 120_000)).toBe(1);
      expect((await Promise.all([a, b, c].map((g) => grants.get(g.id)))).map((g) => g?.status)).toEqual(['expired', 'expired', 'denied']);
    });
  });

  describe('revocation', () => {
    it('revokes a live grant with one revocation.grant event carrying the status change, announced after commit', async () => {
      const { grants, signed, types, announced, repositories } = await grantsFixture();
      const { id } = await grants.request('agt_a', 'alice', body());
      await grants.approve(id, 'alice', {}, signed());
      expect(await grants.revoke(id, 'alice', 'done')).toMatchObject({ status: 'revoked', version: 3, revoked_at: new Date(T0) });
      expect(types(id)).toEqual(['grant.requested', 'grant.approved', 'revocation.grant']);
      expect(repositories.audit.events.at(-1)!.data).toMatchObject({ from: 'approved', status: 'revoked', version: 3, reason: 'done' });
      expect(announced).toEqual([{ kind: 'grant', value: id, grantIds: [id], expiresAt: new Date(T0 + 305_000) }]);
      await expect(grants.revoke(id, 'alice')).rejects.toThrow(humanError('grant_wrong_status', { status: 'revoked', expected: 'approved or pending' }));
    });

    it('without a recorder, a revocation is the status change audited as grant.revoked', async () => {
      const { grants, types, announced } = await grantsFixture({ withRecorder: false });
      const { id } = await grants.request('agt_a', 'alice', body());
      await grants.revoke(id, 'alice');
      expect(types(id)).toEqual(['grant.requested', 'grant.revoked']);
      expect(announced).toEqual([]);
      await expect(grants.revokeRecorded(id, 'operator', null)).rejects.toThrow('GrantsService was built without a revocation recorder');
    });

    it('records and announces a revocation for a grant that is not live, or unknown, without changing it', async () => {
      const { grants, signed, types, announced } = await grantsFixture();
      const { id } = await grants.request('agt_a', 'alice', body());
      await grants.deny(id, 'alice', signed());
      await grants.revokeRecorded(id, 'operator', 'cleanup');
      await grants.revokeRecorded('grt_unknown', 'operator', null);
      expect(await grants.get(id)).toMatchObject({ status: 'denied', version: 2 });
      expect(types(id)).toEqual(['grant.requested', 'grant.denied', 'revocation.grant']);
      expect(announced.map((e) => e.value)).toEqual([id, 'grt_unknown']);
    });
  });

  describe('changes', () => {
    it('tells listeners of every committed change, and wakes a waiter when its grant is decided', async () => {
      const { grants, signed } = await grantsFixture();
      const changes: GrantChange[] = [];
      const unsubscribe = grants.onChange((change) => changes.push(change));
      const { id } = await grants.request('agt_a', 'alice', body());
      const waiting = grants.waitForDecision(id, 'agt_a', 60_000);
      await grants.approve(id, 'alice', {}, signed());
      await expect(waiting).resolves.toMatchObject({ id, status: 'approved' });
      unsubscribe();
      await grants.revoke(id, 'alice');
      expect(changes.map((c) => [c.status, c.version])).toEqual([['pending', 1], ['approved', 2]]);
    });

    it("answers a waiter with the pending grant after the timeout, and null for another agent's grant", async () => {
      const { grants } = await grantsFixture();
      const { id } = await grants.request('agt_a', 'alice', body());
      await expect(grants.waitForDecision(id, 'agt_a', 5)).resolves.toMatchObject({ status: 'pending' });
      await expect(grants.waitForDecision(id, 'agt_b', 5)).resolves.toBeNull();
    });
  });
});
