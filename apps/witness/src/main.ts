import { ConfigError, loadWitnessConfig } from './config.js';
import { createWitnessServer } from './server.js';

/**
 * `npm run start:witness`: a witness of its own, for the logs `WRIT_WITNESS_LOGS` names. It prints
 * its vkey, which every log that pushes to it and every monitor that reads it is configured with.
 */
async function main(): Promise<void> {
  const config = loadWitnessConfig();
  if (config.logs.length === 0) throw new ConfigError('invalid witness configuration:\n  WRIT_WITNESS_LOGS: required: the logs this witness cosigns for');
  const witness = await createWitnessServer({ config });
  const url = await witness.listen();
  console.log(`witness listening on ${url} as ${witness.name}, data in ${config.dataDir}`);
  for (const log of config.logs) console.log(`witness: witnessing ${log.origin} (${log.vkeys.length} key${log.vkeys.length === 1 ? '' : 's'})`);
  console.log(`witness vkey: ${witness.vkey}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void witness.close().finally(() => process.exit(0)));
  }
}

main().catch((error: unknown) => {
  // A bad variable or an unsafe data folder is one clear message, not a stack.
  console.error(error instanceof Error && (error.name === 'ConfigError' || error.name === 'DataDirError') ? error.message : error);
  process.exit(1);
});
