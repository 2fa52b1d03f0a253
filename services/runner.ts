/**
 * What the on-prem runner (app role Runner, application token) may do: get a write SAS for the job it is
 * running and report events, which are raised at the job's orchestration. A job that is no longer runnable
 * answers 409 with its status in the problem's `jobStatus` member, which is the runner's signal to stop.
 */
import { runnableStatuses } from '../shared/contracts/jobs.js';
import { CommittedBlob, ORCHESTRATION_EVENTS, type RunnerEvent, type RunnerEventAck, type UploadTarget } from '../shared/contracts/runner.js';
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

/**
 * The job's backup as committed by an earlier delivery: the blob's own length and the metadata the runner set
 * at commit, for this job id. Anything else (no blob, another job's metadata, a length that disagrees) is
 * nothing to finish. The orchestration verifies the bytes again before the job becomes Available.
 */
async function committedBackup(scope: RequestScope, job: JobRecord): Promise<CommittedBlob | undefined> {
  const facts = await scope.deps.blobs.getBlobFacts(job.blobPath);
  if (!facts || facts.metadata.jobid !== job.id || Number(facts.metadata.size) !== facts.sizeBytes) return undefined;
  const parsed = CommittedBlob.safeParse({
    sizeBytes: facts.sizeBytes,
    sha256: facts.metadata.sha256,
    compression: facts.metadata.compression,
    encrypted: facts.metadata.encrypted === 'true',
  });
  return parsed.success ? parsed.data : undefined;
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
  const committed = await committedBackup(scope, job);
  return { blobPath: job.blobPath, url: sas.url, expiresAt: sas.expiresAt.toISOString(), ...(committed ? { committed } : {}) };
}

/**
 * Passes a runner event to the job's orchestration. Repeats are harmless: the orchestration ignores an
 * event id it has seen. An upload reported for any other path than the job's is refused.
 */
export async function reportRunnerEvent(scope: RequestScope, jobId: string, event: RunnerEvent): Promise<RunnerEventAck> {
  assertRunnerApplication(scope);
  const job = await loadRunnableJob(scope, jobId);
  if (event.type === 'uploaded' && event.blobPath !== job.blobPath) {
    throw new AppError('validation_failed', `Job ${job.id} uploads to ${job.blobPath}, not ${event.blobPath}.`, {
      fieldErrors: [{ field: 'body.blobPath', message: `must be the job's blob path ${job.blobPath}` }],
    });
  }
  await scope.orchestrations.raiseEvent(job.id, ORCHESTRATION_EVENTS.runner, event);
  return { jobId: job.id, status: job.status, duplicate: false };
}
