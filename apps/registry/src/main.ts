import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config.js';
import { createRegistry } from './registry.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const { app } = await createRegistry(config);
  await app.listen({ host: config.host, port: config.port });
  const storage = config.databaseUrl ? `PostgreSQL (${new URL(config.databaseUrl).host})` : `embedded PGlite (${config.dataDir})`;
  console.log(`registry  ${config.issuer}  on ${storage}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
