import { type DynamicModule, Module } from '@nestjs/common';
import type { Clock } from '@writ/core';
import type { RegistryConfig } from './config/config.js';
import { AuditController } from './modules/audit/audit.controller.js';
import { AuditService } from './modules/audit/audit.service.js';
import { KeyStore } from './modules/keys/key-store.js';
import { MetadataController } from './modules/metadata/metadata.controller.js';
import { CLOCK, CONFIG } from './tokens.js';
import { Database } from './infra/database.service.js';

/** What the registry runs on: opened before Nest starts, so a bad database or key stops start-up early. */
export interface RegistryInfra {
  config: RegistryConfig;
  clock: Clock;
  db: Database;
  keys: KeyStore;
}

@Module({})
export class AppModule {
  static register(infra: RegistryInfra): DynamicModule {
    return {
      module: AppModule,
      controllers: [MetadataController, AuditController],
      providers: [
        { provide: CONFIG, useValue: infra.config },
        { provide: CLOCK, useValue: infra.clock },
        { provide: Database, useValue: infra.db },
        { provide: KeyStore, useValue: infra.keys },
        {
          provide: AuditService,
          useFactory: () => new AuditService(infra.db, infra.keys, infra.clock, infra.config.checkpointEvery),
        },
      ],
    };
  }
}
