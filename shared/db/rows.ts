/**
 * Rows as both dialects read and write them (the schemas agree column for column), the mapping between rows
 * and the records of store.ts, and the audit row builder. Written once for every dialect.
 */
import { randomUUID } from 'node:crypto';
import type { AnyColumn } from 'drizzle-orm';
import { DatabasePolicy, DatabaseSchedule } from '../contracts/servers.js';
import type * as pg from './schema.pg.js';
import type * as mssql from './schema.mssql.js';
import type { CopyRecipient } from '../contracts/encryption.js';
import type { AuditEntry, AuditRecord, DatabaseRecord, JobRecord, RunnerHeartbeatRecord, ServerRecord } from './store.js';

export type ServerRow = typeof pg.servers.$inferSelect;
export type DatabaseRow = typeof pg.databases.$inferSelect;
export type JobRow = typeof pg.jobs.$inferSelect;
export type AuditRow = typeof pg.auditEvents.$inferSelect;
export type RunnerHeartbeatRow = typeof pg.runnerHeartbeats.$inferSelect;
export type OutboxRow = typeof pg.notificationOutbox.$inferSelect;
export type RequesterRecipientRow = typeof pg.requesterRecipients.$inferSelect;

export interface Rows {
  servers: ServerRow;
  databases: DatabaseRow;
  jobs: JobRow;
  auditEvents: AuditRow;
  runnerHeartbeats: RunnerHeartbeatRow;
  notificationOutbox: OutboxRow;
  requesterRecipients: RequesterRecipientRow;
}
export type TableName = keyof Rows;

/** The columns of each table, as the dialect-neutral code refers to them in conditions and ordering. */
export type StoreTables = { [T in TableName]: { [C in keyof Rows[T]]-?: AnyColumn } };

// Compile-time proof that the SQL Server tables read into the same rows as the PostgreSQL ones.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameRows: [
  Same<ServerRow, typeof mssql.servers.$inferSelect>,
  Same<DatabaseRow, typeof mssql.databases.$inferSelect>,
  Same<JobRow, typeof mssql.jobs.$inferSelect>,
  Same<AuditRow, typeof mssql.auditEvents.$inferSelect>,
  Same<RunnerHeartbeatRow, typeof mssql.runnerHeartbeats.$inferSelect>,
  Same<OutboxRow, typeof mssql.notificationOutbox.$inferSelect>,
  Same<RequesterRecipientRow, typeof mssql.requesterRecipients.$inferSelect>,
] = [true, true, true, true, true, true, true];
void sameRows;

export function toServerRecord(row: ServerRow): ServerRecord {
  return { ...row, runners: JSON.parse(row.runners) as ServerRecord['runners'] };
}

export function toRunnerHeartbeatRecord(row: RunnerHeartbeatRow): RunnerHeartbeatRecord {
  return { ...row, serverIds: JSON.parse(row.serverIds) as string[] };
}

export function toDatabaseRecord(row: DatabaseRow): DatabaseRecord {
  return {
    ...row,
    requesterGroupIds: JSON.parse(row.requesterGroupIds) as string[],
    // Parsed, not cast: a row written before a field existed reads with that field's default.
    policy: DatabasePolicy.parse(JSON.parse(row.policy)),
    schedule: row.schedule === null ? null : DatabaseSchedule.parse(JSON.parse(row.schedule)),
  };
}

export function toJobRecord(row: JobRow): JobRecord {
  const options = JSON.parse(row.options) as Omit<JobRecord['options'], 'encryption'> & { encryption: JobRecord['options']['encryption'] | boolean };
  // Rows from before age stored a boolean: `true` was the runner-key format (DBDE).
  const encryption = options.encryption === true ? 'dbde' : options.encryption === false ? 'none' : options.encryption;
  return {
    ...row,
    options: { ...options, encryption },
    encryptionRecipients: row.encryptionRecipients === null ? null : (JSON.parse(row.encryptionRecipients) as CopyRecipient[]),
    tableRowCounts: row.tableRowCounts == null ? null : (JSON.parse(row.tableRowCounts) as Record<string, number>),
    restoreResult: row.restoreResult as JobRecord['restoreResult'],
  };
}

export function toAuditRecord(row: AuditRow): AuditRecord {
  return { ...row, detail: JSON.parse(row.detail) as Record<string, unknown> };
}

/** The database fields that are JSON text in the table. */
export function databaseJsonColumns(input: {
  requesterGroupIds?: string[];
  policy?: DatabaseRecord['policy'];
  schedule?: DatabaseRecord['schedule'];
}): Partial<Pick<DatabaseRow, 'requesterGroupIds' | 'policy' | 'schedule'>> {
  const columns: Partial<Pick<DatabaseRow, 'requesterGroupIds' | 'policy' | 'schedule'>> = {};
  if (input.requesterGroupIds !== undefined) columns.requesterGroupIds = JSON.stringify(input.requesterGroupIds);
  if (input.policy !== undefined) columns.policy = JSON.stringify(input.policy);
  if (input.schedule !== undefined) columns.schedule = input.schedule === null ? null : JSON.stringify(input.schedule);
  return columns;
}

/**
 * The audit row for an entry: a fresh id, the entry's time or `now`, absent optional facts as null.
 * `jobId` defaults to the job the operation is about, so a job's trail is complete even if a caller forgets it.
 */
export function auditRow(entry: AuditEntry, now: Date, defaults: { jobId?: string } = {}): AuditRow {
  return {
    id: randomUUID(),
    at: entry.at ?? now,
    actorType: entry.actorType,
    actorId: entry.actorId,
    actorName: entry.actorName ?? null,
    action: entry.action,
    target: entry.target,
    jobId: entry.jobId ?? defaults.jobId ?? null,
    ip: entry.ip ?? null,
    userAgent: entry.userAgent ?? null,
    detail: JSON.stringify(entry.detail ?? {}),
  };
}

/** Drops keys whose value is undefined, so a patch never writes NULL over a column it did not mention. */
export function definedOnly<T extends object>(patch: T): Partial<T> {
  return Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined)) as Partial<T>;
}
