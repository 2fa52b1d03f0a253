/**
 * PostgreSQL schema (tests, the local sandbox, PGlite). Mirrors schema.mssql.ts table for table and column for
 * column; test/shared/db/schema.test.ts checks that they agree.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  doublePrecision,
  index,
  integer,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  varchar,
} from 'drizzle-orm/pg-core';
import { enumValues, len, oneOf } from './columns.js';

/** Millisecond precision: what a JS Date holds, so keyset cursors compare equal after a round trip. */
const instant = (name: string) => timestamp(name, { withTimezone: true, precision: 3, mode: 'date' });

export const servers = pgTable(
  'servers',
  {
    id: varchar('id', { length: len.id }).primaryKey(),
    name: varchar('name', { length: len.name }).notNull(),
    host: varchar('host', { length: len.host }).notNull(),
    engine: varchar('engine', { length: len.engine, enum: enumValues.engine }).notNull(),
    description: varchar('description', { length: len.description }),
    /** JSON array of RunnerBinding: the runner identities allowed to serve this server. */
    runners: text('runners').notNull().default('[]'),
    createdAt: instant('created_at').notNull(),
    updatedAt: instant('updated_at').notNull(),
  },
  (t) => [check('servers_engine_check', oneOf(t.engine, enumValues.engine))],
);

/** The last heartbeat of each runner host (`POST /api/runner/heartbeat`); not audited, overwritten each time. */
export const runnerHeartbeats = pgTable('runner_heartbeats', {
  id: varchar('id', { length: len.runnerKey }).primaryKey(),
  runnerId: varchar('runner_id', { length: len.runnerId }).notNull(),
  clientId: varchar('client_id', { length: len.oid }).notNull(),
  servicePrincipalId: varchar('service_principal_id', { length: len.oid }).notNull(),
  version: varchar('version', { length: len.version }).notNull(),
  /** JSON array of the server ids the runner says it serves. */
  serverIds: text('server_ids').notNull(),
  inFlightJobs: integer('in_flight_jobs').notNull(),
  freeScratchBytes: bigint('free_scratch_bytes', { mode: 'number' }),
  lastSeenAt: instant('last_seen_at').notNull(),
});

export const databases = pgTable(
  'databases',
  {
    id: varchar('id', { length: len.id }).primaryKey(),
    serverId: varchar('server_id', { length: len.id })
      .notNull()
      .references(() => servers.id),
    name: varchar('name', { length: len.name }).notNull(),
    /** JSON array of Entra group object ids. */
    requesterGroupIds: text('requester_group_ids').notNull(),
    /** JSON DatabasePolicy. */
    policy: text('policy').notNull(),
    /** JSON DatabaseSchedule, or null when the database has no schedule. */
    schedule: text('schedule'),
    enabled: boolean('enabled').notNull(),
    /** Since when the last good backup is older than the policy's RPO; null while within it. */
    rpoBreachedAt: instant('rpo_breached_at'),
    createdAt: instant('created_at').notNull(),
    updatedAt: instant('updated_at').notNull(),
  },
  (t) => [index('databases_server_id_idx').on(t.serverId)],
);

