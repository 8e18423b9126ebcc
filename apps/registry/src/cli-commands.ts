// The registry's CLI commands (`npm run registry -- <command>`): cli.ts runs them with the process's
// environment and output; the tests run them in process with their own (test/support/cli.ts).
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { inspect, parseArgs } from 'node:util';
import {
  AuditChainVerifier,
  OAuthError,
  ReceiptInvalid,
  approvalReceiptHash,
  describeCapabilities,
  describeEnvelope,
  jwkThumbprint,
  systemClock,
  verifyApprovalReceipt,
  type ApprovalReceipt,
  type ChainVerification,
  type VerifiedApproval,
} from '@writ/core';
import type { JWK } from 'jose';
import { z } from 'zod';
import { ConfigError, loadConfig, type RegistryConfig } from './config/config.js';
import { DataDirError, openDataDir } from './infra/data-dir.js';
import { openDatabase } from './infra/database.js';
import { Database } from './infra/database.service.js';
import { AgentsService, type DisableOutcome, MAX_INITIAL_ACCESS_TOKEN_TTL_S } from './modules/agents/agents.service.js';
import { TypeOrmAgentsRepository } from './modules/agents/agents.repository.js';
import { AuditService, type AuditAnchor, type AuditVerification } from './modules/audit/audit.service.js';
import { TypeOrmAuditRepository } from './modules/audit/audit.repository.js';
import { AUDIT_LOG_KEY_FILE, auditLogSigner } from './modules/audit/audit-log-key.js';
import { CheckpointPublisher } from './modules/audit/checkpoint-publisher.js';
import { verifyRemoteLog } from './modules/audit/remote-verify.js';
import { KeyStore } from './modules/keys/key-store.js';
import { RedisRevocationBus } from './modules/revocations/redis-revocation-bus.js';
import { InProcessRevocationBus } from './modules/revocations/revocation-bus.js';
import { RevocationRecorder } from './modules/revocations/revocation-recorder.js';
import { TypeOrmRevocationsRepository } from './modules/revocations/revocations.repository.js';
import { ServicesService } from './modules/services/services.service.js';
import { TypeOrmServicesRepository } from './modules/services/services.repository.js';

const USAGE = `Usage: npm run registry -- <command>

  keys rotate                     make a new signing key; the old one stays in JWKS until its tokens expire
  audit verify [--checkpoint <f>] [--full]
                                  re-hash the events in the database from the last verified head (from the
                                  first with --full), check every checkpoint taken since, and that the log
                                  extends the checkpoint note in <f> and those the witnesses last cosigned
  audit verify --checkpoint <f> --registry <url> [--vkey <vkey>]
                                  check a live registry from outside: its latest checkpoint must extend the
                                  one in <f> (a consistency proof it serves); --vkey is the log's verifier key
                                  (default: the one in WRIT_DATA_DIR, when there is one)
  audit verify --file <f.jsonl>   re-compute an exported chain (JSON Lines), offline
  audit vkey                      print the audit log's origin and the verifier key of its checkpoints
  audit export --out <f.jsonl>    write the chain as JSON Lines
  agents mint-token --owner <sub> [--ttl <s>]
                                  mint a one-time initial access token (default life 600 s) with which
                                  one agent registers for <sub> (POST /oauth/register); shown this once
  agents disable <client_id>      disable an agent: its calls are refused from now on
  services register --uri <u> --name <n> --catalogue <json>
                                  register a service provider; <json> is [{"type":"...","actions":["..."]}];
                                  prints its id and its verifier credential, shown this once
  receipts verify <file> [--key <jwk.json>] [--rp-id <id>] [--origin <origin>]...
                                  check an approval receipt offline: <file> is what GET /me/grants/:id/receipt
                                  serves; --key is the passkey's public JWK obtained independently (else the
                                  file's public_key is used); --rp-id and --origin replace the file's values

Uses DATABASE_URL (PostgreSQL) or the embedded database under WRIT_DATA_DIR (default .data);
receipts verify uses neither.`;

function describeVerification(result: AuditVerification): string[] {
  const lines = [describe(result.chain)];
  if (result.tree) lines.push(`tree: size ${result.tree.size}, root ${result.tree.root} (events re-hashed from seq ${result.from + 1})`);
  lines.push(`checkpoints: ${result.checkpoints.verified} verified, ${result.checkpoints.failed.length} failed`);
  for (const f of result.checkpoints.failed) lines.push(`  checkpoint seq ${f.seq}: ${f.reason}`);
  for (const a of result.anchors) lines.push(`${a.source}${a.size > 0 ? ` (size ${a.size})` : ''}: ${a.ok ? 'the log extends it' : `BROKEN: ${a.reason ?? 'unknown'}`}`);
  return lines;
}

