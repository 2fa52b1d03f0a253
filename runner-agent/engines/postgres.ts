/**
 * PostgreSQL through `pg_dump --format=custom`: spawned with an argument list (no shell), connection facts in
 * the environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) so no name is ever parsed as a connection
 * string or an option. stdout goes straight into the upload (no temp file; with `spoolToWorkDir`, into a file in
 * the work directory first: engines/spool.ts, so a crashed attempt's upload can resume); stderr is kept (bounded) for the
 * failure reason; a non-zero exit fails the stream even when bytes were produced, so nothing is committed.
 * The same chunks feed `pg_restore --list` (engines/archive-listing.ts): an archive it cannot list fails the
 * backup before the commit, and its verdict goes into the report and the manifest.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import type { Compression } from '../../shared/contracts/common.js';
import { AppError, errorMessage } from '../../shared/errors.js';
import type { PostgresSettings } from '../config.js';
import { BoundedText, JobFailure } from '../errors.js';
import type { RestoreCheck } from '../../shared/contracts/runner.js';
import { pgRestoreBeside, startArchiveListing } from './archive-listing.js';
import { CoalescingStream } from '../pipeline/coalesce.js';
import { spoolToFile } from './spool.js';
import { assertDatabaseName, type BackupEngineDriver, type EngineBackup, type EngineBackupOptions, type EngineJob } from './types.js';

const executable = process.platform === 'win32' ? 'pg_dump.exe' : 'pg_dump';

/**
 * Where pg_dump is: the configured directory; else the newest Debian/Ubuntu server package's bin directory
 * (a newer pg_dump dumps older servers, not the reverse); else PATH.
 */
export function findPgDump(binDir?: string): string {
  if (binDir) {
    const configured = join(binDir, executable);
    if (!existsSync(configured)) throw new AppError('config_invalid', `postgres.binDir: ${configured} does not exist`);
    return configured;
  }
  const debianRoot = '/usr/lib/postgresql';
  if (existsSync(debianRoot)) {
    const versions = readdirSync(debianRoot)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(debianRoot, v, 'bin', executable)))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(debianRoot, versions[0], 'bin', executable);
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, executable))) return join(dir, executable);
  }
  throw new AppError('config_invalid', 'pg_dump was not found on PATH or in /usr/lib/postgresql/*/bin: set postgres.binDir');
}

/** The environment pg_dump runs with: the service's own, our connection facts on top. */
export function pgEnvironment(settings: PostgresSettings, database: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PGHOST: settings.host,
    PGPORT: String(settings.port),
    PGUSER: settings.user,
    PGDATABASE: database,
    PGAPPNAME: 'dbdist-runner',
    PGCONNECT_TIMEOUT: '30',
  };
  // Without a configured password libpq reads ~/.pgpass (or PGPASSFILE); an inherited PGPASSWORD is dropped.
  delete env.PGPASSWORD;
  if (settings.password) env.PGPASSWORD = settings.password;
  if (settings.sslMode) env.PGSSLMODE = settings.sslMode;
  return env;
}

/**
 * pg_dump's format and compression for the runner's `compression`. When the runner compresses (gzip, zstd),
 * pg_dump does not (`--compress=0`): compressing twice costs pg_dump's single thread the most and stores more.
 * Without runner compression pg_dump compresses at zlib level 1, not its default 6: on the benchmark database
 * level 1 is several times faster for a few percent more bytes (bench/RESULTS.md). PostgreSQL 16+'s
 * `--compress=zstd|lz4` is not used: the runner's zstd does that job whatever pg_dump's version.
 */
export function pgDumpFormatArguments(compression: Compression): string[] {
  return ['--format=custom', `--compress=${compression === 'none' ? PG_DUMP_OWN_COMPRESSION_LEVEL : 0}`];
}

/** zlib level pg_dump uses when the runner does not compress. */
export const PG_DUMP_OWN_COMPRESSION_LEVEL = 1;