export const jobs = pgTable(
  'jobs',
  {
    id: varchar('id', { length: len.id }).primaryKey(),
    // No foreign key to databases: a job stays readable after its database is removed.
    databaseId: varchar('database_id', { length: len.id }).notNull(),
    serverId: varchar('server_id', { length: len.id }).notNull(),
    databaseName: varchar('database_name', { length: len.name }).notNull(),
    engine: varchar('engine', { length: len.engine, enum: enumValues.engine }).notNull(),
    status: varchar('status', { length: len.status, enum: enumValues.status }).notNull(),
    /** JSON BackupOptions. */
    options: text('options').notNull(),
    requesterOid: varchar('requester_oid', { length: len.oid }).notNull(),
    requesterUpn: varchar('requester_upn', { length: len.upn }),
    trigger: varchar('trigger', { length: len.trigger, enum: enumValues.trigger }).notNull(),
    scheduleSlot: varchar('schedule_slot', { length: len.slot }),
    blobPath: varchar('blob_path', { length: len.blobPath }).notNull(),
    progressPercent: doublePrecision('progress_percent'),
    progressBytes: bigint('progress_bytes', { mode: 'number' }),
    /** When progress was last written (the runner endpoint's throttle). */
    progressUpdatedAt: instant('progress_updated_at'),
    sizeBytes: bigint('size_bytes', { mode: 'number' }),
    sha256: varchar('sha256', { length: len.sha256 }),
    errorCode: varchar('error_code', { length: len.errorCode }),
    errorMessage: varchar('error_message', { length: len.errorMessage }),
    // Expiry of the latest link only: the link itself is a bearer secret, returned once and never stored.
    downloadExpiresAt: instant('download_expires_at'),
    createdAt: instant('created_at').notNull(),
    updatedAt: instant('updated_at').notNull(),
    acceptedAt: instant('accepted_at'),
    completedAt: instant('completed_at'),
    expiresAt: instant('expires_at'),
    /** The approval decision of a `raw-needs-approval` job (set by the orchestration when it applies it). */
    approvalDecision: varchar('approval_decision', { length: len.decision, enum: enumValues.decision }),
    approvalByOid: varchar('approval_by_oid', { length: len.oid }),
    approvalByUpn: varchar('approval_by_upn', { length: len.upn }),
    approvalAt: instant('approval_at'),
    approvalReason: varchar('approval_reason', { length: len.reason }),
    /** Version of the masking rule set the copy was made with; null for a raw copy. */
    maskingVersion: integer('masking_version'),
    /** JSON rows per table (`schema.table`) as the runner counted them in what it stored. */
    tableRowCounts: text('table_row_counts'),
    /** Latest restore rehearsal of this backup. */
    restoreVerifiedAt: instant('restore_verified_at'),
    restoreDurationMs: bigint('restore_duration_ms', { mode: 'number' }),
    restoreResult: varchar('restore_result', { length: len.restoreResult, enum: enumValues.restoreResult }),
    restoreError: varchar('restore_error', { length: len.errorMessage }),
    /** JSON CopyRecipient[] of an age-encrypted copy (public keys, fingerprints, roles); null otherwise. */
    encryptionRecipients: text('encryption_recipients'),
    /** Last time the control plane hashed the stored bytes itself and found the verified digest. */
    verifiedAt: instant('verified_at'),
    /** When the next scheduled re-verification is due (null: never, per the database's policy). */
    reverifyDueAt: instant('reverify_due_at'),
    /** When a re-verification found the stored bytes changed or gone (status Corrupt). */
    corruptAt: instant('corrupt_at'),
    /** Key that signed the backup's manifest (its public key stays published while the backup exists). */
    manifestKeyId: varchar('manifest_key_id', { length: len.keyId }),
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
export const auditEvents = pgTable(
  'audit_events',
  {
    id: varchar('id', { length: len.id }).primaryKey(),
    at: instant('at').notNull(),
    actorType: varchar('actor_type', { length: len.actorType, enum: enumValues.actorType }).notNull(),
    actorId: varchar('actor_id', { length: len.oid }).notNull(),
    actorName: varchar('actor_name', { length: len.actorName }),
    action: varchar('action', { length: len.action, enum: enumValues.action }).notNull(),
    target: varchar('target', { length: len.target }).notNull(),
    jobId: varchar('job_id', { length: len.id }),
    ip: varchar('ip', { length: len.ip }),
    userAgent: varchar('user_agent', { length: len.userAgent }),
    /** JSON object of extra facts. */
    detail: text('detail').notNull(),
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
export const notificationOutbox = pgTable(
  'notification_outbox',
  {
    /** The audit event's id. */
    id: varchar('id', { length: len.id }).primaryKey(),
    action: varchar('action', { length: len.action }).notNull(),
    jobId: varchar('job_id', { length: len.id }),
    createdAt: instant('created_at').notNull(),
    nextAttemptAt: instant('next_attempt_at').notNull(),
    attempts: integer('attempts').notNull(),
    /** JSON array of the channels that have taken it. */
    deliveredTo: varchar('delivered_to', { length: len.channels }).notNull(),
    doneAt: instant('done_at'),
    lastError: varchar('last_error', { length: len.errorMessage }),
  },
  (t) => [index('notification_outbox_pending_idx').on(t.doneAt, t.nextAttemptAt)],
);

/** Requesters' age public keys (PUT /api/me/recipients); a requester's copies are encrypted to them. */
export const requesterRecipients = pgTable(
  'requester_recipients',
  {
    id: varchar('id', { length: len.id }).primaryKey(),
    requesterOid: varchar('requester_oid', { length: len.oid }).notNull(),
    recipient: varchar('recipient', { length: len.ageRecipient }).notNull(),
    fingerprint: varchar('fingerprint', { length: len.fingerprint }).notNull(),
    createdAt: instant('created_at').notNull(),
  },
  (t) => [uniqueIndex('requester_recipients_oid_fingerprint_uq').on(t.requesterOid, t.fingerprint)],
);
