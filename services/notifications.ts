/**
 * The notifier: delivers the outbox (written by the store with every notifiable audit row) to the configured
 * channels. Run by a timer, never on a request's or a job's path, so a slow or dead receiver delays nobody.
 * Delivery is at least once (receivers deduplicate on the event id); each channel is retried with back-off
 * until it has taken the event or the attempts run out, then the event is dropped with a log line.
 */
import type { AuditRecord, JobRecord, PendingNotification } from '../shared/db/store.js';
import type { NotificationAudience, NotificationEvent } from '../shared/contracts/notifications.js';
import { errorMessage } from '../shared/errors.js';
import type { Deps } from './deps.js';
import type { NotificationChannel } from './notification-channels.js';

export interface DispatchOptions {
  log?: (line: string) => void;
  warn?: (line: string) => void;
  /** Per delivery attempt. */
  timeoutMs?: number;
  /** Attempts per event before it is dropped. */
  maxAttempts?: number;
  /** Outbox rows taken per run. */
  batchSize?: number;
  /** Events delivered at once. */
  concurrency?: number;
}

export const notificationDefaults: Required<Omit<DispatchOptions, 'log' | 'warn'>> = { timeoutMs: 5_000, maxAttempts: 5, batchSize: 100, concurrency: 8 };

export interface DispatchReport {
  delivered: number;
  retrying: number;
  dropped: number;
  skipped: number;
}

/** Back-off before attempt `n + 1` (n ≥ 1): 30 s, 2 min, 8 min, 32 min… */
export function retryDelayMs(attemptsMade: number): number {
  return 30_000 * 4 ** Math.max(0, attemptsMade - 1);
}

/** The notification for an audit event, or undefined when this one is not worth telling anyone. */
export function notificationFor(event: AuditRecord, job: JobRecord | undefined): NotificationEvent | undefined {
  const detail = event.detail;
  const databaseName = job?.databaseName ?? (typeof detail.databaseName === 'string' ? detail.databaseName : null);
  const databaseId = job?.databaseId ?? (event.target.startsWith('database/') ? event.target.slice('database/'.length) : null);
  const subject = databaseName ?? databaseId ?? 'a database';
  const base = {
    id: event.id,
    at: event.at.toISOString(),
    jobId: event.jobId,
    databaseId,
    databaseName,
    requester: job ? { oid: job.requesterOid, upn: job.requesterUpn } : null,
    detail,
  };
  const make = (type: string, audience: NotificationAudience, text: string): NotificationEvent => ({ ...base, type, audience, text });
  // A string switch: some actions (approval, integrity, rehearsal) are added by other parts of the product.
  switch (event.action as string) {
    case 'job.available':
      return make('dbdist.job.available', 'requester', `Your copy of ${subject} is ready to download (job ${event.jobId}).`);
    case 'job.failed': {
      const code = job?.errorCode ?? (typeof detail.code === 'string' ? detail.code : 'unknown');
      if (code === 'delivery_failed') {
        return make('dbdist.job.dead_lettered', 'operators', `The backup job ${event.jobId} of ${subject} was dead-lettered: no runner could take it.`);
      }
      return make('dbdist.job.failed', 'operators', `The backup of ${subject} failed (${code}), job ${event.jobId}.`);
    }
    case 'job.awaiting_approval':
      return make('dbdist.approval.needed', 'operators', `A raw copy of ${subject} awaits approval (job ${event.jobId}).`);
    case 'integrity.failed':
      return make('dbdist.integrity.failed', 'operators', `The stored backup of ${subject} failed re-verification (job ${event.jobId}).`);
    case 'restore.rehearsed':
      if (detail.result !== 'failed') return undefined;
      return make('dbdist.restore.failed', 'operators', `A restore rehearsal of ${subject} failed (job ${event.jobId}).`);
    case 'rpo.breached':
      return make('dbdist.rpo.breached', 'operators', `The RPO of ${subject} is breached: no good backup within ${String(detail.rpoHours)} h.`);
    case 'rpo.recovered':
      return make('dbdist.rpo.recovered', 'operators', `The RPO of ${subject} is met again.`);
    default:
      return undefined;
  }
}

