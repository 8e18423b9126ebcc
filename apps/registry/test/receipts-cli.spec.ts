import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approvalDocumentText, approvalReceiptHash, jwkThumbprint, type ApprovalReceipt } from '@writ/core';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './support/cli.js';
import { ReceiptSigner, approvalDocument } from './support/receipt-signer.js';

const RP_ID = 'writ.example';
const ORIGIN = 'https://writ.example';

describe('receipts verify (CLI, offline)', () => {
  let dir: string;
  let env: Record<string, string>;
  let passkey: ReceiptSigner;
  let receipt: ApprovalReceipt;
  let hash: string;
  let keyFile: string;
  let otherKeyFile: string;

  /** Writes what `GET /me/grants/:id/receipt` serves, and returns its path. */
  function exportFile(name: string, body: { receipt: unknown; hash: string; public_key?: JWK; rp_id?: string; origins?: string[] }): string {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify({ public_key: passkey.publicJwk, rp_id: RP_ID, origins: ['http://localhost:3000', ORIGIN], ...body }));
    return file;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'writ-receipts-cli-'));
    // The command must touch neither: a data directory that does not exist stays so, and a
    // database URL nothing listens on is never dialled.
    env = { WRIT_DATA_DIR: join(dir, 'never-created'), DATABASE_URL: 'postgres://writ@127.0.0.1:1/none' };
    passkey = await ReceiptSigner.create({ rpId: RP_ID, origin: ORIGIN });
    receipt = await passkey.sign(approvalDocument(), { counter: 17 });
    hash = await approvalReceiptHash(receipt);
    keyFile = join(dir, 'passkey.jwk.json');
    writeFileSync(keyFile, JSON.stringify(passkey.publicJwk));
    otherKeyFile = join(dir, 'other.jwk.json');
    writeFileSync(otherKeyFile, JSON.stringify((await ReceiptSigner.create()).publicJwk));
  });

  afterAll(() => {
    expect(existsSync(env.WRIT_DATA_DIR!)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies a receipt with the key given by --key and prints what the human signed', async () => {
    const file = exportFile('receipt.json', { receipt, hash });
    const { code, stdout, stderr } = await cli(['receipts', 'verify', file, '--key', keyFile], env);
    expect(stderr).toBe('');
    expect(stdout.split('\n')).toEqual([
      'receipt valid: signed with user verification at https://writ.example',
      `key: ${keyFile} (JWK thumbprint ${await jwkThumbprint(passkey.publicJwk)})`,
      'decision: approve',
      'grant: grt_receipt_1 (version 2)',
      'subject: usr_alice',
      'agent: planner (agt_planner)',
      'service: https://flights.example (svc_flights)',
      'purpose: Book my flight to Lisbon',
      'capabilities:',
      '  - Read and book flight_booking on flights.example, all resources',
      'envelope:',
      '  - At most 60 requests per minute',
      '  - Up to €200 per payment and €500 in total',
      'delegation: up to 1 more hop',
      'expires at: 2026-11-26T09:00:00.000Z',
      'sign count: 17',
      `receipt hash ${hash} (this is tctx.approval in every token of the grant)`,
      '',
    ]);
    expect(code).toBe(0);
  });

  it("says when the key is the file's own: that shows consistency, not whose passkey signed", async () => {
    const denial = await passkey.sign(approvalDocument({ decision: 'deny', envelope: {}, delegation: { max_depth: 0 } }));
    const file = exportFile('denial.json', { receipt: denial, hash: await approvalReceiptHash(denial) });
    const { code, stdout } = await cli(['receipts', 'verify', file], env);
    expect(stdout).toContain(
      `key: the file's own public_key (JWK thumbprint ${await jwkThumbprint(passkey.publicJwk)}): this shows the receipt is consistent, not that the key is the human's passkey; pass --key with the passkey's public key obtained independently\n`,
    );
    expect(stdout).toContain('\ndecision: deny\n');
    expect(stdout).toContain('\nenvelope: no limits\ndelegation: none\n');
    expect(code).toBe(0);
  });

  it('refuses a receipt whose document was changed, with the reason on stderr and status 1', async () => {
    const tampered = { ...receipt, document: approvalDocumentText(approvalDocument({ envelope: { amount: { currency: 'EUR', total_max: 50_000 } } })) };
    // The file's hash matches the tampered receipt: the signature is what catches it.
    const file = exportFile('tampered.json', { receipt: tampered, hash: await approvalReceiptHash(tampered) });
    const { code, stdout, stderr } = await cli(['receipts', 'verify', file, '--key', keyFile], env);
    expect(stderr).toBe('receipt invalid: challenge_mismatch: clientDataJSON challenge is not the SHA-256 of the approval document\n');
    expect(stdout).toBe('');
    expect(code).toBe(1);
  });

  it("refuses a file whose hash is not the receipt's", async () => {
    const otherHash = await approvalReceiptHash({ ...receipt, user_handle: null });
    const file = exportFile('wrong-hash.json', { receipt, hash: otherHash });
    const { code, stdout, stderr } = await cli(['receipts', 'verify', file, '--key', keyFile], env);
    expect(stderr).toBe(`receipt invalid: hash_mismatch: the file's hash ${otherHash} is not the receipt's hash ${hash}\n`);
    expect(stdout).toBe('');
    expect(code).toBe(1);
  });

  it("refuses the receipt with --key naming another passkey's key, even though the file's own key verifies it", async () => {
    const file = exportFile('receipt-other-key.json', { receipt, hash });
    const { code, stderr } = await cli(['receipts', 'verify', file, '--key', otherKeyFile], env);
    expect(stderr).toBe('receipt invalid: signature_invalid: signature does not verify with the public key\n');
    expect(code).toBe(1);
  });

  it("lets --rp-id and --origin replace the file's values", async () => {
    const file = exportFile('receipt-overrides.json', { receipt, hash });
    const rp = await cli(['receipts', 'verify', file, '--rp-id', 'other.example'], env);
    expect(rp.stderr).toBe('receipt invalid: rp_id_mismatch: authenticatorData rpIdHash is not the SHA-256 of the RP ID "other.example"\n');
    expect(rp.code).toBe(1);
    const origin = await cli(['receipts', 'verify', file, '--origin', 'https://a.example', '--origin', 'https://b.example'], env);
    expect(origin.stderr).toBe('receipt invalid: origin_not_allowed: clientDataJSON origin "https://writ.example" is not an allowed origin\n');
    expect(origin.code).toBe(1);
  });

  it('answers status 2 with a clear message for a missing file, a file that is not JSON, or not a receipt export', async () => {
    const missing = join(dir, 'nope.json');
    const gone = await cli(['receipts', 'verify', missing], env);
    expect(gone.stderr).toBe(`receipts verify: cannot read receipt file ${missing}: no such file\n`);
    expect(gone.code).toBe(2);

    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, '{"receipt":');
    const bad = await cli(['receipts', 'verify', notJson], env);
    expect(bad.stderr).toBe(`receipts verify: receipt file ${notJson} is not JSON\n`);
    expect(bad.code).toBe(2);

    const noHash = exportFile('no-hash.json', { receipt, hash: undefined as unknown as string });
    const shape = await cli(['receipts', 'verify', noHash], env);
    expect(shape.stderr).toBe(
      `receipts verify: ${noHash} is not a receipt export {receipt, hash, public_key, rp_id, origins}: hash: Invalid input: expected string, received undefined\n`,
    );
    expect(shape.code).toBe(2);

    const noFile = await cli(['receipts', 'verify'], env);
    expect(noFile.stderr).toBe('receipts verify needs <file>: the JSON of GET /me/grants/:id/receipt\n');
    expect(noFile.code).toBe(2);
  });
});