/** pg_dump's stderr → a failure code an operator can act on. */
export function classifyPgDumpError(stderr: string): string {
  if (/database ".*" does not exist/i.test(stderr)) return 'database_not_found';
  if (/password authentication failed|no password supplied|authentication failed/i.test(stderr)) return 'authentication_failed';
  if (/permission denied/i.test(stderr)) return 'permission_denied';
  if (/server version mismatch/i.test(stderr)) return 'pg_dump_version_mismatch';
  if (/could not connect|connection refused|could not translate host name|timeout expired/i.test(stderr)) return 'database_unreachable';
  if (/no space left on device/i.test(stderr)) return 'disk_full';
  return 'engine_exit';
}

/** A pg_dump `-t`-style pattern matching exactly one table: both parts quoted, so `.`, `*`, `?` and case are literal. */
export function dumpPattern(schema: string, table: string): string {
  const quote = (part: string) => `"${part.replace(/"/g, '""')}"`;
  return `${quote(schema)}.${quote(table)}`;
}

/** Connection options for `pg` from the runner's PostgreSQL settings. */
export function pgClientConfig(settings: PostgresSettings, database: string, applicationName = 'dbdist-runner'): pg.ClientConfig {
  return {
    host: settings.host,
    port: settings.port,
    user: settings.user,
    password: settings.password,
    database,
    application_name: applicationName,
    connectionTimeoutMillis: 30_000,
    ...(settings.sslMode && settings.sslMode !== 'disable' && settings.sslMode !== 'allow' && settings.sslMode !== 'prefer'
      ? { ssl: { rejectUnauthorized: settings.sslMode === 'verify-full' || settings.sslMode === 'verify-ca' } }
      : {}),
  };
}

/**
 * Opens a repeatable-read transaction, exports its snapshot and counts every table's rows in it. The caller
 * dumps with `--snapshot=id` and releases the transaction once pg_dump is done. Undefined when it cannot connect.
 */
async function countInSnapshot(settings: PostgresSettings, database: string) {
  const client = new pg.Client(pgClientConfig(settings, database, 'dbdist-runner snapshot'));
  try {
    await client.connect();
  } catch {
    // pg_dump meets the same problem (missing database, refused login) and reports it with its own words.
    await client.end().catch(() => undefined);
    return undefined;
  }
  const release = () => client.query('ROLLBACK').catch(() => undefined).finally(() => client.end().catch(() => undefined));
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows } = await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
    const counts = await countTables(client);
    return { id: rows[0]!.id, counts, release };
  } catch (error) {
    await release();
    throw new JobFailure(classifyPgDumpError(errorMessage(error)), `Counting rows in ${database} failed: ${errorMessage(error)}`);
  }
}

/** Exact rows per base table (`schema.table`), in the client's current snapshot. */
export async function countTables(client: pg.Client): Promise<Record<string, number>> {
  const { rows: tables } = await client.query<{ schema: string; name: string }>(
    `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
  );
  const counts: Record<string, number> = {};
  for (const t of tables) {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${pg.escapeIdentifier(t.schema)}.${pg.escapeIdentifier(t.name)}`);
    counts[`${t.schema}.${t.name}`] = Number(rows[0]?.n ?? 0);
  }
  return counts;
}

