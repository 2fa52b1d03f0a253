/**
 * SQL Server through `mssql` (tedious): a COPY_ONLY backup to a temp file in the work directory, optionally
 * verified, then streamed into the upload and removed.
 *
 * Injection safety: the database name is the job message's, checked (1-128 characters, no control characters),
 * confirmed to exist through a parameterised lookup in sys.databases, and quoted as a T-SQL identifier
 * (`[` + name with `]` doubled + `]`). The file path is always a parameter (`@path`).
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join, posix, resolve, win32 } from 'node:path';
import type { TokenCredential } from '@azure/identity';
import type sql from 'mssql';
import { AppError, errorMessage } from '../../shared/errors.js';
import type { SqlServerSettings } from '../config.js';
import { JobFailure, isJobFailure } from '../errors.js';
import { assertDatabaseName, type BackupEngineDriver, type EngineBackup, type EngineBackupOptions, type EngineJob } from './types.js';

/** `[name]` with `]` doubled: the T-SQL QUOTENAME rule, so no name can end the identifier early. */
export function quoteIdentifier(name: string): string {
  assertDatabaseName(name);
  return `[${name.replace(/]/g, ']]')}]`;
}

export function backupStatement(databaseName: string, options: { compression: boolean } = { compression: true }): string {
  const compression = options.compression ? 'COMPRESSION, ' : '';
  return `BACKUP DATABASE ${quoteIdentifier(databaseName)} TO DISK = @path WITH COPY_ONLY, ${compression}CHECKSUM, STATS = 5`;
}

export const verifyStatement = 'RESTORE VERIFYONLY FROM DISK = @path WITH CHECKSUM';
export const databaseLookupStatement = 'SELECT name, state_desc FROM sys.databases WHERE name = @name';
/**
 * What decides the statements: the edition (Express and Web cannot write compressed backups) and whether the
 * login may run RESTORE VERIFYONLY, which needs CREATE DATABASE (server-wide CREATE ANY DATABASE, or CREATE
 * DATABASE granted in master, where this connection lives).
 */
export const serverFactsStatement =
  "SELECT CAST(SERVERPROPERTY('EngineEdition') AS int) AS engine_edition, CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition, " +
  "CASE WHEN HAS_PERMS_BY_NAME(NULL, NULL, 'CREATE ANY DATABASE') = 1 OR HAS_PERMS_BY_NAME('master', 'DATABASE', 'CREATE DATABASE') = 1 " +
  'THEN 1 ELSE 0 END AS can_verify';

export const identityStatement = "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version, SUSER_SNAME() AS login_name";

/** SERVERPROPERTY('EngineEdition') for Express; Web shares 2 with Standard, so its Edition text is checked too. */
const EXPRESS_ENGINE_EDITION = 4;

export interface ServerFacts {
  compression: boolean;
  canVerify: boolean;
  edition: string;
}

export function serverFactsFrom(row: Record<string, unknown> | undefined): ServerFacts {
  const edition = String(row?.edition ?? '');
  return {
    compression: Number(row?.engine_edition) !== EXPRESS_ENGINE_EDITION && !/^Web\b/i.test(edition),
    canVerify: Number(row?.can_verify) === 1,
    edition,
  };
}

/** The message SQL Server sends for each STATS step ("n percent processed.", in the server's language). */
export const STATS_MESSAGE_NUMBER = 3211;

/** A STATS message (number 3211) → its percent; the number decides, not the (localised) text. */
export function percentFromInfo(info: { number?: number; message: string }): number | undefined {
  if (info.number !== STATS_MESSAGE_NUMBER) return undefined;
  const match = /\d{1,3}/.exec(info.message);
  if (!match) return undefined;
  const percent = Number(match[0]);
  return percent <= 100 ? percent : undefined;
}

/** The share of the overall progress each phase takes: the backup itself, verification, reading the file. */
const BACKUP_SHARE = 70;
const VERIFIED_AT = 75;

