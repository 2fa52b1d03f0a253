/**
 * Backup jobs as users see them: request one, list and read them, cancel, delete the backup early, and get a
 * download link. The orchestration (orchestrations/backupJob2.ts) owns every status change after Pending; this
 * module writes the request, audit rows for requests and SAS, and raises events at the orchestration — and acts
 * directly on a cancel or delete when the job's orchestration no longer exists.
 */
import { annotateActiveSpan } from '../shared/telemetry.js';
import { randomUUID } from 'node:crypto';
import type { Principal } from '../shared/auth/principal.js';
import { hasRole, isInAnyGroup } from '../shared/auth/rbac.js';
import type { Page } from '../shared/contracts/common.js';
import {
  type ApprovalDecision,
  type CreateJobRequest,
  type DownloadLink,
  type DownloadLinkRequest,
  type JobStatus,
  type JobView,
  type ListJobsQuery,
  cancellableStatuses,
} from '../shared/contracts/jobs.js';
import { ORCHESTRATION_EVENTS } from '../shared/contracts/runner.js';
import { defaultDatabasePolicy } from '../shared/contracts/servers.js';
import type { JobRecord } from '../shared/db/store.js';
import { AppError } from '../shared/errors.js';
import type { Deps } from './deps.js';
import { copyRecipientsFor } from './encryption.js';
import type { OrchestrationState } from './orchestrations.js';
import { expireBackup } from './retention.js';
import { sidecarLinks } from './integrity.js';
import { buildNewJob, downloadLinkExpiry } from './job-rules.js';
import { type RequestScope, auditActor } from './scope.js';
import { jobFileName, jobView } from './views.js';

/** Loads a job or answers 404. */
export async function loadJob(deps: Deps, jobId: string): Promise<JobRecord> {
  const job = await deps.store.getJob(jobId);
  if (!job) throw new AppError('not_found', `Job ${jobId} does not exist.`);
  return job;
}

/** The job's requester, as a user: an application never "owns" a job, whatever its object id. */
function isRequesterOf(principal: Principal, job: JobRecord): boolean {
  return !principal.isApplication && principal.oid === job.requesterOid;
}

/** Requester of the job (holding the Requester role) or Admin: who may act on a job. */
function mayActOn(principal: Principal, job: JobRecord): boolean {
  return hasRole(principal, 'Admin') || (hasRole(principal, 'Requester') && isRequesterOf(principal, job));
}

/**
 * Who may read and download a job's backup: whoever may act on it, and for a scheduled job the members of the
 * schedule's recipients group (as the database's schedule names it now).
 */
async function mayReceive(deps: Deps, principal: Principal, job: JobRecord): Promise<boolean> {
  if (mayActOn(principal, job)) return true;
  if (job.trigger !== 'schedule' || principal.isApplication) return false;
  const recipients = (await deps.store.getDatabase(job.databaseId))?.schedule?.recipientGroupId;
  return recipients ? isInAnyGroup(principal, [recipients]) : false;
}

function assertMayActOn(principal: Principal, job: JobRecord, action: string): void {
  if (!mayActOn(principal, job)) {
    throw new AppError('forbidden', `Only the job's requester or an Admin may ${action} job ${job.id}.`);
  }
}

/**
 * 409 naming the job's status in the `jobStatus` extension member (the problem's own `status` stays the HTTP
 * status code, as RFC 9457 defines it).
 */
export function conflictUnlessIn(job: JobRecord, allowed: readonly JobStatus[], action: string): void {
  if (!allowed.includes(job.status)) {
    throw new AppError('conflict', `Job ${job.id} is ${job.status}; ${action} needs one of: ${allowed.join(', ')}.`, {
      details: { jobStatus: job.status },
    });
  }
}

/**
 * Records a backup request (job Pending + `job.requested`, one transaction) and starts its orchestration.
 * The caller must be Admin or in one of the database's requester groups.
 */
