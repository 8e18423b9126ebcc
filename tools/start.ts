/**
 * `npm start`: the registry, the verifier, the approval UI and a witness in one process.
 *
 * - No DATABASE_URL: embedded PGlite under WRIT_DATA_DIR. No REDIS_URL: the verifier's state is
 *   in process, revocations reach it directly and its decisions reach the audit chain directly.
 * - With them: PostgreSQL, and Redis for the verifier's state, revocations and decision events
 *   (the same wiring as three separate processes).
 *
 * - The witness (apps/witness) has its own key and data folder (`<WRIT_DATA_DIR>/witness`), trusts
 *   the registry's audit log key, and is added to the registry's `WRIT_AUDIT_WITNESSES`, so every
 *   checkpoint is cosigned outside the database (docs/audit.md, "Witness protocol").
 *
 * Keys are made on first run. Ctrl-C (or SIGTERM) stops them all and exits 0.
 */
import 'reflect-metadata';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ConfigError, loadConfig, type RegistryConfig } from '../apps/registry/src/config/config.js';
import { type AuditLogSigner, auditLogSigner } from '../apps/registry/src/modules/audit/audit-log-key.js';
import { REVOCATION_BUS, type RevocationBus } from '../apps/registry/src/modules/revocations/revocation-bus.js';
import { createRegistry } from '../apps/registry/src/registry.js';
import { ensureApprovalUiBuilt, startApprovalUi } from '../apps/approval-ui/server.mjs';
import { loadVerifierConfig } from '../apps/verifier/src/config.js';
import { createVerifierServer } from '../apps/verifier/src/server.js';
import { InProcessVerifierStore } from '../apps/verifier/src/store/in-process-store.js';
import { RedisVerifierStore } from '../apps/verifier/src/store/redis-store.js';
import type { GrantStateSource, VerifierStore } from '../apps/verifier/src/store/store.js';
import { DatabaseEventJournal } from '../apps/registry/src/modules/verifier-state/event-journal.repository.js';
import { VerifierStateKeeper } from '../apps/registry/src/modules/verifier-state/verifier-state.keeper.js';
import { loadWitnessConfig } from '../apps/witness/src/config.js';
import { createWitnessServer, type WitnessServer } from '../apps/witness/src/server.js';

const started = performance.now();
const say = (line: string) => console.log(`writ: ${line}`);

/**
 * The embedded witness: its data folder inside the registry's, trusting the registry's audit log
 * key (made here on first run, as the registry would), on a port the system picks unless
 * `WRIT_WITNESS_PORT` is set. Started before the registry, which pushes its first checkpoint to it.
 */
async function startWitness(options: { env: Record<string, string>; registry: RegistryConfig }): Promise<{ witness: WitnessServer; url: string; log: AuditLogSigner }> {
  const { env, registry } = options;
  const signer = auditLogSigner({ dataDir: registry.dataDir, origin: registry.audit.origin });
  const config = loadWitnessConfig({ WRIT_WITNESS_DATA_DIR: join(registry.dataDir, 'witness'), WRIT_WITNESS_PORT: '0', ...env });
  const witness = await createWitnessServer({ config: { ...config, logs: [...config.logs, { origin: signer.origin, vkeys: [signer.vkey] }] } });
  return { witness, url: await witness.listen(), log: signer };
}