interface SqlErrorLike {
  number?: number;
  code?: string;
  message?: string;
  precedingErrors?: SqlErrorLike[];
  originalError?: SqlErrorLike;
}

const codeByErrorNumber: Record<number, string> = {
  229: 'permission_denied', // permission denied on object
  262: 'permission_denied', // BACKUP DATABASE permission denied in database
  916: 'permission_denied', // server principal cannot access the database under the current security context
  15247: 'permission_denied',
  911: 'database_not_found',
  4060: 'database_not_found', // cannot open database requested by the login
  3201: 'backup_device_error', // cannot open backup device (path missing, access denied)
  3202: 'disk_full', // write on backup device failed (most often: not enough space)
  1105: 'disk_full',
  3257: 'disk_full', // not enough free space on the volume
  9002: 'disk_full',
  3023: 'backup_conflict', // another backup/file operation on the database is running
  3241: 'verify_failed', // media family incorrectly formed
  3242: 'verify_failed',
  3203: 'verify_failed', // read failure
  3189: 'verify_failed', // damage to the backup set detected
  18456: 'sql_login_failed',
};

/** An error from mssql → a JobFailure with a code an operator can act on. */
export function mapSqlError(error: unknown, phase: 'backup' | 'verify' | 'connect' = 'backup'): JobFailure {
  if (isJobFailure(error)) return error;
  const e = (error ?? {}) as SqlErrorLike;
  // BACKUP reports the cause first and "BACKUP DATABASE is terminating abnormally" (3013) last.
  const chain = [...(e.precedingErrors ?? []), e, ...(e.originalError ? [e.originalError] : [])];
  const messages = chain.map((c) => c.message).filter(Boolean).join(' | ') || errorMessage(error);
  for (const item of chain) {
    if (item.number !== undefined && codeByErrorNumber[item.number]) {
      const code = codeByErrorNumber[item.number]!;
      return new JobFailure(phase === 'verify' && code === 'backup_device_error' ? 'verify_failed' : code, messages, { cause: error });
    }
  }
  if (/is not supported on .*Express/i.test(messages) || /COMPRESSION is not supported/i.test(messages)) {
    return new JobFailure('compression_unsupported', messages, { cause: error });
  }
  if (/space|disk full/i.test(messages) && /backup|write/i.test(messages)) return new JobFailure('disk_full', messages, { cause: error });
  if (e.code === 'ELOGIN') return new JobFailure('sql_login_failed', messages, { cause: error });
  if (e.code === 'ESOCKET' || e.code === 'ETIMEOUT' || e.code === 'ECONNCLOSED') {
    return new JobFailure('sql_unreachable', messages, { cause: error });
  }
  if (e.code === 'ECANCEL') return new JobFailure('aborted', messages, { cause: error });
  return new JobFailure(phase === 'verify' ? 'verify_failed' : 'sql_error', messages, { cause: error });
}

/** The parts of mssql this engine uses; tests replace them with a recorder. */
export interface SqlRequest {
  input(name: string, type: unknown, value: unknown): SqlRequest;
  on(event: 'info', listener: (info: { message: string; number?: number }) => void): unknown;
  query(command: string): Promise<{ recordset?: Array<Record<string, unknown>> }>;
  cancel(): void;
}
export interface SqlPool {
  request(): SqlRequest;
  close(): Promise<void>;
}
export type SqlConnector = () => Promise<SqlPool>;

export interface SqlServerEngineOptions {
  /** Where the runner reads the temp .bak files (absolute: config.ts resolves it). */
  workDir: string;
  /** The runner's Entra credential, for `auth.type = 'entra'`. */
  credential?: TokenCredential;
  /** How to connect; default: an mssql ConnectionPool from the settings. */
  connect?: SqlConnector;
  /** Where the engine says what it chose or could not find (skipped verification, a stranded .bak). */
  warn?: (message: string) => void;
}