export async function dispatchNotifications(
  deps: Pick<Deps, 'store' | 'now' | 'notifications'>,
  options: DispatchOptions = {},
): Promise<DispatchReport> {
  const settings = { ...notificationDefaults, ...options };
  const report: DispatchReport = { delivered: 0, retrying: 0, dropped: 0, skipped: 0 };
  const pending = await deps.store.listPendingNotifications(deps.now(), settings.batchSize);
  const queue = [...pending];
  const worker = async () => {
    for (let item = queue.shift(); item; item = queue.shift()) {
      const outcome = await deliverOne(deps, item, settings);
      report[outcome] += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(settings.concurrency, pending.length) }, worker));
  return report;
}

async function deliverOne(
  deps: Pick<Deps, 'store' | 'now' | 'notifications'>,
  item: PendingNotification,
  settings: typeof notificationDefaults & DispatchOptions,
): Promise<keyof DispatchReport> {
  const { event } = item;
  const job = event.jobId ? await deps.store.getJob(event.jobId) : undefined;
  const notification = notificationFor(event, job);
  // One line per domain event, whatever the channels: the alert rules in infra/modules/alerts.bicep count these.
  if (notification && item.attempts === 0) {
    settings.log?.(`dbdist.event ${notification.type} ${event.id} job=${event.jobId ?? '-'} database=${notification.databaseId ?? '-'}`);
  }
  if (!notification || deps.notifications.length === 0) {
    await deps.store.recordNotificationAttempt(event.id, { deliveredTo: item.deliveredTo, done: true, nextAttemptAt: deps.now(), error: null, at: deps.now() });
    return 'skipped';
  }
  const todo = deps.notifications.filter((channel) => !item.deliveredTo.includes(channel.name));
  const results = await Promise.all(todo.map((channel) => attempt(channel, notification, settings.timeoutMs)));
  const deliveredTo = [...item.deliveredTo, ...todo.filter((_, i) => results[i] === undefined).map((channel) => channel.name)];
  const errors = todo.flatMap((channel, i) => (results[i] === undefined ? [] : [`${channel.name}: ${results[i]}`]));
  const attemptsMade = item.attempts + 1;
  const at = deps.now();
  for (const channel of todo.filter((_, i) => results[i] === undefined)) {
    settings.log?.(`Notification ${notification.type} ${event.id} delivered to ${channel.name}`);
  }
  if (errors.length === 0) {
    await deps.store.recordNotificationAttempt(event.id, { deliveredTo, done: true, nextAttemptAt: at, error: null, at });
    return 'delivered';
  }
  const giveUp = attemptsMade >= settings.maxAttempts;
  const nextAttemptAt = new Date(at.getTime() + retryDelayMs(attemptsMade));
  await deps.store.recordNotificationAttempt(event.id, { deliveredTo, done: giveUp, nextAttemptAt, error: errors.join('; '), at });
  if (giveUp) {
    settings.warn?.(`Notification ${notification.type} ${event.id} dropped after ${attemptsMade} attempts: ${errors.join('; ')}`);
    return 'dropped';
  }
  settings.warn?.(`Notification ${notification.type} ${event.id} attempt ${attemptsMade} failed (${errors.join('; ')}); next at ${nextAttemptAt.toISOString()}`);
  return 'retrying';
}

/** One delivery with its time limit; the error text, or undefined on success. */
async function attempt(channel: NotificationChannel, event: NotificationEvent, timeoutMs: number): Promise<string | undefined> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    // Also race the signal: a channel that ignores it still cannot hold the dispatcher past the limit.
    await Promise.race([
      channel.deliver(event, signal),
      new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error(`timed out after ${timeoutMs} ms`)), { once: true })),
    ]);
    return undefined;
  } catch (error) {
    return signal.aborted ? `timed out after ${timeoutMs} ms` : errorMessage(error);
  }
}
