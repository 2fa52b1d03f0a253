/**
 * The `backupJob2` orchestration: what new jobs start (instance id = job id). `backupJob` (v1,
 * orchestrations/backupJob.ts) stays registered for the instances started before it; both use the same
 * activities (backupJob.activities.ts) and the shared steps in backupJob.flow.ts.
 *
 *   prepare → [approval] → enqueue and wait for the upload (Queued, Running) → verify: metadata, the control plane's re-hash, signed manifest (Verifying)
 *   → publish (Available + first link) → wait out retention in chunks, or `Delete` → expire (Expired)
 *
 * Each step is one generator below; a step returns its result or the outcome that ended the job. New steps go
 * where the brackets are, as their own generator (and a breaking change becomes `backupJob3`).
 *
 * Why retention is waited in chunks (issue 18): a durable timer longer than the backend's maximum (6 days on
 * Azure Storage) is split into intervals by the extension (3-day steps) and by durable-functions (its own
 * steps). When such a timer is cancelled, the extension's replay re-creates only its first interval, so once an
 * interval has fired the next task id collides with the history (DurableTask's non-determinism error, instance
 * Failed), and durable-functions still arms the cancelled timer's next interval (the task numbering of the two
 * sides parts). So every timer here is at most 6 days — one timer, one task id, safe to cancel — and a fresh one
 * is armed per chunk. One `Delete` waiter serves every chunk: it is created once and checked before each chunk
 * (a `Task.any` does not notice a child that completed before it was built, e.g. a Delete raised while the
 * previous chunk's timer fired in the same episode). dev/durable-history.ts replays this the extension's way.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { ORCHESTRATION_EVENTS, type UploadedEvent } from '../shared/contracts/runner.js';
import type { PreparedJob } from './backupJob.activities.js';
import {
  JobFlow,
  MAX_WAIT_MINUTES,
  addMinutes,
  enqueueAndAwaitUpload,
  expire,
  isOutcome,
  prepare,
  publish,
  requestedBy,
  verify,
  type BackupJobInput,
  type BackupJobOutcome,
  type VerifiedUpload,
} from './backupJob.flow.js';
import { rehashAgainstReport, signAndPublish } from './backupJob2.integrity.js';

/** Orchestrator function name; what new jobs start. */
export const BACKUP_JOB2_ORCHESTRATOR = 'backupJob2';

export function* backupJob2Orchestrator(context: OrchestrationContext): Generator<Task, BackupJobOutcome, unknown> {
  const { jobId } = context.df.getInput<BackupJobInput>();
  const flow = new JobFlow(context, jobId, BACKUP_JOB2_ORCHESTRATOR);

  const prepared = yield* prepare(flow);
  if (isOutcome(prepared)) return prepared;

  let available: { expiresAt: Date };
  try {
    // [approval: a wait before anything is enqueued goes here]
    const uploaded = yield* awaitUpload(flow, prepared);
    if (isOutcome(uploaded)) return uploaded;
    const verified = yield* verifyStoredBlob(flow, prepared, uploaded);
    if (isOutcome(verified)) return verified;
    const published = yield* publish(flow, prepared, verified);
    if (isOutcome(published)) return published;
    available = published;
  } catch (error) {
    // An activity failed through all its retries: the job cannot go on.
    const message = error instanceof Error ? error.message : String(error);
    return yield* flow.fail('Failed', 'internal', `The orchestration could not continue: ${message}`);
  }

  return yield* awaitRetention(flow, available.expiresAt);
}

/**
 * Queued → Running → the runner's `uploaded` report (or the job ends: failed, timed out, cancelled). Only
 * lifecycle events reach this wait: the runner endpoint (services/runner.ts) writes progress to the job row, so
 * the history stays the same length however long the backup runs.
 */
function* awaitUpload(flow: JobFlow, prepared: PreparedJob): Generator<Task, UploadedEvent | BackupJobOutcome, unknown> {
  return yield* enqueueAndAwaitUpload(flow, prepared, 'ignore');
}

/**
 * Verifying: the stored blob against the runner's report (metadata), then the control plane's own re-hash of the
 * stored bytes, then the signed manifest and sidecars (orchestrations/backupJob2.integrity.ts). Any of them
 * failing ends the job Failed with its blob and sidecars deleted: nothing half-published.
 */
function* verifyStoredBlob(
  flow: JobFlow,
  prepared: PreparedJob,
  uploaded: UploadedEvent,
): Generator<Task, VerifiedUpload | BackupJobOutcome, unknown> {
  const verified = yield* verify(flow, prepared, uploaded);
  if (isOutcome(verified)) return verified;
  const rehashed = yield* rehashAgainstReport(flow, uploaded, verified);
  if (isOutcome(rehashed)) return rehashed;
  return yield* signAndPublish(flow, prepared, uploaded, rehashed);
}

/** Until `Delete` or the end of retention, in chunks of at most 6 days (see the header); then the blob goes. */
function* awaitRetention(flow: JobFlow, expiresAt: Date): Generator<Task, BackupJobOutcome, unknown> {
  const { context } = flow;
  const deletion = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.delete);
  for (;;) {
    if (deletion.isCompleted) return yield* expire(flow, 'deleted', requestedBy(deletion.result).actor);
    const now = flow.now();
    if (now >= expiresAt) return yield* expire(flow, 'retention', undefined);
    const chunkEnd = new Date(Math.min(expiresAt.getTime(), addMinutes(now, MAX_WAIT_MINUTES).getTime()));
    const chunk = context.df.createTimer(chunkEnd);
    const winner = yield context.df.Task.any([deletion, chunk]);
    if (winner === deletion) {
      chunk.cancel();
      return yield* expire(flow, 'deleted', requestedBy(deletion.result).actor);
    }
  }
}

// Registration (the activities are registered once, by orchestrations/backupJob.ts). Outside the Functions host
// this warns and does nothing; in-process hosts and tests use the exported orchestrator.
df.app.orchestration(BACKUP_JOB2_ORCHESTRATOR, backupJob2Orchestrator);
