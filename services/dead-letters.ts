/**
 * Dead letters are not silent: a job message Service Bus gave up on (max delivery count exceeded, or a runner
 * dead-lettered it) fails its job with `delivery_failed` and the dead-letter reason, in one transaction with
 * its `job.failed` audit row. That audit row is the event a notifier reads (by cursor); there is no outbox.
 * The orchestration is then told, as a runner would tell it, so it stops waiting; its own fail step finds
 * the job already Failed and lets go.
 *
 * Run by a timer (functions/timers.ts, every minute) over the runners' subscriptions' dead-letter queues.
 */
import { randomUUID } from 'node:crypto';
import { runnableStatuses } from '../shared/contracts/jobs.js';
import { ORCHESTRATION_EVENTS, type FailedEvent } from '../shared/contracts/runner.js';
import { errorMessage } from '../shared/errors.js';
import type { DeadLetteredMessage } from '../shared/messaging.js';
import type { Deps } from './deps.js';
import type { JobOrchestrations } from './orchestrations.js';
import type { AuditActor } from './retention.js';

export const DEAD_LETTER_WATCHER: AuditActor = { actorType: 'system', actorId: 'dead-letter-watcher', actorName: null };
export const DELIVERY_FAILED = 'delivery_failed';

export interface DeadLetterReport {
  /** Jobs failed with `delivery_failed`. */
  failed: string[];
  /** Dead letters of jobs that had already ended (nothing to change). */
  alreadyEnded: string[];
  /** Messages naming no job we know: left in the dead-letter queue for a person. */
  unknown: number;
  /** Messages whose handling failed (left for the next run). */
  errors: string[];
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The job id from the body (a BackupJobMessage), else the message id (= job id when sent by the control plane). */
function jobIdOf(message: DeadLetteredMessage): string | undefined {
  let body = message.body;
  try {
    if (typeof body === 'string') body = JSON.parse(body);
    else if (body instanceof Uint8Array) body = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    body = undefined;
  }
  const fromBody = (body as { jobId?: unknown } | undefined)?.jobId;
  const candidate = typeof fromBody === 'string' ? fromBody : message.messageId;
  return candidate && uuidPattern.test(candidate) ? candidate.toLowerCase() : undefined;
}

export async function failDeadLetteredJobs(
  deps: Deps,
  orchestrations: JobOrchestrations,
  options: { batch?: number; log?: (line: string) => void } = {},
): Promise<DeadLetterReport> {
  const log = options.log ?? (() => undefined);
  const report: DeadLetterReport = { failed: [], alreadyEnded: [], unknown: 0, errors: [] };
  for (const message of await deps.deadLetters.receive(options.batch ?? 50)) {
    const jobId = jobIdOf(message);
    try {
      const job = jobId ? await deps.store.getJob(jobId) : undefined;
      if (!job) {
        report.unknown += 1;
        log(`dead letter ${message.messageId ?? '(no id)'} on ${message.subscription} names no known job (${message.reason ?? 'no reason'}); left for inspection`);
        await message.release();
        continue;
      }
      if (!runnableStatuses.includes(job.status)) {
        report.alreadyEnded.push(job.id);
        await message.complete();
        continue;
      }
      const now = deps.now();
      const reason = message.reason ?? 'unknown';
      const errorMessageText =
        `Service Bus dead-lettered the job message (${reason}${message.description ? `: ${message.description}` : ''}) ` +
        `after ${message.deliveryCount ?? '?'} deliveries on subscription ${message.subscription}; no runner could complete it.`;
      const result = await deps.store.transitionJob(
        job.id,
        { from: runnableStatuses, to: 'Failed', patch: { errorCode: DELIVERY_FAILED, errorMessage: errorMessageText.slice(0, 4000), completedAt: now }, at: now },
        {
          ...DEAD_LETTER_WATCHER,
          action: 'job.failed',
          target: `job/${job.id}`,
          jobId: job.id,
          detail: {
            errorCode: DELIVERY_FAILED,
            deadLetterReason: reason,
            deadLetterDescription: message.description ?? null,
            subscription: message.subscription,
            deliveryCount: message.deliveryCount ?? null,
          },
          at: now,
        },
      );
      if (result.ok) report.failed.push(job.id);
      else report.alreadyEnded.push(job.id);
      const stop: FailedEvent = { type: 'failed', eventId: `dead-lettered:${randomUUID()}`, code: DELIVERY_FAILED, message: errorMessageText.slice(0, 4000) };
      await orchestrations.raiseEvent(job.id, ORCHESTRATION_EVENTS.runner, stop).catch((error: unknown) => {
        log(`job ${job.id}: the orchestration was not told (${errorMessage(error)}); its own timeout ends it`);
      });
      await message.complete();
      log(`job ${job.id} failed: ${DELIVERY_FAILED} (${reason})`);
    } catch (error) {
      report.errors.push(`${jobId ?? message.messageId}: ${errorMessage(error)}`);
      await message.release().catch(() => undefined);
    }
  }
  return report;
}
