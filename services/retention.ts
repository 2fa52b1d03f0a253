/**
 * Retention: deleting a backup and marking its job Expired. The job's orchestration does it when its retention
 * timer fires or an early delete arrives (activity `expireBackup`); the sweep below is the safety net for jobs
 * whose orchestration is gone (purged, failed, terminated) while the backup is still Available past expiry.
 * Both go through `expireBackup`, so there is one way a backup leaves storage.
 */
import type { JobStatus } from '../shared/contracts/jobs.js';
import type { AuditEntry } from '../shared/db/store.js';
import { deleteBackupFiles } from '../shared/storage/gateway.js';
import { errorMessage } from '../shared/errors.js';
import type { Deps } from './deps.js';
import type { JobOrchestrations, OrchestrationState } from './orchestrations.js';

export type ExpiryReason = 'retention' | 'deleted';

/** Who expires a backup, as written to the audit row. */
export type AuditActor = Pick<AuditEntry, 'actorType' | 'actorId' | 'actorName'>;

export const RETENTION_SWEEPER: AuditActor = { actorType: 'system', actorId: 'retention-sweeper', actorName: null };

export type ExpireResult =
  | { ok: true; status: 'Expired'; blobDeleted: boolean; alreadyExpired: boolean }
  | { ok: false; code: 'job_not_found' }
  | { ok: false; code: 'not_available'; status: JobStatus };

/**
 * Deletes the job's blob, then moves the job Available → Expired with its `job.expired` audit row. Idempotent:
 * for a job already Expired it only makes sure the blob is gone. The blob goes first: a crash in between leaves
 * an Available job without its blob, which the next attempt (or the sweep) finishes; the other order could
 * leave an Expired job whose blob nobody deletes.
 */
export async function expireBackup(
  deps: Pick<Deps, 'store' | 'blobs'>,
  input: { jobId: string; reason: ExpiryReason; actor: AuditActor; at: Date; detail?: Record<string, unknown> },
): Promise<ExpireResult> {
  const job = await deps.store.getJob(input.jobId);
  if (!job) return { ok: false, code: 'job_not_found' };
  if (job.status !== 'Available' && job.status !== 'Corrupt' && job.status !== 'Expired') {
    return { ok: false, code: 'not_available', status: job.status };
  }

  const blobDeleted = await deleteBackupFiles(deps.blobs, job.blobPath);
  if (job.status === 'Expired') return { ok: true, status: 'Expired', blobDeleted, alreadyExpired: true };

  const result = await deps.store.transitionJob(
    job.id,
    // A Corrupt backup (kept as evidence, links refused) still goes when its retention ends.
    { from: ['Available', 'Corrupt'], to: 'Expired', at: input.at },
    {
      ...input.actor,
      action: 'job.expired',
      target: `job/${job.id}`,
      jobId: job.id,
      detail: { ...input.detail, reason: input.reason, blobPath: job.blobPath, blobDeleted },
      at: input.at,
    },
  );
  if (result.ok) return { ok: true, status: 'Expired', blobDeleted, alreadyExpired: false };
  // Someone else (a concurrent attempt) moved it first.
  if (result.current?.status === 'Expired') return { ok: true, status: 'Expired', blobDeleted, alreadyExpired: true };
  return result.current ? { ok: false, code: 'not_available', status: result.current.status } : { ok: false, code: 'job_not_found' };
}

/** Orchestration states in which nobody else will expire the job. */
const ORPHANED_STATES: readonly OrchestrationState[] = ['NotFound', 'Completed', 'Failed', 'Terminated'];

export interface SweepReport {
  /** Available jobs past expiry that were looked at. */
  examined: number;
  expired: string[];
  /** Left to their still-running orchestration (its timer may simply not have fired yet). */
  leftToOrchestration: string[];
  failed: { jobId: string; error: string }[];
}

/**
 * Expires Available jobs past their expiry whose orchestration can no longer do it. One job's failure does not
 * stop the others; it is reported and the next sweep tries again.
 */
export async function sweepExpiredBackups(
  deps: Pick<Deps, 'store' | 'blobs' | 'now'>,
  orchestrations: Pick<JobOrchestrations, 'getState'>,
  options: { limit?: number; log?: (message: string) => void } = {},
): Promise<SweepReport> {
  const now = deps.now();
  const log = options.log ?? (() => undefined);
  const jobs = await deps.store.listExpiredJobs(now, options.limit ?? 100);
  const report: SweepReport = { examined: jobs.length, expired: [], leftToOrchestration: [], failed: [] };
  for (const job of jobs) {
    try {
      const state = await orchestrations.getState(job.id);
      if (!ORPHANED_STATES.includes(state)) {
        report.leftToOrchestration.push(job.id);
        continue;
      }
      const result = await expireBackup(deps, {
        jobId: job.id,
        reason: 'retention',
        actor: RETENTION_SWEEPER,
        at: now,
        detail: { orchestrationState: state },
      });
      if (result.ok) {
        report.expired.push(job.id);
        log(`Retention sweep expired job ${job.id} (orchestration ${state}, blob deleted: ${result.blobDeleted})`);
      }
    } catch (error) {
      report.failed.push({ jobId: job.id, error: errorMessage(error) });
      log(`Retention sweep could not expire job ${job.id}: ${errorMessage(error)}`);
    }
  }
  return report;
}
