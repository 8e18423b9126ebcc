import { humanError } from '@writ/contracts';
import { approvalReceiptHash, verifyApprovalReceipt } from '@writ/core';
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { SoftPasskey } from '../../../test/support/soft-passkey.js';
import { inMemoryRegistry } from '../../testing/in-memory-registry.js';
import { AgentsService } from '../agents/agents.service.js';
import { GrantsService } from '../grants/grants.service.js';
import { ServicesService } from '../services/services.service.js';
import { ApprovalsService } from './approvals.service.js';
import { AuditVerdicts } from './audit-verdicts.js';
import { HumanViewsService } from './human-views.service.js';
import { HumansService } from './humans.service.js';

const ORIGIN = 'https://writ.test';
const config = { rp: { id: 'writ.test', name: 'Writ' }, uiOrigins: [ORIGIN] };
const capability = { type: 'flight_booking', locations: ['https://flights.example/api'], actions: ['read', 'book'] };
const request = { service: 'https://flights.example', authorization_details: [capability], envelope: { rate: { limit: 60, window_s: 60 } }, purpose: 'Book the trip', duration_s: 3600 };

/** A person with a passkey, one agent of theirs and its pending grant request, all in memory. */
async function approvalsFixture() {
  // Receipts are checked as a third party checks them: with the real time.
  const registry = await inMemoryRegistry(Date.now());
  const { repositories: r, audit, clock, recorder } = registry;
  const humans = new HumansService({ repository: r.humans, audit, clock, config });
  const services = new ServicesService({ repository: r.services, audit, clock });
  const grants = new GrantsService({ repository: r.grants, audit, services, clock, recordRevocation: recorder.recordGrant });
  const agents = new AgentsService({ repository: r.agents, audit, clock, revocations: recorder });
  const approvals = new ApprovalsService({ repository: r.humans, humans, grants, agents, services, clock, config });
  const verdicts = new AuditVerdicts({ audit, repository: r.audit, seconds: 0, clock, logger: { warn: () => undefined } });
  const views = new HumanViewsService({ repository: r.humanViews, grants, audit, tree: r.audit, verdicts, clock, agents: r.agents, services: r.services });
  await services.register({ uri: 'https://flights.example', display_name: 'Flights', catalogue: [{ type: 'flight_booking', actions: ['read', 'book'] }] });
  const passkey = new SoftPasskey(ORIGIN, 'writ.test');
  const registration = await humans.beginRegistration({ name: 'Alice' });
  const { human } = await humans.finishRegistration({ ceremony: registration.ceremony, response: passkey.register(registration.options) });
  const jwk = await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey);
  const { token } = await agents.mintInitialAccessToken(human.id);
  const agent = await agents.register(token, { client_name: 'Travel agent', jwks: { keys: [jwk] } });
  const grant = await grants.request(agent.client_id, human.id, request);
  return { ...registry, humans, grants, approvals, views, verdicts, passkey, human, agent, grant };
}

