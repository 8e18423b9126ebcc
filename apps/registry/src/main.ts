import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config.js';
import { DataDirError } from './infra/data-dir.js';
import { createRegistry } from './registry.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const { app } = await createRegistry(config);
  await app.listen({ host: config.host, port: config.port });
  const storage = config.databaseUrl ? `PostgreSQL (${new URL(config.databaseUrl).host})` : `embedded PGlite (${config.dataDir})`;
  console.log(`registry  ${config.issuer}  on ${storage}`);
  // Ctrl-C or a stop: finish in-flight requests and close storage, then exit normally (exit code 0).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void app.close().finally(() => process.exit(0)));
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError || error instanceof DataDirError ? error.message : error);
  process.exit(1);
});
