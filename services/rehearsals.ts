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
import { AppError } from '../shared/errors.js';
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
