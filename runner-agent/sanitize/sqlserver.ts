/**
 * The SQL Server scratch target: a COPY_ONLY backup (or a downloaded .bak) restored as a new database with
 * `RESTORE FILELISTONLY` then `RESTORE DATABASE … WITH MOVE` to files under the configured data directory,
 * masked in one transaction (`SET XACT_ABORT ON`: any error rolls all of it back), and backed up again by the
 * ordinary SQL Server engine. Identifiers are bracket-quoted with `]` doubled (QUOTENAME's rule); every value,
 * path and file name is a parameter; the hash strategies compute HMAC-SHA256 with HASHBYTES from pads passed
 * as parameters.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, posix, win32 } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { SqlServerSettings } from '../config.js';
import {
  backupStatement,
  createSqlServerEngine,
  loadMssql,
  mapSqlError,
  quoteIdentifier,
  serverFactsFrom,
  serverFactsStatement,
  type SqlPool,
} from '../engines/sqlserver.js';
import { JobFailure } from '../errors.js';
import type { MaskingPlan, PlannedColumn } from './plan.js';
import { FAKE_EMAIL_LENGTH } from './plan.js';
import { FIRST_NAMES, LAST_NAMES } from './scratch.js';
import type { CatalogColumn, MaskingKey, ScratchDriver } from './types.js';

const q = quoteIdentifier;
const table = (schema: string, name: string) => `${q(schema)}.${q(name)}`;
const literal = (value: string) => `N'${value.replace(/'/g, "''")}'`;

export const fileListStatement = 'RESTORE FILELISTONLY FROM DISK = @path';

/** `RESTORE DATABASE [scratch] FROM DISK = @path WITH MOVE @logical0 TO @physical0, …`: names and paths are parameters. */
export function restoreStatement(scratch: string, fileCount: number): string {
  const moves = Array.from({ length: fileCount }, (_, i) => `MOVE @logical${i} TO @physical${i}`).join(', ');
  return `RESTORE DATABASE ${q(scratch)} FROM DISK = @path WITH ${moves}, CHECKSUM, RECOVERY, STATS = 10`;
}

/** Kicks out other sessions, then drops; nothing happens when the database is gone already. */
export function dropStatement(scratch: string): string {
  return `IF DB_ID(@name) IS NOT NULL BEGIN ALTER DATABASE ${q(scratch)} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE ${q(scratch)}; END`;
}

export const leftoversStatement = 'SELECT name FROM sys.databases WHERE LEFT(name, LEN(@prefix)) = @prefix';

export const columnsStatement =
  'SELECT c.TABLE_SCHEMA AS [schema], c.TABLE_NAME AS [table], c.COLUMN_NAME AS [column], c.DATA_TYPE AS data_type, ' +
  'c.CHARACTER_MAXIMUM_LENGTH AS max_length FROM INFORMATION_SCHEMA.COLUMNS c JOIN INFORMATION_SCHEMA.TABLES t ' +
  "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME WHERE t.TABLE_TYPE = 'BASE TABLE' " +
  'ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION';

export const tablesStatement = "SELECT TABLE_SCHEMA AS [schema], TABLE_NAME AS [table] FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_TYPE = 'BASE TABLE'";

export const countStatement = (schema: string, name: string) => `SELECT COUNT_BIG(*) AS n FROM ${table(schema, name)}`;

export const distinctStatement = (column: CatalogColumn) =>
  `SELECT DISTINCT CAST(${q(column.column)} AS nvarchar(max)) AS v FROM ${table(column.schema, column.table)} WHERE ${q(column.column)} IS NOT NULL`;

/** HMAC-SHA256 (varbinary) of the column's text as UTF-16: HASHBYTES(opad + HASHBYTES(ipad + value)). */
function hmac(column: string): string {
  return `HASHBYTES('SHA2_256', @opad + HASHBYTES('SHA2_256', @ipad + CAST(CAST(${q(column)} AS nvarchar(max)) AS varbinary(max))))`;
}

const hex = (column: string) => `LOWER(CONVERT(varchar(64), ${hmac(column)}, 2))`;
const choose = (byte: number, column: string, names: readonly string[]) =>
  `CHOOSE(1 + CAST(SUBSTRING(${hmac(column)}, ${byte}, 1) AS int) % ${names.length}, ${names.map(literal).join(', ')})`;

