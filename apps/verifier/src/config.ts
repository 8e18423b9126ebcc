import { z } from 'zod';

const url = (schemes: RegExp, message: string) => z.string().url().refine((v) => schemes.test(v), message);

/**
 * The verifier's environment. Each variable's `.meta()` description (and `unset`, for one that may
 * be left out) is the configuration table of docs/configuration.md (`npm run docs:config`).
 */
export const verifierEnvSchema = z.object({
  REDIS_URL: url(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .optional()
    .meta({
      unset: "the in-process store, for a verifier that runs in the registry's process",
      description: "`redis://` or `rediss://` URL of the Redis that holds every grant's counters, spent proofs, revocations and queued decisions",
    }),
  // A brace would make the prefix the Redis Cluster hash tag instead of the grant's.
  WRIT_REDIS_PREFIX: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[^{}\s]+$/, 'must not contain {, } or spaces')
    .default('writ:')
    .describe("put before every Redis key and channel: the registry's `WRIT_REDIS_PREFIX`"),
  WRIT_ISSUER: url(/^https?:\/\//, 'must be an http(s) URL')
    .refine((v) => !v.endsWith('/'), 'must not end with /')
    .default('http://127.0.0.1:4000')
    .describe("`iss` every token must carry: the registry's `WRIT_ISSUER`"),
  WRIT_REGISTRY_URL: url(/^https?:\/\//, 'must be an http(s) URL')
    .refine((v) => !v.endsWith('/'), 'must not end with /')
    .optional()
    .meta({
      unset: '`WRIT_ISSUER`',
      description: 'where the verifier fetches the JWKS and checks service credentials, when the registry is reached at another address than its issuer URL',
    }),
  WRIT_TRUST_DOMAIN: z.string().min(1).default('writ.local').describe("`aud` every token must carry: the registry's `WRIT_TRUST_DOMAIN`"),
  VERIFIER_HOST: z.string().min(1).default('127.0.0.1').describe('the address the verifier listens on'),
  VERIFIER_PORT: z.coerce.number().int().min(0).max(65535).default(4100).describe('the port the verifier listens on'),
  WRIT_VERIFIER_CACHE_SIZE: z.coerce.number().int().min(1).max(10_000_000).default(100_000).describe('verified tokens kept in memory, by hash'),
  WRIT_VERIFIER_REDIS_TIMEOUT_MS: z.coerce.number().int().min(10).max(60_000).default(500).describe('a Redis command slower than this (in milliseconds) fails the request closed (503)'),
  WRIT_VERIFIER_DPOP_NONCE_SECRET: z
    .string()
    .regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 random bytes in base64url (43 characters)')
    .optional()
    .meta({
      unset: 'no nonces',
      description:
        "32 random bytes, base64url: every proof must carry a server nonce (RFC 9449 §8, §9); a denial hands out the next one as `dpop_nonce`. Give every replica the same secret (`node -e \"console.log(require('crypto').randomBytes(32).toString('base64url'))\"`)",
    }),
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
  const parsed = verifierEnvSchema.safeParse(env);
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
