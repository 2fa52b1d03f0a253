/**
 * Activities of the `backupJob` orchestration: every read and write it needs (store, blobs, queue), so the
 * orchestrator itself stays deterministic. Rules each one keeps:
 * - idempotent: the extension may run an activity again after it succeeded (a lost completion, a retry); every
 *   state change is a compare-and-set (`store.transitionJob`) and "already in the target state" counts as done;
 * - expected outcomes come back as `{ ok: false, code }`; only what a retry can fix is thrown (across the
 *   activity boundary an error's class is lost, so the orchestrator could not tell them apart anyway);
 * - times written to rows come from the orchestration (`at`), so a re-run writes the same values.
 * Inputs and results cross the boundary as JSON: dates travel as ISO strings.
 */
import type { InvocationContext } from '@azure/functions';
import type { AuditAction } from '../shared/contracts/audit.js';
import type { BackupEngine, Compression } from '../shared/contracts/common.js';
import type { ApprovalDecision, BackupOptions, JobStatus } from '../shared/contracts/jobs.js';
import type { BackupJobMessage } from '../shared/contracts/messages.js';
import { defaultDatabasePolicy, type DatabasePolicy } from '../shared/contracts/servers.js';
import type { JobPatch } from '../shared/db/store.js';
import { getDeps, type Deps } from '../services/deps.js';
import { expireBackup as expireJobBackup, type AuditActor, type ExpiryReason } from '../services/retention.js';
import { jobFileName } from '../services/views.js';
import { nextReverifyDue, reverifyEveryDaysFor } from '../services/integrity.js';
import { deleteBackupFiles } from '../shared/storage/gateway.js';

/** Activity function names (global in the Function App). Renaming one breaks in-flight orchestrations. */
export const ACTIVITY = {
  prepareJob: 'backupJob-prepareJob',
  enqueueJob: 'backupJob-enqueueJob',
  markRunning: 'backupJob-markRunning',
  recordProgress: 'backupJob-recordProgress',
  beginVerification: 'backupJob-beginVerification',
  verifyUpload: 'backupJob-verifyUpload',
  markAvailable: 'backupJob-markAvailable',
  issueDownloadLink: 'backupJob-issueDownloadLink',
  failJob: 'backupJob-failJob',
  removeLateUpload: 'backupJob-removeLateUpload',
  expireBackup: 'backupJob-expireBackup',
  awaitApproval: 'backupJob-awaitApproval',
  decideApproval: 'backupJob-decideApproval',
} as const;
export type ActivityName = (typeof ACTIVITY)[keyof typeof ACTIVITY];

/** The audit actor of the orchestration's own steps. */
export const ORCHESTRATOR_ACTOR: AuditActor = { actorType: 'system', actorId: 'orchestrator', actorName: null };


// ---------------------------------------------------------------------------------------------------------------
// Inputs and results

/** Every activity input carries the job and the orchestration's time of the decision (ISO). */
interface JobStep {
  jobId: string;
  at: string;
}

/** Why an activity did nothing: the job is gone or elsewhere in its lifecycle (someone else moved it). */
export type Refusal = { ok: false; code: 'job_not_found' } | { ok: false; code: 'conflict'; status: JobStatus };

/** A transition that happened now or had already happened (a re-run). */
export type StepDone = { ok: true; status: JobStatus };

export type PrepareJobInput = JobStep;
export interface PreparedJob {
  ok: true;
  blobPath: string;
  policy: Pick<DatabasePolicy, 'acceptTimeoutMinutes' | 'runTimeoutMinutes' | 'retentionDays' | 'maxSasTtlMinutes'> &
    Partial<Pick<DatabasePolicy, 'distribution' | 'approvalTimeoutHours'>>;
  /** Who asked: an Approver other than this user must approve (absent in results recorded before approvals). */
  requesterOid?: string;
  /** Lifetime of the runner's write SAS: after a failure, no upload can land once the last one has expired. */
  uploadSasTtlMinutes: number;
  /** Built without its deadline: the orchestrator knows the timeouts and adds `runDeadline`. */
  message: Omit<BackupJobMessage, 'runDeadline'>;
}
export type PrepareJobResult =
  | PreparedJob
  | Refusal
  | { ok: false; code: 'database_not_found' | 'server_not_found'; status: JobStatus };

