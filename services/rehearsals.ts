/**
 * Restore rehearsals (issue 11): proof that an Available backup restores, and how long that takes.
 *
 *   Admin request (or the rehearseEveryDays timer) → `restore.rehearsal_requested` audit row → rehearsal message
 *   on the jobs topic → the runner bound to the server fetches a read link, restores into scratch, compares row
 *   counts → reports the outcome (services/runner.ts) → `restore.rehearsed` on the job, which notifies on failure.
 *
 * No orchestration: a rehearsal changes no job status, and a lost one is simply requested again (by the Admin or
 * the next timer tick, since restoreVerifiedAt stays old). The audit row is written before the send, so a failed
 * send leaves a visible "requested" without an outcome rather than an unaudited rehearsal.
 */
import { randomUUID } from 'node:crypto';
import type { RehearsalJobMessage } from '../shared/contracts/messages.js';
import type { JobRecord } from '../shared/db/store.js';
import { AppError, errorMessage } from '../shared/errors.js';
import type { Deps } from './deps.js';
import { conflictUnlessIn, loadJob } from './jobs.js';
import type { AuditActor } from './retention.js';
import { type RequestScope, auditActor } from './scope.js';

export interface RehearsalRequested {
  jobId: string;
  rehearsalId: string;
  requestedAt: string;
}

export const REHEARSAL_SCHEDULER: AuditActor = { actorType: 'system', actorId: 'rehearsal-scheduler', actorName: null };

/** Why this backup cannot be rehearsed (409), or nothing. */
function assertRehearsable(job: JobRecord): void {
  conflictUnlessIn(job, ['Available'], 'a restore rehearsal');
  // The runner holds the DBDE key but never an age private key: an age copy only its recipients can open.
  if (job.options.encryption === 'age') {
    throw new AppError('conflict', `Job ${job.id} is encrypted with age; a runner cannot decrypt it to rehearse the restore.`, {
      details: { jobStatus: job.status },
    });
  }
  if (job.sha256 === null) throw new AppError('internal', `Job ${job.id} is Available without a verified digest.`);
}

/** Audits the request, then puts the rehearsal message on the jobs topic for the runner of the job's server. */
export async function enqueueRehearsal(deps: Deps, job: JobRecord, actor: AuditActor, trigger: 'user' | 'schedule'): Promise<RehearsalRequested> {
  assertRehearsable(job);
  const rehearsalId = randomUUID();
  const at = deps.now();
  await deps.store.appendAudit({
    ...actor,
    action: 'restore.rehearsal_requested',
    target: `job/${job.id}`,
    jobId: job.id,
    detail: { rehearsalId, trigger },
    at,
  });
  const message: RehearsalJobMessage = {
    schemaVersion: 1,
    kind: 'rehearsal',
    rehearsalId,
    jobId: job.id,
    serverId: job.serverId,
    engine: job.engine,
    requestedAt: at.toISOString(),
  };
  await deps.queue.enqueue(message);
  return { jobId: job.id, rehearsalId, requestedAt: message.requestedAt };
}

/** `POST /api/jobs/{id}/rehearse` (Admin). */
export async function requestRehearsal(scope: RequestScope, jobId: string): Promise<RehearsalRequested> {
  const job = await loadJob(scope.deps, jobId);
  return enqueueRehearsal(scope.deps, job, auditActor(scope), 'user');
}

/** At most this many rehearsals are requested per timer tick; the rest are due again next tick. */
export const REHEARSAL_BATCH_SIZE = 20;
const DAY_MS = 24 * 3_600_000;

export interface DueRehearsalsReport {
  /** Databases whose policy sets rehearseEveryDays and that have an Available backup. */
  checked: number;
  requested: RehearsalRequested[];
  /** Newest backup is age-encrypted: no runner can rehearse it. */
  skippedAge: string[];
  failed: Array<{ jobId: string; error: string }>;
}

/** Every Available job, newest completion first per database. */
async function availableByDatabase(deps: Deps): Promise<Map<string, JobRecord[]>> {
  const byDatabase = new Map<string, JobRecord[]>();
  let cursor: string | undefined;
  do {
    const page = await deps.store.listJobs({ status: 'Available', limit: 200, ...(cursor ? { cursor } : {}) });
    for (const job of page.items) byDatabase.set(job.databaseId, [...(byDatabase.get(job.databaseId) ?? []), job]);
    cursor = page.nextCursor;
  } while (cursor);
  const completed = (job: JobRecord) => (job.completedAt ?? job.createdAt).getTime();
  for (const jobs of byDatabase.values()) jobs.sort((a, b) => completed(b) - completed(a));
  return byDatabase;
}

/**
 * The rehearseEveryDays timer: requests a rehearsal of each database's newest Available backup when the
 * database's last rehearsal (restoreVerifiedAt on any of its Available backups) and the newest backup's last
 * request are both older than the period. The request's audit row is written before the send, so a retried or
 * overlapping tick sees it and does not request the same backup twice in one period.
 */
export async function requestDueRehearsals(deps: Deps, options: { log?: (line: string) => void } = {}): Promise<DueRehearsalsReport> {
  const now = deps.now();
  const report: DueRehearsalsReport = { checked: 0, requested: [], skippedAge: [], failed: [] };
  const databases = (await deps.store.listAllDatabases()).filter((database) => database.enabled && database.policy.rehearseEveryDays);
  if (databases.length === 0) return report;
  const available = await availableByDatabase(deps);
  for (const database of databases) {
    if (report.requested.length >= REHEARSAL_BATCH_SIZE) break;
    const jobs = available.get(database.id);
    if (!jobs || jobs.length === 0) continue;
    report.checked += 1;
    const periodStart = new Date(now.getTime() - database.policy.rehearseEveryDays! * DAY_MS);
    if (jobs.some((job) => job.restoreVerifiedAt !== null && job.restoreVerifiedAt > periodStart)) continue;
    const newest = jobs[0]!;
    const recentRequests = await deps.store.listAudit({ action: 'restore.rehearsal_requested', jobId: newest.id, from: periodStart, limit: 1 });
    if (recentRequests.items.length > 0) continue;
    if (newest.options.encryption === 'age') {
      report.skippedAge.push(newest.id);
      options.log?.(`Rehearsal due for database ${database.id} (${database.name}) but its newest backup ${newest.id} is age-encrypted: rehearse it by hand`);
      continue;
    }
    try {
      report.requested.push(await enqueueRehearsal(deps, newest, REHEARSAL_SCHEDULER, 'schedule'));
      options.log?.(`Rehearsal requested for database ${database.id} (${database.name}), backup ${newest.id}`);
    } catch (error) {
      report.failed.push({ jobId: newest.id, error: errorMessage(error) });
    }
  }
  return report;
}