/** `{value}` with `}` doubled when the value could end an ODBC attribute early (`;`, braces, spaces at the ends). */
function odbcValue(value: string): string {
  return /[;{}]|^\s|\s$/.test(value) ? `{${value.replace(/}/g, '}}')}}` : value;
}

/**
 * The ODBC connection string for Windows integrated auth (msnodesqlv8). mssql 11 builds its own with a
 * deprecated driver (SQL Server Native Client 11.0 on Windows) and without TrustServerCertificate, so we pass ours.
 */
export function odbcConnectionString(settings: SqlServerSettings): string {
  const server = settings.instanceName ? `${settings.host}\\${settings.instanceName}` : `${settings.host},${settings.port ?? 1433}`;
  const attributes: Array<[string, string]> = [
    ['Driver', `{${settings.odbcDriver.replace(/}/g, '}}')}}`],
    ['Server', server],
    ['Database', 'master'],
    ['Trusted_Connection', 'yes'],
    ['Encrypt', settings.encrypt ? 'yes' : 'no'],
    ['TrustServerCertificate', settings.trustServerCertificate ? 'yes' : 'no'],
    ['APP', 'dbdist-runner'],
  ];
  return attributes.map(([key, value]) => `${key}=${key === 'Driver' ? value : odbcValue(value)}`).join(';') + ';';
}

/** mssql configuration for the settings (the tedious driver, or msnodesqlv8 for Windows integrated auth). */
export function mssqlConfig(settings: SqlServerSettings, credential?: TokenCredential): sql.config {
  const base: sql.config = {
    server: settings.host,
    ...(settings.port ? { port: settings.port } : {}),
    database: 'master',
    // A backup runs as long as it runs: no request timeout; cancellation goes through request.cancel().
    requestTimeout: 0,
    connectionTimeout: 30_000,
    pool: { min: 0, max: 4, idleTimeoutMillis: 60_000 },
    options: {
      encrypt: settings.encrypt,
      trustServerCertificate: settings.trustServerCertificate,
      appName: 'dbdist-runner',
      ...(settings.instanceName ? { instanceName: settings.instanceName } : {}),
    },
  };
  const auth = settings.auth;
  switch (auth.type) {
    case 'sql':
      return { ...base, user: auth.user, password: auth.password };
    case 'ntlm':
      return { ...base, authentication: { type: 'ntlm', options: { domain: auth.domain, userName: auth.user, password: auth.password } } };
    case 'entra':
      if (!credential) throw new AppError('config_invalid', 'sqlServer.auth entra needs the runner Entra credential');
      return { ...base, authentication: { type: 'token-credential', options: { credential } } } as sql.config;
    case 'windows':
      return { ...base, connectionString: odbcConnectionString(settings), options: { ...base.options, trustedConnection: true } } as sql.config;
  }
}

/**
 * The mssql driver (tedious), loaded when a SQL Server is first reached: ~30 MiB a PostgreSQL-only runner does
 * not need to hold.
 */
export async function loadMssql(): Promise<typeof sql> {
  return (await import('mssql')).default;
}

/** A connected pool for the settings, in `database` (master unless given). */
export async function defaultConnector(settings: SqlServerSettings, credential?: TokenCredential, database = 'master'): Promise<SqlPool> {
  const config = { ...mssqlConfig(settings, credential), database };
  if (settings.auth.type === 'windows') {
    // SSPI needs the ODBC-based driver; it is optional so Linux hosts do not have to build it.
    let driver: typeof sql;
    try {
      const moduleName = 'mssql/msnodesqlv8';
      driver = ((await import(moduleName)) as { default: typeof sql }).default;
    } catch (error) {
      throw new AppError(
        'config_invalid',
        `sqlServer.auth windows needs the msnodesqlv8 driver (npm install msnodesqlv8 on the Windows host): ${errorMessage(error)}`,
      );
    }
    return new driver.ConnectionPool(config).connect() as unknown as Promise<SqlPool>;
  }
  const mssql = await loadMssql();
  return new mssql.ConnectionPool(config).connect() as unknown as Promise<SqlPool>;
}

