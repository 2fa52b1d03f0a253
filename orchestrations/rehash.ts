/**
 * The control plane's own re-hash of a stored backup, as a step any orchestrator can take:
 *
 *   const found = yield* rehashStoredBlob(context, { blobPath });
 *
 * One `rehashBlob` activity per slice (the activity decides the slice's size: `REHASH_BUDGET_MIB`), each handing
 * the saved SHA-256 state and offset to the next, until the whole blob is read. Why a resumable hash rather than
 * per-block digests checked in parallel: it needs nothing from the runner (the runner's word is what is being
 * checked), it yields the one digest a requester can check with `sha256sum`, and its history grows by two events
 * per slice (TaskScheduled, TaskCompleted): 4 GiB slices keep a 1 TiB backup at about 500 events. Its cost is
 * that one backup's hash is sequential; within a slice the activity reads one ranged stream while a worker thread
 * hashes what arrived, so reading and hashing overlap (the bench measures it against the hasher's own limit).
 */
import type { OrchestrationContext, Task } from 'durable-functions';
import { ACTIVITY_RETRY } from './backupJob.flow.js';
import { INTEGRITY_ACTIVITY, type RehashBlobInput, type RehashBlobResult, type RehashFound } from './integrity.activities.js';

export type RehashOutcome = RehashFound;

export function* rehashStoredBlob(context: OrchestrationContext, input: { blobPath: string }): Generator<Task, RehashOutcome, unknown> {
  let slice: RehashBlobInput = { blobPath: input.blobPath, offset: 0, state: null, etag: null };
  for (;;) {
    const result = (yield context.df.callActivityWithRetry(INTEGRITY_ACTIVITY.rehashBlob, ACTIVITY_RETRY, slice)) as RehashBlobResult;
    if (!result.ok) return result;
    if (result.done) return { ok: true, sizeBytes: result.sizeBytes, sha256: result.sha256 };
    slice = { blobPath: input.blobPath, offset: result.offset, state: result.state, etag: result.etag };
  }
}
