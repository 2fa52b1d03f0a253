/**
 * The Service Bus side of the runner: a peek-lock receiver on the runner's subscription of the jobs topic.
 *
 * - Messages are settled by us only (`autoCompleteMessages: false`): complete, abandon or dead-letter, as the
 *   job runner decides. A message that breaks the JobMessage contract is dead-lettered with the reason; a
 *   rehearsal message goes to rehearsal-runner.ts, a backup message to job-runner.ts.
 * - Locks are renewed automatically for up to `lockRenewalMaxMs` (longer than the longest backup). If the
 *   process dies, the lock lapses and Service Bus redelivers; the next attempt starts clean.
 * - `processError` tells fatal errors (unauthorized, entity missing or disabled: no retry can fix them) from
 *   transient ones (the SDK reconnects and retries by itself).
 * - Graceful shutdown: stop receiving, let running backups finish within the grace period, then abort them and
 *   abandon their messages.
 */
import { SpanKind, TRACEPARENT, contextFromTraceparent, inSpan, setSpanAttributes } from '../shared/telemetry.js';
import {
  isServiceBusError,
  type ProcessErrorArgs,
  type ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from '@azure/service-bus';
import { SERVER_ID_PROPERTY, isRehearsalMessage } from '../shared/contracts/messages.js';
import { errorMessage } from '../shared/errors.js';
import { parseJobMessage, runJob, type JobRunnerDeps, type Settlement } from './job-runner.js';
import type { Logger } from './logger.js';
import { runRehearsal, type RehearsalApi } from './rehearsal-runner.js';

/** Errors after which receiving cannot succeed until someone changes the configuration. */
const fatalErrorCodes = new Set(['UnauthorizedAccess', 'MessagingEntityNotFound', 'MessagingEntityDisabled']);

export function isFatalReceiveError(error: unknown): boolean {
  return isServiceBusError(error) && fatalErrorCodes.has(error.code);
}

export interface ConsumerOptions {
  client: ServiceBusClient;
  topic: string;
  subscription: string;
  /** Messages handled at once (they then wait on the per-server semaphore). */
  maxConcurrentCalls: number;
  lockRenewalMaxMs: number;
  shutdownGraceMs: number;
  logger: Logger;
  /** Backup jobs and rehearsals share the deps; the API client also serves rehearsal-source and rehearsal. */
  jobs: Omit<JobRunnerDeps, 'logger'> & { api: JobRunnerDeps['api'] & RehearsalApi };
  /**
   * The servers this runner backs up. A job for another server is dead-lettered, never attempted: a misrouted
   * message (a subscription filter that lets everything through) must not back up a same-named database here.
   */
  serverIds?: ReadonlySet<string>;
}

export type ConsumerExit = { kind: 'stopped' } | { kind: 'fatal'; error: unknown };

export class JobConsumer {
  private receiver: ServiceBusReceiver | undefined;
  private subscription: { close(): Promise<void> } | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  /** Aborted when the grace period is over: running jobs stop and their messages are abandoned. */
  private readonly shutdown = new AbortController();
  private stopping: Promise<void> | undefined;
  private resolveExit!: (exit: ConsumerExit) => void;
  /** Settles when the consumer has stopped, by `stop()` or after a fatal receive error. */
  readonly exited: Promise<ConsumerExit> = new Promise((resolve) => (this.resolveExit = resolve));

  constructor(private readonly options: ConsumerOptions) {}

  start(): void {
    const { client, topic, subscription, logger } = this.options;
    this.receiver = client.createReceiver(topic, subscription, {
      receiveMode: 'peekLock',
      maxAutoLockRenewalDurationInMs: this.options.lockRenewalMaxMs,
    });
    this.subscription = this.receiver.subscribe(
      {
        processMessage: (message) => this.track(this.handle(message)),
        processError: async (args) => this.onError(args),
      },
      {
        autoCompleteMessages: false,
        maxConcurrentCalls: this.options.maxConcurrentCalls,
      },
    );
    logger.info({ topic, subscription, maxConcurrentCalls: this.options.maxConcurrentCalls }, 'listening for backup jobs');
  }

  /** Graceful stop; safe to call more than once. */
  stop(): Promise<void> {
    return this.stopWith({ kind: 'stopped' });
  }

  private stopWith(exit: ConsumerExit): Promise<void> {
    this.stopping ??= this.drain().then(() => this.resolveExit(exit));
    return this.stopping;
  }

  /** Jobs being handled right now. */
  get activeJobs(): number {
    return this.inFlight.size;
  }

  private async drain(): Promise<void> {
    const { logger, shutdownGraceMs } = this.options;
    logger.info({ activeJobs: this.inFlight.size, graceMs: shutdownGraceMs }, 'stopping: no new jobs');
    await this.subscription?.close().catch((error: unknown) => logger.warn({ error: errorMessage(error) }, 'closing the subscription failed'));
    if (this.inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, shutdownGraceMs, 'timeout')));
      const outcome = await Promise.race([Promise.allSettled([...this.inFlight]).then(() => 'done' as const), graceOver]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        logger.warn({ activeJobs: this.inFlight.size }, 'grace period over: aborting running backups and abandoning their messages');
        this.shutdown.abort();
        await Promise.allSettled([...this.inFlight]);
      }
    }
    await this.receiver?.close().catch(() => undefined);
    logger.info('stopped');
  }

  private track(work: Promise<void>): Promise<void> {
    this.inFlight.add(work);
    return work.finally(() => this.inFlight.delete(work));
  }

  private async handle(message: ServiceBusReceivedMessage): Promise<void> {
    const receiver = this.receiver!;
    const log = this.options.logger.child({ messageId: message.messageId, deliveryCount: message.deliveryCount });
    const parsed = parseJobMessage(message.body);
    let settlement: Settlement;
    if (!parsed.ok) {
      settlement = { action: 'deadLetter', reason: parsed.reason, description: parsed.description };
    } else {
      const routedTo = message.applicationProperties?.[SERVER_ID_PROPERTY];
      const serves = this.options.serverIds;
      if (routedTo !== undefined && routedTo !== parsed.job.serverId) {
        settlement = {
          action: 'deadLetter',
          reason: 'ServerIdMismatch',
          description: `The ${SERVER_ID_PROPERTY} property (${String(routedTo)}) does not match the body (${parsed.job.serverId})`,
        };
      } else if (serves && !serves.has(parsed.job.serverId.toLowerCase())) {
        settlement = {
          action: 'deadLetter',
          reason: 'ServerNotServedHere',
          description: `This runner serves ${[...serves].join(', ')}, not server ${parsed.job.serverId}: check the subscription's filter rule`,
        };
      } else {
        const job = parsed.job;
        const context = { deliveryCount: message.deliveryCount ?? 0, signal: this.shutdown.signal };
        const deps = { ...this.options.jobs, logger: this.options.logger };
        // The job's span continues the trace the control plane put on the message (shared/servicebus.ts).
        settlement = await inSpan(
          isRehearsalMessage(job) ? 'runner rehearsal' : 'runner job',
          {
            kind: SpanKind.CONSUMER,
            parent: contextFromTraceparent(message.applicationProperties?.[TRACEPARENT]),
            attributes: { 'job.id': job.jobId, ...('databaseId' in job ? { 'database.id': job.databaseId } : {}), 'db.engine': job.engine, 'messaging.delivery_count': message.deliveryCount },
          },
          async (span) => {
            const done = isRehearsalMessage(job) ? await runRehearsal(job, context, deps) : await runJob(job, context, deps);
            setSpanAttributes(span, { outcome: done.action });
            return done;
          },
        );
      }
    }
    try {
      switch (settlement.action) {
        case 'complete':
          await receiver.completeMessage(message);
          break;
        case 'abandon':
          await receiver.abandonMessage(message);
          break;
        case 'deadLetter':
          log.warn({ reason: settlement.reason, description: settlement.description }, 'dead-lettering an unusable message');
          await receiver.deadLetterMessage(message, {
            deadLetterReason: settlement.reason,
            deadLetterErrorDescription: settlement.description,
          });
          break;
      }
      log.info({ action: settlement.action, reason: settlement.reason }, 'message settled');
    } catch (error) {
      // Most often a lost lock (connection dropped): Service Bus redelivers, and the job's events are idempotent.
      log.warn({ action: settlement.action, error: errorMessage(error) }, 'settling the message failed; it will be redelivered');
    }
  }

  private onError(args: ProcessErrorArgs): void {
    const { logger } = this.options;
    const details = { errorSource: args.errorSource, entityPath: args.entityPath, error: errorMessage(args.error) };
    if (isFatalReceiveError(args.error)) {
      logger.fatal({ ...details, code: (args.error as { code?: string }).code }, 'cannot receive jobs: stopping');
      void this.stopWith({ kind: 'fatal', error: args.error });
      return;
    }
    logger.warn(details, 'Service Bus receive error; the client retries');
  }
}