/** An approval decision as the orchestration applies it: by a user (the event's sender) or by the timeout. */
export interface DecideApprovalInput extends JobStep {
  decision: ApprovalDecision;
  by: { oid: string; upn: string | null } | null;
  reason: string | null;
  /** `approval_timeout` when no one decided in time; `rejected` for an Approver's rejection. */
  errorCode?: 'rejected' | 'approval_timeout';
}

export interface EnqueueJobInput extends JobStep {
  message: BackupJobMessage;
}

export interface MarkRunningInput extends JobStep {
  runnerId: string | null;
  attempt: number | null;
  /** How acceptance was learnt: the runner's `accepted`, or a later event that implies it. */
  acceptedBy: 'accepted' | 'progress' | 'uploaded';
}

export interface RecordProgressInput extends JobStep {
  percent: number;
  bytes: number;
}

export interface UploadReport {
  blobPath: string;
  sizeBytes: number;
  sha256: string;
  compression: Compression;
  encrypted: boolean;
  /** Rows per table in what was stored; kept on the job for restore rehearsals. */
  tableRowCounts?: Record<string, number>;
}

export interface BeginVerificationInput extends JobStep {
  reported: UploadReport;
}

export interface VerifyUploadInput {
  jobId: string;
  expectedBlobPath: string;
  reported: UploadReport;
}
export type VerifyUploadResult =
  | { ok: true; sizeBytes: number; sha256: string }
  | { ok: false; code: 'wrong_blob_path' | 'blob_missing' | 'size_mismatch' | 'sha256_mismatch'; message: string };

export interface MarkAvailableInput extends JobStep {
  sizeBytes: number;
  sha256: string;
  expiresAt: string;
  /**
   * backupJob2: the key that signed the manifest. Its presence also says the control plane re-hashed the stored
   * bytes itself (verifiedAt = at) and starts the re-verification schedule.
   */
  manifestKeyId?: string;
}

export interface IssueDownloadLinkInput {
  jobId: string;
  maxSasTtlMinutes: number;
}
export type IssueDownloadLinkResult =
  | { ok: true; expiresAt: string; reused: boolean }
  | Refusal
  | { ok: false; code: 'backup_expiring' | 'minted_on_request' };

export interface FailJobInput extends JobStep {
  to: 'Failed' | 'Cancelled';
  errorCode: string;
  errorMessage: string;
  /** Who asked, for a cancel; the orchestrator otherwise. */
  actor?: AuditActor;
  detail?: Record<string, unknown>;
}

export interface ExpireBackupInput extends JobStep {
  reason: ExpiryReason;
  actor?: AuditActor;
}
export type ExpireBackupResult = StepDone | Refusal;

// ---------------------------------------------------------------------------------------------------------------
// Shared steps

/**
 * Compare-and-set on the job's status with its audit row. "Already in the target state" is success: it is what a
 * re-run of an activity that had succeeded finds.
 */
async function transition(
  deps: Deps,
  step: JobStep,
  change: { from: readonly JobStatus[]; to: JobStatus; patch?: JobPatch },
  audit: { action: AuditAction; actor?: AuditActor; detail?: Record<string, unknown> },
): Promise<StepDone | Refusal> {
  const at = new Date(step.at);
  const result = await deps.store.transitionJob(
    step.jobId,
    { ...change, at },
    {
      ...(audit.actor ?? ORCHESTRATOR_ACTOR),
      action: audit.action,
      target: `job/${step.jobId}`,
      jobId: step.jobId,
      detail: audit.detail ?? {},
      at,
    },
  );
  if (result.ok || result.current?.status === change.to) return { ok: true, status: change.to };
  return result.current ? { ok: false, code: 'conflict', status: result.current.status } : { ok: false, code: 'job_not_found' };
}

// ---------------------------------------------------------------------------------------------------------------
// Handlers

