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

/** What the runner checked before committing: `RESTORE VERIFYONLY` (SQL Server) or `pg_restore --list` (PostgreSQL). */
export const RestoreCheck = z
  .object({
    tool: z.enum(['RESTORE VERIFYONLY', 'pg_restore --list']),
    ok: z.boolean(),
    /** e.g. how many archive entries pg_restore listed. */
    detail: z.string().max(500).optional(),
  })
  .strict()
  .meta({ id: 'RestoreCheck' });
export type RestoreCheck = z.infer<typeof RestoreCheck>;

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
    /** Rows per table (`schema.table`) in what was stored, so a restore rehearsal can compare. */
    tableRowCounts: z.record(z.string().max(300), z.number().int().nonnegative()).optional(),
    /** Who took it: the runner's id and attempt, for the signed manifest (optional: older runners omit them). */
    runnerId: z.string().min(1).max(128).optional(),
    attempt: z.number().int().positive().optional(),
    /** The pre-commit restore check the engine ran (RESTORE VERIFYONLY, pg_restore --list). */
    restoreCheck: RestoreCheck.optional(),
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

/** What the control plane read from a blob the runner committed earlier (its metadata and its length). */
export const CommittedBlob = z
  .object({
    sizeBytes: z.number().int().nonnegative(),
    sha256: sha256Hex,
    compression: Compression,
    encrypted: z.boolean(),
  })
  .meta({ id: 'CommittedBlob' });
export type CommittedBlob = z.infer<typeof CommittedBlob>;

/**
 * Answer to `POST /api/runner/jobs/{id}/upload-target`: a write-only SAS for the job's blob, and `committed`
 * when that blob already holds this job's backup (an earlier delivery committed it but could not report it):
 * the runner then reports `uploaded` with those facts instead of backing up again.
 */
export const UploadTarget = z
  .object({
    blobPath: z.string(),
    url: z.url(),
    expiresAt: isoDateTime,
    committed: CommittedBlob.optional(),
  })
  .meta({ id: 'UploadTarget' });
export type UploadTarget = z.infer<typeof UploadTarget>;

/**
 * Answer to `POST /api/runner/jobs/{id}/staged-blocks`: the uncommitted blocks an interrupted upload left on the
 * job's blob (Get Block List, done by the control plane: the runner's SAS has no read), so a resumed upload of a
 * local backup file sends only the blocks that never arrived.
 */
export const StagedBlocks = z
  .object({
    blobPath: z.string(),
    blocks: z.array(z.object({ id: z.string().max(88), sizeBytes: z.number().int().nonnegative() })).max(100_000),
  })
  .meta({ id: 'StagedBlocks' });
export type StagedBlocks = z.infer<typeof StagedBlocks>;

/**
 * Answer to `POST /api/runner/jobs/{id}/rehearsal-source`: a short read SAS for an Available backup and the facts
 * the control plane recorded at upload, which the rehearsal checks the bytes and the restore against.
 */
export const RehearsalSource = z
  .object({
    url: z.url(),
    expiresAt: isoDateTime,
    compression: Compression,
    encrypted: z.boolean(),
    sha256: sha256Hex,
    tableRowCounts: z.record(z.string(), z.number().int().nonnegative()).nullable(),
  })
  .meta({ id: 'RehearsalSource' });
export type RehearsalSource = z.infer<typeof RehearsalSource>;

/** `POST /api/runner/jobs/{id}/rehearsal`: how a restore rehearsal of the job's backup ended. */
export const RehearsalReport = z
  .object({
    rehearsalId: z.uuid(),
    result: z.enum(['passed', 'failed']),
    restoreDurationMs: z.number().int().nonnegative(),
    code: z.string().min(1).max(errorCodeMaxLength).optional(),
    message: z.string().max(errorMessageMaxLength).optional(),
  })
  .strict()
  .meta({ id: 'RehearsalReport' });
export type RehearsalReport = z.infer<typeof RehearsalReport>;

/** Answer to `POST /api/runner/probe-target`: a short create+write+delete SAS for a job-less probe blob. */
export const ProbeTarget = z.object({ blobPath: z.string(), url: z.url(), expiresAt: isoDateTime }).meta({ id: 'ProbeTarget' });
export type ProbeTarget = z.infer<typeof ProbeTarget>;

/** `POST /api/runner/heartbeat`: what a runner host says about itself, every minute. */
export const RunnerHeartbeat = z
  .object({
    runnerId: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be 1-128 letters, digits, dots, dashes or underscores'),
    version: z.string().min(1).max(64),
    /** The servers it is configured to serve. */
    serverIds: z.array(z.uuid()).max(100),
    inFlightJobs: z.number().int().nonnegative().max(10_000),
    /** Free bytes in its work (scratch/temp) directory. */
    freeScratchBytes: z.number().int().nonnegative().optional(),
  })
  .strict()
  .meta({ id: 'RunnerHeartbeat' });
export type RunnerHeartbeat = z.infer<typeof RunnerHeartbeat>;

/** Answer to a heartbeat: which of its servers the registry lets it serve (others get 403 on their jobs). */
export const RunnerHeartbeatAck = z
  .object({ boundServerIds: z.array(z.string()), unboundServerIds: z.array(z.string()) })
  .meta({ id: 'RunnerHeartbeatAck' });
export type RunnerHeartbeatAck = z.infer<typeof RunnerHeartbeatAck>;

/** `GET /api/runners` (Admin): the runner hosts seen, and which servers have no live runner. */
export const RunnersView = z
  .object({
    runners: z.array(
      z.object({
        runnerId: z.string(),
        clientId: z.string(),
        servicePrincipalId: z.string(),
        version: z.string(),
        serverIds: z.array(z.string()),
        inFlightJobs: z.number().int(),
        freeScratchBytes: z.number().int().nullable(),
        lastSeenAt: isoDateTime,
        /** `live`: a heartbeat within the last 3 minutes; `stale` otherwise. */
        health: z.enum(['live', 'stale']),
      }),
    ),
    serversWithoutLiveRunner: z.array(z.object({ id: z.string(), name: z.string() })),
  })
  .meta({ id: 'RunnersView' });
export type RunnersView = z.infer<typeof RunnersView>;

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