describe('ApprovalsService and HumanViewsService (in memory)', () => {
  it('approves a grant with a passkey-signed document whose receipt verifies offline', async () => {
    const { approvals, passkey, human, grant, grants } = await approvalsFixture();
    const { ceremony, document, options } = await approvals.beginDecision(human.id, grant.id, { decision: 'approve', narrowing: { duration_s: 600 } });
    expect(JSON.parse(document)).toMatchObject({ decision: 'approve', grant_id: grant.id, version: 1, subject: human.id, agent: { name: 'Travel agent' }, service: { uri: 'https://flights.example/' } });
    const { grant: approved, receiptHash } = await approvals.finishDecision(human.id, grant.id, { ceremony, document, response: passkey.assert(options) });
    expect(approved).toMatchObject({ status: 'approved', duration_s: 600, approval: receiptHash });
    expect(await grants.get(grant.id)).toMatchObject({ status: 'approved', approval: receiptHash });
    const exported = (await approvals.receipt(human.id, grant.id))!;
    expect(exported).toMatchObject({ hash: receiptHash, rp_id: 'writ.test', origins: [ORIGIN], passkey: { id: passkey.id, removed_at: null } });
    expect(await approvalReceiptHash(exported.receipt)).toBe(receiptHash);
    await expect(verifyApprovalReceipt(exported.receipt, { publicKey: exported.public_key, rpId: 'writ.test', origins: [ORIGIN], grantId: grant.id })).resolves.toBeDefined();
    expect(await approvals.receipt('usr_other', grant.id)).toBeNull();
  });

  it('refuses a narrowed denial, another person’s grant and a document changed after it was issued, deciding nothing', async () => {
    const { approvals, passkey, human, grant, grants } = await approvalsFixture();
    await expect(approvals.beginDecision(human.id, grant.id, { decision: 'deny', narrowing: { duration_s: 600 } })).rejects.toThrow(humanError('denial_narrowed'));
    await expect(approvals.beginDecision('usr_other', grant.id, { decision: 'approve' })).rejects.toThrow(humanError('grant_not_found'));
    const { ceremony, document, options } = await approvals.beginDecision(human.id, grant.id, { decision: 'deny' });
    const changed = document.replace('"deny"', '"approve"');
    await expect(approvals.finishDecision(human.id, grant.id, { ceremony, document: changed, response: passkey.assert(options) })).rejects.toThrow(
      humanError('document_changed', { document: 'approval document' }),
    );
    expect(await grants.get(grant.id)).toMatchObject({ status: 'pending', version: 1 });
    expect(await approvals.receipt(human.id, grant.id)).toBeNull();
  });

  it("shows the person's grants with their agent's and service's names, and who signed the decision", async () => {
    const { approvals, views, passkey, human, grant, agent } = await approvalsFixture();
    expect(await views.listGrants(human.id, 'approved')).toEqual([]);
    const [listed] = await views.listGrants(human.id, undefined);
    expect(listed).toMatchObject({ grant_id: grant.id, status: 'pending', agent: { client_id: agent.client_id, name: 'Travel agent', name_shared: false }, service: { name: 'Flights' } });
    const { ceremony, document, options } = await approvals.beginDecision(human.id, grant.id, { decision: 'deny' });
    await approvals.finishDecision(human.id, grant.id, { ceremony, document, response: passkey.assert(options) });
    expect(await views.grant(human.id, grant.id)).toMatchObject({ status: 'denied', signed_with: { credential_id: passkey.id, removed: false } });
    expect(await views.grant('usr_other', grant.id)).toBeNull();
    await expect(views.listGrants(human.id, 'lost')).rejects.toThrow('status must be one of pending, approved, denied, revoked, expired');
  });

  it("flags the person's agents that share a name, whatever the letters' width or case", async () => {
    const { views, human, repositories } = await approvalsFixture();
    await repositories.agents.insert({ client_id: 'agt_twin', client_name: 'ＴＲＡＶＥＬ agent', owner: human.id, jwks: { keys: [] }, jkt: 'jkt_twin', status: 'active', created_at: new Date(), disabled_at: null });
    expect((await views.agents(human.id)).map((a) => a.name_shared)).toEqual([true, true]);
    expect(await views.agents('usr_other')).toEqual([]);
  });

  it("draws a transaction of the person's as a tree of hops with their decisions, and no one else's", async () => {
    const { views, audit, human, agent, grant } = await approvalsFixture();
    await audit.append({ type: 'token.issued', actor: agent.client_id, subject: human.id, grant_id: grant.id, txn: 'txn_1', data: { jti: 'j1', exp: 2_000_000_000 } });
    await audit.append({ type: 'token.delegated', actor: agent.client_id, subject: human.id, grant_id: grant.id, txn: 'txn_1', data: { jti: 'j2', parent_jti: 'j1', actor: 'agt_helper' } });
    await audit.append({ type: 'verification.allowed', actor: 'agt_helper', grant_id: grant.id, txn: 'txn_1', data: { jti: 'j2', outcome: 'allow', action: 'book', amount: 120, currency: 'EUR' } });
    await audit.append({ type: 'token.issued', actor: agent.client_id, subject: 'usr_other', grant_id: 'grt_other', txn: 'txn_2', data: { jti: 'j3' } });
    expect(await views.transactions(human.id, undefined)).toEqual([{ txn: 'txn_1', grant_id: grant.id, started_at: expect.any(String) as string, hops: 2, decisions: 1 }]);
    expect(await views.transactions(human.id, 'grt_other')).toEqual([]);
    expect(await views.ownsTransaction(human.id, 'txn_1')).toBe(true);
    expect(await views.ownsTransaction(human.id, 'txn_2')).toBe(false);
    expect(await views.transaction(human.id, 'txn_2')).toBeNull();
    const tree = (await views.transaction(human.id, 'txn_1'))!;
    expect(tree.audit.verdict).toEqual({ status: 'unverified' });
    expect(tree.hops.map((h) => [h.jti, h.parent_jti, h.agent.name, h.decisions.map((d) => [d.allow, d.amount])])).toEqual([
      ['j1', null, 'Travel agent', []],
      ['j2', 'j1', 'agt_helper', [[true, '120']]],
    ]);
  });
});
