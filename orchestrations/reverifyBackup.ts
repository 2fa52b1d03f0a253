/**
 * `reverifyBackup`: re-hashes one Available backup's stored bytes and records the outcome. Started by the
 * re-verification timer for due backups (functions/timers.ts) and by `POST /api/jobs/{id}/verify`; instance id
 * `reverify-<jobId>-<due time>` (services/integrity.ts), so a timer firing twice starts one.
 *
 *   loadForReverify → rehashStoredBlob (n slices) → recordReverification: integrity.verified | Corrupt + integrity.failed
 *
 * It is not a version of backupJob: the job's own orchestration keeps waiting for retention or Delete, and expires
 * a Corrupt backup like an Available one.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import type { ReverifyInput } from '../services/integrity.js';
import { ACTIVITY_RETRY } from './backupJob.flow.js';
import {
  INTEGRITY_ACTIVITY,
  integrityActivities,
  type LoadForReverifyResult,
  type RecordReverificationInput,
  type RecordReverificationResult,
} from './integrity.activities.js';
import { rehashStoredBlob } from './rehash.js';

export const REVERIFY_BACKUP_ORCHESTRATOR = 'reverifyBackup';

export interface ReverifyOutcome {
  jobId: string;
  /** Available (intact), Corrupt, or why nothing was checked. */
  result: 'Available' | 'Corrupt' | 'job_not_found' | 'not_available';
}

export function* reverifyBackupOrchestrator(context: OrchestrationContext): Generator<Task, ReverifyOutcome, unknown> {
  const input = context.df.getInput<ReverifyInput>();
  const { jobId } = input;
  const call = function* <R>(name: string, activityInput: unknown): Generator<Task, R, unknown> {
    return (yield context.df.callActivityWithRetry(name, ACTIVITY_RETRY, activityInput)) as R;
  };

  const loaded = yield* call<LoadForReverifyResult>(INTEGRITY_ACTIVITY.loadForReverify, { jobId });
  if (!loaded.ok) return { jobId, result: loaded.code === 'job_not_found' ? 'job_not_found' : 'not_available' };

  const found = yield* rehashStoredBlob(context, { blobPath: loaded.blobPath });
  const record: RecordReverificationInput = {
    jobId,
    at: context.df.currentUtcDateTime.toISOString(),
    expected: { sizeBytes: loaded.sizeBytes, sha256: loaded.sha256 },
    found,
    ...(input.requestedBy ? { requestedBy: input.requestedBy } : {}),
  };
  const recorded = yield* call<RecordReverificationResult>(INTEGRITY_ACTIVITY.recordReverification, record);
  if (!context.df.isReplaying) context.log(`reverifyBackup ${jobId}: ${recorded.ok ? recorded.status : recorded.code}`);
  return { jobId, result: recorded.ok ? recorded.status : recorded.code === 'job_not_found' ? 'job_not_found' : 'not_available' };
}

df.app.orchestration(REVERIFY_BACKUP_ORCHESTRATOR, reverifyBackupOrchestrator);
for (const [name, handler] of Object.entries(integrityActivities)) {
  df.app.activity(name, { handler });
}
