import fastifyCookie from '@fastify/cookie';
import type { LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { systemClock, type Clock } from '@writ/core';
import { AppModule } from './app.module.js';
import type { RegistryConfig } from './config/config.js';
import { openDataDir } from './infra/data-dir.js';
import { type DatabaseTarget, openDatabase } from './infra/database.js';
import { Database } from './infra/database.service.js';
import { OAuthExceptionFilter } from './http/oauth-exception.filter.js';
import { OpenApiDocument } from './http/openapi.js';
import type { VerifierEventSource } from './modules/audit/redis-verifier-events.js';
import { KeyStore } from './modules/keys/key-store.js';
import type { VerifierStepUps } from './modules/step-ups/verifier-step-ups.js';
import { DpopNonces } from './modules/tokens/dpop-nonce.js';

/** Opens storage and keys (applying migrations, creating the first key), then builds the app. */
export async function createRegistry(
  config: RegistryConfig,
  options: { clock?: Clock; logger?: false | LogLevel[]; database?: DatabaseTarget; verifierEvents?: VerifierEventSource; verifierAdmin?: VerifierStepUps } = {},
): Promise<{ app: NestFastifyApplication; db: Database; keys: KeyStore }> {
  const clock = options.clock ?? systemClock;
  // Keys and the embedded database: refused when another account could read or change them.
  openDataDir(config.dataDir);
  const target: DatabaseTarget = options.database ?? (config.databaseUrl ? { url: config.databaseUrl } : { pgliteDir: config.dataDir });
  const db = new Database(await openDatabase(target), 'pgliteDir' in target);
  // A retired key is served for one token life plus the accepted clock skew.
  const keys = new KeyStore(config.dataDir, clock, config.tokenTtlSeconds + 30);
  await keys.init();
  const dpopNonces = config.dpopNonce === 'required' ? DpopNonces.open(config.dataDir, clock) : undefined;
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.register({
      config,
      clock,
      db,
      keys,
      dpopNonces,
      ...(options.verifierEvents ? { verifierEvents: options.verifierEvents } : {}),
      ...(options.verifierAdmin ? { verifierAdmin: options.verifierAdmin } : {}),
    }),
    // RFC 6749 endpoints take small form bodies: 64 KiB is ample and bounds abuse.
    new FastifyAdapter({ bodyLimit: 64 * 1024, trustProxy: false }),
    { logger: options.logger ?? ['error', 'warn', 'log'], bufferLogs: false },
  );
  // The human API's session cookie (parsed on every request, set by the sign-in routes).
  await app.register(fastifyCookie);
  app.useGlobalFilters(new OAuthExceptionFilter());
  app.get(OpenApiDocument).describe(app);
  app.enableShutdownHooks();
  // Close the database after Nest has stopped serving.
  app.getHttpAdapter().getInstance().addHook('onClose', async () => db.close());
  return { app, db, keys };
}
