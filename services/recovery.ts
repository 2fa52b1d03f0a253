/**
 * Requests the control plane accepted but never set going. `requestBackup` writes the job (Pending) and then
 * starts its orchestration; if the start fails it marks the job Failed, but a crash between the two leaves a
 * Pending job with no orchestration, which nothing else would ever move. This sweep starts those orchestrations:
 * starting is idempotent (instance id = job id), so a job whose start merely raced the sweep is left alone.
 */
import type { JobRecord } from '../shared/db/store.js';
import { errorMessage } from '../shared/errors.js';
import type { Deps } from './deps.js';
import type { JobOrchestrations } from './orchestrations.js';

/** A Pending job younger than this may still be starting: the request that wrote it can be in flight. */
export const STALLED_PENDING_GRACE_MINUTES = 10;
/** Bounds one sweep; the next one carries on. */
const MAX_PAGES = 20;
const PAGE_SIZE = 100;

export interface StalledJobsReport {
  /** Pending jobs older than the grace period. */
  examined: number;
  /** Jobs whose orchestration was missing and has now been started. */
  started: string[];
  /** Pending jobs whose orchestration exists but ended without moving them: for a person to look at. */
  orphaned: string[];
  failed: Array<{ jobId: string; error: string }>;
}

export async function resumeStalledJobs(
  deps: Pick<Deps, 'store' | 'now'>,
  orchestrations: Pick<JobOrchestrations, 'getState' | 'startBackupJob'>,
  options: { log?: (line: string) => void } = {},
): Promise<StalledJobsReport> {
  const log = options.log ?? (() => undefined);
  const cutoff = new Date(deps.now().getTime() - STALLED_PENDING_GRACE_MINUTES * 60_000);
  const report: StalledJobsReport = { examined: 0, started: [], orphaned: [], failed: [] };
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const { items, nextCursor } = await deps.store.listJobs({ status: 'Pending', limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) });
    for (const job of items.filter((j: JobRecord) => j.createdAt < cutoff)) {
      report.examined++;
      try {
        const state = await orchestrations.getState(job.id);
        if (state === 'NotFound') {
          await orchestrations.startBackupJob(job.id);
          report.started.push(job.id);
          log(`Job ${job.id} was Pending since ${job.createdAt.toISOString()} without an orchestration: started it`);
        } else if (state === 'Completed' || state === 'Failed' || state === 'Terminated') {
          report.orphaned.push(job.id);
          log(`Job ${job.id} is still Pending but its orchestration is ${state}`);
        }
      } catch (error) {
        report.failed.push({ jobId: job.id, error: errorMessage(error) });
      }
    }
    if (!nextCursor) break;
    cursor = nextCursor;
  }
  return report;
}
