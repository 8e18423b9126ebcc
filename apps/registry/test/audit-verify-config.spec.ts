import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';

describe('WRIT_AUDIT_VERIFY_SECONDS: how often the registry verifies its audit log in the background', () => {
  it('defaults to every 300 s, and reads 0 (never) and a period', () => {
    expect(loadConfig({}).audit.verifySeconds).toBe(300);
    expect(loadConfig({ WRIT_AUDIT_VERIFY_SECONDS: '0' }).audit.verifySeconds).toBe(0);
    expect(loadConfig({ WRIT_AUDIT_VERIFY_SECONDS: '3600' }).audit.verifySeconds).toBe(3600);
  });

  it.each([
    ['-1', 'WRIT_AUDIT_VERIFY_SECONDS: Too small: expected number to be >=0'],
    ['86401', 'WRIT_AUDIT_VERIFY_SECONDS: Too big: expected number to be <=86400'],
    ['2.5', 'WRIT_AUDIT_VERIFY_SECONDS: Invalid input: expected int, received number'],
    ['soon', 'WRIT_AUDIT_VERIFY_SECONDS: Invalid input: expected number, received NaN'],
  ])('refuses %s, naming what is wrong', (value, message) => {
    expect(() => loadConfig({ WRIT_AUDIT_VERIFY_SECONDS: value })).toThrow(`Invalid configuration:\n  ${message}`);
  });
});
