import 'reflect-metadata';
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AuditChainVerifier, OAuthError, systemClock, type ChainVerification } from '@writ/core';
import { ConfigError, loadConfig } from './config/config.js';
import { openDatabase } from './infra/database.js';
import { Database } from './infra/database.service.js';
import { AgentsService, MAX_INITIAL_ACCESS_TOKEN_TTL_S } from './modules/agents/agents.service.js';
import { AuditService } from './modules/audit/audit.service.js';
import { KeyStore } from './modules/keys/key-store.js';
import { ServicesService } from './modules/services/services.service.js';

const USAGE = `Usage: npm run registry -- <command>

  keys rotate                     make a new signing key; the old one stays in JWKS until its tokens expire
  audit verify                    re-compute the chain in the database and check every signed checkpoint
  audit verify --file <f.jsonl>   re-compute an exported chain (JSON Lines), offline
  audit export --out <f.jsonl>    write the chain as JSON Lines
  agents mint-token --owner <sub> [--ttl <s>]
                                  mint a one-time initial access token (default life 600 s) with which
                                  one agent registers for <sub> (POST /oauth/register); shown this once
  agents disable <client_id>      disable an agent: its calls are refused from now on
  services register --uri <u> --name <n> --catalogue <json>
                                  register a service provider; <json> is [{"type":"...","actions":["..."]}];
                                  prints its id and its verifier credential, shown this once

Uses DATABASE_URL (PostgreSQL) or the embedded database under WRIT_DATA_DIR (default .data).`;

function describe(result: ChainVerification): string {
  return result.ok
    ? `chain intact: ${result.count} events, head seq ${result.lastSeq} hash ${result.lastHash}`
    : `chain BROKEN at seq ${result.brokenSeq}: ${result.reason} (${result.count} events verified before it)`;
}

/** Verifies a JSON Lines export as a stream, printing progress on long files. */
async function verifyFile(path: string): Promise<ChainVerification> {
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
    if (n % 10_000 === 0) process.stderr.write(`  ${n} events verified\n`);
  }
  return verifier.result();
}

async function withServices<T>(work: (s: { audit: AuditService; keys: KeyStore; db: Database }) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const keys = new KeyStore(config.dataDir, systemClock, config.tokenTtlSeconds + 30);
  await keys.init();
  const ds = await openDatabase(config.databaseUrl ? { url: config.databaseUrl } : { pgliteDir: config.dataDir });
  const db = new Database(ds, !config.databaseUrl);
  try {
    return await work({ audit: new AuditService(db, keys, systemClock, config.checkpointEvery), keys, db });
  } finally {
    await db.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { file: { type: 'string' }, out: { type: 'string' }, uri: { type: 'string' }, name: { type: 'string' }, catalogue: { type: 'string' }, owner: { type: 'string' }, ttl: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const command = positionals.join(' ');
  if (values.help || command === '') {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  // The one command with an argument: `agents disable <client_id>`.
  if (positionals.length === 3 && positionals[0] === 'agents' && positionals[1] === 'disable') {
    const clientId = positionals[2]!;
    return withServices(async ({ audit, db }) => {
      const outcome = await new AgentsService(db, audit, systemClock).disable(clientId, 'cli');
      switch (outcome) {
        case 'disabled':
          console.log(`agent ${clientId} disabled`);
          return 0;
        case 'already_disabled':
          console.log(`agent ${clientId} was already disabled`);
          return 0;
        case 'unknown':
          console.error(`agents disable: unknown agent ${clientId}`);
          return 1;
      }
    });
  }
  switch (command) {
    case 'keys rotate': {
      const config = loadConfig();
      const keys = new KeyStore(config.dataDir, systemClock, config.tokenTtlSeconds + 30);
      await keys.init();
      const { retired, active } = await keys.rotate();
      console.log(`signing key rotated: active ${active}; ${retired} stays in JWKS for ${config.tokenTtlSeconds + 30} s`);
      return 0;
    }
    case 'audit verify': {
      if (values.file) {
        const result = await verifyFile(values.file);
        console.log(describe(result));
        return result.ok ? 0 : 1;
      }
      return withServices(async ({ audit }) => {
        const { chain, checkpoints } = await audit.verify();
        console.log(describe(chain));
        console.log(`checkpoints: ${checkpoints.verified} verified, ${checkpoints.failed.length} failed`);
        for (const f of checkpoints.failed) console.log(`  checkpoint seq ${f.seq}: ${f.reason}`);
        return chain.ok && checkpoints.failed.length === 0 ? 0 : 1;
      });
    }
    case 'audit export': {
      if (!values.out) {
        console.error('audit export needs --out <file.jsonl>');
        return 2;
      }
      const out = createWriteStream(values.out, { flags: 'wx' });
      return withServices(async ({ audit }) => {
        let n = 0;
        for await (const event of audit.export()) {
          if (!out.write(`${JSON.stringify(event)}\n`)) await once(out, 'drain');
          n++;
        }
        out.end();
        await once(out, 'finish');
        console.log(`exported ${n} events to ${values.out}`);
        return 0;
      });
    }
    case 'services register': {
      if (!values.uri || !values.name || !values.catalogue) {
        console.error('services register needs --uri <uri> --name <name> --catalogue <json>');
        return 2;
      }
      let catalogue: unknown;
      try {
        catalogue = JSON.parse(values.catalogue);
      } catch {
        console.error('--catalogue is not JSON: expected [{"type":"...","actions":["..."]}]');
        return 2;
      }
      const body = { uri: values.uri, display_name: values.name, catalogue };
      return withServices(async ({ audit, db }) => {
        try {
          const { service, credential } = await new ServicesService(db, audit, systemClock).register(body, 'cli');
          console.log(`service registered: ${service.id} at ${service.uri}`);
          // Shown once: only its SHA-256 is stored, so it cannot be shown again.
          console.log(`verifier credential (store it now, it is not shown again): ${credential}`);
          return 0;
        } catch (error) {
          if (!(error instanceof OAuthError)) throw error;
          console.error(`services register: ${error.description}`);
          return 2;
        }
      });
    }
    case 'agents mint-token': {
      const owner = values.owner;
      if (!owner) {
        console.error('agents mint-token needs --owner <sub>');
        return 2;
      }
      const ttl = values.ttl === undefined ? 600 : Number(values.ttl);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_INITIAL_ACCESS_TOKEN_TTL_S) {
        console.error(`--ttl must be a whole number of seconds from 1 to ${MAX_INITIAL_ACCESS_TOKEN_TTL_S}`);
        return 2;
      }
      return withServices(async ({ audit, db }) => {
        try {
          const { token, expiresAt } = await new AgentsService(db, audit, systemClock).mintInitialAccessToken(owner, ttl, 'cli');
          // Shown once: only its SHA-256 is stored.
          console.log(`initial access token for ${owner} (single use, not shown again): ${token}`);
          console.log(`expires at ${expiresAt.toISOString()}`);
          return 0;
        } catch (error) {
          if (!(error instanceof RangeError)) throw error;
          console.error(`agents mint-token: ${error.message}`);
          return 2;
        }
      });
    }
    default:
      console.error(`unknown command: ${command}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof ConfigError || error instanceof TypeError ? error.message : error);
    process.exit(1);
  },
);
