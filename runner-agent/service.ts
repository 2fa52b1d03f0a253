/**
 * Builds the runner's parts from its config and runs the service loop (`dbdist-runner start`).
 * Production code paths only: every endpoint and credential comes from the config.
 */
import { mkdirSync } from 'node:fs';
import { ClientCertificateCredential, ClientSecretCredential, type TokenCredential } from '@azure/identity';
import type { ServiceBusClient } from '@azure/service-bus';
import type { BackupEngine } from '../shared/contracts/common.js';
import { errorMessage } from '../shared/errors.js';
import { serviceBusClientFrom } from '../shared/servicebus.js';
import { RunnerApiClient, msalTokenProvider, type TokenProvider } from './api/client.js';
import type { LocalBackupConfig, RunnerConfig } from './config.js';
import { JobConsumer } from './consumer.js';
import { createPostgresEngine } from './engines/postgres.js';
import { sweepCheckpoints } from './pipeline/checkpoint.js';
import { createSqlServerEngine, defaultConnector } from './engines/sqlserver.js';
import type { BackupEngineDriver } from './engines/types.js';
import type { Logger } from './logger.js';
import { readKeyFile } from './pipeline/crypto.js';
import { createPostgresScratch } from './sanitize/postgres.js';
import { createSqlServerScratch } from './sanitize/sqlserver.js';
import type { ScratchDriver } from './sanitize/types.js';
import { KeyedSemaphore } from './semaphore.js';
import { RunnerMetrics, startMetricsServer } from './metrics.js';
import { startHeartbeat } from './heartbeat.js';

/** Per-call retries of the service's API client (the outage bound covers anything longer). */
export const serviceApiRetry = { maxAttempts: 3, baseDelayMs: 500, maxDelayMs: 2_000 };

/** The runner's Entra app credential for Service Bus (and SQL Server with `auth.type = entra`). */
export function entraCredential(entra: RunnerConfig['entra']): TokenCredential {
  const options = { authorityHost: entra.authorityHost };
  return entra.certificatePath
    ? new ClientCertificateCredential(entra.tenantId, entra.clientId, { certificatePath: entra.certificatePath }, options)
    : new ClientSecretCredential(entra.tenantId, entra.clientId, entra.clientSecret!, options);
}

export function apiTokenProvider(config: RunnerConfig): TokenProvider {
  return msalTokenProvider(config.entra, config.api.scope);
}

export function buildEngines(
  config: LocalBackupConfig,
  credential?: TokenCredential,
  logger?: Logger,
): Partial<Record<BackupEngine, BackupEngineDriver>> {
  const engines: Partial<Record<BackupEngine, BackupEngineDriver>> = {};
  if (config.sqlServer) {
    engines.sqlserver = createSqlServerEngine(config.sqlServer, {
      workDir: config.workDir,
      ...(credential ? { credential } : {}),
      ...(logger ? { warn: (message: string) => logger.warn({ engine: 'sqlserver' }, message) } : {}),
    });
  }
  if (config.postgres) engines.postgres = createPostgresEngine(config.postgres, { workDir: config.workDir });
  return engines;
}

/** Scratch targets from `scratch` (sanitized copies, restore rehearsals); an engine without one gets none. */
export function buildScratch(config: RunnerConfig, credential?: TokenCredential): Partial<Record<BackupEngine, ScratchDriver>> {
  const drivers: Partial<Record<BackupEngine, ScratchDriver>> = {};
  const { scratch } = config;
  if (scratch?.postgres && config.postgres) {
    drivers.postgres = createPostgresScratch({ source: config.postgres, scratch: scratch.postgres, prefix: scratch.prefix });
  }
  if (scratch?.sqlServer && config.sqlServer) {
    const { connection, dataDirectory, logDirectory } = scratch.sqlServer;
    drivers.sqlserver = createSqlServerScratch({
      source: config.sqlServer,
      connection: connection ?? config.sqlServer,
      dataDirectory,
      ...(logDirectory ? { logDirectory } : {}),
      prefix: scratch.prefix,
      workDir: config.workDir,
      connect: (settings, database) => defaultConnector(settings, credential, database),
    });
  }
  return drivers;
}

