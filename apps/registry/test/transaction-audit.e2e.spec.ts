import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Transaction } from '@writ/contracts';
import { type AuditEvent, decodeBase64, merkleLeafHash, openNote, parseCheckpoint, verifyInclusion } from '@writ/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Database } from '../src/infra/database.service.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { AuditVerdicts } from '../src/modules/humans/audit-verdicts.js';
import { e2eStorage } from './support/databases.js';
import { type HumanBrowser, humanApi } from './support/human-browser.js';
import { type Agent, capability, createTokenFixture } from './support/token-fixture.js';

/**
 * Issue 19, goal 2: `GET /me/transactions/:txn` shows the registry's last verdict on the audit log
 * (never a verification per request) and each event's inclusion proof in the latest checkpoint.
 */
describe.each([e2eStorage])('the transaction view’s audit part on $name', (storage) => {
  // No background verification and no timed checkpoint: the test decides when each happens.
  const fx = createTokenFixture(storage, { dataDirPrefix: 'writ-txn-audit-', owners: [], env: { WRIT_AUDIT_VERIFY_SECONDS: '0', WRIT_AUDIT_CHECKPOINT_SECONDS: '3600' } });
  let app: NestFastifyApplication;
  let db: Database;
  const { call, signUp } = humanApi(() => app);
  let alice: HumanBrowser;
  let planner: Agent;
  let helper: Agent;
  let root: string;
  let txn: string;

  /** The view as the approval UI's page fetches it. */
  async function view(): Promise<Transaction> {
    const res = await call(alice, 'GET', `/me/transactions/${txn}`);
    expect(res.statusCode, res.body).toBe(200);
    return res.json<Transaction>();
  }

  /** The transaction's events as the log holds them. */
  async function eventsOfTxn(): Promise<AuditEvent[]> {
    const events: AuditEvent[] = [];
    for await (const event of app.get(AuditService).export()) if (event.txn === txn) events.push(event);
    return events;
  }

  /** Hands the root token down to `helper`, read only: one more `token.delegated` event. */
  async function delegateOnce(): Promise<void> {
    const hop = await fx.delegate(planner, root, helper, { requestDetails: { authorization_details: [{ ...capability, actions: ['read'] }] } });
    expect(hop.statusCode, hop.body).toBe(200);
  }

  beforeAll(async () => {
    ({ app, db } = await fx.start());
    alice = await signUp('Alice');
    planner = await fx.enrol(alice.humanId);
    helper = await fx.enrol(alice.humanId);
    root = await fx.rootToken(planner, await fx.approvedGrant(planner));
    ({ txn } = await fx.verify(root));
    await delegateOnce();
  });

  afterAll(async () => {
    await fx.close();
  });

  it('says not verified yet, and no event in a checkpoint, before the first verification and checkpoint', async () => {
    const events = await eventsOfTxn();
    const { audit } = await view();
    expect(audit.verdict).toEqual({ status: 'unverified' });
    expect(audit.checkpoint).toBeNull();
    expect(audit.omitted).toBe(0);
    expect(audit.events).toEqual(
      events.map((e) => ({ seq: e.seq, type: e.type, leaf_hash: Buffer.from(merkleLeafHash(Buffer.from(e.hash, 'hex'))).toString('base64'), proof: null })),
    );
  });

  it('answers the last verdict without verifying per request, and proofs that verify against the signed checkpoint', async () => {
    const auditService = app.get(AuditService);
    const checkpoint = (await auditService.checkpoint())!;
    const verdict = await app.get(AuditVerdicts).refresh();
    await delegateOnce(); // past the checkpoint
    const verify = vi.spyOn(auditService, 'verify');
    const first = await view();
    await view();
    await view();
    expect(verify).not.toHaveBeenCalled();
    verify.mockRestore();

    const { text } = await openNote({ note: first.audit.checkpoint!.note, verifiers: [auditService.log.vkey] });
    const signed = parseCheckpoint(text);
    expect(first.audit.checkpoint).toEqual({ size: checkpoint.seq, root: Buffer.from(signed.root).toString('base64'), note: checkpoint.note });
    expect((await app.inject({ method: 'GET', url: '/audit/checkpoint' })).body).toBe(checkpoint.note);
    expect(first.audit.verdict).toEqual({ status: 'verified', size: checkpoint.seq, root: Buffer.from(signed.root).toString('base64'), at: expect.any(String) as string });
    expect(verdict).toEqual(first.audit.verdict);

    const events = await eventsOfTxn();
    expect(first.audit.events.map((e) => e.seq)).toEqual(events.map((e) => e.seq));
    const inside = first.audit.events.filter((e) => e.seq <= signed.size);
    expect(inside.length).toBeGreaterThanOrEqual(2);
    for (const [i, event] of first.audit.events.entries()) {
      const leafHash = merkleLeafHash(Buffer.from(events[i]!.hash, 'hex'));
      expect(event.leaf_hash).toBe(Buffer.from(leafHash).toString('base64'));
      if (event.seq > signed.size) {
        expect(event.proof, `event ${event.seq} is past the checkpoint`).toBeNull();
        continue;
      }
      const proof = event.proof!.map((h) => decodeBase64(h)!);
      expect(verifyInclusion({ leafHash, index: event.seq - 1, size: signed.size, proof, root: signed.root })).toBe(true);
      // The same proof does not hold for another event's leaf.
      expect(verifyInclusion({ leafHash: merkleLeafHash(new Uint8Array(32)), index: event.seq - 1, size: signed.size, proof, root: signed.root })).toBe(false);
    }
    expect(first.audit.events.at(-1)).toMatchObject({ type: 'token.delegated', proof: null });
  });

  it('reads every proof of the view in one query of the tree, however many events', async () => {
    await delegateOnce();
    await app.get(AuditService).checkpoint();
    const query = vi.spyOn(db.dataSource, 'query');
    const { audit } = await view();
    const treeReads = query.mock.calls.filter(([sql]) => String(sql).includes('audit_merkle_nodes'));
    query.mockRestore();
    expect(audit.events.filter((e) => e.proof !== null).length).toBeGreaterThanOrEqual(4);
    expect(treeReads).toHaveLength(1);
  });

  it('says BROKEN at the event found changed, with the reason and the head last found intact', async () => {
    const before = (await view()).audit.verdict;
    if (before.status !== 'verified') throw new Error('verified before');
    const last = (await eventsOfTxn()).at(-1)!;
    await db.dataSource.query(`UPDATE audit_events SET data = '{"jti": "forged"}'::jsonb WHERE seq = $1`, [last.seq]);
    await app.get(AuditVerdicts).refresh();
    const { audit } = await view();
    expect(audit.verdict).toEqual({ status: 'broken', seq: last.seq, reason: 'hash does not match the event content', at: expect.any(String) as string, verified: { size: before.size, at: before.at } });
  });
});
