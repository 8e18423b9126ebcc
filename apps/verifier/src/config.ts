import { z } from 'zod';

const url = (schemes: RegExp, message: string) => z.string().url().refine((v) => schemes.test(v), message);

const schema = z.object({
  REDIS_URL: url(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
  // A brace would make the prefix the Redis Cluster hash tag instead of the grant's.
  WRIT_REDIS_PREFIX: z.string().min(1).max(64).regex(/^[^{}\s]+$/, 'must not contain {, } or spaces').default('writ:'),
  WRIT_ISSUER: url(/^https?:\/\//, 'must be an http(s) URL')
    .refine((v) => !v.endsWith('/'), 'must not end with /')
    .default('http://127.0.0.1:4000'),
  WRIT_REGISTRY_URL: url(/^https?:\/\//, 'must be an http(s) URL')
    .refine((v) => !v.endsWith('/'), 'must not end with /')
    .optional(),
  WRIT_TRUST_DOMAIN: z.string().min(1).default('writ.local'),
  VERIFIER_HOST: z.string().min(1).default('127.0.0.1'),
  VERIFIER_PORT: z.coerce.number().int().min(0).max(65535).default(4100),
  WRIT_VERIFIER_CACHE_SIZE: z.coerce.number().int().min(1).max(10_000_000).default(100_000),
  WRIT_VERIFIER_REDIS_TIMEOUT_MS: z.coerce.number().int().min(10).max(60_000).default(500),
  WRIT_VERIFIER_DPOP_NONCE_SECRET: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 random bytes in base64url (43 characters)').optional(),
});

/** The verifier's validated configuration. */
export interface VerifierConfig {
  /** `undefined`: the in-process store (embedded mode, one verifier process). */
  redisUrl: string | undefined;
  redisPrefix: string;
  /** `iss` every token must carry. */
  issuer: string;
  /** Where the registry answers (JWKS, `/services/me`): the issuer unless set apart (a private address). */
  registryUrl: string;
  /** `aud` every token must carry. */
  trustDomain: string;
  host: string;
  port: number;
  /** Verified tokens kept in memory, by hash. */
  cacheSize: number;
  /** A Redis command that takes longer fails the request closed (503). */
  redisTimeoutMs: number;
  /** Set: every proof must carry a server nonce (RFC 9449 §8, §9) made with this secret; replicas share it. */
  dpopNonceSecret: string | undefined;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Reads the environment once; a bad value stops start-up with a message naming every wrong variable. */
export function loadVerifierConfig(env: Record<string, string | undefined> = process.env): VerifierConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid verifier configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    redisUrl: e.REDIS_URL,
    redisPrefix: e.WRIT_REDIS_PREFIX,
    issuer: e.WRIT_ISSUER,
    registryUrl: e.WRIT_REGISTRY_URL ?? e.WRIT_ISSUER,
    trustDomain: e.WRIT_TRUST_DOMAIN,
    host: e.VERIFIER_HOST,
    port: e.VERIFIER_PORT,
    cacheSize: e.WRIT_VERIFIER_CACHE_SIZE,
    redisTimeoutMs: e.WRIT_VERIFIER_REDIS_TIMEOUT_MS,
    dpopNonceSecret: e.WRIT_VERIFIER_DPOP_NONCE_SECRET,
  };
}
