import { randomBytes } from 'node:crypto';
import { formatVerifierKey } from '@writ/core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';

const witnessKey = formatVerifierKey({ name: 'witness.example/w1', publicKey: randomBytes(32), type: 0x04 });
const logKey = formatVerifierKey({ name: 'log.example/audit', publicKey: randomBytes(32) });

describe('the audit log settings', () => {
  it("default to the issuer's host + /audit, a checkpoint at least every 5 s and no witness", () => {
    expect(loadConfig({ WRIT_ISSUER: 'https://registry.example.com:8443' }).audit).toMatchObject({ origin: 'registry.example.com:8443/audit', checkpointSeconds: 5, witnesses: [] });
  });

  it('read an origin, a period and witnesses', () => {
    const witnesses = [{ url: 'https://witness.example/tlog', vkey: witnessKey }];
    const config = loadConfig({ WRIT_AUDIT_ORIGIN: 'writ.example/audit', WRIT_AUDIT_CHECKPOINT_SECONDS: '30', WRIT_AUDIT_WITNESSES: JSON.stringify(witnesses) });
    expect(config.audit).toMatchObject({ origin: 'writ.example/audit', checkpointSeconds: 30, witnesses });
  });

  it.each([
    ['WRIT_AUDIT_ORIGIN', 'writ example', 'WRIT_AUDIT_ORIGIN: must be printable ASCII without spaces or +, such as writ.example.com/audit'],
    ['WRIT_AUDIT_ORIGIN', 'writ+audit', 'WRIT_AUDIT_ORIGIN: must be printable ASCII without spaces or +, such as writ.example.com/audit'],
    ['WRIT_AUDIT_CHECKPOINT_SECONDS', '0', 'WRIT_AUDIT_CHECKPOINT_SECONDS: Too small: expected number to be >=1'],
    ['WRIT_AUDIT_CHECKPOINT_SECONDS', '1.5', 'WRIT_AUDIT_CHECKPOINT_SECONDS: Invalid input: expected int, received number'],
    ['WRIT_AUDIT_WITNESSES', '{', 'WRIT_AUDIT_WITNESSES: must be a JSON array of {"url": ..., "vkey": ...}'],
    ['WRIT_AUDIT_WITNESSES', JSON.stringify([{ url: 'ftp://w.example', vkey: witnessKey }]), "WRIT_AUDIT_WITNESSES.0.url: must be the witness's http(s) URL prefix without a trailing /"],
    ['WRIT_AUDIT_WITNESSES', JSON.stringify([{ url: 'https://w.example/', vkey: witnessKey }]), "WRIT_AUDIT_WITNESSES.0.url: must be the witness's http(s) URL prefix without a trailing /"],
    ['WRIT_AUDIT_WITNESSES', JSON.stringify([{ url: 'https://w.example', vkey: logKey }]), 'WRIT_AUDIT_WITNESSES.0.vkey: must be a C2SP note verifier key of type 0x04 (cosignature/v1)'],
    ['WRIT_AUDIT_WITNESSES', JSON.stringify([{ url: 'https://w.example', vkey: witnessKey, extra: 1 }]), 'WRIT_AUDIT_WITNESSES.0: Unrecognized key: "extra"'],
  ])('refuse %s=%s, naming what is wrong', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(`Invalid configuration:\n  ${message}`);
  });
});