export async function requestBackup(scope: RequestScope, request: CreateJobRequest): Promise<JobView> {
  const { deps, principal } = scope;
  const database = await deps.store.getDatabase(request.databaseId);
  if (!database) throw new AppError('not_found', `Database ${request.databaseId} is not registered.`);
  if (!hasRole(principal, 'Admin') && !isInAnyGroup(principal, database.requesterGroupIds)) {
    throw new AppError('forbidden', `You are not in a group allowed to request backups of database ${database.name}.`);
  }
  if (!database.enabled) throw new AppError('conflict', `Database ${database.name} is disabled for backups.`);
  const server = await deps.store.getServer(database.serverId);
  if (!server) throw new AppError('not_found', `The server of database ${database.name} is not registered.`);
  if (!database.policy.allowedEngines.includes(server.engine)) {
    throw new AppError('conflict', `The policy of database ${database.name} does not allow ${server.engine} backups.`);
  }

  const encryptionRecipients = await copyRecipientsFor(deps, {
    encryption: request.options.encryption,
    policy: database.policy,
    databaseName: database.name,
    requesterOid: principal.oid,
  });

  const jobId = randomUUID();
  const now = deps.now();
  const job = await deps.store.createJob(
    buildNewJob(database, server, {
      id: jobId,
      options: request.options,
      encryptionRecipients,
      requester: { oid: principal.oid, upn: principal.upn ?? null },
      trigger: 'user',
      createdAt: now,
    }),
    {
      ...auditActor(scope),
      action: 'job.requested',
      target: `job/${jobId}`,
      jobId,
      detail: {
        databaseId: database.id,
        serverId: server.id,
        options: request.options,
        reason: request.reason ?? null,
        recipientFingerprints: encryptionRecipients?.map((r) => r.fingerprint) ?? null,
      },
      at: now,
    },
  );
  annotateActiveSpan({ 'job.id': job.id, 'database.id': job.databaseId });
  await startOrFail(scope, job);
  return jobView(job);
}

/**
 * Starts the job's orchestration. If that fails the job would sit in Pending forever, so it is marked Failed
 * (with its audit row) before the error goes back to the caller as 503.
 */
async function startOrFail(scope: RequestScope, job: JobRecord): Promise<void> {
  try {
    await scope.orchestrations.startBackupJob(job.id);
  } catch (error) {
    const now = scope.deps.now();
    await scope.deps.store
      .transitionJob(
        job.id,
        {
          from: ['Pending'],
          to: 'Failed',
          patch: { errorCode: 'orchestration_start_failed', errorMessage: 'The job could not be started.', completedAt: now },
          at: now,
        },
        { actorType: 'system', actorId: 'control-plane', action: 'job.failed', target: `job/${job.id}`, jobId: job.id, at: now },
      )
      .catch(() => undefined); // the start failure below is what the caller needs to hear about
    // The client's own message may carry management URLs with keys: it goes to the log (cause), not the caller.
    throw new AppError('dependency_unavailable', `Job ${job.id} could not be started and was marked Failed; request it again.`, {
      cause: error,
    });
  }
}

