/** Store records → the JSON views of shared/contracts. Dates become ISO strings; nothing else is invented. */
import type { AuditEventView } from '../shared/contracts/audit.js';
import type { JobView } from '../shared/contracts/jobs.js';
import type { DatabaseView, RequestableDatabaseView, ServerView } from '../shared/contracts/servers.js';
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
    runners: server.runners,
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
    encryption: job.options.encryption,
  });
}

/** The job. Never a download link: a link is a bearer secret, returned once by POST …/download-link. */
export function jobView(job: JobRecord): JobView {
  return {
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
    maskingVersion: job.maskingVersion,
    restoreRehearsal:
      job.restoreVerifiedAt && job.restoreResult
        ? { verifiedAt: iso(job.restoreVerifiedAt), durationMs: job.restoreDurationMs ?? 0, result: job.restoreResult, error: job.restoreError }
        : null,
    recipients: job.encryptionRecipients?.map(({ fingerprint, role }) => ({ fingerprint, role })) ?? null,
    integrity: { verifiedAt: isoOrNull(job.verifiedAt), reverifyDueAt: isoOrNull(job.reverifyDueAt), corruptAt: isoOrNull(job.corruptAt) },
  };
}

export function requestableDatabaseView(database: DatabaseRecord, server: Pick<ServerRecord, 'engine'>): RequestableDatabaseView {
  const { allowedEngines, maxSasTtlMinutes, retentionDays, bindLinksToRequester } = database.policy;
  const distribution = database.policy.distribution ?? 'raw';
  return {
    id: database.id,
    serverId: database.serverId,
    name: database.name,
    engine: server.engine,
    policy: { allowedEngines, maxSasTtlMinutes, retentionDays, bindLinksToRequester, distribution },
  };
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
