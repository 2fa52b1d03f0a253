/**
 * The store contract: what the control plane needs from its database, whatever the dialect.
 * Implemented for SQL Server (production) and PostgreSQL/PGlite (tests, sandbox) in shared/db; one contract
 * test suite (test/shared/db) runs against every implementation.
 *
 * Rules every implementation keeps:
 * - a job state change and its audit row commit in one transaction, or neither does;
 * - `transitionJob` is compare-and-set on the current status, so a replayed activity cannot apply twice;
 * - audit rows are append-only: nothing here updates or deletes one.
 */
import type { ActorType, AuditAction } from '../contracts/audit.js';
import type { BackupEngine } from '../contracts/common.js';
import type { CopyRecipient } from '../contracts/encryption.js';
import type { ApprovalDecision, BackupOptions, JobStatus } from '../contracts/jobs.js';
import type { DatabasePolicy, DatabaseSchedule } from '../contracts/servers.js';

export interface ServerRecord {
  id: string;
  name: string;
  host: string;
  engine: BackupEngine;
  description: string | null;
  /** Runner identities allowed to serve this server. */
  runners: RunnerBinding[];
  createdAt: Date;
  updatedAt: Date;
}

/** A runner identity: its Entra application (client) id and its service principal's object id. */
export interface RunnerBinding {
  clientId: string;
  servicePrincipalId: string;
}

/** A runner host's last heartbeat. */
export interface RunnerHeartbeatRecord {
  runnerId: string;
  clientId: string;
  servicePrincipalId: string;
  version: string;
  serverIds: string[];
  inFlightJobs: number;
  freeScratchBytes: number | null;
  lastSeenAt: Date;
}