/** Loads what the orchestration needs as plain data: the job message to send and the policy in force. */
export async function prepareJob(input: PrepareJobInput): Promise<PrepareJobResult> {
  const deps = await getDeps();
  const job = await deps.store.getJob(input.jobId);
  if (!job) return { ok: false, code: 'job_not_found' };
  // Queued too: an instance started again for a job already enqueued re-sends (deduplicated by message id).
  // AwaitingApproval: an instance started again for a job that waits for its approval waits again.
  if (job.status !== 'Pending' && job.status !== 'Queued' && job.status !== 'AwaitingApproval') {
    return { ok: false, code: 'conflict', status: job.status };
  }
  const database = await deps.store.getDatabase(job.databaseId);
  if (!database) return { ok: false, code: 'database_not_found', status: job.status };
  const server = await deps.store.getServer(job.serverId);
  if (!server) return { ok: false, code: 'server_not_found', status: job.status };
  const policy = { ...defaultDatabasePolicy, ...database.policy };
  return {
    ok: true,
    blobPath: job.blobPath,
    policy: {
      acceptTimeoutMinutes: policy.acceptTimeoutMinutes,
      runTimeoutMinutes: policy.runTimeoutMinutes,
      retentionDays: policy.retentionDays,
      maxSasTtlMinutes: policy.maxSasTtlMinutes,
      distribution: policy.distribution,
      approvalTimeoutHours: policy.approvalTimeoutHours,
    },
    requesterOid: job.requesterOid,
    uploadSasTtlMinutes: deps.limits.uploadSasTtlMinutes,
    message: {
      schemaVersion: 1,
      jobId: job.id,
      serverId: server.id,
      server: { name: server.name, host: server.host },
      databaseId: job.databaseId,
      databaseName: job.databaseName,
      engine: job.engine satisfies BackupEngine,
      options: job.options satisfies BackupOptions,
      ...(job.encryptionRecipients ? { ageRecipients: job.encryptionRecipients.map((r) => r.recipient) } : {}),
      blobPath: job.blobPath,
      requestedAt: job.createdAt.toISOString(),
      // Every copy of a sanitized database is made with its current rules; the job records their version.
      ...(policy.distribution === 'sanitized' && policy.masking ? { masking: policy.masking } : {}),
    },
  };
}

/**
 * Pending → Queued (`job.queued`), THEN the message goes out. If sending fails the retry finds the job Queued
 * and sends again; Service Bus drops the duplicate by message id (= job id) should the first send have landed.
 */
export async function enqueueJob(input: EnqueueJobInput): Promise<StepDone | Refusal> {
  const deps = await getDeps();
  const queued = await transition(
    deps,
    input,
    { from: ['Pending'], to: 'Queued', ...(input.message.masking ? { patch: { maskingVersion: input.message.masking.version } } : {}) },
    {
      action: 'job.queued',
      detail: { serverId: input.message.serverId, runDeadline: input.message.runDeadline, maskingVersion: input.message.masking?.version ?? null },
    },
  );
  if (!queued.ok) return queued;
  await deps.queue.enqueue(input.message);
  return queued;
}

/** Queued → Running (`job.running`) once a runner took the job. */
export async function markRunning(input: MarkRunningInput): Promise<StepDone | Refusal> {
  const deps = await getDeps();
  return transition(
    deps,
    input,
    { from: ['Queued'], to: 'Running', patch: { acceptedAt: new Date(input.at) } },
    { action: 'job.running', detail: { runnerId: input.runnerId, attempt: input.attempt, acceptedBy: input.acceptedBy } },
  );
}

/** Progress on the job row (no audit row: progress is not a state change). */
export async function recordProgress(input: RecordProgressInput): Promise<{ ok: true }> {
  const deps = await getDeps();
  await deps.store.updateJobProgress(input.jobId, { percent: input.percent, bytes: input.bytes, at: new Date(input.at) });
  return { ok: true };
}

/** Running → Verifying (`job.verifying`, with what the runner reported). */
export async function beginVerification(input: BeginVerificationInput): Promise<StepDone | Refusal> {
  const deps = await getDeps();
  const { reported } = input;
  return transition(
    deps,
    input,
    // The upload is complete: the row's progress says so, whatever the throttled progress events last wrote.
    {
      from: ['Running'],
      to: 'Verifying',
      patch: { progressPercent: 100, progressBytes: reported.sizeBytes, ...(reported.tableRowCounts ? { tableRowCounts: reported.tableRowCounts } : {}) },
    },
    {
      action: 'job.verifying',
      detail: {
        blobPath: reported.blobPath,
        reportedSizeBytes: reported.sizeBytes,
        reportedSha256: reported.sha256,
        compression: reported.compression,
        encrypted: reported.encrypted,
      },
    },
  );
}

/**
 * Checks the stored blob against the runner's report: the job's own path, committed, the same size, and the
 * SHA-256 the runner computed while streaming, stored as blob metadata at commit. Read-only: safe to repeat.
 */