/** The SET expression of one planned column; fixed values become parameters named in `params`. */
export function maskExpression({ column, rule }: PlannedColumn, params: Map<string, string | number>): string {
  const fit = (expression: string) => (column.maxLength !== null && column.maxLength > 0 ? `LEFT(${expression}, ${column.maxLength})` : expression);
  switch (rule.strategy) {
    case 'null':
      return 'NULL';
    case 'fixed': {
      const name = `fixed${params.size}`;
      params.set(name, rule.value);
      return `@${name}`;
    }
    case 'hash':
      return fit(hex(column.column));
    case 'email':
      return `N'user_' + LEFT(${hex(column.column)}, ${FAKE_EMAIL_LENGTH - 'user_@example.invalid'.length}) + N'@example.invalid'`;
    case 'name':
      return fit(`${choose(1, column.column, FIRST_NAMES)} + N' ' + ${choose(2, column.column, LAST_NAMES)}`);
  }
}

/**
 * One batch that applies a plan: emptied tables first (DELETE, in the order the rules list them, since TRUNCATE
 * refuses any table a foreign key points at), then one UPDATE per table, then the custom SQL, all in one
 * transaction that XACT_ABORT rolls back on the first error.
 */
export function maskingBatch(plan: MaskingPlan): { text: string; fixed: Map<string, string | number> } {
  const fixed = new Map<string, string | number>();
  const statements = plan.tables.map((t) => `DELETE FROM ${table(t.schema, t.table)};`);
  const byTable = new Map<string, PlannedColumn[]>();
  for (const planned of plan.columns) {
    const key = table(planned.column.schema, planned.column.table);
    byTable.set(key, [...(byTable.get(key) ?? []), planned]);
  }
  for (const [name, columns] of byTable) {
    statements.push(`UPDATE ${name} SET ${columns.map((planned) => `${q(planned.column.column)} = ${maskExpression(planned, fixed)}`).join(', ')};`);
  }
  for (const text of plan.sql) statements.push(text.trim().endsWith(';') ? text.trim() : `${text.trim()};`);
  return { text: ['SET XACT_ABORT ON;', 'BEGIN TRANSACTION;', ...statements, 'COMMIT TRANSACTION;'].join('\n'), fixed };
}

/** Joins for the machine that will use the path: SQL Server may see a Windows path while we run elsewhere. */
function joinFor(directory: string, file: string): string {
  return /\\/.test(directory) || /^[A-Za-z]:/.test(directory) ? win32.join(directory, file) : posix.join(directory, file);
}

export interface SqlServerScratchOptions {
  /** The instance scratch databases are restored on. */
  connection: SqlServerSettings;
  /** The job's instance, for the source backup (often the same). */
  source: SqlServerSettings;
  dataDirectory: string;
  logDirectory?: string;
  prefix: string;
  /** Where the runner writes .bak files; `backupDirectory` of the settings is how SQL Server sees it. */
  workDir: string;
  /** A pool connected to one database of an instance (master when omitted); tests script one. */
  connect: (settings: SqlServerSettings, database?: string) => Promise<SqlPool>;
}

