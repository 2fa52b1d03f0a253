/**
 * The Store, written once over a small set of dialect primitives (insert/select/update/delete on one table).
 * Everything that decides something lives here: transactions, compare-and-set transitions, audit rows,
 * pagination, duplicate schedule slots. The SQL Server and PostgreSQL adapters only build and run queries.
 */
import { randomUUID } from 'node:crypto';
import { and, asc, count, desc, eq, gte, inArray, isNotNull, isNull, lt, lte, max, or, sum, type AnyColumn, type SQL } from 'drizzle-orm';
import type { AuditAction } from '../contracts/audit.js';
import { canTransition, runnableStatuses, type JobStatus } from '../contracts/jobs.js';
import { notifiableActions } from '../contracts/notifications.js';
import { afterCursor, decodeCursor, toPage } from './cursor.js';
import { len } from './columns.js';
import {
  auditRow,
  databaseJsonColumns,
  definedOnly,
  toAuditRecord,
  toDatabaseRecord,
  toJobRecord,
  toServerRecord,
  toRunnerHeartbeatRecord,
  type AuditRow,
  type JobRow,
  type Rows,
  type StoreTables,
  type TableName,
} from './rows.js';
import type { AuditEntry, JobPatch, JobRecord, PageOf, Store } from './store.js';

/** Statuses in which a job's backup (and its manifest) still exists. */
const backupHoldingStatuses: JobStatus[] = ['Available', 'Corrupt'];

export interface SelectQuery {
  where?: SQL;
  orderBy?: SQL[];
  limit?: number;
}

/** `count(*)` per group of `groupBy`, with sums and maxima of other columns. */
export interface AggregateQuery {
  groupBy: Record<string, AnyColumn>;
  where?: SQL;
  sum?: Record<string, AnyColumn>;
  max?: Record<string, AnyColumn>;
}

/** The select list of an aggregate query; the same SQL functions in both dialects. */
export function aggregateFields(query: AggregateQuery): Record<string, AnyColumn | SQL | SQL.Aliased> {
  const fields: Record<string, AnyColumn | SQL | SQL.Aliased> = { ...query.groupBy, count: count() };
  for (const [key, column] of Object.entries(query.sum ?? {})) fields[key] = sum(column);
  for (const [key, column] of Object.entries(query.max ?? {})) fields[key] = max(column);
  return fields;
}

/** What a dialect must provide: single-table statements, each run on the connection or transaction it is bound to. */
export interface SqlOps {
  /** One row per group: the group's columns, `count`, and each sum and maximum under its key, as the driver returns them. */
  aggregate(table: TableName, query: AggregateQuery): Promise<Array<Record<string, unknown>>>;
  insert<T extends TableName>(table: T, row: Rows[T]): Promise<Rows[T]>;
  select<T extends TableName>(table: T, query: SelectQuery): Promise<Rows[T][]>;
  /** Returns the rows as they are after the update. */
  update<T extends TableName>(table: T, set: Partial<Rows[T]>, where: SQL): Promise<Rows[T][]>;
  /** Returns how many rows were deleted. */
  delete(table: TableName, where: SQL): Promise<number>;
}

export interface DialectAdapter {
  readonly dialect: Store['dialect'];
  readonly tables: StoreTables;
  readonly ops: SqlOps;
  /** Runs `work` in one transaction: commits if it resolves, rolls back and rethrows if it throws. */
  transaction<R>(work: (ops: SqlOps) => Promise<R>): Promise<R>;
  /** A unique-index violation, however the driver reports it (possibly wrapped by Drizzle). */
  isDuplicateKey(error: unknown): boolean;
  close(): Promise<void>;
}

export interface RepositoryOptions {
  /** The store's clock, used when an audit entry or call brings no time of its own. */
  now?: () => Date;
}

/** Fields of a job patch that map 1:1 to job columns (JobPatch is a subset of JobRecord). */
function jobColumnsFromPatch(patch: JobPatch | undefined): Partial<JobRow> {
  if (!patch) return {};
  const { tableRowCounts, ...rest } = patch;
  const columns: Partial<JobRow> = definedOnly(rest);
  if (typeof columns.errorMessage === 'string') columns.errorMessage = truncateToColumn(columns.errorMessage, len.errorMessage);
  if (tableRowCounts !== undefined) columns.tableRowCounts = tableRowCounts && JSON.stringify(tableRowCounts);
  return columns;
}

