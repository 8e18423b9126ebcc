import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { z } from 'zod';

const postgresUrl = z
  .string()
  .url()
  .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// or postgresql:// URL');

const redisUrl = z
  .string()
  .url()
  .refine((v) => /^rediss?:\/\//.test(v), 'must be a redis:// or rediss:// URL');

/** A count limit from the environment: a whole number from 1 to `max`. */
const limit = (fallback: number, max: number) => z.coerce.number().int().min(1).max(max).default(fallback);

/** An IP address, or a subnet `address/prefix`. */
function isAddressOrSubnet(value: string): boolean {
  const [address = '', prefix, ...rest] = value.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

const schema = z.object({
  DATABASE_URL: postgresUrl.optional(),
  REDIS_URL: redisUrl.optional(),
  // A brace would make the prefix the Redis Cluster hash tag instead of the grant's.
  WRIT_REDIS_PREFIX: z.string().min(1).max(64).regex(/^[^{}\s]+$/, 'must not contain {, } or spaces').default('writ:'),
  WRIT_DATA_DIR: z.string().min(1).default('.data'),
  WRIT_ISSUER: z
    .string()
    .url()
    .refine((v) => !v.endsWith('/'), 'must not end with /')
    .default('http://127.0.0.1:4000'),
  WRIT_TRUST_DOMAIN: z.string().min(1).default('writ.local'),
  REGISTRY_HOST: z.string().min(1).default('127.0.0.1'),
  REGISTRY_PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  WRIT_TOKEN_TTL_S: z.coerce.number().int().min(10).max(3600).default(300),
  WRIT_CHECKPOINT_EVERY: z.coerce.number().int().min(1).max(100_000).default(100),
  WRIT_DPOP_NONCE: z.enum(['off', 'required']).default('off'),
  // WebAuthn RP ID: a host name (RFC 1123 labels), never an IP address or a URL.
  WRIT_RP_ID: z
    .string()
    .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 'must be a lower-case host name such as localhost or writ.example.com')
    .refine((v) => !/^[0-9.]+$/.test(v), 'must be a host name, not an IP address')
    .default('localhost'),
  WRIT_RP_NAME: z.string().trim().min(1).max(64).default('Writ'),
  WRIT_OPERATOR_TOKEN: z.string().min(32, 'must be at least 32 characters').max(256).optional(),
  WRIT_UI_ORIGINS: z
    .string()
    .default('http://localhost:3000')
    .transform((v) => v.split(',').map((o) => o.trim()).filter((o) => o !== ''))
    .pipe(z.array(z.string().refine(isOrigin, 'each origin must be scheme://host[:port] with nothing after it')).min(1, 'at least one origin')),
  // ADR 0020: whose X-Forwarded-For is believed (the approval UI's server); `none` for nobody.
  WRIT_TRUSTED_PROXIES: z
    .string()
    .default('127.0.0.1,::1')
    .transform((v) => (v.trim() === 'none' ? [] : v.split(',').map((a) => a.trim()).filter((a) => a !== '')))
    .pipe(z.array(z.string().refine(isAddressOrSubnet, 'each entry must be an IP address or a subnet such as 10.0.0.0/8'))),
  WRIT_LIMIT_CEREMONIES_PER_IP: limit(30, 100_000),
  WRIT_LIMIT_SIGNUPS_PER_IP: limit(10, 100_000),
  WRIT_LIMIT_CEREMONIES_PER_ACCOUNT: limit(30, 100_000),
  WRIT_MAX_EVENT_STREAMS_PER_SESSION: limit(8, 1000),
  WRIT_MAX_LONG_POLLS_PER_AGENT: limit(16, 1000),
});

/** `scheme://host[:port]`, exactly as a browser serialises an origin. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
  } catch {
    return false;
  }
}

/** The registry's validated configuration. */
export interface RegistryConfig {
  /** `undefined`: embedded PGlite under `dataDir`. */
  databaseUrl: string | undefined;
  /** `undefined`: revocations are announced in this process only. */
  redisUrl: string | undefined;
  /** Put before every Redis key and channel name, so several deployments can share one Redis. */
  redisPrefix: string;
  dataDir: string;
  issuer: string;
  trustDomain: string;
  host: string;
  port: number;
  tokenTtlSeconds: number;
  checkpointEvery: number;
  /** RFC 9449 §8: `required` makes the token endpoint demand a server-issued nonce in every DPoP proof. */
  dpopNonce: 'off' | 'required';
  /** WebAuthn relying party: its id (a host name) and the name authenticators show. */
  rp: { id: string; name: string };
  /** The approval UI's origins: the only ones the human API and WebAuthn assertions accept. */
  uiOrigins: string[];
  /** The operator API's token when set; otherwise one is made in `<dataDir>/keys/operator-token`. */
  operatorToken: string | undefined;
  /** Addresses and subnets whose `X-Forwarded-For` names the client (ADR 0020). */
  trustedProxies: string[];
  /** ADR 0020: what one client address, account, session or agent may start or hold open. */
  limits: {
    ceremoniesPerIpPerMinute: number;
    signupsPerIpPerHour: number;
    ceremoniesPerAccountPerMinute: number;
    eventStreamsPerSession: number;
    longPollsPerAgent: number;
  };
}

/** A configuration value is wrong: start-up stops with this message. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Reads and validates the environment once, at start-up; a bad value stops start-up with a
 * message naming every variable that is wrong.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): RegistryConfig {
  const blankToUndefined = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === '' ? undefined : v]));
  const parsed = schema.safeParse(blankToUndefined);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  return {
    databaseUrl: c.DATABASE_URL,
    redisUrl: c.REDIS_URL,
    redisPrefix: c.WRIT_REDIS_PREFIX,
    dataDir: resolve(c.WRIT_DATA_DIR),
    issuer: c.WRIT_ISSUER,
    trustDomain: c.WRIT_TRUST_DOMAIN,
    host: c.REGISTRY_HOST,
    port: c.REGISTRY_PORT,
    tokenTtlSeconds: c.WRIT_TOKEN_TTL_S,
    checkpointEvery: c.WRIT_CHECKPOINT_EVERY,
    dpopNonce: c.WRIT_DPOP_NONCE,
    rp: { id: c.WRIT_RP_ID, name: c.WRIT_RP_NAME },
    uiOrigins: c.WRIT_UI_ORIGINS,
    operatorToken: c.WRIT_OPERATOR_TOKEN,
    trustedProxies: c.WRIT_TRUSTED_PROXIES,
    limits: {
      ceremoniesPerIpPerMinute: c.WRIT_LIMIT_CEREMONIES_PER_IP,
      signupsPerIpPerHour: c.WRIT_LIMIT_SIGNUPS_PER_IP,
      ceremoniesPerAccountPerMinute: c.WRIT_LIMIT_CEREMONIES_PER_ACCOUNT,
      eventStreamsPerSession: c.WRIT_MAX_EVENT_STREAMS_PER_SESSION,
      longPollsPerAgent: c.WRIT_MAX_LONG_POLLS_PER_AGENT,
    },
  };
}