/** A crashed run leaves scratch databases behind: drop every one with our prefix before taking new work. */
export async function dropScratchLeftovers(drivers: Partial<Record<BackupEngine, ScratchDriver>>, logger: Logger): Promise<void> {
  for (const driver of Object.values(drivers)) {
    try {
      const dropped = await driver.dropLeftovers();
      if (dropped.length > 0) logger.warn({ engine: driver.engine, dropped }, 'dropped scratch databases left by an earlier run');
    } catch (error) {
      logger.error({ engine: driver.engine, error: errorMessage(error) }, 'could not drop leftover scratch databases');
    }
  }
}

export function buildServiceBusClient(config: RunnerConfig, credential: TokenCredential): ServiceBusClient {
  const { serviceBus } = config;
  return serviceBus.connectionString
    ? serviceBusClientFrom({ connectionString: serviceBus.connectionString })
    : serviceBusClientFrom({ fullyQualifiedNamespace: serviceBus.fullyQualifiedNamespace!, credential });
}

/**
 * Runs until SIGINT/SIGTERM (exit 0 after a graceful drain) or a fatal receive error (exit 1).
 * A second signal during the drain exits at once; Service Bus redelivers whatever was unfinished.
 */
export async function runService(config: RunnerConfig, logger: Logger): Promise<number> {
  mkdirSync(config.workDir, { recursive: true });
  const credential = entraCredential(config.entra);
  const engines = buildEngines(config, credential, logger);
  const scratch = buildScratch(config, credential);
  await dropScratchLeftovers(scratch, logger);
  const expired = await sweepCheckpoints(config.workDir);
  if (expired.length > 0) logger.info({ jobIds: expired }, 'removed upload checkpoints (and their local backup files) of jobs past their run deadline');
  // A few quick retries per call; a longer outage is waited out by the job runner, within outageBoundSeconds.
  const api = new RunnerApiClient({ baseUrl: config.api.baseUrl, tokens: apiTokenProvider(config), logger, retry: serviceApiRetry });
  const client = buildServiceBusClient(config, credential);
  const metrics = config.metrics.port === undefined ? undefined : new RunnerMetrics();
  const metricsServer = metrics ? await startMetricsServer(metrics, { host: config.metrics.host, port: config.metrics.port! }) : undefined;
  if (metricsServer) logger.info({ host: config.metrics.host, port: metricsServer.port }, 'serving Prometheus metrics at /metrics');
  const consumer = new JobConsumer({
    client,
    topic: config.serviceBus.topic,
    subscription: config.serviceBus.subscription,
    maxConcurrentCalls: config.concurrencyPerInstance * Object.keys(engines).length,
    lockRenewalMaxMs: config.lockRenewalMaxMinutes * 60_000,
    shutdownGraceMs: config.shutdownGraceSeconds * 1000,
    logger,
    ...(config.serverIds ? { serverIds: new Set(config.serverIds.map((id) => id.toLowerCase())) } : {}),
    jobs: {
      runnerId: config.runnerId,
      api,
      engines,
      scratch,
      // The retired DBDE key: only to rehearse old `.enc` backups.
      ...(config.encryptionKeyFile ? { encryptionKey: readKeyFile(config.encryptionKeyFile) } : {}),
      semaphore: new KeyedSemaphore(config.concurrencyPerInstance),
      outageBoundMs: config.outageBoundSeconds * 1000,
      uploadOptions: { blockBytes: config.upload.blockKiB * 1024, parallelism: config.upload.parallelism },
      workDir: config.workDir,
      ...(metrics ? { metrics } : {}),
    },
  });

  logger.info(
    {
      runnerId: config.runnerId,
      engines: Object.keys(engines),
      scratch: Object.keys(scratch),
      serviceBus: config.serviceBus.fullyQualifiedNamespace ?? '(development connection string)',
      api: config.api.baseUrl,
    },
    'dbdist runner starting',
  );
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now; unfinished jobs will be redelivered');
      process.exit(130);
    }
    logger.info({ signal }, 'shutdown requested');
    void consumer.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  consumer.start();
  const stopHeartbeat = startHeartbeat({
    send: (heartbeat) => api.heartbeat(heartbeat),
    runnerId: config.runnerId,
    serverIds: config.serverIds ?? [],
    workDir: config.workDir,
    inFlightJobs: () => consumer.activeJobs,
    intervalMs: config.heartbeatSeconds * 1000,
    logger,
  });

  const exit = await consumer.exited;
  stopHeartbeat();
  await metricsServer?.close();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  await Promise.allSettled(Object.values(engines).map((engine) => engine.close?.()));
  await client.close().catch(() => undefined);
  return exit.kind === 'stopped' ? 0 : 1;
}