export async function verifyUpload(input: VerifyUploadInput): Promise<VerifyUploadResult> {
  const deps = await getDeps();
  const { reported, expectedBlobPath } = input;
  if (reported.blobPath !== expectedBlobPath) {
    return { ok: false, code: 'wrong_blob_path', message: `The runner reported ${reported.blobPath}; the job's blob is ${expectedBlobPath}.` };
  }
  const facts = await deps.blobs.getBlobFacts(expectedBlobPath);
  if (!facts) return { ok: false, code: 'blob_missing', message: `No committed blob at ${expectedBlobPath}.` };
  if (facts.sizeBytes !== reported.sizeBytes) {
    return { ok: false, code: 'size_mismatch', message: `The blob holds ${facts.sizeBytes} bytes; the runner reported ${reported.sizeBytes}.` };
  }
  const storedSha256 = facts.metadata['sha256']?.toLowerCase();
  if (storedSha256 !== reported.sha256.toLowerCase()) {
    return {
      ok: false,
      code: 'sha256_mismatch',
      message: `The blob's sha256 metadata is ${storedSha256 ?? 'missing'}; the runner reported ${reported.sha256}.`,
    };
  }
  return { ok: true, sizeBytes: facts.sizeBytes, sha256: storedSha256 };
}

/** Verifying → Available (`job.available`) with the verified size and digest and the retention expiry. */
export async function markAvailable(input: MarkAvailableInput): Promise<StepDone | Refusal> {
  const deps = await getDeps();
  const at = new Date(input.at);
  let proof: JobPatch = {};
  if (input.manifestKeyId) {
    const job = await deps.store.getJob(input.jobId);
    const reverifyEveryDays = job ? await reverifyEveryDaysFor(deps, job) : 0;
    proof = { verifiedAt: at, reverifyDueAt: nextReverifyDue(at, reverifyEveryDays), manifestKeyId: input.manifestKeyId };
  }
  return transition(
    deps,
    input,
    {
      from: ['Verifying'],
      to: 'Available',
      patch: { sizeBytes: input.sizeBytes, sha256: input.sha256, completedAt: at, expiresAt: new Date(input.expiresAt), ...proof },
    },
    {
      action: 'job.available',
      detail: {
        sizeBytes: input.sizeBytes,
        sha256: input.sha256,
        expiresAt: input.expiresAt,
        ...(input.manifestKeyId ? { rehashedByControlPlane: true, manifestKeyId: input.manifestKeyId, reverifyDueAt: proof.reverifyDueAt?.toISOString() ?? null } : {}),
      },
    },
  );
}

/**
 * Kept for backupJob v1 instances in flight, which call it after Available: it no longer mints anything. A link
 * is a bearer secret, so it is minted only by POST …/download-link, returned once to its caller and stored nowhere;
 * a link minted here would have nobody to go to. v1 logs the refusal and goes on (a missing link never fails a job).
 */
export async function issueDownloadLink(_input: IssueDownloadLinkInput): Promise<IssueDownloadLinkResult> {
  return { ok: false, code: 'minted_on_request' };
}

/**
 * Ends a job that will not produce a backup: deletes whatever the runner may have uploaded, then moves the job to
 * Failed (`job.failed`) or Cancelled (`job.cancelled`) with the error. Verifying cannot be cancelled.
 */
export async function failJob(input: FailJobInput): Promise<StepDone | Refusal> {
  const deps = await getDeps();
  const job = await deps.store.getJob(input.jobId);
  if (!job) return { ok: false, code: 'job_not_found' };
  const from: readonly JobStatus[] =
    input.to === 'Cancelled'
      ? ['Pending', 'AwaitingApproval', 'Queued', 'Running']
      : ['Pending', 'AwaitingApproval', 'Queued', 'Running', 'Verifying'];
  if (job.status !== input.to && !from.includes(job.status)) return { ok: false, code: 'conflict', status: job.status };
  // Sidecars too: a manifest written before a later step failed must not outlive the job.
  const partialBlobDeleted = await deleteBackupFiles(deps.blobs, job.blobPath);
  return transition(
    deps,
    input,
    {
      from,
      to: input.to,
      patch: { errorCode: input.errorCode, errorMessage: input.errorMessage.slice(0, 4000), completedAt: new Date(input.at) },
    },
    {
      action: input.to === 'Cancelled' ? 'job.cancelled' : 'job.failed',
      actor: input.actor,
      detail: { ...input.detail, errorCode: input.errorCode, errorMessage: input.errorMessage, from: job.status, partialBlobDeleted },
    },
  );
}

