import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/config.js';

describe('registry configuration', () => {
  it('runs on embedded storage with defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ databaseUrl: undefined, issuer: 'http://127.0.0.1:4000', port: 4000, tokenTtlSeconds: 300 });
    expect(config.dataDir).toMatch(/\.data$/);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ DATABASE_URL: '' }).databaseUrl).toBeUndefined();
  });

  it('stops start-up naming every bad variable', () => {
    const attempt = () => loadConfig({ DATABASE_URL: 'mysql://x', REGISTRY_PORT: '99999', WRIT_ISSUER: 'https://writ.example/' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(
      'Invalid configuration:\n  DATABASE_URL: must be a postgres:// or postgresql:// URL\n  WRIT_ISSUER: must not end with /\n  REGISTRY_PORT: Too big: expected number to be <=65535',
    );
  });

  it('refuses a token lifetime outside 10 s to 1 h', () => {
    expect(() => loadConfig({ WRIT_TOKEN_TTL_S: '5' })).toThrow('WRIT_TOKEN_TTL_S: Too small: expected number to be >=10');
  });

  it('leaves DPoP nonces off unless WRIT_DPOP_NONCE is required', () => {
    expect(loadConfig({}).dpopNonce).toBe('off');
    expect(loadConfig({ WRIT_DPOP_NONCE: 'off' }).dpopNonce).toBe('off');
    expect(loadConfig({ WRIT_DPOP_NONCE: 'required' }).dpopNonce).toBe('required');
  });

  it('refuses a WRIT_DPOP_NONCE other than off or required', () => {
    const attempt = () => loadConfig({ WRIT_DPOP_NONCE: 'yes' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow('Invalid configuration:\n  WRIT_DPOP_NONCE: Invalid option: expected one of "off"|"required"');
  });

  it('announces revocations in process unless REDIS_URL is set, under the writ: prefix by default', () => {
    expect(loadConfig({})).toMatchObject({ redisUrl: undefined, redisPrefix: 'writ:' });
    expect(loadConfig({ REDIS_URL: '', WRIT_REDIS_PREFIX: '' })).toMatchObject({ redisUrl: undefined, redisPrefix: 'writ:' });
    expect(loadConfig({ REDIS_URL: 'rediss://cache.example:6380/2', WRIT_REDIS_PREFIX: 'prod:' })).toMatchObject({
      redisUrl: 'rediss://cache.example:6380/2',
      redisPrefix: 'prod:',
    });
  });

  it('refuses a REDIS_URL that is not redis:// and a prefix that would become the hash tag', () => {
    const attempt = () => loadConfig({ REDIS_URL: 'http://cache.example', WRIT_REDIS_PREFIX: '{writ}:' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(
      'Invalid configuration:\n  REDIS_URL: must be a redis:// or rediss:// URL\n  WRIT_REDIS_PREFIX: must not contain {, } or spaces',
    );
  });
});