export function createPostgresEngine(settings: PostgresSettings, options: { pgDumpPath?: string; workDir?: string } = {}): BackupEngineDriver {
  let pgDumpPath = options.pgDumpPath;
  const pgDump = () => (pgDumpPath ??= findPgDump(settings.binDir));

  return {
    name: 'postgres',

    async backup(job: EngineJob, { signal, attemptId }: EngineBackupOptions): Promise<EngineBackup> {
      assertDatabaseName(job.databaseName);
      if (settings.spoolToWorkDir && !options.workDir) throw new AppError('config_invalid', 'postgres.spoolToWorkDir needs the runner workDir');
      signal.throwIfAborted();
      // Counts come from a snapshot pg_dump then dumps (--snapshot), so they describe exactly the dumped rows.
      const snapshot = settings.recordRowCounts === false ? undefined : await countInSnapshot(settings, job.databaseName);
      const excluded = job.excludeTableData ?? [];
      const args = [
        ...pgDumpFormatArguments(job.compression ?? 'none'),
        '--no-password',
        ...(snapshot ? [`--snapshot=${snapshot.id}`] : []),
        ...excluded.map((t) => `--exclude-table-data=${dumpPattern(t.schema, t.table)}`),
      ];
      const tableRowCounts = snapshot?.counts && { ...snapshot.counts, ...Object.fromEntries(excluded.map((t) => [`${t.schema}.${t.table}`, 0])) };
      const child = spawn(pgDump(), args, {
        env: pgEnvironment(settings, job.databaseName),
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
      });
      const stderr = new BoundedText(4000);
      child.stderr.on('data', (chunk: Buffer) => stderr.append(chunk));
      const onAbort = () => child.kill('SIGTERM');
      signal.addEventListener('abort', onAbort, { once: true });

      // The stream ends only once pg_dump exited 0; a non-zero exit errors it after the last byte.
      const stream = new CoalescingStream();
      child.stdout.pipe(stream, { end: false });
      const listing = startArchiveListing(pgRestoreBeside(pgDump()));
      child.stdout.on('data', (chunk: Buffer) => listing.feed(chunk));
      let restoreCheck: RestoreCheck | undefined;
      const done = new Promise<void>((resolve, reject) => {
        let stdoutEnded = false;
        let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
        let settled = false;
        const settle = () => {
          if (!stdoutEnded || !exit || settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          if (exit.code === 0) {
            // The stream ends only after the restore check passed: the upload commits nothing before.
            void listing.finish().then((check) => {
              restoreCheck = check;
              if (check.ok) {
                stream.end();
                resolve();
                return;
              }
              const failure = new JobFailure('restore_check_failed', `pg_restore --list could not read the archive: ${check.detail ?? 'unknown reason'}`);
              stream.destroy(failure);
              reject(failure);
            });
            return;
          }
          listing.abort();
          const reason = signal.aborted ? 'aborted' : stderr.toString() || `exit ${exit.code ?? exit.signal}`;
          const failure = new JobFailure(
            signal.aborted ? 'aborted' : classifyPgDumpError(reason),
            `pg_dump failed (exit ${exit.code ?? exit.signal}): ${reason}`,
          );
          stream.destroy(failure);
          reject(failure);
        };
        child.stdout.on('end', () => {
          stdoutEnded = true;
          settle();
        });
        child.on('close', (code, exitSignal) => {
          exit = { code, signal: exitSignal };
          stdoutEnded = true;
          settle();
        });
        child.on('error', (error) => {
          listing.abort();
          const failure = new JobFailure('engine_start_failed', `pg_dump could not be started: ${errorMessage(error)}`);
          stream.destroy(failure);
          reject(failure);
        });
      });
      // When the consumer gives up (upload failed), pg_dump must not keep running.
      stream.on('close', () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        if (!restoreCheck) listing.abort();
      });
      done.catch(() => undefined); // observed by the upload pipeline; never an unhandled rejection
      // The snapshot lives as long as its transaction: until pg_dump is done with it.
      void done.catch(() => undefined).finally(() => snapshot?.release());
      const streamed: EngineBackup = { stream, done, cleanup: async () => undefined, ...(tableRowCounts ? { tableRowCounts } : {}), restoreCheck: () => restoreCheck };
      return settings.spoolToWorkDir ? spoolToFile(streamed, join(options.workDir!, `dbdist-${job.jobId}-${attemptId}.dump`)) : streamed;
    },

    async check(): Promise<string> {
      const version = spawnSync(pgDump(), ['--version'], { encoding: 'utf8' });
      if (version.status !== 0) throw new Error(`${pgDump()} --version failed: ${version.stderr || version.error?.message}`);
      const client = new pg.Client({ ...pgClientConfig(settings, settings.maintenanceDatabase, 'dbdist-runner check'), connectionTimeoutMillis: 15_000 });
      try {
        await client.connect();
        const { rows } = await client.query<{ version: string }>('SELECT current_setting($1) AS version', ['server_version']);
        return `PostgreSQL ${rows[0]?.version} at ${settings.host}:${settings.port} as ${settings.user}; ${version.stdout.trim()}`;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
  };
}
