/**
 * backupJob2's integrity steps, between the runner's `uploaded` and Available (docs/integrity.md):
 *
 *   rehashAgainstReport: the control plane reads the committed blob itself (orchestrations/rehash.ts) and compares
 *     size and SHA-256 with the runner's report; a mismatch fails the job `integrity_mismatch` (failJob deletes the
 *     blob and its sidecars) with both digests in the audit row.
 *   signAndPublish: the manifest is signed and both sidecars are written; if that cannot be done (after the
 *     activity's retries: Key Vault refusing, storage refusing) the job fails: nothing is half-published.
 */
import type { Task } from 'durable-functions';
import type { UploadedEvent } from '../shared/contracts/runner.js';
import type { PreparedJob } from './backupJob.activities.js';
import { DAY_MS, type BackupJobOutcome, type JobFlow, type VerifiedUpload } from './backupJob.flow.js';
import { INTEGRITY_ACTIVITY, type PublishManifestInput, type PublishManifestResult } from './integrity.activities.js';
import { rehashStoredBlob } from './rehash.js';

export function* rehashAgainstReport(
  flow: JobFlow,
  uploaded: UploadedEvent,
  verified: VerifiedUpload,
): Generator<Task, VerifiedUpload | BackupJobOutcome, unknown> {
  const found = yield* rehashStoredBlob(flow.context, { blobPath: uploaded.blobPath });
  if (found.ok && found.sizeBytes === uploaded.sizeBytes && found.sha256 === uploaded.sha256) return verified;
  const message = !found.ok
    ? found.message
    : found.sizeBytes !== uploaded.sizeBytes
      ? `The stored blob holds ${found.sizeBytes} bytes; the runner reported ${uploaded.sizeBytes}.`
      : `The stored blob's SHA-256 is ${found.sha256}; the runner reported ${uploaded.sha256}.`;
  return yield* flow.fail('Failed', 'integrity_mismatch', message, {
    detail: {
      check: !found.ok ? found.code : found.sizeBytes !== uploaded.sizeBytes ? 'size_mismatch' : 'sha256_mismatch',
      verifiedBy: 'control-plane re-hash',
      reportedSizeBytes: uploaded.sizeBytes,
      reportedSha256: uploaded.sha256,
      foundSizeBytes: found.ok ? found.sizeBytes : null,
      foundSha256: found.ok ? found.sha256 : null,
    },
  });
}

export function* signAndPublish(
  flow: JobFlow,
  prepared: PreparedJob,
  uploaded: UploadedEvent,
  verified: VerifiedUpload,
): Generator<Task, VerifiedUpload | BackupJobOutcome, unknown> {
  const expiresAt = new Date(flow.now().getTime() + prepared.policy.retentionDays * DAY_MS);
  const input: PublishManifestInput = {
    jobId: flow.jobId,
    at: flow.now().toISOString(),
    expiresAt: expiresAt.toISOString(),
    sizeBytes: verified.sizeBytes,
    sha256: verified.sha256,
    runner: { id: uploaded.runnerId ?? null, attempt: uploaded.attempt ?? null },
    restoreCheck: uploaded.restoreCheck ?? null,
    encryptionKeyId: null,
  };
  let published: PublishManifestResult;
  try {
    published = yield* flow.call<PublishManifestResult>(INTEGRITY_ACTIVITY.publishManifest, input);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return yield* flow.fail('Failed', 'manifest_unpublished', `The backup's signed manifest could not be written, so it is not published: ${why}`);
  }
  if (!published.ok) return flow.letGo(published);
  return { ...verified, expiresAt, manifestKeyId: published.manifestKeyId };
}
