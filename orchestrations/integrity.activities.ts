/**
 * Activities that prove a stored backup from its bytes: the resumable re-hash, the signed manifest and sidecars,
 * and what a re-verification records. Same rules as backupJob.activities.ts: idempotent, expected outcomes as
 * `{ ok: false, code }`, only what a retry can fix is thrown, times from the orchestration (`at`).
 */
import type { JobStatus } from '../shared/contracts/jobs.js';
import { isAppError } from '../shared/errors.js';
import type { RestoreCheck } from '../shared/contracts/runner.js';
import { continueSha256, finishSha256, type Sha256State } from '../shared/integrity/resumable-sha256.js';
import { getDeps } from '../services/deps.js';
import { nextReverifyDue, publishManifest as publishManifestFiles, reverifyEveryDaysFor } from '../services/integrity.js';
import type { AuditActor } from '../services/retention.js';
import { ORCHESTRATOR_ACTOR, asActivity, type ActivityFunction, type Refusal } from './backupJob.activities.js';

export const INTEGRITY_ACTIVITY = {
  rehashBlob: 'integrity-rehashBlob',
  publishManifest: 'integrity-publishManifest',
  loadForReverify: 'integrity-loadForReverify',
  recordReverification: 'integrity-recordReverification',
} as const;

// ---------------------------------------------------------------------------------------------------------------
// rehashBlob

/** One slice of the re-hash: where the previous one stopped (offset 0, no state, no etag: the first). */
export interface RehashBlobInput {
  blobPath: string;
  offset: number;
  state: Sha256State | null;
  /** The blob version the first slice saw: every later slice reads that version or reports `blob_changed`. */
  etag: string | null;
}

export type RehashMismatch = { ok: false; code: 'blob_missing' | 'blob_changed'; message: string };
/** What a whole re-hash found: the stored size and digest, or why there was nothing (consistent) to hash. */
export type RehashFound = { ok: true; sizeBytes: number; sha256: string } | RehashMismatch;

export type RehashBlobResult =
  | { ok: true; done: false; offset: number; state: Sha256State; etag: string; sizeBytes: number }
  | { ok: true; done: true; sizeBytes: number; sha256: string }
  | RehashMismatch;

/**
 * Reads the committed blob from `offset` for at most the configured budget (`deps.integrity.rehashBudgetBytes`),
 * streamed through the saved SHA-256 state, and hands back the new state: bounded time and memory per call,
 * whatever the blob's size. Read-only, so a retry just reads the same slice again.
 */
export async function rehashBlob(input: RehashBlobInput): Promise<RehashBlobResult> {
  const deps = await getDeps();
  const facts = await deps.blobs.getBlobFacts(input.blobPath);
  if (!facts) return { ok: false, code: 'blob_missing', message: `No committed blob at ${input.blobPath}.` };
  if (input.etag !== null && facts.etag !== input.etag) {
    return rewritten(input.blobPath);
  }
  const count = Math.min(deps.integrity.rehashBudgetBytes, facts.sizeBytes - input.offset);
  let state = input.state;
  if (count > 0) {
    let read: { state: Sha256State; bytes: number };
    try {
      // One ranged read per slice, hashed as it arrives (on a worker thread when large: resumable-sha256.ts).
      const stream = await deps.blobs.readRange(input.blobPath, { offset: input.offset, count, etag: facts.etag });
      if (!stream) return { ok: false, code: 'blob_missing', message: `The blob at ${input.blobPath} disappeared during its re-hash.` };
      read = await continueSha256(state, stream as AsyncIterable<Buffer>, { expectedBytes: count });
    } catch (error) {
      if (isAppError(error) && error.code === 'integrity_mismatch') return rewritten(input.blobPath);
      throw error;
    }
    // A short read is a transport problem, not a verdict: throw so the slice is read again.
    if (read.bytes !== count) throw new Error(`Read ${read.bytes} of ${count} bytes of ${input.blobPath} at offset ${input.offset}.`);
    state = read.state;
  }
  const offset = input.offset + count;
  if (offset < facts.sizeBytes) return { ok: true, done: false, offset, state: state!, etag: facts.etag, sizeBytes: facts.sizeBytes };
  return { ok: true, done: true, sizeBytes: facts.sizeBytes, sha256: await finishSha256(state) };
}

const rewritten = (blobPath: string): RehashMismatch => ({ ok: false, code: 'blob_changed', message: `The blob at ${blobPath} was rewritten during its re-hash.` });

// ---------------------------------------------------------------------------------------------------------------
// publishManifest

export interface PublishManifestInput {
  jobId: string;
  /** The orchestration's time of the verification. */
  at: string;
  expiresAt: string;
  sizeBytes: number;
  sha256: string;
  runner: { id: string | null; attempt: number | null };
  restoreCheck: RestoreCheck | null;
  encryptionKeyId: string | null;
}
export type PublishManifestResult = { ok: true; manifestKeyId: string } | Refusal;

