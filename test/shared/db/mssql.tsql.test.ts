/**
 * Every statement the SQL Server repository issues, built by the real code paths with Drizzle over a database
 * that never connects (`drizzle.mock()`), must parse as T-SQL. No SQL Server runs here, so this is what stands
 * between a Drizzle mssql prerelease and a production syntax error.
 *
 * Known parser gap, handled explicitly: node-sql-parser 5.4's TransactSQL grammar has no OUTPUT clause at all
 * (the word does not occur in build/transactsql.js), so `INSERT … OUTPUT INSERTED.… VALUES …`,
 * `UPDATE … SET … OUTPUT INSERTED.… WHERE …` and `DELETE FROM … OUTPUT DELETED.… WHERE …`, all valid T-SQL
 * (https://learn.microsoft.com/sql/t-sql/queries/output-clause-transact-sql), fail to parse. For those we check the
 * OUTPUT clause against its exact shape (INSERTED./DELETED. + a column of the statement's table, comma separated),
 * then parse the statement without it. A canary test below fails once the parser learns OUTPUT, so the workaround
 * can go.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getTableConfig } from 'drizzle-orm/mssql-core';
import { drizzle } from 'drizzle-orm/node-mssql';
import sqlParser from 'node-sql-parser';
import { describe, expect, it } from 'vitest';
import { DatabaseSchedule, defaultDatabasePolicy } from '../../../shared/contracts/servers.js';
import { encodeCursor } from '../../../shared/db/cursor.js';
import { assertNoTriggers, enabledTriggersStatement, mssqlAdapter, mssqlOps, type QueryRunner } from '../../../shared/db/mssql.js';
import { createRepositoryStore } from '../../../shared/db/repository.js';
import * as schema from '../../../shared/db/schema.mssql.js';
import type { AuditEntry, Store } from '../../../shared/db/store.js';

const parser = new sqlParser.Parser();
const parseTsql = (sql: string) => parser.astify(sql, { database: 'TransactSQL' });

const columnsByTable = new Map(
  Object.values(schema).map((table) => {
    const config = getTableConfig(table);
    return [config.name, new Set(config.columns.map((column) => column.name))];
  }),
);

/** One row that reads as any table's row: every column of every table, with valid JSON where JSON is expected. */
const universalRow = {
  id: randomUUID(),
  name: 'n',
  host: 'h',
  engine: 'postgres',
  description: null,
  serverId: randomUUID(),
  requesterGroupIds: '[]',
  runners: '[]',
  serverIds: '[]',
  policy: JSON.stringify(defaultDatabasePolicy),
  schedule: null,
  enabled: true,
  databaseId: randomUUID(),
  databaseName: 'n',
  status: 'Available',
  options: '{"compression":"none","encryption":"age"}',
  encryptionRecipients: '[]',
  recipient: 'age1x',
  fingerprint: '0123456789abcdef',
  requesterOid: 'oid',
  requesterUpn: null,
  trigger: 'user',
  scheduleSlot: null,
  blobPath: 'b',
  at: new Date(),
  createdAt: new Date(),
  updatedAt: new Date(),
  detail: '{}',
  deliveredTo: '[]',
  attempts: 0,
  actorType: 'user',
  actorId: 'a',
  action: 'job.queued',
  target: 't',
};

interface Recorded {
  method: string;
  sql: string;
}

/**
 * Runs every Store method on a SQL Server store whose statements are recorded instead of sent. Each method runs
 * twice: once as if every lookup finds a row and once as if none does, so both branches' statements are built.
 */
