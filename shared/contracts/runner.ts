import { z } from 'zod';
import { Compression, errorCodeMaxLength, errorMessageMaxLength, isoDateTime, sha256Hex } from './common.js';
import { JobStatus } from './jobs.js';

/** Unique per event; the orchestration ignores an id it has seen, so retried calls are harmless. */
const eventId = z.string().min(8).max(100).regex(/^[A-Za-z0-9._:-]+$/, 'must be a token of letters, digits and . _ : -');

export const AcceptedEvent = z
  .object({
    type: z.literal('accepted'),
    eventId,
    runnerId: z.string().min(1).max(128),
    /** Service Bus delivery count of the message this attempt came from. */
    attempt: z.number().int().positive(),
  })
  .strict();

export const ProgressEvent = z
  .object({
    type: z.literal('progress'),
    eventId,
    percent: z.number().min(0).max(100),
    bytes: z.number().int().nonnegative(),
  })
  .strict();

export const UploadedEvent = z
  .object({
    type: z.literal('uploaded'),
    eventId,
    blobPath: z.string().min(1),
    /** Size and SHA-256 of the bytes stored in the blob (after compression/encryption). */
    sizeBytes: z.number().int().nonnegative(),
    sha256: sha256Hex,
    compression: Compression,
    encrypted: z.boolean(),
  })
  .strict();

export const FailedEvent = z
  .object({
    type: z.literal('failed'),
    eventId,
    code: z.string().min(1).max(errorCodeMaxLength),
    message: z.string().max(errorMessageMaxLength),
  })
  .strict();

export const RunnerEvent = z
  .discriminatedUnion('type', [AcceptedEvent, ProgressEvent, UploadedEvent, FailedEvent])
  .meta({ id: 'RunnerEvent' });
export type RunnerEvent = z.infer<typeof RunnerEvent>;
export type AcceptedEvent = z.infer<typeof AcceptedEvent>;
export type ProgressEvent = z.infer<typeof ProgressEvent>;
export type UploadedEvent = z.infer<typeof UploadedEvent>;
export type FailedEvent = z.infer<typeof FailedEvent>;

/** Answer to `POST /api/runner/jobs/{id}/events`. */
export const RunnerEventAck = z.object({ jobId: z.string(), status: JobStatus, duplicate: z.boolean() }).meta({ id: 'RunnerEventAck' });
export type RunnerEventAck = z.infer<typeof RunnerEventAck>;

/** Answer to `POST /api/runner/jobs/{id}/upload-target`: a write-only SAS for the job's blob. */
export const UploadTarget = z
  .object({
    blobPath: z.string(),
    url: z.url(),
    expiresAt: isoDateTime,
  })
  .meta({ id: 'UploadTarget' });
export type UploadTarget = z.infer<typeof UploadTarget>;

/**
 * Progress reaches the job row at most this often: written by the runner endpoint for `backupJob2` jobs (the
 * orchestration never sees it once the job runs), and by v1 `backupJob` instances from the progress events they get.
 */
export const PROGRESS_RECORD_INTERVAL_MS = 15_000;

/** External event names the orchestration waits for. Runner events share one name, see orchestrations/. */
export const ORCHESTRATION_EVENTS = {
  runner: 'RunnerEvent',
  cancel: 'Cancel',
  delete: 'Delete',
  /** An Approver's decision on a `raw-needs-approval` job (services/jobs.ts decideApproval). */
  approved: 'Approved',
  rejected: 'Rejected',
} as const;
