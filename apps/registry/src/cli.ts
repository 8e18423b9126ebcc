import 'reflect-metadata';
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AuditChainVerifier, systemClock, type ChainVerification } from '@writ/core';
import { ConfigError, loadConfig } from './config/config.js';
import { openDatabase } from './infra/database.js';
import { Database } from './infra/database.service.js';
import { AuditService } from './modules/audit/audit.service.js';
import { KeyStore } from './modules/keys/key-store.js';

const USAGE = `Usage: npm run registry -- <command>

  keys rotate                     make a new signing key; the old one stays in JWKS until its tokens expire
  audit verify                    re-compute the chain in the database and check every signed checkpoint
  audit verify --file <f.jsonl>   re-compute an exported chain (JSON Lines), offline
  audit export --out <f.jsonl>    write the chain as JSON Lines

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

async function withServices<T>(work: (s: { audit: AuditService; keys: KeyStore }) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const keys = new KeyStore(config.dataDir, systemClock, config.tokenTtlSeconds + 30);
  await keys.init();
  const ds = await openDatabase(config.databaseUrl ? { url: config.databaseUrl } : { pgliteDir: config.dataDir });
  const db = new Database(ds, !config.databaseUrl);
  try {
    return await work({ audit: new AuditService(db, keys, systemClock, config.checkpointEvery), keys });
  } finally {
    await db.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { file: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const command = positionals.join(' ');
  if (values.help || command === '') {
    console.log(USAGE);
    return values.help ? 0 : 2;
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
