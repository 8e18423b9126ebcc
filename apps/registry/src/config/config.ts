import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseVerifierKey } from '@writ/core';
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

/** A witness's C2SP note verifier key for cosignature/v1 (type 0x04). */
function isWitnessKey(value: string): boolean {
  try {
    return parseVerifierKey(value).type === 0x04;
  } catch {
    return false;
  }
}

/** `WRIT_AUDIT_WITNESSES`: a JSON array of `{url, vkey}`. */
const auditWitnesses = z
  .string()
  .default('[]')
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON array of {"url": ..., "vkey": ...}' });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .array(
        z.strictObject({
          url: z
            .string()
            .url()
            .refine((v) => /^https?:\/\//.test(v) && !v.endsWith('/'), "must be the witness's http(s) URL prefix without a trailing /"),
          vkey: z.string().max(512).refine(isWitnessKey, 'must be a C2SP note verifier key of type 0x04 (cosignature/v1)'),
        }),
      )
      .max(16),
  );

/** An IP address, or a subnet `address/prefix`. */
function isAddressOrSubnet(value: string): boolean {
  const [address = '', prefix, ...rest] = value.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * The registry's environment. Each variable's `.meta()` description (and `unset`, for one that may
 * be left out) is the configuration table of docs/configuration.md (`npm run docs:config`).
 */
export const registryEnvSchema = z.object({
  DATABASE_URL: postgresUrl.optional().meta({ unset: 'embedded PGlite under `WRIT_DATA_DIR`', description: '`postgres://` URL of a real PostgreSQL' }),
  REDIS_URL: redisUrl.optional().meta({
    unset: 'revocations, step-ups and decisions reach only a verifier in the same process (`npm start`)',
    description:
      "`redis://` or `rediss://` URL of the verifiers' Redis. Each revocation is written under every affected grant's hash tag with a TTL and published on `<prefix>revocations`, retried until Redis has it and re-published at start-up ([ADR 0008](adr/0008-revocation-publication.md)); approved step-ups are handed to the verifiers there, and the decisions they queue are appended to the audit chain",
  }),
  // A brace would make the prefix the Redis Cluster hash tag instead of the grant's.
  WRIT_REDIS_PREFIX: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[^{}\s]+$/, 'must not contain {, } or spaces')
    .default('writ:')
    .describe('put before every Redis key and channel, so deployments can share one Redis (no `{`, `}` or spaces)'),
  WRIT_DATA_DIR: z
    .string()
    .min(1)
    .default('.data')
    .describe(
      'embedded database and signing keys: created 0700 (files 0600) with a `.gitignore` of `*` in it, so git ignores it whatever its name; the registry refuses to start when anything in it is within reach of another account and says how to fix it (`chmod -R go-rwx <dir>`, [ADR 0020](adr/0020-limits-and-private-data.md))',
    ),
  WRIT_ISSUER: z
    .string()
    .url()
    .refine((v) => !v.endsWith('/'), 'must not end with /')
    .default('http://127.0.0.1:4000')
    .describe("the registry's issuer URL (no trailing `/`): `iss` of every token it signs"),
  WRIT_TRUST_DOMAIN: z.string().min(1).default('writ.local').describe('`aud` of every transaction token'),
  REGISTRY_HOST: z.string().min(1).default('127.0.0.1').describe('the address the registry listens on'),
  REGISTRY_PORT: z.coerce.number().int().min(0).max(65535).default(4000).describe('the port the registry listens on'),
  WRIT_TOKEN_TTL_S: z.coerce.number().int().min(10).max(3600).default(300).describe("a transaction token's life, in seconds"),
  WRIT_CHECKPOINT_EVERY: z.coerce.number().int().min(1).max(100_000).default(100).describe('sign an audit checkpoint every N events'),
  // C2SP tlog-checkpoint: the origin is the checkpoint's first line and its signer's key name (no space or +).
  WRIT_AUDIT_ORIGIN: z
    .string()
    .regex(/^[\x21-\x2a\x2c-\x7e]{1,255}$/, 'must be printable ASCII without spaces or +, such as writ.example.com/audit')
    .optional()
    .meta({
      unset: "the issuer's host and `/audit`, such as `127.0.0.1:4000/audit`",
      description: "the audit log's origin: the first line of its checkpoints and their signer's name ([docs/audit.md](audit.md#operating-the-log))",
    }),
  WRIT_AUDIT_CHECKPOINT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(5)
    .describe('sign an audit checkpoint at least this often while events arrive (none when nothing arrived), besides every `WRIT_CHECKPOINT_EVERY` events'),
  WRIT_AUDIT_VERIFY_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(86_400)
    .default(300)
    .describe(
      'verify the audit log in the background (from the last verified head) at most this often, and once at start; transaction pages show the last verdict and never verify ([docs/approval.md](approval.md#transactions-and-the-audit-log)); 0: never',
    ),
  WRIT_AUDIT_WITNESSES: auditWitnesses.describe(
    'JSON array of `{"url", "vkey"}`: the witnesses each checkpoint is pushed to (C2SP tlog-witness) and whose cosigned checkpoints `audit verify` checks the log against',
  ),
  WRIT_DPOP_NONCE: z
    .enum(['off', 'required'])
    .default('off')
    .describe(
      '`required`: the token endpoint demands a server nonce in DPoP proofs (RFC 9449 §8; secret in `<WRIT_DATA_DIR>/keys/`, shared by every process using that folder)',
    ),
  // WebAuthn RP ID: a host name (RFC 1123 labels), never an IP address or a URL.
  WRIT_RP_ID: z
    .string()
    .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 'must be a lower-case host name such as localhost or writ.example.com')
    .refine((v) => !/^[0-9.]+$/.test(v), 'must be a host name, not an IP address')
    .default('localhost')
    .describe("WebAuthn relying-party id: the approval UI's host name or a parent domain of it (never an IP address)"),
  WRIT_RP_NAME: z.string().trim().min(1).max(64).default('Writ').describe('the name an authenticator shows when a passkey is created (up to 64 characters)'),
  WRIT_OPERATOR_TOKEN: z
    .string()
    .min(32, 'must be at least 32 characters')
    .max(256)
    .optional()
    .meta({ unset: 'made on first run in `<WRIT_DATA_DIR>/keys/operator-token`', description: 'bearer token of the operator API (32 to 256 characters)' }),
  WRIT_UI_ORIGINS: z
    .string()
    .default('http://localhost:3000')
    .transform((v) => v.split(',').map((o) => o.trim()).filter((o) => o !== ''))
    .pipe(z.array(z.string().refine(isOrigin, 'each origin must be scheme://host[:port] with nothing after it')).min(1, 'at least one origin'))
    .describe('comma-separated origins of the approval UI: the only ones the human API and passkey assertions accept'),
  // ADR 0020: whose X-Forwarded-For is believed (the approval UI's server); `none` for nobody.
  WRIT_TRUSTED_PROXIES: z
    .string()
    .default('127.0.0.1,::1')
    .transform((v) => (v.trim() === 'none' ? [] : v.split(',').map((a) => a.trim()).filter((a) => a !== '')))
    .pipe(z.array(z.string().refine(isAddressOrSubnet, 'each entry must be an IP address or a subnet such as 10.0.0.0/8')))
    .describe(
      "addresses or subnets (comma-separated, `none` for nobody) whose `X-Forwarded-For` is believed for the per-address limits: the approval UI's server appends the browser's address; the right-most hop that is not itself trusted is the client ([ADR 0020](adr/0020-limits-and-private-data.md))",
    ),
  WRIT_LIMIT_CEREMONIES_PER_IP: limit(30, 100_000).describe(
    'passkey ceremonies started without a session (`/auth/register/options`, `/auth/login/options`) per client address (IPv6: per /64) per minute',
  ),
  WRIT_LIMIT_SIGNUPS_PER_IP: limit(10, 100_000).describe('sign-ups (`/auth/register/verify`) per client address per hour'),
  WRIT_LIMIT_CEREMONIES_PER_ACCOUNT: limit(30, 100_000).describe(
    'passkey ceremonies started by a signed-in person (decision options, confirmation, adding a passkey) per account per minute',
  ),
  WRIT_MAX_EVENT_STREAMS_PER_SESSION: limit(8, 1000).describe('live-event streams (`GET /me/events`) one session holds open at once'),
  WRIT_MAX_LONG_POLLS_PER_AGENT: limit(16, 1000).describe('`?wait=N` long-polls (grants and step-ups) one agent holds open at once'),
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
  /** The audit log as a transparency log (docs/audit.md, "Operating the log"). */
  audit: { origin: string; checkpointSeconds: number; verifySeconds: number; witnesses: { url: string; vkey: string }[] };
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
  const parsed = registryEnvSchema.safeParse(blankToUndefined);
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
    audit: { origin: c.WRIT_AUDIT_ORIGIN ?? `${new URL(c.WRIT_ISSUER).host}/audit`, checkpointSeconds: c.WRIT_AUDIT_CHECKPOINT_SECONDS, verifySeconds: c.WRIT_AUDIT_VERIFY_SECONDS, witnesses: c.WRIT_AUDIT_WITNESSES },
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
