/**
 * Wires a JobConsumer for tests: the REAL @azure/service-bus client against the broker fixture, the API stand-in
 * over HTTP, Azurite behind real write SAS URLs. Used in-process and by the crash worker (a child process).
 */
import { randomUUID } from 'node:crypto';
import { ServiceBusClient } from '@azure/service-bus';
import type { BackupJobMessage } from '../../shared/contracts/messages.js';
import { RunnerApiClient } from '../../runner-agent/api/client.js';
import { JobConsumer } from '../../runner-agent/consumer.js';
import type { BackupEngineDriver } from '../../runner-agent/engines/types.js';
import { createLogger, silentLogger } from '../../runner-agent/logger.js';
import type { RunnerMetrics } from '../../runner-agent/metrics.js';
import { KeyedSemaphore } from '../../runner-agent/semaphore.js';

export const TOPIC = 'backup-jobs';
export const SUBSCRIPTION = 'runner-a';

export interface HarnessOptions {
  connectionString: string;
  apiBaseUrl: string;
  engine: BackupEngineDriver;
  subscription?: string;
  lockRenewalMaxMs?: number;
  shutdownGraceMs?: number;
  apiMaxAttempts?: number;
  verbose?: boolean;
  serverIds?: string[];
  outageBoundMs?: number;
  /** The engine also answers SQL Server jobs (default: PostgreSQL only). */
  alsoSqlServer?: boolean;
  metrics?: RunnerMetrics;
}

export function startTestConsumer(options: HarnessOptions): { consumer: JobConsumer; client: ServiceBusClient; api: RunnerApiClient } {
  const client = new ServiceBusClient(options.connectionString, { retryOptions: { maxRetries: 1, retryDelayInMs: 100, timeoutInMs: 10_000 } });
  const logger = options.verbose ? createLogger({ level: 'debug', fd: 2 }) : silentLogger();
  const api = new RunnerApiClient({
    baseUrl: options.apiBaseUrl,
    tokens: { getToken: async () => 'test-token' },
    retry: { maxAttempts: options.apiMaxAttempts ?? 3, baseDelayMs: 1, maxDelayMs: 5 },
    logger,
  });
  const consumer = new JobConsumer({
    client,
    topic: TOPIC,
    subscription: options.subscription ?? SUBSCRIPTION,
    maxConcurrentCalls: 2,
    lockRenewalMaxMs: options.lockRenewalMaxMs ?? 60_000,
    shutdownGraceMs: options.shutdownGraceMs ?? 5_000,
    ...(options.serverIds ? { serverIds: new Set(options.serverIds) } : {}),
    logger,
    jobs: {
      runnerId: 'test-runner',
      api,
      engines: { postgres: options.engine, ...(options.alsoSqlServer ? { sqlserver: options.engine } : {}) },
      semaphore: new KeyedSemaphore(1),
      uploadOptions: { blockBytes: 1024 * 1024, parallelism: 2 },
      progress: { minIntervalMs: 0, heartbeatMs: 0 },
      outageBoundMs: options.outageBoundMs ?? 0,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    },
  });
  consumer.start();
  return { consumer, client, api };
}

/** A PostgreSQL backup job for `serverId`; the API stand-in learns its blob path. */
export function jobMessageFor(api: { blobPathFor: Map<string, string> }, serverId: string, overrides: Partial<BackupJobMessage> = {}): BackupJobMessage {
  const jobId = randomUUID();
  const databaseId = randomUUID();
  const blobPath = `backups/${serverId}/${databaseId}/${jobId}.dump`;
  api.blobPathFor.set(jobId, blobPath);
  const now = Date.now();
  return {
    schemaVersion: 1,
    jobId,
    serverId,
    server: { name: 'pg01', host: 'pg01.internal' },
    databaseId,
    databaseName: 'Sales',
    engine: 'postgres',
    options: { compression: 'none', encryption: 'none' },
    blobPath,
    requestedAt: new Date(now).toISOString(),
    runDeadline: new Date(now + 60 * 60_000).toISOString(),
    ...overrides,
  };
}