async function recordEveryStatement(): Promise<Recorded[]> {
  const recorded: Recorded[] = [];
  let method = '';
  let lookupsFindRows = true;
  const record: QueryRunner = async (query) => {
    const { sql } = query.toSQL();
    recorded.push({ method, sql });
    return sql.startsWith('insert') || lookupsFindRows ? [universalRow] : [];
  };
  const db = drizzle.mock();
  const store = createRepositoryStore({
    ...mssqlAdapter(db, async () => {}, record),
    // The mock has no session to open a transaction on; the statements inside are the same ones.
    transaction: (work) => work(mssqlOps(db, record)),
  });

  const audit: AuditEntry = { actorType: 'user', actorId: 'a', action: 'job.queued', target: 't' };
  const id = randomUUID();
  const cursor = encodeCursor({ at: new Date(), id });
  const newJob = {
    id,
    databaseId: id,
    serverId: id,
    databaseName: 'n',
    engine: 'sqlserver' as const,
    options: { compression: 'none' as const, encryption: 'age' as const },
    encryptionRecipients: [],
    requesterOid: 'oid',
    requesterUpn: null,
    trigger: 'user' as const,
    blobPath: 'b',
  };
  const calls: Record<Exclude<keyof Store, 'dialect' | 'close'>, () => Promise<unknown>> = {
    ping: () => store.ping(),
    createServer: () => store.createServer({ name: 'n', host: 'h', engine: 'sqlserver' }, audit),
    getServer: () => store.getServer(id),
    listServers: () => store.listServers(),
    updateServer: () => store.updateServer(id, { name: 'n2', description: null, runners: [{ clientId: id, servicePrincipalId: id }] }, audit),
    deleteServer: () => store.deleteServer(id, audit),
    recordRunnerHeartbeat: () =>
      store.recordRunnerHeartbeat({
        runnerId: 'r1',
        clientId: id,
        servicePrincipalId: id,
        version: '1.0.0',
        serverIds: [id],
        inFlightJobs: 1,
        freeScratchBytes: 5,
        lastSeenAt: new Date(),
      }),
    listRunnerHeartbeats: () => store.listRunnerHeartbeats(),
    createDatabase: () =>
      store.createDatabase(
        { serverId: id, name: 'n', requesterGroupIds: [], policy: defaultDatabasePolicy, schedule: DatabaseSchedule.parse({ cron: '0 3 * * *' }), enabled: true },
        audit,
      ),
    getDatabase: () => store.getDatabase(id),
    listDatabases: () => store.listDatabases(id),
    listScheduledDatabases: () => store.listScheduledDatabases(),
    listAllDatabases: () => store.listAllDatabases(),
    // A notifiable action: its outbox row is written too.
    setRpoBreach: async () => {
      await store.setRpoBreach(id, new Date(), { ...audit, action: 'rpo.breached' });
      return store.setRpoBreach(id, null, { ...audit, action: 'rpo.recovered' });
    },
    updateDatabase: () => store.updateDatabase(id, { schedule: null, policy: defaultDatabasePolicy, enabled: false }, audit),
    deleteDatabase: () => store.deleteDatabase(id, audit),
    createJob: () => store.createJob(newJob, audit),
    createScheduledJob: () => store.createScheduledJob({ ...newJob, trigger: 'schedule', scheduleSlot: '2026-01-01T03:00:00.000Z' }, audit),
    getJob: () => store.getJob(id),
    listJobs: async () => {
      await store.listJobs({ limit: 10 });
      return store.listJobs({ requesterOid: 'oid', status: 'Queued', limit: 10, cursor });
    },
    transitionJob: () =>
      store.transitionJob(
        id,
        { from: ['Verifying', 'Available'], to: 'Available', patch: { sizeBytes: 1, expiresAt: new Date(), maskingVersion: 3, tableRowCounts: { 'dbo.t': 1 } } },
        audit,
      ),
    recordRestoreRehearsal: () =>
      store.recordRestoreRehearsal(id, { at: new Date(), durationMs: 1200, result: 'failed', error: 'row_count_mismatch' }, audit),
    updateJobProgress: async () => {
      await store.updateJobProgress(id, { percent: 1.5, bytes: 2 });
      return store.updateJobProgress(id, { percent: 1.5, bytes: 2 }, { notWithinMs: 15_000 });
    },
    recordDownloadLink: () => store.recordDownloadLink(id, { expiresAt: new Date() }, audit),
    listExpiredJobs: () => store.listExpiredJobs(new Date(), 5),
    listRequesterRecipients: () => store.listRequesterRecipients('oid'),
    replaceRequesterRecipients: () =>
      store.replaceRequesterRecipients('oid', [{ recipient: 'age1x', fingerprint: '0123456789abcdef' }, { recipient: 'age1y', fingerprint: 'fedcba9876543210' }], audit),
    listReverifyDue: () => store.listReverifyDue(new Date(), 5),
    recordVerification: () => store.recordVerification(id, { verifiedAt: new Date(), reverifyDueAt: null }, audit),
    isManifestKeyInUse: () => store.isManifestKeyInUse('https://kv.vault.azure.net/keys/m/1', new Date()),
    appendAudit: () => store.appendAudit(audit),
    tallyJobs: () => store.tallyJobs(),
    countAuditActions: () => store.countAuditActions(),
    listCompletedJobs: () => store.listCompletedJobs(new Date(), 100),
    listPendingNotifications: () => store.listPendingNotifications(new Date(), 50),
    recordNotificationAttempt: () =>
      store.recordNotificationAttempt(id, { deliveredTo: ['webhook'], done: false, nextAttemptAt: new Date(), error: 'e', at: new Date() }),
    listAudit: async () => {
      await store.listAudit({ limit: 10 });
      return store.listAudit({ from: new Date(0), to: new Date(), actor: 'a', action: 'job.queued', jobId: id, limit: 10, cursor });
    },
  };
  for (const findRows of [true, false]) {
    lookupsFindRows = findRows;
    for (const [name, call] of Object.entries(calls)) {
      method = name;
      await call();
    }
  }
  return recorded;
}

const outputClause = /\soutput ((?:INSERTED|DELETED)\.\[\w+\](?:, (?:INSERTED|DELETED)\.\[\w+\])*)(?=\s(?:values|where)\s)/;

