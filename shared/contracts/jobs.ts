import { z } from 'zod';
import { BackupEngine, Compression, Cursor, PageLimit, isoDateTime, sha256Hex, uuid } from './common.js';
import { EncryptionFormat, RecipientFingerprint, RecipientRole } from './encryption.js';

/**
 * A job's lifecycle. The orchestration owns every transition after Pending; each one commits the job row and
 * an audit row together (shared/db).
 *
 *   Pending → Queued → Running → Verifying → Available → Expired
 *      └────────┴─────────┴──────────┴──→ Failed | Cancelled (Verifying cannot be cancelled)
 *                                            Available → Corrupt → Expired (a re-verification found the stored
 *                                            bytes changed or gone; links are refused, retention still deletes)
 *
 * A `raw-needs-approval` database adds a wait before the queue (backupJob2 only):
 *   Pending → AwaitingApproval → Pending (approved) → Queued …
 *                    └──→ Rejected (rejected, or approval_timeout) | Cancelled | Failed
 */
export const jobStatuses = [
  'Pending',
  'AwaitingApproval',
  'Queued',
  'Running',
  'Verifying',
  'Available',
  'Expired',
  'Failed',
  'Cancelled',
  'Corrupt',
  'Rejected',
] as const;
export const JobStatus = z.enum(jobStatuses);
export type JobStatus = z.infer<typeof JobStatus>;

export const allowedTransitions: Record<JobStatus, readonly JobStatus[]> = {
  Pending: ['AwaitingApproval', 'Queued', 'Failed', 'Cancelled'],
  AwaitingApproval: ['Pending', 'Rejected', 'Failed', 'Cancelled'],
  Queued: ['Running', 'Failed', 'Cancelled'],
  Running: ['Verifying', 'Failed', 'Cancelled'],
  Verifying: ['Available', 'Failed'],
  Available: ['Expired', 'Corrupt'],
  Expired: [],
  Failed: [],
  Cancelled: [],
  Corrupt: ['Expired'],
  Rejected: [],
};

/** States in which the runner may still report on a job; any other answers 409. */
export const runnableStatuses: readonly JobStatus[] = ['Queued', 'Running'];
/** States from which a cancel request is accepted. */
export const cancellableStatuses: readonly JobStatus[] = ['Pending', 'AwaitingApproval', 'Queued', 'Running'];
export const terminalStatuses: readonly JobStatus[] = ['Expired', 'Failed', 'Cancelled', 'Rejected'];

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return allowedTransitions[from].includes(to);
}

export const BackupOptions = z
  .object({
    compression: Compression.default('none'),
    /** `age`: encrypted by the runner to the requester's registered keys, the recovery keys and the policy's. */
    encryption: EncryptionFormat.default('none'),
  })
  .strict();
export type BackupOptions = z.infer<typeof BackupOptions>;

export const CreateJobRequest = z
  .object({
    databaseId: uuid,
    options: BackupOptions.extend({ encryption: z.enum(['none', 'age']).default('none') }).default({ compression: 'none', encryption: 'none' }),
    /** Free text shown in the audit trail, e.g. a ticket number. */
    reason: z.string().trim().max(500).optional(),
  })
  .strict()
  .meta({ id: 'CreateJobRequest' });
export type CreateJobRequest = z.infer<typeof CreateJobRequest>;

/** Body of approve and reject: why (required to reject, shown to the requester and in the audit trail). */
export const ApprovalDecisionRequest = z
  .object({ reason: z.string().trim().min(1).max(500).optional() })
  .strict()
  .meta({ id: 'ApprovalDecisionRequest' });
export type ApprovalDecisionRequest = z.infer<typeof ApprovalDecisionRequest>;
export const RejectionRequest = z
  .object({ reason: z.string().trim().min(1).max(500) })
  .strict()
  .meta({ id: 'RejectionRequest' });
export type RejectionRequest = z.infer<typeof RejectionRequest>;

export const approvalDecisions = ['approved', 'rejected'] as const;
export const ApprovalDecision = z.enum(approvalDecisions);
export type ApprovalDecision = z.infer<typeof ApprovalDecision>;