async function main(): Promise<void> {
  // A variable set to nothing is unset (as in an .env file with `REDIS_URL=`).
  const env = Object.fromEntries(Object.entries(process.env).filter(([, value]) => value !== undefined && value !== '')) as Record<string, string>;
  const uiPort = Number(env.UI_PORT ?? 3000);
  if (!Number.isInteger(uiPort) || uiPort < 1 || uiPort > 65535) throw new ConfigError(`Invalid configuration:\n  UI_PORT: must be a port number`);
  const uiOrigin = `http://localhost:${uiPort}`;
  // The issuer is where the registry listens unless it is set (behind a proxy, for instance).
  const registryHost = env.REGISTRY_HOST || '127.0.0.1';
  const configured = loadConfig({ WRIT_UI_ORIGINS: uiOrigin, WRIT_ISSUER: `http://${registryHost}:${env.REGISTRY_PORT || 4000}`, ...env });
  const { witness, url: witnessUrl, log } = await startWitness({ env, registry: configured });
  // The registry pushes every checkpoint to the embedded witness too, besides any configured.
  const registryConfig: RegistryConfig = { ...configured, audit: { ...configured.audit, witnesses: [...configured.audit.witnesses, { url: witnessUrl, vkey: witness.vkey }] } };
  const verifierConfig = loadVerifierConfig({ WRIT_REGISTRY_URL: registryConfig.issuer, ...env, WRIT_ISSUER: registryConfig.issuer, WRIT_TRUST_DOMAIN: registryConfig.trustDomain });

  // The UI build runs while the registry opens its storage.
  const build = ensureApprovalUiBuilt({ log: (line) => say(line) });

  // ADR 0017: a grant's state that the verifier's store does not hold (after a restart, or a
  // Redis that lost it) is rebuilt from the registry's durable record before anything is decided
  // on it. The registry opens after the store, so the store reaches it through these.
  const opened: { keeper?: VerifierStateKeeper } = {};
  const grantState: GrantStateSource = async (grantId, pending) => {
    if (opened.keeper === undefined) throw new Error('the registry is not open yet');
    return opened.keeper.snapshot(grantId, pending);
  };
  let store: VerifierStore & { close(): Promise<void> };
  let inProcess: InProcessVerifierStore | undefined;
  if (verifierConfig.redisUrl) {
    const redis = new RedisVerifierStore(verifierConfig.redisUrl, {
      prefix: verifierConfig.redisPrefix,
      commandTimeoutMs: verifierConfig.redisTimeoutMs,
      logger: { warn: (message) => console.warn(`writ: verifier: ${message}`) },
      grantState,
    });
    if (!(await redis.whenReady(5_000))) console.warn('writ: Redis is not reachable yet; the verifier denies with 503 until it is');
    store = redis;
  } else {
    store = inProcess = new InProcessVerifierStore({ prefix: verifierConfig.redisPrefix });
  }

  say(registryConfig.databaseUrl ? `opening PostgreSQL (${new URL(registryConfig.databaseUrl).host})` : `opening embedded PGlite in ${registryConfig.dataDir}`);
  const { app, db } = await createRegistry(registryConfig, { logger: ['error', 'warn'], ...(inProcess ? { verifierEvents: inProcess } : {}), ...(inProcess ? { verifierAdmin: inProcess } : {}) });
  opened.keeper = app.get(VerifierStateKeeper);
  let unsubscribe = (): void => undefined;
  if (inProcess) {
    // Embedded: the decisions' queue is a table of the embedded database, written before each
    // decision is answered, so a crash loses none and a restart rebuilds every counter exactly;
    // the registry's revocations go straight to the store, subscribed before the registry
    // starts, whose start-up announces every unexpired revocation again.
    unsubscribe = inProcess.attach({ journal: new DatabaseEventJournal(db), grantState, revocations: app.get<RevocationBus>(REVOCATION_BUS) });
  }
  await app.listen({ host: registryConfig.host, port: registryConfig.port });
  const verifier = await createVerifierServer({ config: verifierConfig, store });
  const verifierUrl = await verifier.listen();

  await build;
  const ui = await startApprovalUi({ port: uiPort, host: 'localhost', registryUrl: registryConfig.issuer });

  const storage = [
    registryConfig.databaseUrl ? `PostgreSQL ${new URL(registryConfig.databaseUrl).host}` : `embedded PGlite (${registryConfig.dataDir})`,
    verifierConfig.redisUrl ? `Redis ${new URL(verifierConfig.redisUrl).host}` : 'in-process verifier store',
  ].join(', ');
  console.log(
    [
      '',
      `Writ is running (${storage}), ready in ${((performance.now() - started) / 1000).toFixed(1)} s:`,
      `  approval UI  ${ui.url}        sign up with a passkey here`,
      `  registry     ${registryConfig.issuer}   OAuth metadata at /.well-known/oauth-authorization-server`,
      `  verifier     ${verifierUrl}   POST /v1/verify for service providers`,
      `  witness      ${witnessUrl}   cosigns the audit log's checkpoints, as ${witness.vkey}`,
      `  audit log    ${log.origin}   checkpoints at ${registryConfig.issuer}/audit/checkpoint, signed by ${log.vkey}`,
      'Ctrl-C stops them all.',
      '',
    ].join('\n'),
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping`);
    unsubscribe();
    await ui.close();
    await verifier.close();
    await app.close();
    await witness.close();
    await store.close();
    say('stopped');
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    // Ours alone: Nest's shutdown hooks would close the registry and re-raise the signal (exit 130).
    process.removeAllListeners(signal);
    process.once(signal, () =>
      void stop(signal).catch((error: unknown) => {
        console.error('writ: could not stop cleanly:', error);
        process.exit(1);
      }),
    );
  }
}

main().catch((error: unknown) => {
  // A bad variable (registry's or verifier's configuration) is one clear message, not a stack.
  console.error(error instanceof Error && (error.name === 'ConfigError' || error.name === 'DataDirError') ? error.message : error);
  process.exit(1);
});