function isIntact(result: AuditVerification): boolean {
  return result.chain.ok && result.checkpoints.failed.length === 0 && result.anchors.every((a) => a.ok);
}

function describe(result: ChainVerification): string {
  return result.ok
    ? `chain intact: ${result.count} events, head seq ${result.lastSeq} hash ${result.lastHash}`
    : `chain BROKEN at seq ${result.brokenSeq}: ${result.reason} (${result.count} events verified before it)`;
}

/** Verifies a JSON Lines export as a stream, printing progress on long files. */
async function verifyFile(path: string, io: CliIo): Promise<ChainVerification> {
  const verifier = new AuditChainVerifier();
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    if (line.trim() === '') continue;
    n++;
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      event = { malformed: `line ${n} is not JSON` };
    }
    if (!(await verifier.push(event))) break;
    if (n % 10_000 === 0) io.err(`  ${n} events verified`);
  }
  return verifier.result();
}

/** Most a checkpoint note file may hold: a checkpoint and a few dozen signature lines. */
const MAX_CHECKPOINT_FILE_BYTES = 64 * 1024;

/** A saved checkpoint note, or undefined (said on stderr) when the file cannot be used. */
async function readCheckpointFile(path: string, io: CliIo): Promise<string | undefined> {
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_CHECKPOINT_FILE_BYTES) throw new UnusableInput(`--checkpoint ${path} is larger than ${MAX_CHECKPOINT_FILE_BYTES} bytes: not a checkpoint note`);
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = error instanceof UnusableInput ? error.message : error instanceof TypeError ? `--checkpoint ${path} is not UTF-8 text` : `cannot read --checkpoint ${path}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`;
    io.err(`audit verify: ${why}`);
    return undefined;
  }
}

/**
 * `audit verify --checkpoint <f> --registry <url>`: an outsider's check that a live registry's log
 * extends a checkpoint saved before, with the log's verifier key and nothing of its database.
 */
async function verifyRegistryFromOutside(options: { checkpoint: string; registry: string; vkey: string | undefined }, io: CliIo): Promise<number> {
  const note = await readCheckpointFile(options.checkpoint, io);
  if (note === undefined) return 2;
  let vkey = options.vkey;
  if (vkey === undefined) {
    const config = loadConfig(io.env);
    if (!existsSync(join(config.dataDir, 'keys', AUDIT_LOG_KEY_FILE))) {
      io.err(`audit verify: give the log's verifier key with --vkey (there is no audit log key in ${config.dataDir})`);
      return 2;
    }
    vkey = auditLogSigner({ dataDir: config.dataDir, origin: config.audit.origin }).vkey;
  }
  const result = await verifyRemoteLog({ checkpoint: note, registry: options.registry, vkey });
  for (const line of result.lines) io.out(printable(line));
  return result.status;
}

/** What `GET /me/grants/:id/receipt` serves. Loose: fields a later registry adds are ignored. */
const ReceiptExportSchema = z.object({
  receipt: z.unknown(),
  hash: z.string(),
  public_key: z.record(z.string(), z.unknown()).optional(),
  rp_id: z.string().optional(),
  origins: z.array(z.string()).optional(),
});