/** Signs the manifest and writes both sidecars (services/integrity.ts); throws when either cannot be written. */
export async function publishManifest(input: PublishManifestInput): Promise<PublishManifestResult> {
  const deps = await getDeps();
  const job = await deps.store.getJob(input.jobId);
  if (!job) return { ok: false, code: 'job_not_found' };
  if (job.status !== 'Verifying') return { ok: false, code: 'conflict', status: job.status };
  const published = await publishManifestFiles(deps, job, {
    sizeBytes: input.sizeBytes,
    sha256: input.sha256,
    verifiedAt: new Date(input.at),
    expiresAt: new Date(input.expiresAt),
    runner: input.runner,
    restoreCheck: input.restoreCheck,
    encryptionKeyId: input.encryptionKeyId,
  });
  return { ok: true, ...published };
}

// ---------------------------------------------------------------------------------------------------------------
// Re-verification

export interface LoadForReverifyInput {
  jobId: string;
}
export type LoadForReverifyResult = { ok: true; blobPath: string; sizeBytes: number; sha256: string } | Refusal;

/** What a re-verification compares against: the size and digest verified when the job became Available. */
export async function loadForReverify(input: LoadForReverifyInput): Promise<LoadForReverifyResult> {
  const deps = await getDeps();
  const job = await deps.store.getJob(input.jobId);
  if (!job) return { ok: false, code: 'job_not_found' };
  if (job.status !== 'Available' || job.sizeBytes === null || job.sha256 === null) return { ok: false, code: 'conflict', status: job.status };
  return { ok: true, blobPath: job.blobPath, sizeBytes: job.sizeBytes, sha256: job.sha256 };
}

export interface RecordReverificationInput {
  jobId: string;
  at: string;
  expected: { sizeBytes: number; sha256: string };
  found: RehashFound;
  requestedBy?: AuditActor;
}
export type RecordReverificationResult = { ok: true; status: 'Available' | 'Corrupt' } | Refusal;

/**
 * The outcome of a re-verification, as its audit row (the event a notifier reads): `integrity.verified` with the
 * next due date, or Available → Corrupt with `integrity.failed` naming both digests. A Corrupt backup's blob is
 * kept (evidence) until retention; its links are refused from now on.
 */
export async function recordReverification(input: RecordReverificationInput): Promise<RecordReverificationResult> {
  const deps = await getDeps();
  const at = new Date(input.at);
  const job = await deps.store.getJob(input.jobId);
  if (!job) return { ok: false, code: 'job_not_found' };
  const actor = input.requestedBy ?? ORCHESTRATOR_ACTOR;
  const base = { ...actor, target: `job/${job.id}`, jobId: job.id, at };
  const event = { databaseId: job.databaseId, trigger: input.requestedBy ? 'request' : 'schedule' };
  const { found, expected } = input;
  const intact = found.ok && found.sizeBytes === expected.sizeBytes && found.sha256 === expected.sha256;

  if (intact) {
    const reverifyDueAt = nextReverifyDue(at, await reverifyEveryDaysFor(deps, job));
    const recorded = await deps.store.recordVerification(job.id, { verifiedAt: at, reverifyDueAt }, {
      ...base,
      action: 'integrity.verified',
      detail: { ...event, sizeBytes: found.sizeBytes, sha256: found.sha256, nextDueAt: reverifyDueAt?.toISOString() ?? null },
    });
    if (recorded) return { ok: true, status: 'Available' };
    return refusalFor(deps, job.id);
  }

  const reason =
    !found.ok
      ? { code: found.code, message: found.message }
      : found.sizeBytes !== expected.sizeBytes
        ? { code: 'size_mismatch', message: `The stored blob holds ${found.sizeBytes} bytes; ${expected.sizeBytes} were verified.` }
        : { code: 'sha256_mismatch', message: `The stored blob's SHA-256 is ${found.sha256}; ${expected.sha256} was verified.` };
  const result = await deps.store.transitionJob(
    job.id,
    {
      from: ['Available'],
      to: 'Corrupt',
      at,
      patch: { corruptAt: at, errorCode: 'integrity_failed', errorMessage: reason.message, reverifyDueAt: null, downloadExpiresAt: null },
    },
    {
      ...base,
      action: 'integrity.failed',
      detail: {
        ...event,
        check: reason.code,
        message: reason.message,
        expectedSizeBytes: expected.sizeBytes,
        expectedSha256: expected.sha256,
        foundSizeBytes: found.ok ? found.sizeBytes : null,
        foundSha256: found.ok ? found.sha256 : null,
      },
    },
  );
  if (result.ok || result.current?.status === 'Corrupt') return { ok: true, status: 'Corrupt' };
  return result.current ? { ok: false, code: 'conflict', status: result.current.status } : { ok: false, code: 'job_not_found' };
}

async function refusalFor(deps: Awaited<ReturnType<typeof getDeps>>, jobId: string): Promise<Refusal> {
  const job = await deps.store.getJob(jobId);
  return job ? { ok: false, code: 'conflict', status: job.status satisfies JobStatus } : { ok: false, code: 'job_not_found' };
}

export const integrityActivities: Record<(typeof INTEGRITY_ACTIVITY)[keyof typeof INTEGRITY_ACTIVITY], ActivityFunction> = {
  [INTEGRITY_ACTIVITY.rehashBlob]: asActivity(rehashBlob),
  [INTEGRITY_ACTIVITY.publishManifest]: asActivity(publishManifest),
  [INTEGRITY_ACTIVITY.loadForReverify]: asActivity(loadForReverify),
  [INTEGRITY_ACTIVITY.recordReverification]: asActivity(recordReverification),
};