/** The caller's own jobs, newest first; an Admin sees everyone's. */
export async function listJobs(scope: RequestScope, query: ListJobsQuery): Promise<Page<JobView>> {
  const { deps, principal } = scope;
  const page = await deps.store.listJobs({
    // Approvers see every job awaiting approval (of all databases): the ones they may act on.
    ...(hasRole(principal, 'Admin', 'Auditor') || (hasRole(principal, 'Approver') && query.status === 'AwaitingApproval')
      ? {}
      : { requesterOid: principal.oid }),
    ...(query.status ? { status: query.status } : {}),
    ...(query.cursor ? { cursor: query.cursor } : {}),
    limit: query.limit,
  });
  return { items: page.items.map((job) => jobView(job)), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
}

/** One job, for its requester, an Admin, an Auditor, (scheduled jobs) a recipient of its schedule, or an Approver of it. */
export async function getJob(scope: RequestScope, jobId: string): Promise<JobView> {
  const { deps, principal } = scope;
  const job = await loadJob(deps, jobId);
  const approverMayRead = hasRole(principal, 'Approver') && (job.status === 'AwaitingApproval' || job.approvalDecision !== null);
  if (!hasRole(principal, 'Admin', 'Auditor') && !approverMayRead && !(await mayReceive(deps, principal, job))) {
    throw new AppError('forbidden', `Only the job's requester, an Admin or an Auditor may read job ${jobId}.`);
  }
  return jobView(job);
}

/** What a cancel or delete request came to: handed to the job's orchestration, or done here because it had none. */
export interface JobActionResult {
  job: JobView;
  outcome: 'requested' | 'done';
}

/** Statuses a cancel comes too late for: the upload has finished. */
const pastUpload: readonly JobStatus[] = ['Verifying', 'Available', 'Expired'];

/**
 * Cancels a job that has not finished: asks its orchestration, which records the outcome; a job whose
 * orchestration is gone (never started, purged, ended, terminated) is cancelled here, with its audit row.
 */
export async function requestCancel(scope: RequestScope, jobId: string): Promise<JobActionResult> {
  const { deps } = scope;
  const job = await loadJob(deps, jobId);
  assertMayActOn(scope.principal, job, 'cancel');
  if (!cancellableStatuses.includes(job.status)) {
    const why = pastUpload.includes(job.status)
      ? `the backup has been uploaded, so it is too late to cancel${job.status === 'Available' ? ' (delete the backup instead)' : ''}`
      : 'it has already ended';
    throw new AppError('conflict', `Job ${job.id} is ${job.status}: ${why}.`, { details: { jobStatus: job.status } });
  }
  return actViaOrchestration(scope, job, 'job.cancel_requested', ORCHESTRATION_EVENTS.cancel, async (orchestrationState, at) => {
    const partialBlobDeleted = await deps.blobs.deleteBlob(job.blobPath);
    const message = 'Cancelled on request; the job had no live orchestration to stop.';
    const result = await deps.store.transitionJob(
      job.id,
      { from: cancellableStatuses, to: 'Cancelled', at, patch: { errorCode: 'cancelled', errorMessage: message, completedAt: at } },
      {
        ...auditActor(scope),
        action: 'job.cancelled',
        target: `job/${job.id}`,
        jobId: job.id,
        detail: { errorCode: 'cancelled', errorMessage: message, from: job.status, partialBlobDeleted, orchestrationState },
        at,
      },
    );
    return result.ok ? result.job : result.current;
  });
}

/**
 * Deletes an Available backup before its retention ends: asks its orchestration; when that is gone, the blob is
 * deleted and the job Expired here (`job.expired`, attributed to the caller).
 */
export async function requestBackupDeletion(scope: RequestScope, jobId: string): Promise<JobActionResult> {
  const { deps } = scope;
  const job = await loadJob(deps, jobId);
  assertMayActOn(scope.principal, job, 'delete the backup of');
  conflictUnlessIn(job, ['Available'], 'delete the backup of');
  return actViaOrchestration(scope, job, 'job.delete_requested', ORCHESTRATION_EVENTS.delete, async (orchestrationState, at) => {
    const { actorType, actorId, actorName } = auditActor(scope);
    await expireBackup(deps, { jobId: job.id, reason: 'deleted', actor: { actorType, actorId, actorName }, at, detail: { orchestrationState } });
    return deps.store.getJob(job.id);
  });
}

/** Audits the request, raises the event; when no live instance takes it, `actDirectly` does the job's part. */
async function actViaOrchestration(
  scope: RequestScope,
  job: JobRecord,
  action: 'job.cancel_requested' | 'job.delete_requested',
  event: (typeof ORCHESTRATION_EVENTS)['cancel' | 'delete'],
  actDirectly: (orchestrationState: OrchestrationState, at: Date) => Promise<JobRecord | undefined>,
): Promise<JobActionResult> {
  const { deps, principal } = scope;
  const now = deps.now();
  await deps.store.appendAudit({ ...auditActor(scope), action, target: `job/${job.id}`, jobId: job.id, detail: { status: job.status }, at: now });
  // The orchestration attributes the resulting transition to this actor (orchestrations/backupJob.flow.ts JobActionRequest).
  const actor = auditActor(scope);
  const delivery = await scope.orchestrations.raiseEvent(job.id, event, {
    by: { type: actor.actorType, id: actor.actorId, name: actor.actorName },
    requestedBy: { oid: principal.oid, upn: principal.upn ?? null },
  });
  if (delivery.raised) return { job: jobView(job), outcome: 'requested' };
  const after = (await actDirectly(delivery.state, now)) ?? job;
  return { job: jobView(after), outcome: 'done' };
}

/**
 * An Approver's decision on a job awaiting approval, handed to its orchestration (which applies it, records who
 * decided on the job row and audits `job.approved`/`job.rejected`). Self-approval is refused with 403 and audited
 * (`job.approval_denied`), as is approving without the role.
 */
export async function decideApproval(
  scope: RequestScope,
  jobId: string,
  decision: ApprovalDecision,
  reason: string | undefined,
): Promise<JobView> {
  const { deps, principal } = scope;
  const job = await loadJob(deps, jobId);
  const verb = decision === 'approved' ? 'approve' : 'reject';
  const refusal = !hasRole(principal, 'Approver')
    ? `Only an Approver may ${verb} job ${job.id}.`
    : principal.isApplication || isRequesterOf(principal, job)
      ? `An Approver may not ${verb} a job they requested themselves (job ${job.id}).`
      : undefined;
  if (refusal) {
    await deps.store.appendAudit({
      ...auditActor(scope),
      action: 'job.approval_denied',
      target: `job/${job.id}`,
      jobId: job.id,
      detail: { decision, reason: refusal },
    });
    throw new AppError('forbidden', refusal);
  }
  conflictUnlessIn(job, ['AwaitingApproval'], verb);
  const actor = auditActor(scope);
  const delivery = await scope.orchestrations.raiseEvent(job.id, decision === 'approved' ? ORCHESTRATION_EVENTS.approved : ORCHESTRATION_EVENTS.rejected, {
    by: { type: actor.actorType, id: actor.actorId, name: actor.actorName },
    requestedBy: { oid: principal.oid, upn: principal.upn ?? null },
    ...(reason ? { reason } : {}),
  });
  // No live instance can apply the decision (it alone moves the job on); the requester can cancel the job.
  if (!delivery.raised) throw new AppError('conflict', `Job ${job.id} has no running orchestration to ${verb} (${delivery.state}).`);
  return jobView(job);
}

/**
 * Issues a read-only SAS for an Available backup. Lifetime: the requested minutes (or the default), capped by
 * the database's policy and the service maximum, and never past the backup's own expiry. A caller who may not
 * have it is refused AND recorded (`sas.download_denied`): attempts at someone else's backup are audit facts.
 */
export async function issueDownloadLink(scope: RequestScope, jobId: string, request: DownloadLinkRequest): Promise<DownloadLink> {
  const { deps, principal } = scope;
  const job = await loadJob(deps, jobId);
  if (!(await mayReceive(deps, principal, job))) {
    await deps.store.appendAudit({
      ...auditActor(scope),
      action: 'sas.download_denied',
      target: `job/${job.id}`,
      jobId: job.id,
      detail: { reason: 'not the requester of the job, a recipient of its schedule nor an Admin' },
    });
    throw new AppError('forbidden', `Only the job's requester or an Admin may download the backup of job ${job.id}.`);
  }
  if (job.status === 'Corrupt') await refuseCorruptDownload(scope, job);
  conflictUnlessIn(job, ['Available'], 'a download link');
  if (job.sizeBytes === null || job.sha256 === null) {
    throw new AppError('internal', `Job ${job.id} is Available without a verified size and digest.`);
  }

  const now = deps.now();
  const policy = (await deps.store.getDatabase(job.databaseId))?.policy ?? defaultDatabasePolicy;
  const { expiresAt, ttlMinutes } = downloadLinkExpiry({
    now,
    ...(request.ttlMinutes !== undefined ? { requestedTtlMinutes: request.ttlMinutes } : {}),
    policy,
    limits: deps.limits,
    backupExpiresAt: job.expiresAt,
  });
  if (expiresAt <= now) throw new AppError('conflict', `The backup of job ${job.id} has reached its retention expiry.`, { details: { jobStatus: job.status } });

  const fileName = jobFileName(job);
  // One id per link, in the SAS and in the audit row: a download in the storage logs names the row that let it.
  const correlationId = randomUUID();
  const boundToObjectId = policy.bindLinksToRequester ? principal.oid : undefined;
  const link = await deps.blobs.issueReadSas(job.blobPath, {
    expiresAt,
    fileName,
    correlationId,
    ...(boundToObjectId ? { delegatedUserObjectId: boundToObjectId } : {}),
  });
  const recorded = await deps.store.recordDownloadLink(job.id, link, {
    ...auditActor(scope),
    action: 'sas.download_issued',
    target: `job/${job.id}`,
    jobId: job.id,
    // Never the URL itself: it is a bearer secret, returned once below and stored nowhere.
    detail: {
      expiresAt: link.expiresAt.toISOString(),
      ttlMinutes,
      requestedTtlMinutes: request.ttlMinutes ?? null,
      correlationId,
      boundToObjectId: boundToObjectId ?? null,
    },
    at: now,
  });
  if (!recorded) throw new AppError('not_found', `Job ${job.id} does not exist.`);
  // Jobs verified before manifests existed have no sidecars.
  const sidecars = job.manifestKeyId ? { sidecars: await sidecarLinks(deps, job, link.expiresAt, { correlationId, ...(boundToObjectId ? { delegatedUserObjectId: boundToObjectId } : {}) }) } : {};
  return {
    url: link.url,
    expiresAt: link.expiresAt.toISOString(),
    fileName,
    sizeBytes: job.sizeBytes,
    sha256: job.sha256,
    correlationId,
    ...(boundToObjectId ? { boundToObjectId } : {}),
    ...sidecars,
  };
}

/** A Corrupt backup is never handed out: the refusal is audited and names when and why it was found corrupt. */
async function refuseCorruptDownload(scope: RequestScope, job: JobRecord): Promise<never> {
  const reason = job.errorMessage ?? 'its stored bytes no longer match the verified digest';
  const corruptAt = job.corruptAt?.toISOString() ?? null;
  await scope.deps.store.appendAudit({
    ...auditActor(scope),
    action: 'sas.download_denied',
    target: `job/${job.id}`,
    jobId: job.id,
    detail: { reason: 'corrupt', errorCode: job.errorCode, corruptAt },
  });
  throw new AppError('conflict', `The backup of job ${job.id} failed its integrity re-check${corruptAt ? ` at ${corruptAt}` : ''}: ${reason} Download links are refused.`, {
    details: { jobStatus: job.status, reason: job.errorCode, corruptAt },
  });
}
