/**
 * What the on-prem runner (app role Runner, application token) may do: get a write SAS for the job it is
 * running and report events. Lifecycle events (accepted, uploaded, failed) are raised at the job's orchestration;
 * progress on a Running job goes to the job row only, at most every PROGRESS_RECORD_INTERVAL_MS, so the
 * orchestration's history does not grow with the backup's duration (issue 16). A job that is no longer runnable
 * answers 409 with its status in the problem's `jobStatus` member, which is the runner's signal to stop.
 */
import { runnableStatuses } from '../shared/contracts/jobs.js';
import type { JobStatus } from '../shared/contracts/jobs.js';
import {
  ORCHESTRATION_EVENTS,
  PROGRESS_RECORD_INTERVAL_MS,
  type RunnerEvent,
  type RunnerEventAck,
  type UploadTarget,
} from '../shared/contracts/runner.js';
import type { JobRecord } from '../shared/db/store.js';
import { AppError } from '../shared/errors.js';
import { loadJob } from './jobs.js';
import { type RequestScope, auditActor } from './scope.js';

const MINUTE_MS = 60_000;

/** The Runner role comes only with an application token (shared/auth/rbac.ts); checked again here. */
function assertRunnerApplication(scope: RequestScope): void {
  if (!scope.principal.isApplication) throw new AppError('forbidden', 'Only the runner application may call runner endpoints.');
}

async function loadRunnableJob(scope: RequestScope, jobId: string): Promise<JobRecord> {
  const job = await loadJob(scope.deps, jobId);
  if (!runnableStatuses.includes(job.status)) {
    throw new AppError('conflict', `Job ${job.id} is ${job.status}; the runner must stop working on it.`, {
      details: { jobStatus: job.status },
    });
  }
  return job;
}

/** A fresh create+write SAS for exactly the job's blob path, while the job is runnable. */
export async function issueUploadTarget(scope: RequestScope, jobId: string): Promise<UploadTarget> {
  assertRunnerApplication(scope);
  const { deps } = scope;
  const job = await loadRunnableJob(scope, jobId);
  const now = deps.now();
  const expiresAt = new Date(now.getTime() + deps.limits.uploadSasTtlMinutes * MINUTE_MS);
  const sas = await deps.blobs.issueWriteSas(job.blobPath, { expiresAt });
  await deps.store.appendAudit({
    ...auditActor(scope),
    action: 'sas.upload_issued',
    target: `job/${job.id}`,
    jobId: job.id,
    detail: { blobPath: job.blobPath, expiresAt: sas.expiresAt.toISOString() },
    at: now,
  });
  return { blobPath: job.blobPath, url: sas.url, expiresAt: sas.expiresAt.toISOString() };
}

/**
 * Whether a runner event must reach the job's orchestration. Progress on a Running job does not: it is only
 * shown. Progress on a Queued job does once, as acceptance (the runner is evidently working; its `accepted`
 * was lost or is late) — v1 instances, which still take progress events, handle both.
 */
export function reachesOrchestration(event: RunnerEvent, jobStatus: JobStatus): boolean {
  return event.type !== 'progress' || jobStatus === 'Queued';
}

/**
 * Passes a lifecycle event to the job's orchestration, or writes progress to the job row. Repeats are harmless:
 * the orchestration ignores an event id it has seen, and progress is a last-value-wins write. An upload reported
 * for any other path than the job's is refused.
 */
export async function reportRunnerEvent(scope: RequestScope, jobId: string, event: RunnerEvent): Promise<RunnerEventAck> {
  assertRunnerApplication(scope);
  const job = await loadRunnableJob(scope, jobId);
  if (event.type === 'uploaded' && event.blobPath !== job.blobPath) {
    throw new AppError('validation_failed', `Job ${job.id} uploads to ${job.blobPath}, not ${event.blobPath}.`, {
      fieldErrors: [{ field: 'body.blobPath', message: `must be the job's blob path ${job.blobPath}` }],
    });
  }
  if (event.type === 'progress') {
    const progress = { percent: event.percent, bytes: event.bytes, at: scope.deps.now() };
    await scope.deps.store.updateJobProgress(job.id, progress, { notWithinMs: PROGRESS_RECORD_INTERVAL_MS });
  }
  if (reachesOrchestration(event, job.status)) await scope.orchestrations.raiseEvent(job.id, ORCHESTRATION_EVENTS.runner, event);
  return { jobId: job.id, status: job.status, duplicate: false };
}