/** The statement's table and, if present, its OUTPUT clause checked and cut out (see the header). */
function withoutOutputClause(sql: string): string {
  const table = /^(?:insert into|update|delete from) \[(\w+)\]/.exec(sql)?.[1];
  const match = outputClause.exec(sql);
  if (!match) {
    expect(sql, 'an OUTPUT clause of a shape this test does not know').not.toMatch(/\soutput\s/i);
    return sql;
  }
  expect(table, `statement with OUTPUT on an unknown table: ${sql}`).toBeDefined();
  const pseudoTable = sql.startsWith('delete') ? 'DELETED' : 'INSERTED';
  for (const item of match[1]!.split(', ')) {
    const [, prefix, column] = /^(INSERTED|DELETED)\.\[(\w+)\]$/.exec(item)!;
    expect(prefix).toBe(pseudoTable);
    expect(columnsByTable.get(table!)?.has(column!), `${column} is not a column of ${table}`).toBe(true);
  }
  return sql.replace(match[0], '');
}

describe('SQL Server statements', async () => {
  const recorded = await recordEveryStatement();
  const distinct = [...new Map(recorded.map((entry) => [entry.sql, entry])).values()];

  it('are built for every Store method and every table operation', () => {
    const methods = new Set(recorded.map((entry) => entry.method));
    expect([...methods].sort()).toEqual(
      [
        'appendAudit', 'createDatabase', 'createJob', 'createScheduledJob', 'createServer', 'deleteDatabase', 'deleteServer',
        'getDatabase', 'getJob', 'getServer', 'listAudit', 'listDatabases', 'listExpiredJobs', 'listJobs', 'listScheduledDatabases',
        'listServers', 'ping', 'recordDownloadLink', 'transitionJob', 'updateDatabase', 'updateJobProgress', 'updateServer',
        'listRunnerHeartbeats', 'recordRunnerHeartbeat', 'listRequesterRecipients', 'replaceRequesterRecipients',
        'isManifestKeyInUse', 'listReverifyDue', 'recordVerification',
        'listAllDatabases', 'setRpoBreach', 'tallyJobs', 'countAuditActions', 'listCompletedJobs', 'listPendingNotifications',
        'recordNotificationAttempt', 'recordRestoreRehearsal',
      ].sort(),
    );
    const operationOf = (sql: string) => {
      const verb = /^(insert into|select top\(@par0\)|select|update|delete from)/.exec(sql)?.[1];
      const table = (verb?.startsWith('select') ? / from \[(\w+)\]/ : /^[a-z ]+\[(\w+)\]/).exec(sql)?.[1];
      return `${verb} ${table}`;
    };
    const operations = new Set(distinct.map(({ sql }) => operationOf(sql)));
    expect([...operations].sort()).toEqual(
      [
        'insert into audit_events', 'insert into databases', 'insert into jobs', 'insert into servers', 'insert into runner_heartbeats',
        'select databases', 'select jobs', 'select servers', 'select runner_heartbeats',
        'select top(@par0) audit_events', 'select top(@par0) databases', 'select top(@par0) jobs', 'select top(@par0) servers',
        'update databases', 'update jobs', 'update servers', 'update runner_heartbeats',
        'delete from databases', 'delete from servers',
        'insert into notification_outbox', 'select notification_outbox', 'select top(@par0) notification_outbox',
        'update notification_outbox', 'select audit_events',
        'insert into requester_recipients', 'select requester_recipients', 'delete from requester_recipients',
      ].sort(),
    );
  });

  it.each(distinct.map((entry) => [entry.method, entry.sql]))('%s: parses as T-SQL: %s', (_method, sql) => {
    expect(() => parseTsql(withoutOutputClause(sql))).not.toThrow();
  });

  it('canary: the parser still cannot read an OUTPUT clause (drop the workaround above when this fails)', () => {
    expect(() => parseTsql('delete from [servers] output DELETED.[id] where [servers].[id] = @par0')).toThrow();
    expect(() => parseTsql('delete from [servers] where [servers].[id] = @par0')).not.toThrow();
  });
});

describe('OUTPUT without INTO needs tables without triggers', () => {
  it('the trigger guard the store runs at start-up parses as T-SQL', () => {
    expect(() => parseTsql(enabledTriggersStatement)).not.toThrow();
  });

  it('no migration creates a trigger', () => {
    const folder = fileURLToPath(new URL('../../../shared/db/migrations/mssql', import.meta.url));
    const migrations = readdirSync(folder).map((name) => readFileSync(join(folder, name, 'migration.sql'), 'utf8'));
    expect(migrations.length).toBeGreaterThan(0);
    for (const text of migrations) expect(text).not.toMatch(/\bcreate\s+(or\s+alter\s+)?trigger\b/i);
  });

  it('refuses to start on a table with an enabled trigger, naming it', async () => {
    const statements: string[] = [];
    const withTrigger = async (text: string) => {
      statements.push(text);
      return { recordset: [{ table_name: 'jobs', trigger_name: 'trg_jobs_audit' }] };
    };
    await expect(assertNoTriggers(withTrigger)).rejects.toMatchObject({ code: 'config_invalid', message: expect.stringContaining('trg_jobs_audit on jobs') });
    expect(statements).toEqual([enabledTriggersStatement]);
    await expect(assertNoTriggers(async () => ({ recordset: [] }))).resolves.toBeUndefined();
  });
});
