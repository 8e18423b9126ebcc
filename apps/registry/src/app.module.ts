import { type DynamicModule, Logger, Module } from '@nestjs/common';
import type { Clock } from '@writ/core';
import type { RegistryConfig } from './config/config.js';
import { AgentAuthGuard } from './http/agent-auth.guard.js';
import { OpenApiController, OpenApiDocument } from './http/openapi.js';
import { AgentsController } from './modules/agents/agents.controller.js';
import { AgentsService } from './modules/agents/agents.service.js';
import { TypeOrmAgentsRepository } from './modules/agents/agents.repository.js';
import { ClientAuthService } from './modules/agents/client-auth.service.js';
import { TypeOrmClientAuthRepository } from './modules/agents/client-auth.repository.js';
import { AuditController } from './modules/audit/audit.controller.js';
import { ReadinessController } from './modules/audit/readiness.controller.js';
import { AuditService } from './modules/audit/audit.service.js';
import { TypeOrmAuditRepository } from './modules/audit/audit.repository.js';
import { auditLogSigner } from './modules/audit/audit-log-key.js';
import { AuditCheckpointTimer } from './modules/audit/audit.module-hooks.js';
import { CheckpointPublisher } from './modules/audit/checkpoint-publisher.js';
import { KeyStore } from './modules/keys/key-store.js';
import { GrantExpiryTimer } from './modules/grants/grant-expiry.timer.js';
import { GrantsController } from './modules/grants/grants.controller.js';
import { GrantsService } from './modules/grants/grants.service.js';
import { TypeOrmGrantsRepository } from './modules/grants/grants.repository.js';
import { ServicesController } from './modules/services/services.controller.js';
import { ServicesService } from './modules/services/services.service.js';
import { TypeOrmServicesRepository } from './modules/services/services.repository.js';
import { MetadataController } from './modules/metadata/metadata.controller.js';
import { TokensController } from './modules/tokens/tokens.controller.js';
import { TokensService } from './modules/tokens/tokens.service.js';
import { TypeOrmTokensRepository } from './modules/tokens/tokens.repository.js';
import type { DpopNonces } from './modules/tokens/dpop-nonce.js';
import { RedisRevocationBus } from './modules/revocations/redis-revocation-bus.js';
import { InProcessRevocationBus, REVOCATION_BUS, type RevocationBus } from './modules/revocations/revocation-bus.js';
import { RevocationRecorder } from './modules/revocations/revocation-recorder.js';
import { TypeOrmRevocationsRepository } from './modules/revocations/revocations.repository.js';
import { RevocationsController } from './modules/revocations/revocations.controller.js';
import { RevocationsService } from './modules/revocations/revocations.service.js';
import { CHANGE_RELAY, CLOCK, CONFIG, DPOP_NONCES } from './tokens.js';
import type { VerifierEventSource } from './modules/audit/redis-verifier-events.js';
import { VerifierEventsRunner } from './modules/audit/verifier-events.module-hooks.js';
import { Database } from './infra/database.service.js';
import { type ChangeRelay, PgChangeRelay } from './infra/change-feed.js';
import { HumanSessionGuard, OriginGuard } from './http/human-session.guard.js';
import { RequestLimitGuard, RequestLimits } from './http/rate-limit.js';
import { ApprovalsService } from './modules/humans/approvals.service.js';
import { AuthController } from './modules/humans/auth.controller.js';
import { AuditVerdicts } from './modules/humans/audit-verdicts.js';
import { HumanViewsService } from './modules/humans/human-views.service.js';
import { HumansService } from './modules/humans/humans.service.js';
import { TypeOrmHumansRepository } from './modules/humans/humans.repository.js';
import { DatabaseHumanViewsRepository } from './modules/humans/human-views.repository.js';
import { EventStreams, MeController } from './modules/humans/me.controller.js';
import { MeStepUpsController } from './modules/step-ups/me-step-ups.controller.js';
import { StepUpsController } from './modules/step-ups/step-ups.controller.js';
import { StepUpsService } from './modules/step-ups/step-ups.service.js';
import { TypeOrmStepUpsRepository } from './modules/step-ups/step-ups.repository.js';
import { RedisVerifierStepUps, VERIFIER_STEP_UPS, type VerifierStepUps } from './modules/step-ups/verifier-step-ups.js';
import { OPERATOR_TOKEN, OperatorController, OperatorGuard } from './modules/operator/operator.controller.js';
import { operatorToken } from './modules/operator/operator-token.js';
import { GrantStateReader } from './modules/verifier-state/grant-state.reader.js';
import { DatabaseGrantStateRepository } from './modules/verifier-state/grant-state.repository.js';
import { RedisVerifierState } from './modules/verifier-state/redis-verifier-state.js';
import { isStateWriter, VerifierStateKeeper } from './modules/verifier-state/verifier-state.keeper.js';