/** At most `length` UTF-16 units (what nvarchar counts), never ending inside a surrogate pair. */
export function truncateToColumn(text: string, length: number): string {
  if (text.length <= length) return text;
  const cut = text.slice(0, length);
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
}

/**
 * Looks for a match in an error and what it wraps: Drizzle wraps driver errors in DrizzleQueryError (`cause`),
 * mssql wraps tedious errors (`originalError`).
 */
export function someCause(error: unknown, test: (candidate: Record<string, unknown>) => boolean, depth = 0): boolean {
  if (!error || typeof error !== 'object' || depth > 5) return false;
  const candidate = error as Record<string, unknown>;
  return (
    test(candidate) || someCause(candidate.cause, test, depth + 1) || someCause(candidate.originalError, test, depth + 1)
  );
}

/**
 * Writes an audit row, and for a notifiable action its outbox row, on `on` (a transaction when the caller has
 * one): the notification is committed exactly when the step it reports is.
 */
async function insertAuditRow(on: SqlOps, row: AuditRow): Promise<AuditRow> {
  const inserted = await on.insert('auditEvents', row);
  if (notifiableActions.has(row.action)) {
    await on.insert('notificationOutbox', {
      id: row.id,
      action: row.action,
      jobId: row.jobId,
      createdAt: row.at,
      nextAttemptAt: row.at,
      attempts: 0,
      deliveredTo: '[]',
      doneAt: null,
      lastError: null,
    });
  }
  return inserted;
}

const toNumber = (value: unknown): number => (value === null || value === undefined ? 0 : Number(value));
const toDateOrNull = (value: unknown): Date | null =>
  value === null || value === undefined ? null : value instanceof Date ? value : new Date(String(value));

