/** Store records → the JSON views of shared/contracts. Dates become ISO strings; nothing else is invented. */
import type { AuditEventView } from '../shared/contracts/audit.js';
import type { DownloadLink, JobView } from '../shared/contracts/jobs.js';
import type { DatabaseView, ServerView } from '../shared/contracts/servers.js';
import type { AuditRecord, DatabaseRecord, JobRecord, ServerRecord } from '../shared/db/store.js';
import { downloadFileName } from '../shared/storage/paths.js';

const iso = (date: Date): string => date.toISOString();
const isoOrNull = (date: Date | null): string | null => (date ? date.toISOString() : null);

export function serverView(server: ServerRecord): ServerView {
  return {
    id: server.id,
    name: server.name,
    host: server.host,
    engine: server.engine,
    description: server.description,
    createdAt: iso(server.createdAt),
    updatedAt: iso(server.updatedAt),
  };
}

export function databaseView(database: DatabaseRecord): DatabaseView {
  return {
    id: database.id,
    serverId: database.serverId,
    name: database.name,
    requesterGroupIds: database.requesterGroupIds,
    policy: database.policy,
    schedule: database.schedule,
    enabled: database.enabled,
    createdAt: iso(database.createdAt),
    updatedAt: iso(database.updatedAt),
  };
}

/** The name a browser saves the job's backup as. */
export function jobFileName(job: JobRecord): string {
  return downloadFileName(job.databaseName, job.createdAt, {
    engine: job.engine,
    compression: job.options.compression,
    encrypted: job.options.encryption,
  });
}

/**
 * The job as its viewer may see it. The current download link is a bearer secret: it is shown only to the
 * job's requester, and only while the backup is Available and the link has not expired.
 */
export function jobView(job: JobRecord, viewer: { oid: string; isApplication: boolean }, now: Date): JobView {
  const view: JobView = {
    id: job.id,
    databaseId: job.databaseId,
    serverId: job.serverId,
    databaseName: job.databaseName,
    engine: job.engine,
    status: job.status,
    options: job.options,
    requestedBy: { oid: job.requesterOid, upn: job.requesterUpn },
    trigger: job.trigger,
    progress:
      job.progressPercent === null
        ? null
        : { percent: job.progressPercent, bytes: job.progressBytes ?? 0, updatedAt: iso(job.progressUpdatedAt ?? job.updatedAt) },
    sizeBytes: job.sizeBytes,
    sha256: job.sha256,
    error: job.errorCode === null ? null : { code: job.errorCode, message: job.errorMessage ?? '' },
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
    acceptedAt: isoOrNull(job.acceptedAt),
    completedAt: isoOrNull(job.completedAt),
    expiresAt: isoOrNull(job.expiresAt),
    approval:
      job.approvalDecision === null
        ? null
        : {
            decision: job.approvalDecision,
            by: { oid: job.approvalByOid ?? '', upn: job.approvalByUpn },
            at: iso(job.approvalAt ?? job.updatedAt),
            reason: job.approvalReason,
          },
  };
  const isRequester = !viewer.isApplication && viewer.oid === job.requesterOid;
  const link = isRequester ? liveDownloadLink(job, now) : undefined;
  return link ? { ...view, downloadLink: link } : view;
}

function liveDownloadLink(job: JobRecord, now: Date): DownloadLink | undefined {
  const { downloadUrl, downloadExpiresAt, sizeBytes, sha256 } = job;
  if (job.status !== 'Available' || !downloadUrl || !downloadExpiresAt || sizeBytes === null || sha256 === null) return undefined;
  if (downloadExpiresAt <= now) return undefined;
  return { url: downloadUrl, expiresAt: iso(downloadExpiresAt), fileName: jobFileName(job), sizeBytes, sha256 };
}

export function auditEventView(record: AuditRecord): AuditEventView {
  return {
    id: record.id,
    at: iso(record.at),
    actorType: record.actorType,
    actorId: record.actorId,
    actorName: record.actorName,
    action: record.action,
    target: record.target,
    jobId: record.jobId,
    ip: record.ip,
    userAgent: record.userAgent,
    detail: record.detail,
  };
}