export interface DatabaseRecord {
  id: string;
  serverId: string;
  name: string;
  requesterGroupIds: string[];
  policy: DatabasePolicy;
  schedule: DatabaseSchedule | null;
  enabled: boolean;
  /** Since when the RPO is breached (null while within it); set by the RPO check. */
  rpoBreachedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface JobRecord {
  id: string;
  databaseId: string;
  serverId: string;
  /** Copied at request time so the job stays readable if the database is renamed or removed. */
  databaseName: string;
  engine: BackupEngine;
  status: JobStatus;
  options: BackupOptions;
  requesterOid: string;
  requesterUpn: string | null;
  trigger: 'user' | 'schedule';
  /** For scheduled jobs: the slot (ISO instant) this job fills; unique per database. */
  scheduleSlot: string | null;
  blobPath: string;
  progressPercent: number | null;
  progressBytes: number | null;
  /** When progress was last written. */
  progressUpdatedAt: Date | null;
  sizeBytes: number | null;
  sha256: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  /** Expiry of the latest download link issued (the link itself is never stored: it is a bearer secret). */
  downloadExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  acceptedAt: Date | null;
  completedAt: Date | null;
  /** When the backup is deleted (retention). Set when the job becomes Available. */
  expiresAt: Date | null;
  /** Last time the control plane hashed the stored bytes itself and found the verified digest. */
  verifiedAt: Date | null;
  /** When the next scheduled re-verification is due; null when the policy says never. */
  reverifyDueAt: Date | null;
  /** When a re-verification found the stored bytes changed or gone (status Corrupt). */
  corruptAt: Date | null;
  /** Key id that signed the backup's manifest. */
  manifestKeyId: string | null;
  /** Approval of a `raw-needs-approval` job, once decided. */
  approvalDecision: ApprovalDecision | null;
  approvalByOid: string | null;
  approvalByUpn: string | null;
  approvalAt: Date | null;
  approvalReason: string | null;
  /** Masking rule set version of a sanitized copy (sent to the runner with the job); null for a raw copy. */
  maskingVersion: number | null;
  /** Rows per table in the stored backup, as reported with the upload; a rehearsal compares against them. */
  tableRowCounts: Record<string, number> | null;
  /** Latest restore rehearsal: when, how long the restore took, and how it ended. */
  restoreVerifiedAt: Date | null;
  restoreDurationMs: number | null;
  restoreResult: 'passed' | 'failed' | null;
  restoreError: string | null;
  /** Recipients of an age-encrypted copy, fixed at request time; null when the copy is not age-encrypted. */
  encryptionRecipients: CopyRecipient[] | null;
}

/** One registered age public key of a requester. */
export interface RequesterRecipientRecord {
  recipient: string;
  fingerprint: string;
  createdAt: Date;
}

/** The audit facts a caller supplies; the store adds id and timestamp. */
export interface AuditEntry {
  actorType: ActorType;
  actorId: string;
  actorName?: string | null;
  action: AuditAction;
  /** What was acted on, e.g. `job/<id>`, `server/<id>`. */
  target: string;
  jobId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  detail?: Record<string, unknown>;
  /** Defaults to the store's clock; activities pass the orchestration's time for deterministic rows. */
  at?: Date;
}

export interface AuditRecord extends Required<Omit<AuditEntry, 'at'>> {
  id: string;
  at: Date;
}

export interface NewServer {
  id?: string;
  name: string;
  host: string;
  engine: BackupEngine;
  description?: string | null;
  runners?: RunnerBinding[];
}

export interface NewDatabase {
  id?: string;
  serverId: string;
  name: string;
  requesterGroupIds: string[];
  policy: DatabasePolicy;
  schedule: DatabaseSchedule | null;
  enabled: boolean;
}

export interface NewJob {
  id: string;
  databaseId: string;
  serverId: string;
  databaseName: string;
  engine: BackupEngine;
  options: BackupOptions;
  requesterOid: string;
  requesterUpn: string | null;
  trigger: 'user' | 'schedule';
  scheduleSlot?: string | null;
  blobPath: string;
  encryptionRecipients?: CopyRecipient[] | null;
  createdAt?: Date;
}

/** Fields a transition may set alongside the new status. */
export type JobPatch = Partial<
  Pick<
    JobRecord,
    | 'sizeBytes'
    | 'sha256'
    | 'errorCode'
    | 'errorMessage'
    | 'acceptedAt'
    | 'completedAt'
    | 'expiresAt'
    | 'downloadExpiresAt'
    | 'progressPercent'
    | 'progressBytes'
    | 'approvalDecision'
    | 'approvalByOid'
    | 'approvalByUpn'
    | 'approvalAt'
    | 'approvalReason'
    | 'maskingVersion'
    | 'tableRowCounts'
    | 'verifiedAt'
    | 'reverifyDueAt'
    | 'corruptAt'
    | 'manifestKeyId'
  >
>;

/** The outcome of a restore rehearsal, recorded on the backup's job. */
export interface RestoreRehearsalRecord {
  at: Date;
  durationMs: number;
  result: 'passed' | 'failed';
  error: string | null;
}

export type TransitionResult =
  | { ok: true; job: JobRecord }
  /** The job was not in one of the `from` statuses (or does not exist); nothing was written. */
  | { ok: false; current: JobRecord | undefined };

export interface JobListFilter {
  /** Only this requester's jobs; omitted for admins. */
  requesterOid?: string;
  status?: JobStatus;
  cursor?: string;
  limit: number;
}

export interface AuditFilter {
  from?: Date;
  to?: Date;
  /** Matches actor id or actor name. */
  actor?: string;
  action?: AuditAction;
  jobId?: string;
  cursor?: string;
  limit: number;
}

/** Jobs counted per database, status and error code (one aggregate query; feeds the metrics endpoint). */
export interface JobTally {
  databaseId: string;
  status: JobStatus;
  errorCode: string | null;
  jobs: number;
  /** Sum of the stored sizes. */
  bytes: number;
  /** The newest `completedAt` of these jobs. */
  lastCompletedAt: Date | null;
}

/** A notification waiting in the outbox: its audit event and what delivery has achieved so far. */
export interface PendingNotification {
  event: AuditRecord;
  attempts: number;
  /** Channels that have already taken it. */
  deliveredTo: string[];
}

export interface PageOf<T> {
  items: T[];
  nextCursor?: string;
}

export interface Store {
  readonly dialect: 'mssql' | 'postgres';

  /** Cheap round trip for readiness probes. */
  ping(): Promise<void>;
  close(): Promise<void>;

  createServer(input: NewServer, audit: AuditEntry): Promise<ServerRecord>;
  getServer(id: string): Promise<ServerRecord | undefined>;
  listServers(): Promise<ServerRecord[]>;
  updateServer(id: string, patch: Partial<NewServer>, audit: AuditEntry): Promise<ServerRecord | undefined>;
  /** Refuses (returns 'has_databases') while databases are registered under the server. */
  deleteServer(id: string, audit: AuditEntry): Promise<'deleted' | 'not_found' | 'has_databases'>;
  /** Replaces the runner host's last heartbeat (one row per client id and runner id). */
  recordRunnerHeartbeat(heartbeat: RunnerHeartbeatRecord): Promise<void>;
  listRunnerHeartbeats(): Promise<RunnerHeartbeatRecord[]>;

  createDatabase(input: NewDatabase, audit: AuditEntry): Promise<DatabaseRecord>;
  getDatabase(id: string): Promise<DatabaseRecord | undefined>;
  listDatabases(serverId: string): Promise<DatabaseRecord[]>;
  listScheduledDatabases(): Promise<DatabaseRecord[]>;
  /** Every registered database, by id. */
  listAllDatabases(): Promise<DatabaseRecord[]>;
  /**
   * Records that the database's RPO is breached since `since` (or, with null, that it is met again), with its
   * audit row; compare-and-set, so each breach and each recovery is recorded once. Undefined when nothing changed.
   */
  setRpoBreach(databaseId: string, since: Date | null, audit: AuditEntry): Promise<DatabaseRecord | undefined>;
  updateDatabase(id: string, patch: Partial<Omit<NewDatabase, 'id' | 'serverId'>>, audit: AuditEntry): Promise<DatabaseRecord | undefined>;
  deleteDatabase(id: string, audit: AuditEntry): Promise<'deleted' | 'not_found'>;