/** Pending → AwaitingApproval (`job.awaiting_approval`, a notifiable event: approvers learn of it). */
export async function awaitApproval(input: JobStep & { timeoutHours: number }): Promise<StepDone | Refusal> {
  const deps = await getDeps();
  return transition(
    deps,
    input,
    { from: ['Pending'], to: 'AwaitingApproval' },
    { action: 'job.awaiting_approval', detail: { timeoutHours: input.timeoutHours } },
  );
}

/**
 * Applies a decision: approved → Pending again (`job.approved`), the enqueue follows; rejected or timed out →
 * Rejected (`job.rejected`). Who decided, when and why go on the job row with the transition.
 */
export async function decideApproval(input: DecideApprovalInput): Promise<StepDone | Refusal> {
  const deps = await getDeps();
  const at = new Date(input.at);
  const approved = input.decision === 'approved';
  const patch: JobPatch = {
    approvalDecision: input.decision,
    approvalByOid: input.by?.oid ?? ORCHESTRATOR_ACTOR.actorId,
    approvalByUpn: input.by?.upn ?? null,
    approvalAt: at,
    approvalReason: input.reason?.slice(0, 500) ?? null,
    ...(approved
      ? {}
      : { errorCode: input.errorCode ?? 'rejected', errorMessage: (input.reason ?? 'Rejected.').slice(0, 4000), completedAt: at }),
  };
  const actor: AuditActor | undefined = input.by ? { actorType: 'user', actorId: input.by.oid, actorName: input.by.upn } : undefined;
  return transition(
    deps,
    input,
    { from: ['AwaitingApproval'], to: approved ? 'Pending' : 'Rejected', patch },
    {
      action: approved ? 'job.approved' : 'job.rejected',
      ...(actor ? { actor } : {}),
      detail: { reason: input.reason, ...(approved ? {} : { errorCode: input.errorCode ?? 'rejected' }) },
    },
  );
}

export interface RemoveLateUploadInput {
  jobId: string;
  blobPath: string;
}

/**
 * After a job failed or was cancelled, a runner still holding a write SAS may have committed its upload after
 * failJob deleted the partial blob (it checks just before committing, but a cancel can land in between). Run once
 * every write SAS of the job has expired, this deletes such a blob; the job row is terminal and stays as it is.
 */
export async function removeLateUpload(input: RemoveLateUploadInput): Promise<{ ok: true; deleted: boolean }> {
  const deps = await getDeps();
  return { ok: true, deleted: await deps.blobs.deleteBlob(input.blobPath) };
}

/** Deletes the backup and marks the job Expired: the same function the retention sweep uses. */
export async function expireBackup(input: ExpireBackupInput): Promise<ExpireBackupResult> {
  const deps = await getDeps();
  const result = await expireJobBackup(deps, {
    jobId: input.jobId,
    reason: input.reason,
    actor: input.actor ?? ORCHESTRATOR_ACTOR,
    at: new Date(input.at),
  });
  if (result.ok) return { ok: true, status: 'Expired' };
  return result.code === 'job_not_found' ? result : { ok: false, code: 'conflict', status: result.status };
}

/** An activity as a host calls it: the input is whatever the orchestrator sent (our own, typed, JSON). */
export type ActivityFunction = (input: unknown, context?: InvocationContext) => Promise<unknown>;
export const asActivity =
  <I>(handler: (input: I) => Promise<unknown>): ActivityFunction =>
  (input) =>
    handler(input as I);

/** Name → handler, for registration and for an in-process host that runs the real activities. */
export const activities: Record<ActivityName, ActivityFunction> = {
  [ACTIVITY.prepareJob]: asActivity(prepareJob),
  [ACTIVITY.enqueueJob]: asActivity(enqueueJob),
  [ACTIVITY.markRunning]: asActivity(markRunning),
  [ACTIVITY.recordProgress]: asActivity(recordProgress),
  [ACTIVITY.beginVerification]: asActivity(beginVerification),
  [ACTIVITY.verifyUpload]: asActivity(verifyUpload),
  [ACTIVITY.markAvailable]: asActivity(markAvailable),
  [ACTIVITY.issueDownloadLink]: asActivity(issueDownloadLink),
  [ACTIVITY.failJob]: asActivity(failJob),
  [ACTIVITY.removeLateUpload]: asActivity(removeLateUpload),
  [ACTIVITY.expireBackup]: asActivity(expireBackup),
  [ACTIVITY.awaitApproval]: asActivity(awaitApproval),
  [ACTIVITY.decideApproval]: asActivity(decideApproval),
};