export const ListJobsQuery = z
  .object({
    cursor: Cursor.optional(),
    limit: PageLimit,
    status: JobStatus.optional(),
  })
  .strict();
export type ListJobsQuery = z.infer<typeof ListJobsQuery>;

export const DownloadLinkRequest = z
  .object({
    /** Requested lifetime; capped by the database's policy and the service maximum. */
    ttlMinutes: z.number().int().positive().optional(),
  })
  .strict()
  .meta({ id: 'DownloadLinkRequest' });
export type DownloadLinkRequest = z.infer<typeof DownloadLinkRequest>;

/** A read-only link to one file of a backup (the backup itself or one of its sidecars). */
export const FileLink = z.object({ url: z.url(), fileName: z.string() }).meta({ id: 'FileLink' });
export type FileLink = z.infer<typeof FileLink>;

export const DownloadLink = z
  .object({
    url: z.url(),
    expiresAt: isoDateTime,
    fileName: z.string(),
    sizeBytes: z.number().int().nonnegative(),
    sha256: sha256Hex,
    /** Signed into the SAS (`scid`) and recorded in the `sas.download_issued` audit row: joins storage logs to it. */
    correlationId: uuid,
    /** Set when the database binds links to their requester: only this user's Entra token can use the link. */
    boundToObjectId: z.string().optional(),
    /**
     * The backup's sidecars, valid as long as the link: `<fileName>.sha256` (sha256sum format, for
     * `sha256sum -c`) and `<fileName>.manifest.json` (signed by the control plane, for `dbdist-runner verify`).
     */
    sidecars: z.object({ sha256: FileLink, manifest: FileLink }).optional(),
  })
  .meta({ id: 'DownloadLink' });
export type DownloadLink = z.infer<typeof DownloadLink>;

export const JobView = z
  .object({
    id: uuid,
    databaseId: uuid,
    serverId: uuid,
    databaseName: z.string(),
    engine: BackupEngine,
    status: JobStatus,
    options: BackupOptions,
    requestedBy: z.object({ oid: z.string(), upn: z.string().nullable() }),
    trigger: z.enum(['user', 'schedule']),
    /** Live while the job runs: the runner's latest report, written at most every 15 s. */
    progress: z.object({ percent: z.number().min(0).max(100), bytes: z.number().int().nonnegative(), updatedAt: isoDateTime }).nullable(),
    sizeBytes: z.number().int().nonnegative().nullable(),
    sha256: sha256Hex.nullable(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    createdAt: isoDateTime,
    updatedAt: isoDateTime,
    acceptedAt: isoDateTime.nullable(),
    completedAt: isoDateTime.nullable(),
    expiresAt: isoDateTime.nullable(),
    /** For a `raw-needs-approval` database, once decided: who approved or rejected it (system: the timeout), when, why. */
    approval: z
      .object({
        decision: ApprovalDecision,
        by: z.object({ oid: z.string(), upn: z.string().nullable() }),
        at: isoDateTime,
        reason: z.string().nullable(),
      })
      .nullable(),
    /** Masking rule set version a sanitized copy was made with; null for a raw copy. */
    maskingVersion: z.number().int().nullable(),
    /** The latest restore rehearsal of this backup (RTO evidence), if any. */
    restoreRehearsal: z
      .object({ verifiedAt: isoDateTime, durationMs: z.number().int().nonnegative(), result: z.enum(['passed', 'failed']), error: z.string().nullable() })
      .nullable(),
    /** Who can open an `age` copy, by fingerprint (shared/age-keys.ts); null when the copy is not age-encrypted. */
    recipients: z.array(z.object({ fingerprint: RecipientFingerprint, role: RecipientRole })).nullable(),
    /**
     * What the control plane proved about the stored bytes: when it last hashed them itself, when the next
     * scheduled re-check is due, and when one found them changed or gone (the job is then Corrupt; `error` says why).
     */
    integrity: z
      .object({ verifiedAt: isoDateTime.nullable(), reverifyDueAt: isoDateTime.nullable(), corruptAt: isoDateTime.nullable() })
      .meta({ id: 'JobIntegrity' }),
  })
  .meta({ id: 'Job' });
export type JobView = z.infer<typeof JobView>;
