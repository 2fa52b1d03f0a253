/**
 * The `backupJob` orchestration: one instance per job (instance id = job id), started by the control plane once
 * the job row exists in Pending.
 *
 *   prepare → enqueue (Queued) → wait for the runner: `accepted` (Running) → progress… → `uploaded`
 *   → verify the blob (Verifying) → Available + first download link → wait for `Delete` or the retention timer
 *   → delete the blob (Expired)
 *
 * Failures end in Failed (accept timeout, run timeout, the runner's `failed`, a blob that does not match the
 * report) and a `Cancel` before the upload ends in Cancelled; both delete whatever was uploaded.
 *
 * Runner events (payload: a `RunnerEvent`) are deduplicated by `eventId`. An event other than `accepted` that
 * arrives first implies acceptance (the runner is evidently working on the job; `accepted` was lost or is late);
 * a later `accepted` (a redelivered message's next attempt) is ignored. Events after the upload are ignored.
 *
 * Versioning: the extension replays in-flight instances with the code deployed now, so a change that alters the
 * sequence of activities, timers or waits is breaking. New jobs start `backupJob2` (orchestrations/backupJob2.ts);
 * this one stays registered until its instances are done. The steps both share live in backupJob.flow.ts.
 *
 * Hotfix (issue 18): the retention timer is no longer cancelled when it is longer than 6 days. Such a timer is
 * split into intervals, and on replay the extension re-creates only the first interval of a cancelled one: once an
 * interval had fired, the next task id collided with the history (non-determinism, instance Failed) — and the
 * library armed the next interval of the cancelled timer anyway. Left running, both sides keep counting alike;
 * the instance completes after `expireBackup` and the extension drops the timer's later intervals. Cancelling a
 * timer of 6 days or less stays safe (one timer, one id).
 *
 * How the waits are built, and why (durable-functions 3.x speaks the legacy out-of-process protocol):
 * - the extension re-creates every child of every `Task.any` it is sent, even one already scheduled: a timer
 *   yielded in two `Task.any` calls would be scheduled twice and the task numbering of the library and the
 *   extension would part. So each wait gets its own timer (same deadline), cancelled when it loses;
 * - both sides keep the waiters of one event name on a stack and hand an event to the newest open one; an event
 *   arriving while no waiter is open is buffered for the next. A waiter left open by a race it lost still takes
 *   events. The runner waiter is only ever left open when the loop ends; the one `Cancel` waiter is shared by
 *   every race and checked for completion before each wait (a `Task.any` does not notice a child that completed
 *   before it was built — e.g. a Cancel raised while an activity ran);
 * - durable-functions splits timers longer than 6 days into intervals and, when such a timer is cancelled, still
 *   schedules its next interval (the extension does not): the wait timeouts are kept within 6 days, and the
 *   retention timer is never cancelled when it is longer (see the hotfix above).
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { ORCHESTRATION_EVENTS } from '../shared/contracts/runner.js';
import type { AuditActor, ExpiryReason } from '../services/retention.js';
import { activities } from './backupJob.activities.js';
import {
  JobFlow,
  MAX_WAIT_MINUTES,
  enqueueAndAwaitUpload,
  expire,
  isOutcome,
  prepare,
  publish,
  requestedBy,
  verify,
  type BackupJobInput,
  type BackupJobOutcome,
} from './backupJob.flow.js';

export {
  ACTIVITY_RETRY,
  JobActionRequest,
  LATE_UPLOAD_MARGIN_MINUTES,
  MAX_WAIT_MINUTES,
  PROGRESS_RECORD_INTERVAL_MS,
  type BackupJobInput,
  type BackupJobOutcome,
  type BackupJobStatus,
} from './backupJob.flow.js';

/** Orchestrator function name (v1: only instances started before `backupJob2` run it). */
export const BACKUP_JOB_ORCHESTRATOR = 'backupJob';

export function* backupJobOrchestrator(context: OrchestrationContext): Generator<Task, BackupJobOutcome, unknown> {
  const { jobId } = context.df.getInput<BackupJobInput>();
  const flow = new JobFlow(context, jobId, BACKUP_JOB_ORCHESTRATOR);

  const prepared = yield* prepare(flow);
  if (isOutcome(prepared)) return prepared;

  let available: { expiresAt: Date };
  try {
    const upload = yield* enqueueAndAwaitUpload(flow, prepared, 'record');
    if (isOutcome(upload)) return upload;
    const verified = yield* verify(flow, prepared, upload);
    if (isOutcome(verified)) return verified;
    const published = yield* publish(flow, prepared, verified);
    if (isOutcome(published)) return published;
    available = published;
  } catch (error) {
    // An activity failed through all its retries: the job cannot go on.
    const message = error instanceof Error ? error.message : String(error);
    return yield* flow.fail('Failed', 'internal', `The orchestration could not continue: ${message}`);
  }

  return yield* awaitExpiry(flow, available.expiresAt);
}

/** Until `Delete` or the retention timer, then the blob goes and the job is Expired. */
function* awaitExpiry(flow: JobFlow, expiresAt: Date): Generator<Task, BackupJobOutcome, unknown> {
  const { context } = flow;
  const deletion = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.delete);
  // Retention is often longer than 6 days: durable-functions and the extension split this timer into intervals.
  const retentionIsSplit = expiresAt.getTime() - flow.now().getTime() > MAX_WAIT_MINUTES * 60_000;
  const retention = context.df.createTimer(expiresAt);
  const winner = yield context.df.Task.any([deletion, retention]);
  let reason: ExpiryReason = 'retention';
  let actor: AuditActor | undefined;
  if (winner === deletion) {
    // Hotfix: a split timer is left to run out (see the header); cancelling it breaks replay.
    if (!retentionIsSplit) retention.cancel();
    reason = 'deleted';
    actor = requestedBy(deletion.result).actor;
  }
  return yield* expire(flow, reason, actor);
}

// Registration. Outside the Functions host @azure/functions runs in "test mode": these warn and do nothing,
// which is why the orchestrator and the `activities` record are exported for in-process hosts and tests.
df.app.orchestration(BACKUP_JOB_ORCHESTRATOR, backupJobOrchestrator);
for (const [name, handler] of Object.entries(activities)) {
  df.app.activity(name, { handler });
}
