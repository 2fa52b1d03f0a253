/**
 * Timer triggers: the retention safety net, the backup schedules, the stalled-request sweep, the dead-letter
 * watch and re-verification (these need the Durable client, hence the durableClient input binding), the notifier
 * the RPO check and the scheduled restore rehearsals. Handlers are exported so tests and an in-process host
 * can call them; registration is at the bottom.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { getDeps } from '../services/deps.js';
import { failDeadLetteredJobs } from '../services/dead-letters.js';
import { startDueReverifications } from '../services/integrity.js';
import { dispatchNotifications } from '../services/notifications.js';
import { resumeStalledJobs } from '../services/recovery.js';
import { requestDueRehearsals } from '../services/rehearsals.js';
import { checkRpo } from '../services/rpo.js';
import { sweepExpiredBackups } from '../services/retention.js';
import { runDueSchedules } from '../services/schedules.js';

/** Every 15 minutes: expire Available backups past retention that no orchestration will expire. */
export async function retentionSweep(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getDeps();
  const report = await sweepExpiredBackups(deps, deps.orchestrations(context), { log: (line) => context.log(line) });
  const summary = `Retention sweep: ${report.examined} past expiry, ${report.expired.length} expired, ${report.leftToOrchestration.length} left to their orchestration, ${report.failed.length} failed`;
  if (report.failed.length > 0) context.warn(summary);
  else context.log(summary);
}

/** Every 5 minutes: create and start the jobs of due schedule slots. */
export async function scheduleTick(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getDeps();
  const report = await runDueSchedules(deps, deps.orchestrations(context), { log: (line) => context.log(line) });
  const summary = `Schedules: ${report.created.length} jobs created, ${report.existing.length} slots already filled, ${report.skipped.length} skipped, ${report.failed.length} failed`;
  if (report.failed.length > 0 || report.skipped.length > 0) context.warn(summary, report.skipped, report.failed);
  else context.log(summary);
}

/** Every 10 minutes: start the orchestration of any job left Pending by a crash after it was written. */
export async function stalledJobsSweep(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getDeps();
  const report = await resumeStalledJobs(deps, deps.orchestrations(context), { log: (line) => context.log(line) });
  const summary = `Stalled requests: ${report.examined} Pending past the grace period, ${report.started.length} started, ${report.orphaned.length} orphaned, ${report.failed.length} failed`;
  if (report.failed.length > 0 || report.orphaned.length > 0) context.warn(summary, report.orphaned, report.failed);
  else context.log(summary);
}

/** Every minute: fail the jobs whose messages Service Bus dead-lettered (`delivery_failed`, audited). */
export async function deadLetterSweep(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getDeps();
  const report = await failDeadLetteredJobs(deps, deps.orchestrations(context), { log: (line) => context.log(line) });
  const summary = `Dead letters: ${report.failed.length} jobs failed (delivery_failed), ${report.alreadyEnded.length} already ended, ${report.unknown} unknown, ${report.errors.length} errors`;
  if (report.errors.length > 0 || report.unknown > 0) context.warn(summary, report.errors);
  else context.log(summary);
}

/** Every 30 minutes: start the re-verification of Available backups that are due (at most REVERIFY_BATCH_SIZE). */
export async function reverifyTick(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getDeps();
  const report = await startDueReverifications(deps, deps.orchestrations(context), { log: (line) => context.log(line) });
  const summary = `Re-verification: ${report.started.length} started, ${report.failed.length} failed to start`;
  if (report.failed.length > 0) context.warn(summary, report.failed);
  else context.log(summary);
}

/** Every minute: deliver the notification outbox (Event Grid, webhooks). */
export async function notifyTick(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getDeps();
  const report = await dispatchNotifications(deps, { log: (line) => context.log(line), warn: (line) => context.warn(line) });
  const summary = `Notifications: ${report.delivered} delivered, ${report.retrying} to retry, ${report.dropped} dropped, ${report.skipped} not for anyone`;
  if (report.dropped > 0) context.warn(summary);
  else if (report.delivered + report.retrying + report.skipped > 0) context.log(summary);
}

/** Every 15 minutes: record RPO breaches and recoveries (each once, audited and notified). */
export async function rpoCheck(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getDeps();
  const report = await checkRpo(deps, { log: (line) => context.warn(line) });
  const summary = `RPO check: ${report.checked} databases with an RPO, ${report.breached.length} newly breached, ${report.recovered.length} recovered, ${report.failed.length} failed`;
  if (report.failed.length > 0) context.warn(summary, report.failed);
  else context.log(summary);
}

/** Every hour: request the restore rehearsals that databases' rehearseEveryDays policy makes due. */
export async function rehearsalTick(_timer: Timer, context: InvocationContext): Promise<void> {
  const deps = await getDeps();
  const report = await requestDueRehearsals(deps, { log: (line) => context.log(line) });
  const summary = `Rehearsals: ${report.checked} databases checked, ${report.requested.length} requested, ${report.skippedAge.length} age copies skipped, ${report.failed.length} failed`;
  if (report.failed.length > 0 || report.skippedAge.length > 0) context.warn(summary, report.skippedAge, report.failed);
  else context.log(summary);
}

app.timer('dead-letter-sweep', { schedule: '45 * * * * *', extraInputs: [df.input.durableClient()], handler: deadLetterSweep });
app.timer('retention-sweep', { schedule: '0 */15 * * * *', extraInputs: [df.input.durableClient()], handler: retentionSweep });
app.timer('schedule-tick', { schedule: '30 */5 * * * *', extraInputs: [df.input.durableClient()], handler: scheduleTick });
app.timer('reverify-tick', { schedule: '15 */30 * * * *', extraInputs: [df.input.durableClient()], handler: reverifyTick });
app.timer('stalled-jobs-sweep', { schedule: '45 */10 * * * *', extraInputs: [df.input.durableClient()], handler: stalledJobsSweep });
app.timer('notify', { schedule: '15 * * * * *', handler: notifyTick });
app.timer('rpo-check', { schedule: '20 */15 * * * *', handler: rpoCheck });
app.timer('rehearsal-tick', { schedule: '40 10 * * * *', handler: rehearsalTick });
