/**
 * SQL Server / Azure SQL schema (production). Mirrors schema.pg.ts table for table and column for column;
 * test/shared/db/schema.test.ts checks that they agree. Strings are nvarchar (Unicode), JSON is nvarchar(max).
 */
import { sql } from 'drizzle-orm';
import { bigint, bit, check, datetime2, float, index, int, mssqlTable, nvarchar, uniqueIndex } from 'drizzle-orm/mssql-core';
import { enumValues, len, oneOf } from './columns.js';

/** datetime2(3), stored as UTC (mssql's default useUTC). Millisecond precision: what a JS Date holds, so keyset cursors compare equal after a round trip. */
const instant = (name: string) => datetime2(name, { precision: 3, mode: 'date' });
/** JSON documents. */
const json = (name: string) => nvarchar(name, { length: 'max' });

export const servers = mssqlTable(
  'servers',
  {
    id: nvarchar('id', { length: len.id }).primaryKey(),
    name: nvarchar('name', { length: len.name }).notNull(),
    host: nvarchar('host', { length: len.host }).notNull(),
    engine: nvarchar('engine', { length: len.engine, enum: enumValues.engine }).notNull(),
    description: nvarchar('description', { length: len.description }),
    /** JSON array of RunnerBinding: the runner identities allowed to serve this server. */
    runners: json('runners').notNull().default('[]'),
    createdAt: instant('created_at').notNull(),
    updatedAt: instant('updated_at').notNull(),
  },
  (t) => [check('servers_engine_check', oneOf(t.engine, enumValues.engine))],
);

/** The last heartbeat of each runner host (`POST /api/runner/heartbeat`); not audited, overwritten each time. */
export const runnerHeartbeats = mssqlTable('runner_heartbeats', {
  id: nvarchar('id', { length: len.runnerKey }).primaryKey(),
  runnerId: nvarchar('runner_id', { length: len.runnerId }).notNull(),
  clientId: nvarchar('client_id', { length: len.oid }).notNull(),
  servicePrincipalId: nvarchar('service_principal_id', { length: len.oid }).notNull(),
  version: nvarchar('version', { length: len.version }).notNull(),
  /** JSON array of the server ids the runner says it serves. */
  serverIds: json('server_ids').notNull(),
  inFlightJobs: int('in_flight_jobs').notNull(),
  freeScratchBytes: bigint('free_scratch_bytes', { mode: 'number' }),
  lastSeenAt: instant('last_seen_at').notNull(),
});

export const databases = mssqlTable(
  'databases',
  {
    id: nvarchar('id', { length: len.id }).primaryKey(),
    serverId: nvarchar('server_id', { length: len.id })
      .notNull()
      .references(() => servers.id),
    name: nvarchar('name', { length: len.name }).notNull(),
    /** JSON array of Entra group object ids. */
    requesterGroupIds: json('requester_group_ids').notNull(),
    /** JSON DatabasePolicy. */
    policy: json('policy').notNull(),
    /** JSON DatabaseSchedule, or null when the database has no schedule. */
    schedule: json('schedule'),
    enabled: bit('enabled').notNull(),
    /** Since when the last good backup is older than the policy's RPO; null while within it. */
    rpoBreachedAt: instant('rpo_breached_at'),
    createdAt: instant('created_at').notNull(),
    updatedAt: instant('updated_at').notNull(),
  },
  (t) => [index('databases_server_id_idx').on(t.serverId)],
);