export function createSqlServerScratch(options: SqlServerScratchOptions): ScratchDriver {
  const { connection, prefix } = options;
  const pools = new Map<string, Promise<SqlPool>>();
  const pool = (settings: SqlServerSettings, database = 'master') => {
    const key = `${settings === connection ? 'scratch' : 'source'}:${database}`;
    if (!pools.has(key)) pools.set(key, options.connect(settings, database).catch((error: unknown) => {
      pools.delete(key);
      throw mapSqlError(error, 'connect');
    }));
    return pools.get(key)!;
  };
  const closePool = async (database: string) => {
    const current = pools.get(`scratch:${database}`);
    pools.delete(`scratch:${database}`);
    await (await current?.catch(() => undefined))?.close();
  };
  const run = async (target: Promise<SqlPool>, text: string, inputs: Record<string, unknown> = {}) => {
    const [request, sql] = [(await target).request(), await loadMssql()];
    for (const [name, value] of Object.entries(inputs)) {
      request.input(name, Buffer.isBuffer(value) ? sql.VarBinary(64) : typeof value === 'number' ? sql.Float : sql.NVarChar(4000), value);
    }
    return request.query(text);
  };
  const assertOurs = (name: string) => {
    if (!name.startsWith(prefix)) throw new Error(`Refusing to touch ${name}: not a scratch database`);
  };
  const serverPath = (settings: SqlServerSettings, file: string) => joinFor(settings.backupDirectory ?? options.workDir, file);
  const scratchEngine = createSqlServerEngine(connection, { workDir: options.workDir, connect: () => pool(connection) });

  async function restoreFile(path: string, scratch: string): Promise<void> {
    assertOurs(scratch);
    const master = pool(connection);
    const files = (await run(master, fileListStatement, { path })).recordset ?? [];
    if (files.length === 0) throw new JobFailure('restore_failed', 'RESTORE FILELISTONLY listed no files in the backup');
    const inputs: Record<string, unknown> = { path };
    files.forEach((file, i) => {
      const isLog = String(file.Type).toUpperCase() === 'L';
      const directory = isLog ? (options.logDirectory ?? options.dataDirectory) : options.dataDirectory;
      inputs[`logical${i}`] = String(file.LogicalName);
      inputs[`physical${i}`] = joinFor(directory, `${scratch}_${i}.${isLog ? 'ldf' : i === 0 ? 'mdf' : 'ndf'}`);
    });
    await run(master, restoreStatement(scratch, files.length), inputs).catch((error: unknown) => {
      throw new JobFailure('restore_failed', `RESTORE DATABASE ${q(scratch)} failed: ${mapSqlError(error, 'verify').message}`, { cause: error });
    });
  }

  const driver: ScratchDriver = {
    engine: 'sqlserver',
    prefix,

    async restoreFromSource(sourceDatabase, scratch) {
      const file = `${scratch}.bak`;
      try {
        // Express and Web cannot write compressed backups: ask the source instance, as the engine does.
        const { compression } = serverFactsFrom((await run(pool(options.source), serverFactsStatement)).recordset?.[0]);
        await run(pool(options.source), backupStatement(sourceDatabase, { compression }), { path: serverPath(options.source, file) }).catch((error: unknown) => {
          throw mapSqlError(error, 'backup');
        });
        await restoreFile(serverPath(connection, file), scratch);
      } finally {
        await rm(join(options.workDir, file), { force: true });
      }
    },

    async restoreFromBackup(backup: Readable, scratch) {
      const file = `${scratch}.bak`;
      try {
        await pipeline(backup, createWriteStream(join(options.workDir, file)));
        await restoreFile(serverPath(connection, file), scratch);
      } finally {
        await rm(join(options.workDir, file), { force: true });
      }
    },

    async columns(scratch) {
      const rows = (await run(pool(connection, scratch), columnsStatement)).recordset ?? [];
      return rows.map((r) => ({
        schema: String(r.schema),
        table: String(r.table),
        column: String(r.column),
        dataType: String(r.data_type).toLowerCase(),
        maxLength: r.max_length === null || r.max_length === undefined ? null : Number(r.max_length),
      }));
    },

    async applyMasking(scratch, plan, key: MaskingKey, signal) {
      signal.throwIfAborted();
      const { text, fixed } = maskingBatch(plan);
      await run(pool(connection, scratch), text, { ipad: key.ipad, opad: key.opad, ...Object.fromEntries(fixed) }).catch((error: unknown) => {
        throw new JobFailure('masking_failed', `Masking failed (the transaction was rolled back): ${mapSqlError(error).message}`, { cause: error });
      });
    },

    async distinctValues(scratch, column) {
      return ((await run(pool(connection, scratch), distinctStatement(column))).recordset ?? []).map((r) => String(r.v));
    },

    async countRows(scratch) {
      const target = pool(connection, scratch);
      const counts: Record<string, number> = {};
      for (const t of (await run(target, tablesStatement)).recordset ?? []) {
        const rows = (await run(target, countStatement(String(t.schema), String(t.table)))).recordset ?? [];
        counts[`${String(t.schema)}.${String(t.table)}`] = Number(rows[0]?.n ?? 0);
      }
      return counts;
    },

    backup: (scratch, { signal, attemptId, jobId }) => scratchEngine.backup({ jobId, databaseName: scratch }, { signal, attemptId, onProgress: () => undefined }),

    async drop(scratch) {
      assertOurs(scratch);
      await closePool(scratch); // our own sessions would keep it in use
      await run(pool(connection), dropStatement(scratch), { name: scratch });
    },

    async dropLeftovers() {
      const names = ((await run(pool(connection), leftoversStatement, { prefix })).recordset ?? []).map((r) => String(r.name));
      for (const name of names) await driver.drop(name);
      return names;
    },
  };
  return driver;
}