export function createRepositoryStore(adapter: DialectAdapter, options: RepositoryOptions = {}): Store {
  const { tables: t, ops } = adapter;
  const now = options.now ?? (() => new Date());

  async function findJob(on: SqlOps, id: string): Promise<JobRecord | undefined> {
    const [row] = await on.select('jobs', { where: eq(t.jobs.id, id) });
    return row && toJobRecord(row);
  }

  /** Inserts a row and its audit row in one transaction. */
  function insertAudited<T extends TableName, R>(
    table: T,
    row: Rows[T],
    audit: AuditEntry,
    at: Date,
    toRecord: (row: Rows[T]) => R,
    jobId?: string,
  ): Promise<R> {
    return adapter.transaction(async (tx) => {
      const inserted = await tx.insert(table, row);
      await insertAuditRow(tx, auditRow(audit, at, { jobId }));
      return toRecord(inserted);
    });
  }

  /** Updates the row(s) `where` selects and, only if one changed, writes the audit row; one transaction. */
  function updateAudited<T extends TableName, R>(
    table: T,
    set: Partial<Rows[T]>,
    where: SQL,
    audit: AuditEntry,
    at: Date,
    toRecord: (row: Rows[T]) => R,
    jobId?: string,
  ): Promise<R | undefined> {
    return adapter.transaction(async (tx) => {
      const [row] = await tx.update(table, set, where);
      if (!row) return undefined;
      await insertAuditRow(tx, auditRow(audit, at, { jobId }));
      return toRecord(row);
    });
  }

  /** Within `tx`: deletes by id and, only if a row went, writes the audit row. */
  async function deleteAudited(tx: SqlOps, table: 'servers' | 'databases', id: string, audit: AuditEntry, at: Date) {
    if ((await tx.delete(table, eq(t[table].id, id))) === 0) return 'not_found' as const;
    await insertAuditRow(tx, auditRow(audit, at));
    return 'deleted' as const;
  }

  /** One page, newest first, of the rows matching `conditions`, after the filter's cursor (see cursor.ts). */
  async function keysetPage<T extends 'jobs' | 'auditEvents', R>(
    table: T,
    timeColumn: keyof Rows[T] & ('createdAt' | 'at'),
    conditions: SQL[],
    filter: { cursor?: string; limit: number },
    toRecord: (row: Rows[T]) => R,
  ): Promise<PageOf<R>> {
    const columns = t[table] as Record<string, AnyColumn>;
    const [time, id] = [columns[timeColumn]!, columns.id!];
    if (filter.cursor !== undefined) conditions.push(afterCursor(time, id, decodeCursor(filter.cursor)));
    const rows = await ops.select(table, { where: and(...conditions), orderBy: [desc(time), desc(id)], limit: filter.limit + 1 });
    const page = toPage(rows, filter.limit, (row) => ({ at: row[timeColumn] as Date, id: row.id }));
    return { ...page, items: page.items.map(toRecord) };
  }

  async function insertJob(job: Parameters<Store['createJob']>[0], audit: Parameters<Store['createJob']>[1]) {
    const at = job.createdAt ?? audit.at ?? now();
    const row: JobRow = {
      id: job.id,
      databaseId: job.databaseId,
      serverId: job.serverId,
      databaseName: job.databaseName,
      engine: job.engine,
      status: 'Pending',
      options: JSON.stringify(job.options),
      requesterOid: job.requesterOid,
      requesterUpn: job.requesterUpn,
      trigger: job.trigger,
      scheduleSlot: job.scheduleSlot ?? null,
      blobPath: job.blobPath,
      progressPercent: null,
      progressBytes: null,
      progressUpdatedAt: null,
      sizeBytes: null,
      sha256: null,
      errorCode: null,
      errorMessage: null,
      downloadExpiresAt: null,
      createdAt: at,
      updatedAt: at,
      acceptedAt: null,
      completedAt: null,
      expiresAt: null,
      approvalDecision: null,
      approvalByOid: null,
      approvalByUpn: null,
      approvalAt: null,
      approvalReason: null,
      maskingVersion: null,
      tableRowCounts: null,
      restoreVerifiedAt: null,
      restoreDurationMs: null,
      restoreResult: null,
      restoreError: null,
      encryptionRecipients: job.encryptionRecipients ? JSON.stringify(job.encryptionRecipients) : null,
      verifiedAt: null,
      reverifyDueAt: null,
      corruptAt: null,
      manifestKeyId: null,
    };
    return insertAudited('jobs', row, audit, at, toJobRecord, job.id);
  }

  return {
    dialect: adapter.dialect,

    // One row from a table of ours: proves the connection and that the schema is there.
    ping: async () => {
      await ops.select('servers', { limit: 1 });
    },
    close: () => adapter.close(),

    async createServer(input, audit) {
      const at = audit.at ?? now();
      const row = {
        id: input.id ?? randomUUID(),
        name: input.name,
        host: input.host,
        engine: input.engine,
        description: input.description ?? null,
        runners: JSON.stringify(input.runners ?? []),
        createdAt: at,
        updatedAt: at,
      };
      return insertAudited('servers', row, audit, at, toServerRecord);
    },

    async getServer(id) {
      const [row] = await ops.select('servers', { where: eq(t.servers.id, id) });
      return row && toServerRecord(row);
    },

    async listServers() {
      const rows = await ops.select('servers', { orderBy: [asc(t.servers.name), asc(t.servers.id)] });
      return rows.map(toServerRecord);
    },

    async updateServer(id, patch, audit) {
      const at = audit.at ?? now();
      const { id: _ignoredId, runners, ...fields } = patch;
      const set = { ...definedOnly(fields), ...(runners !== undefined ? { runners: JSON.stringify(runners) } : {}), updatedAt: at };
      return updateAudited('servers', set, eq(t.servers.id, id), audit, at, toServerRecord);
    },

    async recordRunnerHeartbeat(heartbeat) {
      const row = { ...heartbeat, id: `${heartbeat.clientId}/${heartbeat.runnerId}`, serverIds: JSON.stringify(heartbeat.serverIds) };
      const { id, ...set } = row;
      await adapter.transaction(async (tx) => {
        const [updated] = await tx.update('runnerHeartbeats', set, eq(t.runnerHeartbeats.id, id));
        if (!updated) await tx.insert('runnerHeartbeats', row);
      });
    },

    async listRunnerHeartbeats() {
      const rows = await ops.select('runnerHeartbeats', { orderBy: [asc(t.runnerHeartbeats.runnerId), asc(t.runnerHeartbeats.id)] });
      return rows.map(toRunnerHeartbeatRecord);
    },

    async deleteServer(id, audit) {
      const at = audit.at ?? now();
      return adapter.transaction(async (tx) => {
        const children = await tx.select('databases', { where: eq(t.databases.serverId, id), limit: 1 });
        if (children.length > 0) return 'has_databases' as const;
        return deleteAudited(tx, 'servers', id, audit, at);
      });
    },

    async createDatabase(input, audit) {
      const at = audit.at ?? now();
      const row = {
        id: input.id ?? randomUUID(),
        serverId: input.serverId,
        name: input.name,
        requesterGroupIds: JSON.stringify(input.requesterGroupIds),
        policy: JSON.stringify(input.policy),
        schedule: input.schedule === null ? null : JSON.stringify(input.schedule),
        enabled: input.enabled,
        rpoBreachedAt: null,
        createdAt: at,
        updatedAt: at,
      };
      return insertAudited('databases', row, audit, at, toDatabaseRecord);
    },

    async getDatabase(id) {
      const [row] = await ops.select('databases', { where: eq(t.databases.id, id) });
      return row && toDatabaseRecord(row);
    },

    async listDatabases(serverId) {
      const rows = await ops.select('databases', {
        where: eq(t.databases.serverId, serverId),
        orderBy: [asc(t.databases.name), asc(t.databases.id)],
      });
      return rows.map(toDatabaseRecord);
    },

    async listAllDatabases() {
      const rows = await ops.select('databases', { orderBy: [asc(t.databases.id)] });
      return rows.map(toDatabaseRecord);
    },

    async setRpoBreach(databaseId, since, audit) {
      const at = audit.at ?? now();
      const unchanged = since === null ? isNotNull(t.databases.rpoBreachedAt) : isNull(t.databases.rpoBreachedAt);
      const where = and(eq(t.databases.id, databaseId), unchanged)!;
      return updateAudited('databases', { rpoBreachedAt: since }, where, audit, at, toDatabaseRecord);
    },

    async listScheduledDatabases() {
      const rows = await ops.select('databases', {
        where: and(eq(t.databases.enabled, true), isNotNull(t.databases.schedule)),
        orderBy: [asc(t.databases.id)],
      });
      return rows.map(toDatabaseRecord);
    },

    async updateDatabase(id, patch, audit) {
      const at = audit.at ?? now();
      const set = {
        ...definedOnly({ name: patch.name, enabled: patch.enabled }),
        ...databaseJsonColumns(patch),
        updatedAt: at,
      };
      return updateAudited('databases', set, eq(t.databases.id, id), audit, at, toDatabaseRecord);
    },

    async deleteDatabase(id, audit) {
      const at = audit.at ?? now();
      return adapter.transaction((tx) => deleteAudited(tx, 'databases', id, audit, at));
    },

    createJob: insertJob,

    async createScheduledJob(job, audit) {
      try {
        return await insertJob(job, audit);
      } catch (error) {
        // The unique (database_id, schedule_slot) index decided: another call already filled this slot.
        if (adapter.isDuplicateKey(error)) return undefined;
        throw error;
      }
    },

    getJob: (id) => findJob(ops, id),

    async listJobs(filter) {
      const conditions: SQL[] = [];
      if (filter.requesterOid !== undefined) conditions.push(eq(t.jobs.requesterOid, filter.requesterOid));
      if (filter.status !== undefined) conditions.push(eq(t.jobs.status, filter.status));
      return keysetPage('jobs', 'createdAt', conditions, filter, toJobRecord);
    },

    async transitionJob(id, change, audit) {
      // Only the `from` states that may legally become `to`: a caller cannot push a job backwards by listing it.
      const from = change.from.filter((status) => canTransition(status, change.to));
      if (from.length === 0) return { ok: false, current: await findJob(ops, id) };
      const at = change.at ?? audit.at ?? now();
      return adapter.transaction(async (tx) => {
        const [row] = await tx.update(
          'jobs',
          { ...jobColumnsFromPatch(change.patch), status: change.to, updatedAt: at },
          and(eq(t.jobs.id, id), inArray(t.jobs.status, from))!,
        );
        if (!row) return { ok: false as const, current: await findJob(tx, id) };
        await insertAuditRow(tx, auditRow(audit, at, { jobId: id }));
        return { ok: true as const, job: toJobRecord(row) };
      });
    },

    async updateJobProgress(id, progress, options = {}) {
      const at = progress.at ?? now();
      const conditions = [eq(t.jobs.id, id), inArray(t.jobs.status, runnableStatuses as JobStatus[])];
      if (options.notWithinMs !== undefined) {
        const cutoff = new Date(at.getTime() - options.notWithinMs);
        conditions.push(or(isNull(t.jobs.progressUpdatedAt), lte(t.jobs.progressUpdatedAt, cutoff))!);
      }
      const rows = await ops.update(
        'jobs',
        { progressPercent: progress.percent, progressBytes: progress.bytes, progressUpdatedAt: at, updatedAt: at },
        and(...conditions)!,
      );
      return rows.length > 0;
    },

    async recordRestoreRehearsal(id, outcome, audit) {
      const set = {
        restoreVerifiedAt: outcome.at,
        restoreDurationMs: outcome.durationMs,
        restoreResult: outcome.result,
        restoreError: outcome.error,
        updatedAt: outcome.at,
      };
      // Only a backup that still exists has something to rehearse.
      return updateAudited('jobs', set, and(eq(t.jobs.id, id), eq(t.jobs.status, 'Available'))!, audit, audit.at ?? outcome.at, toJobRecord, id);
    },

    async recordDownloadLink(id, link, audit) {
      const at = audit.at ?? now();
      // Links are only for backups that exist and are verified.
      const set = { downloadExpiresAt: link.expiresAt, updatedAt: at };
      return updateAudited('jobs', set, and(eq(t.jobs.id, id), eq(t.jobs.status, 'Available'))!, audit, at, toJobRecord, id);
    },

    async listExpiredJobs(at, limit) {
      const rows = await ops.select('jobs', {
        where: and(inArray(t.jobs.status, backupHoldingStatuses), lt(t.jobs.expiresAt, at)),
        orderBy: [asc(t.jobs.expiresAt), asc(t.jobs.id)],
        limit,
      });
      return rows.map(toJobRecord);
    },

    async listRequesterRecipients(requesterOid) {
      const rows = await ops.select('requesterRecipients', {
        where: eq(t.requesterRecipients.requesterOid, requesterOid),
        orderBy: [asc(t.requesterRecipients.createdAt), asc(t.requesterRecipients.id)],
      });
      return rows.map(({ recipient, fingerprint, createdAt }) => ({ recipient, fingerprint, createdAt }));
    },

    async replaceRequesterRecipients(requesterOid, recipients, audit) {
      const at = audit.at ?? now();
      return adapter.transaction(async (tx) => {
        await tx.delete('requesterRecipients', eq(t.requesterRecipients.requesterOid, requesterOid));
        const kept = [];
        // Milliseconds apart so "oldest first" keeps the caller's order.
        for (const [i, { recipient, fingerprint }] of recipients.entries()) {
          const createdAt = new Date(at.getTime() + i);
          await tx.insert('requesterRecipients', { id: randomUUID(), requesterOid, recipient, fingerprint, createdAt });
          kept.push({ recipient, fingerprint, createdAt });
        }
        await tx.insert('auditEvents', auditRow(audit, at));
        return kept;
      });
    },

    async listReverifyDue(at, limit) {
      const rows = await ops.select('jobs', {
        where: and(eq(t.jobs.status, 'Available'), lte(t.jobs.reverifyDueAt, at)),
        orderBy: [asc(t.jobs.reverifyDueAt), asc(t.jobs.id)],
        limit,
      });
      return rows.map(toJobRecord);
    },

    async recordVerification(id, result, audit) {
      const at = audit.at ?? now();
      const set = { verifiedAt: result.verifiedAt, reverifyDueAt: result.reverifyDueAt, updatedAt: at };
      return updateAudited('jobs', set, and(eq(t.jobs.id, id), eq(t.jobs.status, 'Available'))!, audit, at, toJobRecord, id);
    },

    async isManifestKeyInUse(keyId, at) {
      const rows = await ops.select('jobs', {
        where: and(eq(t.jobs.manifestKeyId, keyId), inArray(t.jobs.status, backupHoldingStatuses), gte(t.jobs.expiresAt, at)),
        limit: 1,
      });
      return rows.length > 0;
    },

    async appendAudit(entry) {
      const row = auditRow(entry, now());
      // Its own transaction when it carries a notification, so neither row exists without the other.
      const inserted = notifiableActions.has(row.action)
        ? await adapter.transaction((tx) => insertAuditRow(tx, row))
        : await ops.insert('auditEvents', row);
      return toAuditRecord(inserted);
    },

    async listAudit(filter) {
      const conditions: SQL[] = [];
      if (filter.from !== undefined) conditions.push(gte(t.auditEvents.at, filter.from));
      if (filter.to !== undefined) conditions.push(lte(t.auditEvents.at, filter.to));
      if (filter.actor !== undefined) {
        conditions.push(or(eq(t.auditEvents.actorId, filter.actor), eq(t.auditEvents.actorName, filter.actor))!);
      }
      if (filter.action !== undefined) conditions.push(eq(t.auditEvents.action, filter.action));
      if (filter.jobId !== undefined) conditions.push(eq(t.auditEvents.jobId, filter.jobId));
      return keysetPage('auditEvents', 'at', conditions, filter, toAuditRecord);
    },

    async tallyJobs() {
      const rows = await ops.aggregate('jobs', {
        groupBy: { databaseId: t.jobs.databaseId, status: t.jobs.status, errorCode: t.jobs.errorCode },
        sum: { bytes: t.jobs.sizeBytes },
        max: { lastCompletedAt: t.jobs.completedAt },
      });
      return rows.map((row) => ({
        databaseId: String(row.databaseId),
        status: row.status as JobStatus,
        errorCode: (row.errorCode as string | null) ?? null,
        jobs: toNumber(row.count),
        bytes: toNumber(row.bytes),
        lastCompletedAt: toDateOrNull(row.lastCompletedAt),
      }));
    },

    async countAuditActions() {
      const rows = await ops.aggregate('auditEvents', { groupBy: { action: t.auditEvents.action } });
      return rows.map((row) => ({ action: row.action as AuditAction, count: toNumber(row.count) }));
    },

    async listCompletedJobs(since, limit) {
      const rows = await ops.select('jobs', {
        where: gte(t.jobs.completedAt, since),
        orderBy: [desc(t.jobs.completedAt), desc(t.jobs.id)],
        limit,
      });
      return rows.map(toJobRecord);
    },

    async listPendingNotifications(at, limit) {
      const outbox = await ops.select('notificationOutbox', {
        where: and(isNull(t.notificationOutbox.doneAt), lte(t.notificationOutbox.nextAttemptAt, at)),
        orderBy: [asc(t.notificationOutbox.createdAt), asc(t.notificationOutbox.id)],
        limit,
      });
      if (outbox.length === 0) return [];
      const events = await ops.select('auditEvents', { where: inArray(t.auditEvents.id, outbox.map((row) => row.id)) });
      const byId = new Map(events.map((row) => [row.id, toAuditRecord(row)]));
      return outbox.flatMap((row) => {
        const event = byId.get(row.id);
        return event ? [{ event, attempts: row.attempts, deliveredTo: JSON.parse(row.deliveredTo) as string[] }] : [];
      });
    },

    async recordNotificationAttempt(id, outcome) {
      const [row] = await ops.select('notificationOutbox', { where: eq(t.notificationOutbox.id, id) });
      if (!row) return;
      await ops.update(
        'notificationOutbox',
        {
          attempts: row.attempts + 1,
          deliveredTo: JSON.stringify(outcome.deliveredTo),
          nextAttemptAt: outcome.nextAttemptAt,
          doneAt: outcome.done ? outcome.at : null,
          lastError: outcome.error === null ? null : truncateToColumn(outcome.error, len.errorMessage),
        },
        eq(t.notificationOutbox.id, id),
      );
    },
  };
}