/** What the registry runs on: opened before Nest starts, so a bad database or key stops start-up early. */
export interface RegistryInfra {
  config: RegistryConfig;
  clock: Clock;
  db: Database;
  keys: KeyStore;
  /** Present when `WRIT_DPOP_NONCE` is `required`. */
  dpopNonces?: DpopNonces;
  /** The in-process verifier store's event queue, when a verifier runs in this process. */
  verifierEvents?: VerifierEventSource;
  /** The in-process verifier store, where approved step-ups are written, when a verifier runs in this process. */
  verifierAdmin?: VerifierStepUps;
}

@Module({})
export class AppModule {
  static register(infra: RegistryInfra): DynamicModule {
    return {
      module: AppModule,
      controllers: [MetadataController, AuditController, ReadinessController, AgentsController, GrantsController, TokensController, RevocationsController, ServicesController, AuthController, MeController, MeStepUpsController, StepUpsController, OperatorController, OpenApiController],
      providers: [
        { provide: CONFIG, useValue: infra.config },
        { provide: CLOCK, useValue: infra.clock },
        { provide: Database, useValue: infra.db },
        { provide: KeyStore, useValue: infra.keys },
        { provide: DPOP_NONCES, useValue: infra.dpopNonces ?? null },
        {
          provide: AuditService,
          useFactory: () =>
            new AuditService({
              repository: new TypeOrmAuditRepository(infra.db),
              keys: infra.keys,
              clock: infra.clock,
              checkpointEvery: infra.config.checkpointEvery,
              log: auditLogSigner({ dataDir: infra.config.dataDir, origin: infra.config.audit.origin }),
            }),
        },
        // Issue 19: checkpoints pushed to the witnesses, and taken on a timer while events arrive.
        {
          provide: CheckpointPublisher,
          inject: [AuditService],
          useFactory: (audit: AuditService) =>
            new CheckpointPublisher({
              audit,
              repository: new TypeOrmAuditRepository(infra.db),
              witnesses: infra.config.audit.witnesses,
              logger: new Logger('AuditWitnesses'),
              now: () => infra.clock.now(),
            }),
        },
        {
          provide: AuditCheckpointTimer,
          inject: [AuditService, CheckpointPublisher],
          useFactory: (audit: AuditService, publisher: CheckpointPublisher) =>
            new AuditCheckpointTimer({ audit, publisher, seconds: infra.config.audit.checkpointSeconds, logger: new Logger('AuditCheckpoints') }),
        },
        {
          provide: AgentsService,
          inject: [AuditService, RevocationRecorder],
          useFactory: (audit: AuditService, recorder: RevocationRecorder) => new AgentsService({ repository: new TypeOrmAgentsRepository(infra.db), audit, clock: infra.clock, revocations: recorder }),
        },
        { provide: ClientAuthService, useFactory: () => new ClientAuthService({ repository: new TypeOrmClientAuthRepository(infra.db), issuer: infra.config.issuer }) },
        AgentAuthGuard,
        OpenApiDocument,
        {
          provide: ServicesService,
          inject: [AuditService],
          useFactory: (audit: AuditService) => new ServicesService({ repository: new TypeOrmServicesRepository(infra.db), audit, clock: infra.clock }),
        },
        // Through Redis to every verifier when REDIS_URL is set; in this process only otherwise.
        {
          provide: REVOCATION_BUS,
          useFactory: (): RevocationBus =>
            infra.config.redisUrl
              ? new RedisRevocationBus({ url: infra.config.redisUrl, prefix: infra.config.redisPrefix, clock: infra.clock })
              : new InProcessRevocationBus(),
        },
        {
          provide: RevocationRecorder,
          inject: [AuditService, REVOCATION_BUS],
          useFactory: (audit: AuditService, bus: RevocationBus) => new RevocationRecorder({ repository: new TypeOrmRevocationsRepository(infra.db), audit, bus, clock: infra.clock, config: infra.config }),
        },
        {
          provide: GrantsService,
          inject: [AuditService, ServicesService, RevocationRecorder, CHANGE_RELAY],
          useFactory: (audit: AuditService, services: ServicesService, recorder: RevocationRecorder, relay: ChangeRelay | null) =>
            new GrantsService({ repository: new TypeOrmGrantsRepository(infra.db), audit, services, clock: infra.clock, recordRevocation: recorder.recordGrant, ...(relay ? { relay } : {}) }),
        },
        // On PostgreSQL, several registry processes may share the database: changes reach them all.
        {
          provide: CHANGE_RELAY,
          useFactory: async (): Promise<ChangeRelay | null> => {
            const pool = infra.db.pgPool();
            if (!pool || !infra.config.databaseUrl) return null;
            const relay = new PgChangeRelay(infra.config.databaseUrl, pool);
            await relay.start();
            return relay;
          },
        },
        {
          provide: RevocationsService,
          inject: [ClientAuthService, GrantsService, RevocationRecorder],
          useFactory: (clientAuth: ClientAuthService, grants: GrantsService, recorder: RevocationRecorder) =>
            new RevocationsService({ repository: new TypeOrmRevocationsRepository(infra.db), clientAuth, grants, keys: infra.keys, recorder, clock: infra.clock, config: infra.config }),
        },
        {
          provide: TokensService,
          inject: [AuditService, ClientAuthService, GrantsService, RevocationsService],
          useFactory: (audit: AuditService, clientAuth: ClientAuthService, grants: GrantsService, revocations: RevocationsService) =>
            new TokensService({
              repository: new TypeOrmTokensRepository(infra.db),
              audit,
              clientAuth,
              grants,
              keys: infra.keys,
              clock: infra.clock,
              config: infra.config,
              revocations,
              ...(infra.dpopNonces ? { dpopNonce: infra.dpopNonces.accepts } : {}),
            }),
        },
        {
          provide: VerifierEventsRunner,
          inject: [AuditService, StepUpsService],
          useFactory: (audit: AuditService, stepUps: StepUpsService) =>
            new VerifierEventsRunner({
              config: infra.config,
              audit,
              ...(infra.verifierEvents ? { inProcess: infra.verifierEvents } : {}),
              afterAppend: (drafts) => stepUps.recordRequested(drafts),
            }),
        },
        // Approved step-ups go to the verifiers' store: the one in this process, or Redis.
        {
          provide: VERIFIER_STEP_UPS,
          useFactory: (): VerifierStepUps | null =>
            infra.verifierAdmin ?? (infra.config.redisUrl ? new RedisVerifierStepUps(infra.config.redisUrl, infra.config.redisPrefix) : null),
        },
        {
          provide: StepUpsService,
          inject: [AuditService, HumansService, VERIFIER_STEP_UPS, CHANGE_RELAY],
          useFactory: (audit: AuditService, humans: HumansService, verifier: VerifierStepUps | null, relay: ChangeRelay | null) =>
            new StepUpsService({
              repository: new TypeOrmStepUpsRepository(infra.db),
              agents: new TypeOrmAgentsRepository(infra.db),
              services: new TypeOrmServicesRepository(infra.db),
              audit,
              humans,
              clock: infra.clock,
              config: infra.config,
              ...(verifier ? { verifier } : {}),
              ...(relay ? { relay } : {}),
            }),
        },
        {
          provide: HumansService,
          inject: [AuditService],
          useFactory: (audit: AuditService) => new HumansService({ repository: new TypeOrmHumansRepository(infra.db), audit, clock: infra.clock, config: infra.config }),
        },
        {
          provide: ApprovalsService,
          inject: [HumansService, GrantsService, AgentsService, ServicesService],
          useFactory: (humans: HumansService, grants: GrantsService, agents: AgentsService, services: ServicesService) =>
            new ApprovalsService({ repository: new TypeOrmHumansRepository(infra.db), humans, grants, agents, services, clock: infra.clock, config: infra.config }),
        },
        // Issue 19: the audit log verified in the background; transaction pages show the last verdict.
        {
          provide: AuditVerdicts,
          inject: [AuditService, CheckpointPublisher],
          useFactory: (audit: AuditService, publisher: CheckpointPublisher) =>
            new AuditVerdicts({
              audit,
              repository: new TypeOrmAuditRepository(infra.db),
              anchors: async () => (await publisher.anchors(audit.log.origin)).anchors,
              seconds: infra.config.audit.verifySeconds,
              clock: infra.clock,
              logger: new Logger('AuditVerdicts'),
            }),
        },
        {
          provide: HumanViewsService,
          inject: [GrantsService, AuditService, AuditVerdicts],
          useFactory: (grants: GrantsService, audit: AuditService, verdicts: AuditVerdicts) =>
            new HumanViewsService({
              repository: new DatabaseHumanViewsRepository(infra.db),
              grants,
              audit,
              tree: new TypeOrmAuditRepository(infra.db),
              verdicts,
              clock: infra.clock,
              agents: new TypeOrmAgentsRepository(infra.db),
              services: new TypeOrmServicesRepository(infra.db),
            }),
        },
        EventStreams,
        { provide: OPERATOR_TOKEN, useFactory: () => operatorToken(infra.config.dataDir, infra.config.operatorToken) },
        OperatorGuard,
        OriginGuard,
        HumanSessionGuard,
        { provide: RequestLimits, useFactory: () => new RequestLimits(infra.config, infra.clock) },
        RequestLimitGuard,
        { provide: GrantExpiryTimer, inject: [GrantsService], useFactory: (grants: GrantsService) => new GrantExpiryTimer(grants) },
        // ADR 0017: every grant's verifier state is whole, or rebuilt from the durable record before
        // anything is decided on it: the in-process store (or a store handed over), or Redis.
        {
          provide: VerifierStateKeeper,
          inject: [GrantsService],
          useFactory: (grants: GrantsService) => {
            const logger = new Logger('VerifierState');
            const reader = new GrantStateReader({ repository: new DatabaseGrantStateRepository(infra.db), clock: infra.clock });
            if (isStateWriter(infra.verifierAdmin)) return new VerifierStateKeeper({ reader, writer: infra.verifierAdmin, grants, logger });
            if (!infra.config.redisUrl) return new VerifierStateKeeper({ reader, writer: null, grants, logger });
            const redis = new RedisVerifierState(infra.config.redisUrl, { prefix: infra.config.redisPrefix, logger, clock: infra.clock });
            return new VerifierStateKeeper({ reader, writer: redis, grants, logger, watch: redis });
          },
        },
      ],
    };
  }
}
