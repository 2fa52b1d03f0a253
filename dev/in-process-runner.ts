/**
 * One real runner agent (consumer, API client, upload pipeline) inside the current process, on its own Service Bus
 * connection: what the local stack's `startRunner` starts, and what the scale bench starts a hundred of in a
 * child process. Everything but the engine and the token source is the production code.
 */
import { JobConsumer } from '../runner-agent/consumer.js';
import { RunnerApiClient } from '../runner-agent/api/client.js';
import { KeyedSemaphore } from '../runner-agent/semaphore.js';
import { silentLogger, type Logger } from '../runner-agent/logger.js';
import type { BackupEngineDriver } from '../runner-agent/engines/types.js';
import type { JobRunnerDeps } from '../runner-agent/job-runner.js';
import type { ScratchDriver } from '../runner-agent/sanitize/types.js';
import { serviceBusClientFrom } from '../shared/servicebus.js';

export interface InProcessRunnerOptions {
  /** The broker's (or Service Bus's) connection string. */
  connectionString: string;
  topic: string;
  subscription: string;
  serverId: string;
  apiBaseUrl: string;
  /** The runner's client-credentials token (app role Runner). */
  token: () => Promise<string>;
  engine: BackupEngineDriver;
  runnerId: string;
  logger?: Logger;
  /** Block size of the upload pipeline (tests make it small to get many blocks). */
  blockBytes?: number;
  scratch?: ScratchDriver;
  /** Progress throttle intervals; the production defaults when omitted. */
  progress?: JobRunnerDeps['progress'];
}

export interface InProcessRunner {
  runnerId: string;
  consumer: JobConsumer;
  /** Graceful stop: finishes running jobs within the grace period, then closes the connection. */
  stop(): Promise<void>;
  /** Closes the connection without waiting (after the broker dropped it: a crashed process). */
  abandon(): void;
}

export function startInProcessRunner(options: InProcessRunnerOptions): InProcessRunner {
  const client = serviceBusClientFrom({ connectionString: options.connectionString });
  const logger = options.logger ?? silentLogger();
  const consumer = new JobConsumer({
    client,
    topic: options.topic,
    subscription: options.subscription,
    maxConcurrentCalls: 1,
    lockRenewalMaxMs: 12 * 3600_000,
    shutdownGraceMs: 10_000,
    logger,
    serverIds: new Set([options.serverId]),
    jobs: {
      runnerId: options.runnerId,
      api: new RunnerApiClient({ baseUrl: options.apiBaseUrl, tokens: { getToken: options.token }, logger }),
      engines: { [options.engine.name]: options.engine },
      ...(options.scratch ? { scratch: { [options.scratch.engine]: options.scratch } } : {}),
      semaphore: new KeyedSemaphore(1),
      ...(options.blockBytes ? { uploadOptions: { blockBytes: options.blockBytes } } : {}),
      ...(options.progress ? { progress: options.progress } : {}),
    },
  });
  consumer.start();
  return {
    runnerId: options.runnerId,
    consumer,
    async stop() {
      await consumer.stop();
      await client.close();
    },
    abandon() {
      void client.close().catch(() => undefined);
    },
  };
}