/** Joins for the machine that will use the path: SQL Server may see a Windows path while we run elsewhere. */
function joinFor(directory: string, file: string): string {
  return /\\/.test(directory) || /^[A-Za-z]:/.test(directory) ? win32.join(directory, file) : posix.join(directory, file);
}

function fileMissing(serverPath: string, localPath: string, error: unknown): JobFailure {
  return new JobFailure(
    'backup_file_missing',
    `SQL Server wrote ${serverPath} but the runner cannot read ${localPath} (${errorMessage(error)}): the file is left on the ` +
      'SQL Server host; delete it there, and make sqlServer.backupDirectory the path under which SQL Server sees workDir (see docs/runner.md)',
  );
}

export function createSqlServerEngine(settings: SqlServerSettings, options: SqlServerEngineOptions): BackupEngineDriver {
  const connect = options.connect ?? (() => defaultConnector(settings, options.credential));
  const warn = options.warn ?? (() => undefined);
  const workDir = resolve(options.workDir);
  let poolPromise: Promise<SqlPool> | undefined;

  /** One pool for the process; a failed connection attempt is not cached. */
  async function pool(): Promise<SqlPool> {
    poolPromise ??= connect().catch((error: unknown) => {
      poolPromise = undefined;
      throw mapSqlError(error, 'connect');
    });
    return poolPromise;
  }

  async function run(command: string, inputs: Record<string, string>, signal: AbortSignal, onInfo?: (info: { message: string; number?: number }) => void) {
    const [request, mssql] = [(await pool()).request(), await loadMssql()];
    for (const [name, value] of Object.entries(inputs)) request.input(name, mssql.NVarChar(4000), value);
    if (onInfo) request.on('info', onInfo);
    const onAbort = () => request.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await request.query(command);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async function serverFacts(signal: AbortSignal): Promise<ServerFacts> {
    return serverFactsFrom((await run(serverFactsStatement, {}, signal)).recordset?.[0]);
  }

  /** Whether to run RESTORE VERIFYONLY; throws before any BACKUP when it cannot and the settings say fail. */
  function shouldVerify(facts: ServerFacts): boolean {
    if (!settings.verify) return false;
    if (facts.canVerify) return true;
    const why = 'RESTORE VERIFYONLY needs CREATE DATABASE permission, which this login lacks';
    if (settings.whenVerifyNotPermitted === 'fail') {
      throw new JobFailure(
        'verify_not_permitted',
        `${why}: grant it (GRANT CREATE ANY DATABASE TO [login]), set sqlServer.verify false, or sqlServer.whenVerifyNotPermitted skip`,
      );
    }
    warn(`${why}: skipping verification (sqlServer.whenVerifyNotPermitted = skip)`);
    return false;
  }

  const failWith = (signal: AbortSignal, phase: 'backup' | 'verify') => (error: unknown) => {
    throw signal.aborted ? new JobFailure('aborted', 'Backup aborted') : mapSqlError(error, phase);
  };

  return {
    name: 'sqlserver',

    async backup(job: EngineJob, { signal, onProgress, attemptId }: EngineBackupOptions): Promise<EngineBackup> {
      quoteIdentifier(job.databaseName); // validates the name first
      const fileName = `dbdist-${job.jobId}-${attemptId}.bak`;
      const localPath = join(workDir, fileName);
      const serverPath = joinFor(settings.backupDirectory ?? workDir, fileName);
      const cleanup = () => rm(localPath, { force: true });

      try {
        const lookup = await run(databaseLookupStatement, { name: job.databaseName }, signal);
        const row = lookup.recordset?.[0];
        if (!row || row.name !== job.databaseName) {
          throw new JobFailure('database_not_found', `Database ${quoteIdentifier(job.databaseName)} does not exist on ${settings.host}`);
        }
        if (row.state_desc !== undefined && row.state_desc !== 'ONLINE') {
          throw new JobFailure('database_not_online', `Database ${quoteIdentifier(job.databaseName)} is ${String(row.state_desc)}`);
        }
        const facts = await serverFacts(signal);
        const verify = shouldVerify(facts);
        await run(backupStatement(job.databaseName, { compression: facts.compression }), { path: serverPath }, signal, (info) => {
          const percent = percentFromInfo(info);
          if (percent !== undefined) onProgress((percent * BACKUP_SHARE) / 100);
        }).catch(failWith(signal, 'backup'));
        if (verify) {
          await run(verifyStatement, { path: serverPath }, signal).catch(failWith(signal, 'verify'));
          onProgress(VERIFIED_AT);
        }
        let size: number;
        try {
          size = (await stat(localPath)).size;
        } catch (error) {
          const failure = fileMissing(serverPath, localPath, error);
          warn(failure.message);
          throw failure;
        }
        const readStart = verify ? VERIFIED_AT : BACKUP_SHARE;
        return {
          stream: createReadStream(localPath, { highWaterMark: 1024 * 1024 }),
          done: Promise.resolve(),
          sizeHint: size,
          percentAfter: (bytesRead) => readStart + ((100 - readStart) * Math.min(bytesRead, size)) / Math.max(size, 1),
          // A failed VERIFYONLY failed the backup above: reaching here with verify on means it passed.
          restoreCheck: () => (settings.verify ? { tool: 'RESTORE VERIFYONLY', ok: true } : undefined),
          localFile: localPath,
          cleanup,
        };
      } catch (error) {
        await cleanup();
        throw mapSqlError(error);
      }
    },

    /**
     * Login, edition, verify permission, and the path mapping: SQL Server backs up `probeDatabase` to
     * `backupDirectory` and the runner must find the file in `workDir` (then removes it).
     */
    async check(): Promise<string> {
      const signal = new AbortController().signal;
      const result = await run(identityStatement, {}, signal);
      const row = result.recordset?.[0] ?? {};
      const facts = await serverFacts(signal);
      const verify = shouldVerify(facts);
      const where = `${settings.host}${settings.instanceName ? `\\${settings.instanceName}` : ''}`;
      const summary =
        `SQL Server ${String(row.product_version)} ${facts.edition} at ${where} as ${String(row.login_name)}; ${facts.compression ? 'COMPRESSION' : 'no COMPRESSION'}; ` +
        `verify ${verify ? 'permitted' : settings.verify ? 'skipped (no CREATE DATABASE)' : 'off'}`;
      if (!settings.probeDatabase) {
        throw new Error(`${summary}; path mapping NOT proven: set sqlServer.probeDatabase to a small database this login may back up`);
      }
      const fileName = `dbdist-probe-${randomBytes(6).toString('hex')}.bak`;
      const localPath = join(workDir, fileName);
      const serverPath = joinFor(settings.backupDirectory ?? workDir, fileName);
      try {
        await run(backupStatement(settings.probeDatabase, { compression: facts.compression }), { path: serverPath }, signal).catch(
          failWith(signal, 'backup'),
        );
        if (verify) await run(verifyStatement, { path: serverPath }, signal).catch(failWith(signal, 'verify'));
        const size = await stat(localPath).then(
          (s) => s.size,
          (error: unknown) => {
            throw fileMissing(serverPath, localPath, error);
          },
        );
        return `${summary}; SQL Server wrote ${serverPath}, the runner read ${localPath} (${size} bytes)`;
      } finally {
        await rm(localPath, { force: true });
      }
    },

    async close(): Promise<void> {
      const current = poolPromise;
      poolPromise = undefined;
      if (current) await (await current.catch(() => undefined))?.close();
    },
  };
}