  /** Inserts the job in Pending with its `job.requested` audit row. */
  createJob(job: NewJob, audit: AuditEntry): Promise<JobRecord>;
  /**
   * Like createJob, for a schedule slot: returns undefined (and writes nothing) when a job already exists for
   * the same database and slot, so a timer that fires twice never creates two jobs.
   */
  createScheduledJob(job: NewJob & { scheduleSlot: string }, audit: AuditEntry): Promise<JobRecord | undefined>;
  getJob(id: string): Promise<JobRecord | undefined>;
  listJobs(filter: JobListFilter): Promise<PageOf<JobRecord>>;
  /** Compare-and-set on status, with its audit row, in one transaction. */
  transitionJob(
    id: string,
    change: { from: readonly JobStatus[]; to: JobStatus; patch?: JobPatch; at?: Date },
    audit: AuditEntry,
  ): Promise<TransitionResult>;
  /** Progress is not a state change: no audit row, no status check beyond "still running" (Queued or Running). */
  /**
   * Progress on a runnable job (no audit row). With `notWithinMs`, nothing is written when progress was written
   * less than that long before `at` (one conditional statement, so concurrent instances agree). True if written.
   */
  updateJobProgress(id: string, progress: { percent: number; bytes: number; at?: Date }, options?: { notWithinMs?: number }): Promise<boolean>;
  /** Records a rehearsal's outcome on an Available job with its `restore.rehearsed` audit row, in one transaction. */
  recordRestoreRehearsal(id: string, outcome: RestoreRehearsalRecord, audit: AuditEntry): Promise<JobRecord | undefined>;
  /**
   * Records a newly issued download link with its `sas.download_issued` audit row, in one transaction.
   * Only while the job is Available: otherwise (or for an unknown job) returns undefined and writes nothing.
   */
  recordDownloadLink(id: string, link: { expiresAt: Date }, audit: AuditEntry): Promise<JobRecord | undefined>;
  /** Available (or Corrupt) jobs whose expiresAt is before `now`, oldest first. */
  listExpiredJobs(now: Date, limit: number): Promise<JobRecord[]>;
  /** Available jobs whose re-verification is due by `now`, most overdue first. */
  listReverifyDue(now: Date, limit: number): Promise<JobRecord[]>;
  /**
   * Records a re-verification that found the stored bytes intact (`integrity.verified` audit row), in one
   * transaction. Only while the job is Available; otherwise returns undefined and writes nothing.
   */
  recordVerification(id: string, result: { verifiedAt: Date; reverifyDueAt: Date | null }, audit: AuditEntry): Promise<JobRecord | undefined>;
  /** Whether a backup that still exists (Available or Corrupt, not yet past expiry) has a manifest signed by `keyId`. */
  isManifestKeyInUse(keyId: string, now: Date): Promise<boolean>;

  /** A requester's registered age public keys, oldest first. */
  listRequesterRecipients(requesterOid: string): Promise<RequesterRecipientRecord[]>;
  /** Replaces a requester's keys with `recipients` and writes the audit row, in one transaction. */
  replaceRequesterRecipients(
    requesterOid: string,
    recipients: { recipient: string; fingerprint: string }[],
    audit: AuditEntry,
  ): Promise<RequesterRecipientRecord[]>;

  /** Audit rows that go with no state change (refusals, upload SAS issued, cancel requested). */
  appendAudit(entry: AuditEntry): Promise<AuditRecord>;
  listAudit(filter: AuditFilter): Promise<PageOf<AuditRecord>>;

  /** Jobs per database, status and error code, with bytes and the newest completion. One aggregate query. */
  tallyJobs(): Promise<JobTally[]>;
  /** How many audit rows each action has (monotonic: audit rows are never deleted). One aggregate query. */
  countAuditActions(): Promise<Array<{ action: AuditAction; count: number }>>;
  /** Jobs completed at or after `since`, newest first (durations for the metrics). */
  listCompletedJobs(since: Date, limit: number): Promise<JobRecord[]>;

  /** Outbox rows not yet done whose next attempt is due, oldest first, with their audit events. */
  listPendingNotifications(now: Date, limit: number): Promise<PendingNotification[]>;
  /** The outcome of one delivery attempt. `done` ends it (delivered everywhere, or given up). */
  recordNotificationAttempt(
    id: string,
    outcome: { deliveredTo: string[]; done: boolean; nextAttemptAt: Date; error: string | null; at: Date },
  ): Promise<void>;
}