/** A file the command cannot use at all: a usage error (status 2), not an invalid receipt. */
class UnusableInput extends Error {}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UnusableInput(`cannot read ${what} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UnusableInput(`${what} ${path} is not JSON`);
  }
}

/** Strings from the document come from the agent's request: no control or bidi characters reach the terminal. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function describeApproval({ document, signCount, origin }: VerifiedApproval, keyLine: string, hash: string): string[] {
  const { delegation } = document;
  const envelope = describeEnvelope(document.envelope);
  return [
    `receipt valid: signed with user verification at ${origin}`,
    keyLine,
    `decision: ${document.decision}`,
    `grant: ${document.grant_id} (version ${document.version})`,
    `subject: ${document.subject}`,
    `agent: ${document.agent.name} (${document.agent.client_id})`,
    `service: ${document.service.uri} (${document.service.id})`,
    `purpose: ${document.purpose}`,
    'capabilities:',
    ...describeCapabilities(document.authorization_details).map((line) => `  - ${line}`),
    ...(envelope.length === 0 ? ['envelope: no limits'] : ['envelope:', ...envelope.map((line) => `  - ${line}`)]),
    `delegation: ${delegation.max_depth === 0 ? 'none' : `up to ${delegation.max_depth} more hop${delegation.max_depth === 1 ? '' : 's'}`}${delegation.allowed_agents ? `, only to ${delegation.allowed_agents.join(', ')}` : ''}`,
    `expires at: ${document.expires_at}`,
    `sign count: ${signCount}`,
    `receipt hash ${hash} (this is tctx.approval in every token of the grant)`,
  ].map(printable);
}

/**
 * `receipts verify`: checks a receipt export offline with `verifyApprovalReceipt`, and that its
 * hash is the receipt's. Reads only the files it is given: no configuration, database or keys.
 */
async function verifyReceiptFile(file: string, overrides: { key?: string; rpId?: string; origins?: string[] }, io: CliIo): Promise<number> {
  let exported: z.infer<typeof ReceiptExportSchema>;
  let publicKey: JWK;
  let rpId: string;
  let origins: string[];
  try {
    const parsed = ReceiptExportSchema.safeParse(await readJson(file, 'receipt file'));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.join('.') ?? '';
      throw new UnusableInput(`${file} is not a receipt export {receipt, hash, public_key, rp_id, origins}: ${where ? `${where}: ` : ''}${issue?.message ?? 'invalid'}`);
    }
    exported = parsed.data;
    if (overrides.key !== undefined) {
      const key = await readJson(overrides.key, '--key');
      if (typeof key !== 'object' || key === null || Array.isArray(key)) throw new UnusableInput(`--key ${overrides.key} is not a JWK (a JSON object)`);
      publicKey = key;
    } else if (exported.public_key !== undefined) {
      publicKey = exported.public_key;
    } else {
      throw new UnusableInput(`${file} has no public_key: give the passkey's public key with --key <jwk.json>`);
    }
    const fileRpId = overrides.rpId ?? exported.rp_id;
    if (fileRpId === undefined) throw new UnusableInput(`${file} has no rp_id: give it with --rp-id <id>`);
    rpId = fileRpId;
    const fileOrigins = overrides.origins ?? exported.origins;
    if (fileOrigins === undefined) throw new UnusableInput(`${file} has no origins: give them with --origin <origin>`);
    origins = fileOrigins;
  } catch (error) {
    if (!(error instanceof UnusableInput)) throw error;
    io.err(`receipts verify: ${error.message}`);
    return 2;
  }

  let verified: VerifiedApproval;
  try {
    verified = await verifyApprovalReceipt(exported.receipt, { publicKey, rpId, origins });
  } catch (error) {
    if (!(error instanceof ReceiptInvalid)) throw error;
    io.err(`receipt invalid: ${error.reason}: ${error.message}`);
    return 1;
  }
  // verifyApprovalReceipt has checked it against ApprovalReceiptSchema.
  const hash = await approvalReceiptHash(exported.receipt as ApprovalReceipt);
  if (hash !== exported.hash) {
    io.err(`receipt invalid: hash_mismatch: the file's hash ${printable(exported.hash)} is not the receipt's hash ${hash}`);
    return 1;
  }
  const thumbprint = await jwkThumbprint(publicKey);
  const keyLine =
    overrides.key !== undefined
      ? `key: ${overrides.key} (JWK thumbprint ${thumbprint})`
      : `key: the file's own public_key (JWK thumbprint ${thumbprint}): this shows the receipt is consistent, not that the key is the human's passkey; pass --key with the passkey's public key obtained independently`;
  for (const line of describeApproval(verified, keyLine, hash)) io.out(line);
  return 0;
}

async function withServices<T>(io: CliIo, work: (s: { audit: AuditService; keys: KeyStore; db: Database; config: RegistryConfig }) => Promise<T>): Promise<T> {
  const config = loadConfig(io.env);
  openDataDir(config.dataDir);
  const keys = new KeyStore(config.dataDir, systemClock, config.tokenTtlSeconds + 30);
  await keys.init();
  const ds = await openDatabase(config.databaseUrl ? { url: config.databaseUrl } : { pgliteDir: config.dataDir });
  const db = new Database(ds, !config.databaseUrl);
  try {
    const log = auditLogSigner({ dataDir: config.dataDir, origin: config.audit.origin });
    return await work({ audit: new AuditService({ repository: new TypeOrmAuditRepository(db), keys, clock: systemClock, checkpointEvery: config.checkpointEvery, log }), keys, db, config });
  } finally {
    await db.close();
  }
}