export const jobs = mssqlTable(
  'jobs',
  {
    id: nvarchar('id', { length: len.id }).primaryKey(),
    // No foreign key to databases: a job stays readable after its database is removed.
    databaseId: nvarchar('database_id', { length: len.id }).notNull(),
    serverId: nvarchar('server_id', { length: len.id }).notNull(),
    databaseName: nvarchar('database_name', { length: len.name }).notNull(),
    engine: nvarchar('engine', { length: len.engine, enum: enumValues.engine }).notNull(),
    status: nvarchar('status', { length: len.status, enum: enumValues.status }).notNull(),
    /** JSON BackupOptions. */
    options: json('options').notNull(),
    requesterOid: nvarchar('requester_oid', { length: len.oid }).notNull(),
    requesterUpn: nvarchar('requester_upn', { length: len.upn }),
    trigger: nvarchar('trigger', { length: len.trigger, enum: enumValues.trigger }).notNull(),
    scheduleSlot: nvarchar('schedule_slot', { length: len.slot }),
    blobPath: nvarchar('blob_path', { length: len.blobPath }).notNull(),
    progressPercent: float('progress_percent'),
    progressBytes: bigint('progress_bytes', { mode: 'number' }),
    /** When progress was last written (the runner endpoint's throttle). */
    progressUpdatedAt: instant('progress_updated_at'),
    sizeBytes: bigint('size_bytes', { mode: 'number' }),
    sha256: nvarchar('sha256', { length: len.sha256 }),
    errorCode: nvarchar('error_code', { length: len.errorCode }),
    errorMessage: nvarchar('error_message', { length: len.errorMessage }),
    // Expiry of the latest link only: the link itself is a bearer secret, returned once and never stored.
    downloadExpiresAt: instant('download_expires_at'),
    createdAt: instant('created_at').notNull(),
    updatedAt: instant('updated_at').notNull(),
    acceptedAt: instant('accepted_at'),
    completedAt: instant('completed_at'),
    expiresAt: instant('expires_at'),
    /** The approval decision of a `raw-needs-approval` job (set by the orchestration when it applies it). */
    approvalDecision: nvarchar('approval_decision', { length: len.decision, enum: enumValues.decision }),
    approvalByOid: nvarchar('approval_by_oid', { length: len.oid }),
    approvalByUpn: nvarchar('approval_by_upn', { length: len.upn }),
    approvalAt: instant('approval_at'),
    approvalReason: nvarchar('approval_reason', { length: len.reason }),
    /** Version of the masking rule set the copy was made with; null for a raw copy. */
    maskingVersion: int('masking_version'),
    /** JSON rows per table (`schema.table`) as the runner counted them in what it stored. */
    tableRowCounts: json('table_row_counts'),
    /** Latest restore rehearsal of this backup. */
    restoreVerifiedAt: instant('restore_verified_at'),
    restoreDurationMs: bigint('restore_duration_ms', { mode: 'number' }),
    restoreResult: nvarchar('restore_result', { length: len.restoreResult, enum: enumValues.restoreResult }),
    restoreError: nvarchar('restore_error', { length: len.errorMessage }),
    /** JSON CopyRecipient[] of an age-encrypted copy (public keys, fingerprints, roles); null otherwise. */
    encryptionRecipients: json('encryption_recipients'),
    verifiedAt: instant('verified_at'),
    reverifyDueAt: instant('reverify_due_at'),
    corruptAt: instant('corrupt_at'),
    manifestKeyId: nvarchar('manifest_key_id', { length: len.keyId }),
  },
  (t) => [
    check('jobs_approval_decision_check', oneOf(t.approvalDecision, enumValues.decision)),
    index('jobs_requester_created_idx').on(t.requesterOid, t.createdAt, t.id),
    index('jobs_created_idx').on(t.createdAt, t.id),
    index('jobs_status_expires_idx').on(t.status, t.expiresAt),
    index('jobs_status_reverify_idx').on(t.status, t.reverifyDueAt),
    // A schedule slot is filled once per database, however often the timer fires.
    uniqueIndex('jobs_schedule_slot_uq').on(t.databaseId, t.scheduleSlot).where(sql`${sql.identifier('schedule_slot')} is not null`),
    check('jobs_engine_check', oneOf(t.engine, enumValues.engine)),
    check('jobs_status_check', oneOf(t.status, enumValues.status)),
    check('jobs_trigger_check', oneOf(t.trigger, enumValues.trigger)),
    check('jobs_restore_result_check', oneOf(t.restoreResult, enumValues.restoreResult)),
  ],
);

/** Append-only: the store never updates or deletes a row here. */
export const auditEvents = mssqlTable(
  'audit_events',
  {
    id: nvarchar('id', { length: len.id }).primaryKey(),
    at: instant('at').notNull(),
    actorType: nvarchar('actor_type', { length: len.actorType, enum: enumValues.actorType }).notNull(),
    actorId: nvarchar('actor_id', { length: len.oid }).notNull(),
    actorName: nvarchar('actor_name', { length: len.actorName }),
    action: nvarchar('action', { length: len.action, enum: enumValues.action }).notNull(),
    target: nvarchar('target', { length: len.target }).notNull(),
    jobId: nvarchar('job_id', { length: len.id }),
    ip: nvarchar('ip', { length: len.ip }),
    userAgent: nvarchar('user_agent', { length: len.userAgent }),
    /** JSON object of extra facts. */
    detail: json('detail').notNull(),
  },
  (t) => [
    index('audit_events_at_idx').on(t.at, t.id),
    index('audit_events_job_id_idx').on(t.jobId),
    index('audit_events_actor_id_idx').on(t.actorId),
    check('audit_events_actor_type_check', oneOf(t.actorType, enumValues.actorType)),
    check('audit_events_action_check', oneOf(t.action, enumValues.action)),
  ],
);

/**
 * Transactional outbox of notifications: a row is written with the audit row of every notifiable action
 * (shared/contracts/notifications.ts), in the same transaction, and the notifier delivers it later.
 */
export const notificationOutbox = mssqlTable(
  'notification_outbox',
  {
    /** The audit event's id. */
    id: nvarchar('id', { length: len.id }).primaryKey(),
    action: nvarchar('action', { length: len.action }).notNull(),
    jobId: nvarchar('job_id', { length: len.id }),
    createdAt: instant('created_at').notNull(),
    nextAttemptAt: instant('next_attempt_at').notNull(),
    attempts: int('attempts').notNull(),
    /** JSON array of the channels that have taken it. */
    deliveredTo: nvarchar('delivered_to', { length: len.channels }).notNull(),
    doneAt: instant('done_at'),
    lastError: nvarchar('last_error', { length: len.errorMessage }),
  },
  (t) => [index('notification_outbox_pending_idx').on(t.doneAt, t.nextAttemptAt)],
);

/** Requesters' age public keys (PUT /api/me/recipients); a requester's copies are encrypted to them. */
export const requesterRecipients = mssqlTable(
  'requester_recipients',
  {
    id: nvarchar('id', { length: len.id }).primaryKey(),
    requesterOid: nvarchar('requester_oid', { length: len.oid }).notNull(),
    recipient: nvarchar('recipient', { length: len.ageRecipient }).notNull(),
    fingerprint: nvarchar('fingerprint', { length: len.fingerprint }).notNull(),
    createdAt: instant('created_at').notNull(),
  },
  (t) => [uniqueIndex('requester_recipients_oid_fingerprint_uq').on(t.requesterOid, t.fingerprint)],
);
