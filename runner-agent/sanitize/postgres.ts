/**
 * The PostgreSQL scratch target: `pg_dump -Fc | pg_restore` into a fresh database on the scratch server, masking
 * in one transaction through `pg`, and the scratch database dumped by the ordinary PostgreSQL engine.
 * Identifiers are always quoted (`pg.escapeIdentifier`); values are bind parameters; the hash strategies compute
 * HMAC-SHA256 with the built-in `sha256()` from pads passed as parameters (no pgcrypto needed).
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import pg from 'pg';
import { errorMessage } from '../../shared/errors.js';
import type { PostgresSettings } from '../config.js';
import { countTables, createPostgresEngine, findPgDump, pgClientConfig, pgEnvironment } from '../engines/postgres.js';
import { BoundedText, JobFailure } from '../errors.js';
import type { MaskingPlan, PlannedColumn } from './plan.js';
import { FAKE_EMAIL_LENGTH } from './plan.js';
import { FIRST_NAMES, LAST_NAMES } from './scratch.js';
import type { CatalogColumn, MaskingKey, ScratchDriver } from './types.js';

const id = pg.escapeIdentifier;
const table = (schema: string, name: string) => `${id(schema)}.${id(name)}`;

export interface PostgresScratchOptions {
  /** The server the job's database lives on (what pg_dump reads). */
  source: PostgresSettings;
  /** The server scratch databases are created on; may be the same server. */
  scratch: PostgresSettings;
  prefix: string;
  pgDumpPath?: string;
}

async function withClient<T>(settings: PostgresSettings, database: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(pgClientConfig(settings, database, 'dbdist-runner scratch'));
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** HMAC-SHA256 of a value's text as bytea: sha256(opad || sha256(ipad || value)); $1 = ipad, $2 = opad. */
export function hmacExpression(column: string): string {
  return `sha256($2::bytea || sha256($1::bytea || convert_to(${id(column)}::text, 'UTF8')))`;
}

const literalArray = (values: readonly string[]) => `ARRAY[${values.map((v) => pg.escapeLiteral(v)).join(', ')}]`;

/** The SET expression of one planned column; fixed values are appended to `params`. */
export function maskExpression({ column, rule }: PlannedColumn, params: unknown[]): string {
  const fit = (expression: string) => (column.maxLength !== null && column.maxLength > 0 ? `left(${expression}, ${column.maxLength})` : expression);
  const hmac = hmacExpression(column.column);
  switch (rule.strategy) {
    case 'null':
      return 'NULL';
    case 'fixed':
      params.push(String(rule.value));
      return `$${params.length}`;
    case 'hash':
      return fit(`encode(${hmac}, 'hex')`);
    case 'email':
      return `'user_' || left(encode(${hmac}, 'hex'), ${FAKE_EMAIL_LENGTH - 'user_@example.invalid'.length}) || '@example.invalid'`;
    case 'name':
      return fit(
        `(${literalArray(FIRST_NAMES)})[1 + get_byte(${hmac}, 0) % ${FIRST_NAMES.length}] || ' ' || ` +
          `(${literalArray(LAST_NAMES)})[1 + get_byte(${hmac}, 1) % ${LAST_NAMES.length}]`,
      );
  }
}

/** The statements that apply a plan, with their parameters (the key pads first). Custom SQL comes last. */
export function maskingStatements(plan: MaskingPlan, key: MaskingKey): Array<{ text: string; values: unknown[] }> {
  const statements: Array<{ text: string; values: unknown[] }> = [];
  if (plan.tables.length > 0) {
    // One statement: tables referencing each other can only be emptied together.
    statements.push({ text: `TRUNCATE TABLE ${plan.tables.map((t) => table(t.schema, t.table)).join(', ')}`, values: [] });
  }
  const byTable = new Map<string, PlannedColumn[]>();
  for (const planned of plan.columns) {
    const key = table(planned.column.schema, planned.column.table);
    byTable.set(key, [...(byTable.get(key) ?? []), planned]);
  }
  for (const [name, columns] of byTable) {
    const values: unknown[] = [key.ipad, key.opad];
    const sets = columns.map((planned) => `${id(planned.column.column)} = ${maskExpression(planned, values)}`);
    statements.push({ text: `UPDATE ${name} SET ${sets.join(', ')}`, values });
  }
  return statements;
}

/** pg_restore's reading end; resolves when it exited 0, else fails with its stderr. */
function pgRestoreInto(pgRestore: string, settings: PostgresSettings, database: string, input: Readable, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    // The input may have failed while the scratch database was being created: its error event is gone by now.
    if (input.destroyed) {
      reject(input.errored ?? new JobFailure('restore_failed', `The input for pg_restore into ${database} closed before the restore started`));
      return;
    }
    const child = spawn(pgRestore, ['--no-owner', '--no-privileges', '--exit-on-error', '--no-password', `--dbname=${database}`], {
      env: pgEnvironment(settings, database),
      stdio: ['pipe', 'ignore', 'pipe'],
      windowsHide: true,
    });
    const stderr = new BoundedText(4000);
    child.stderr.on('data', (chunk: Buffer) => stderr.append(chunk));
    const onAbort = () => child.kill('SIGTERM');
    signal.addEventListener('abort', onAbort, { once: true });
    let inputError: unknown;
    input.on('error', (error) => {
      inputError = error;
      child.kill('SIGTERM');
    });
    child.stdin.on('error', () => undefined); // pg_restore exiting early closes its stdin; its exit code tells why
    input.pipe(child.stdin);
    child.on('error', (error) => reject(new JobFailure('engine_start_failed', `pg_restore could not be started: ${errorMessage(error)}`)));
    child.on('close', (code) => {
      signal.removeEventListener('abort', onAbort);
      if (code === 0 && !inputError && !signal.aborted) return resolve();
      input.destroy(); // stops the producer (pg_dump, a download) that fed a restore that gave up
      if (inputError) reject(inputError);
      else if (signal.aborted) reject(new JobFailure('aborted', 'Restore aborted'));
      else reject(new JobFailure('restore_failed', `pg_restore into ${database} failed (exit ${code}): ${stderr.toString()}`));
    });
  });
}