async function main(argv: string[], io: CliIo): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      file: { type: 'string' },
      out: { type: 'string' },
      uri: { type: 'string' },
      name: { type: 'string' },
      catalogue: { type: 'string' },
      owner: { type: 'string' },
      ttl: { type: 'string' },
      key: { type: 'string' },
      checkpoint: { type: 'string' },
      registry: { type: 'string' },
      vkey: { type: 'string' },
      full: { type: 'boolean' },
      'rp-id': { type: 'string' },
      origin: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals.join(' ');
  if (values.help || command === '') {
    io.out(USAGE);
    return values.help ? 0 : 2;
  }
  // The one command with an argument: `agents disable <client_id>`.
  if (positionals.length === 3 && positionals[0] === 'agents' && positionals[1] === 'disable') {
    const clientId = positionals[2]!;
    return withServices(io, async ({ audit, db, config }) => {
      // The `agent` revocation is announced to the verifiers through Redis when there is one; on
      // embedded storage the registry re-announces every recorded revocation when it starts.
      // Its retries while connecting are not the user's business; what counts is said once below.
      const quiet = { log: () => undefined, warn: () => undefined, error: () => undefined };
      const bus = config.redisUrl ? new RedisRevocationBus({ url: config.redisUrl, prefix: config.redisPrefix, clock: systemClock, logger: quiet }) : new InProcessRevocationBus();
      const recorder = new RevocationRecorder({ repository: new TypeOrmRevocationsRepository(db), audit, bus, clock: systemClock, config });
      let outcome: DisableOutcome;
      try {
        outcome = await new AgentsService({ repository: new TypeOrmAgentsRepository(db), audit, clock: systemClock, revocations: recorder }).disable(clientId, 'cli');
        if (bus instanceof RedisRevocationBus && !(await bus.drained(10_000))) io.err(`agents disable: the revocation is recorded but Redis could not be reached: the verifiers learn it when the registry next starts`);
      } finally {
        await bus.close();
      }
      switch (outcome) {
        case 'disabled':
          io.out(`agent ${clientId} disabled`);
          return 0;
        case 'already_disabled':
          io.out(`agent ${clientId} was already disabled`);
          return 0;
        case 'unknown':
          io.err(`agents disable: unknown agent ${clientId}`);
          return 1;
      }
    });
  }
  if (positionals.length === 3 && positionals[0] === 'receipts' && positionals[1] === 'verify') {
    return verifyReceiptFile(positionals[2]!, { key: values.key, rpId: values['rp-id'], origins: values.origin }, io);
  }
  switch (command) {
    case 'receipts verify':
      io.err('receipts verify needs <file>: the JSON of GET /me/grants/:id/receipt');
      return 2;
    case 'keys rotate': {
      const config = loadConfig(io.env);
      openDataDir(config.dataDir);
      const keys = new KeyStore(config.dataDir, systemClock, config.tokenTtlSeconds + 30);
      await keys.init();
      const { retired, active } = await keys.rotate();
      io.out(`signing key rotated: active ${active}; ${retired} stays in JWKS for ${config.tokenTtlSeconds + 30} s`);
      return 0;
    }
    case 'audit verify': {
      if (values.file) {
        const result = await verifyFile(values.file, io);
        io.out(describe(result));
        return result.ok ? 0 : 1;
      }
      if (values.registry !== undefined) {
        if (values.checkpoint === undefined) {
          io.err('audit verify --registry needs --checkpoint <file>: a checkpoint of that log saved before');
          return 2;
        }
        return verifyRegistryFromOutside({ checkpoint: values.checkpoint, registry: values.registry, vkey: values.vkey }, io);
      }
      const anchors: AuditAnchor[] = [];
      if (values.checkpoint !== undefined) {
        const note = await readCheckpointFile(values.checkpoint, io);
        if (note === undefined) return 2;
        anchors.push({ source: `--checkpoint ${values.checkpoint}`, note });
      }
      return withServices(io, async ({ audit, db, config }) => {
        const witnesses = new CheckpointPublisher({
          audit,
          repository: new TypeOrmAuditRepository(db),
          witnesses: config.audit.witnesses,
          logger: { warn: (message) => io.err(message) },
          now: () => systemClock.now(),
        });
        const asked = await witnesses.anchors(audit.log.origin);
        const result = await audit.verify({ anchors: [...anchors, ...asked.anchors], unavailable: asked.failures, full: values.full === true });
        for (const line of describeVerification(result)) io.out(line);
        return isIntact(result) ? 0 : 1;
      });
    }
    case 'audit vkey': {
      const config = loadConfig(io.env);
      openDataDir(config.dataDir);
      const { origin, vkey } = auditLogSigner({ dataDir: config.dataDir, origin: config.audit.origin });
      io.out(`origin: ${origin}`);
      io.out(`vkey: ${vkey}`);
      return 0;
    }
    case 'audit export': {
      if (!values.out) {
        io.err('audit export needs --out <file.jsonl>');
        return 2;
      }
      const out = createWriteStream(values.out, { flags: 'wx' });
      return withServices(io, async ({ audit }) => {
        let n = 0;
        for await (const event of audit.export()) {
          if (!out.write(`${JSON.stringify(event)}\n`)) await once(out, 'drain');
          n++;
        }
        out.end();
        await once(out, 'finish');
        io.out(`exported ${n} events to ${values.out}`);
        return 0;
      });
    }
    case 'services register': {
      if (!values.uri || !values.name || !values.catalogue) {
        io.err('services register needs --uri <uri> --name <name> --catalogue <json>');
        return 2;
      }
      let catalogue: unknown;
      try {
        catalogue = JSON.parse(values.catalogue);
      } catch {
        io.err('--catalogue is not JSON: expected [{"type":"...","actions":["..."]}]');
        return 2;
      }
      const body = { uri: values.uri, display_name: values.name, catalogue };
      return withServices(io, async ({ audit, db }) => {
        try {
          const { service, credential } = await new ServicesService({ repository: new TypeOrmServicesRepository(db), audit, clock: systemClock }).register(body, 'cli');
          io.out(`service registered: ${service.id} at ${service.uri}`);
          // Shown once: only its SHA-256 is stored, so it cannot be shown again.
          io.out(`verifier credential (store it now, it is not shown again): ${credential}`);
          return 0;
        } catch (error) {
          if (!(error instanceof OAuthError)) throw error;
          io.err(`services register: ${error.description}`);
          return 2;
        }
      });
    }
    case 'agents mint-token': {
      const owner = values.owner;
      if (!owner) {
        io.err('agents mint-token needs --owner <sub>');
        return 2;
      }
      const ttl = values.ttl === undefined ? 600 : Number(values.ttl);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_INITIAL_ACCESS_TOKEN_TTL_S) {
        io.err(`--ttl must be a whole number of seconds from 1 to ${MAX_INITIAL_ACCESS_TOKEN_TTL_S}`);
        return 2;
      }
      return withServices(io, async ({ audit, db, config }) => {
        try {
          // Minting revokes nothing: the recorder's bus is never used.
          const recorder = new RevocationRecorder({ repository: new TypeOrmRevocationsRepository(db), audit, bus: new InProcessRevocationBus(), clock: systemClock, config });
          const { token, expiresAt } = await new AgentsService({ repository: new TypeOrmAgentsRepository(db), audit, clock: systemClock, revocations: recorder }).mintInitialAccessToken(owner, ttl, 'cli');
          // Shown once: only its SHA-256 is stored.
          io.out(`initial access token for ${owner} (single use, not shown again): ${token}`);
          io.out(`expires at ${expiresAt.toISOString()}`);
          return 0;
        } catch (error) {
          if (!(error instanceof RangeError)) throw error;
          io.err(`agents mint-token: ${error.message}`);
          return 2;
        }
      });
    }
    default:
      io.err(`unknown command: ${command}\n\n${USAGE}`);
      return 2;
  }
}

/** Where a CLI run reads its configuration and writes its lines: the process's, or a test's. */
export interface CliIo {
  env: Record<string, string | undefined>;
  /** A line for stdout (the newline is added). */
  out(line: string): void;
  /** A line for stderr (the newline is added): an error, a warning, progress. */
  err(line: string): void;
}

/**
 * Runs one CLI command and answers its exit status: 0 done, 1 failed or found something broken,
 * 2 a usage error. A configuration, data-folder or argument error is said in one line on stderr
 * (status 1); any other error is said with its stack.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    return await main(argv, io);
  } catch (error) {
    io.err(error instanceof ConfigError || error instanceof DataDirError || error instanceof TypeError ? error.message : inspect(error));
    return 1;
  }
}