/** Columns of the base tables of a database, system schemas left out. */
function catalog(settings: PostgresSettings, database: string): Promise<CatalogColumn[]> {
  return withClient(settings, database, async (client) => {
    const { rows } = await client.query<{ schema: string; table: string; column: string; data_type: string; max_length: number | null }>(
      `SELECT c.table_schema AS schema, c.table_name AS table, c.column_name AS column, c.data_type, c.character_maximum_length AS max_length
         FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
        WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
        ORDER BY 1, 2, c.ordinal_position`,
    );
    return rows.map((r) => ({ schema: r.schema, table: r.table, column: r.column, dataType: r.data_type.toLowerCase(), maxLength: r.max_length }));
  });
}

export function createPostgresScratch(options: PostgresScratchOptions): ScratchDriver {
  const { source, scratch, prefix } = options;
  let pgDumpPath = options.pgDumpPath;
  const pgDump = () => (pgDumpPath ??= findPgDump(scratch.binDir ?? source.binDir));
  const pgRestore = () => join(dirname(pgDump()), process.platform === 'win32' ? 'pg_restore.exe' : 'pg_restore');
  const admin = <T>(work: (client: pg.Client) => Promise<T>) => withClient(scratch, scratch.maintenanceDatabase, work);
  const assertOurs = (name: string) => {
    if (!name.startsWith(prefix) || !/^[a-z0-9_]+$/.test(name)) throw new Error(`Refusing to touch ${name}: not a scratch database`);
  };
  const create = (name: string) => {
    assertOurs(name);
    return admin((client) => client.query(`CREATE DATABASE ${id(name)} TEMPLATE template0`));
  };
  const sourceEngine = createPostgresEngine(source, { pgDumpPath: pgDump() });
  const scratchEngine = createPostgresEngine(scratch, { pgDumpPath: pgDump() });

  const driver: ScratchDriver = {
    engine: 'postgres',
    prefix,

    async restoreFromSource(sourceDatabase, name, signal) {
      await create(name);
      const dump = await sourceEngine.backup({ jobId: name, databaseName: sourceDatabase }, { signal, attemptId: name, onProgress: () => undefined });
      try {
        await Promise.all([pgRestoreInto(pgRestore(), scratch, name, dump.stream, signal), dump.done]);
      } finally {
        await dump.cleanup();
      }
    },

    async restoreFromBackup(backup, name, signal) {
      await create(name);
      await pgRestoreInto(pgRestore(), scratch, name, backup, signal);
    },

    columns: (name) => catalog(scratch, name),
    sourceColumns: (database) => catalog(source, database),
    backupSourceExcludingData: (database, tables, { signal, attemptId, jobId }) =>
      sourceEngine.backup({ jobId, databaseName: database, excludeTableData: tables }, { signal, attemptId, onProgress: () => undefined }),

    applyMasking: (name, plan, key, signal) =>
      withClient(scratch, name, async (client) => {
        signal.throwIfAborted();
        await client.query('BEGIN');
        let step = '';
        try {
          for (const statement of maskingStatements(plan, key)) {
            step = statement.text.slice(0, 200);
            await client.query(statement);
          }
          for (const [index, text] of plan.sql.entries()) {
            step = `custom SQL statement ${index + 1}`;
            await client.query(text);
          }
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new JobFailure('masking_failed', `Masking failed at ${step}: ${errorMessage(error)}`, { cause: error });
        }
      }),

    distinctValues: (name, column: CatalogColumn) =>
      withClient(scratch, name, async (client) => {
        const { rows } = await client.query<{ v: string }>(
          `SELECT DISTINCT ${id(column.column)}::text AS v FROM ${table(column.schema, column.table)} WHERE ${id(column.column)} IS NOT NULL`,
        );
        return rows.map((r) => r.v);
      }),

    countRows: (name) => withClient(scratch, name, countTables),

    backup: (name, { signal, attemptId, jobId }) =>
      scratchEngine.backup({ jobId, databaseName: name }, { signal, attemptId, onProgress: () => undefined }),

    async drop(name) {
      assertOurs(name);
      await admin((client) => client.query(`DROP DATABASE IF EXISTS ${id(name)} WITH (FORCE)`));
    },

    async dropLeftovers() {
      const names = await admin(async (client) => {
        const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [prefix]);
        return rows.map((r) => r.datname);
      });
      for (const name of names) await driver.drop(name);
      return names;
    },
  };
  return driver;
}
