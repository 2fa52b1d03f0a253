/**
 * SQL Server / Azure SQL flavour of the store (production). Only what differs by dialect lives here:
 * `.output()` instead of RETURNING, `.top()` instead of LIMIT, duplicate-key error numbers, and the connection.
 *
 * Azure SQL drops connections during reconfigurations and failovers; tedious retries only the login. So every
 * transaction, and every statement run outside one, is retried whole on the transient list below, with back-off.
 * A retry after a commit whose answer was lost finds the work done: transitions are guarded by the `from` status
 * (the caller sees "not transitioned" with the job already in the target state) and inserts carry their own ids.
 *
 * OUTPUT without INTO fails on a table with an enabled trigger (Msg 334). The tables have none (no migration
 * creates one, test/shared/db/mssql.tsql.test.ts checks), and `createMssqlStore` refuses to start if a trigger
 * appears, naming it, rather than failing every write.
 *
 * Building a statement is kept apart from running it (`mssqlOps(db, run)`), so a test can build every statement
 * this module issues without a server and check that it parses as T-SQL.
 */
import { fileURLToPath } from 'node:url';
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import type { MsSqlColumn, MsSqlDatabase, MsSqlTable, SelectedFields } from 'drizzle-orm/mssql-core';
import { drizzle } from 'drizzle-orm/node-mssql';
import { migrate } from 'drizzle-orm/node-mssql/migrator';
import mssql from 'mssql';
import { backoffDelayMs, type RetryPolicy } from '../retry.js';
import { aggregateFields, createRepositoryStore, someCause, type DialectAdapter, type RepositoryOptions, type SqlOps } from './repository.js';
import { AppError } from '../errors.js';
import type { Rows } from './rows.js';
import * as schema from './schema.mssql.js';
import type { Store } from './store.js';

/** Any Drizzle SQL Server database or transaction. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMsSqlDatabase = MsSqlDatabase<any, any, any>;

/** A built statement: Drizzle query builders are both (`toSQL()` and awaitable). */
export interface BuiltQuery {
  toSQL(): { sql: string; params: unknown[] };
}
/** Runs a built statement and returns its rows. Production awaits the builder; the T-SQL test records it. */
export type QueryRunner = (query: BuiltQuery & PromiseLike<unknown>) => Promise<unknown>;
export const runOnServer: QueryRunner = async (query) => query;

const tableOf = (name: keyof Rows): MsSqlTable => schema[name];

export const mssqlMigrationsFolder = fileURLToPath(new URL('./migrations/mssql', import.meta.url));

/** Applies the committed T-SQL migrations (shared/db/migrations/mssql). */
export async function migrateMssql(db: AnyMsSqlDatabase): Promise<void> {
  await migrate(db as Parameters<typeof migrate>[0], { migrationsFolder: mssqlMigrationsFolder });
}

export function mssqlOps(db: AnyMsSqlDatabase, run: QueryRunner = runOnServer): SqlOps {
  return {
    async aggregate(table, query) {
      // The fields are this dialect's own columns, typed dialect-neutrally in the query.
      const groups = Object.values(query.groupBy) as MsSqlColumn[];
      return (await run(db.select(aggregateFields(query) as SelectedFields).from(tableOf(table)).where(query.where).groupBy(...groups))) as Array<
        Record<string, unknown>
      >;
    },
    async insert(table, row) {
      const [inserted] = (await run(db.insert(tableOf(table)).output().values(row))) as Rows[typeof table][];
      return inserted!;
    },
    async select(table, query) {
      const from = query.limit === undefined ? db.select().from(tableOf(table)) : db.select().top(query.limit).from(tableOf(table));
      return (await run(from.where(query.where).orderBy(...(query.orderBy ?? [])))) as Rows[typeof table][];
    },
    async update(table, set, where) {
      return (await run(db.update(tableOf(table)).set(set).output().where(where))) as Rows[typeof table][];
    },
    async delete(table, where) {
      const target = tableOf(table) as typeof schema.servers;
      return ((await run(db.delete(target).output({ id: target.id }).where(where))) as unknown[]).length;
    },
  };
}

/**
 * Error numbers worth retrying: Microsoft.Data.SqlClient's baseline transient list (SqlConfigurableRetryFactory),
 * which covers tedious's login-only list (4060, 10928, 10929, 40197, 40501, 40613) and adds deadlocks and lock
 * time-outs (1204, 1205, 1222), resource limits (49918-49920) and dropped connections.
 */
export const transientSqlErrorNumbers: ReadonlySet<number> = new Set([
  20, 64, 233, 997, 1204, 1205, 1222, 4060, 4221, 10053, 10054, 10060, 10928, 10929, 40143, 40197, 40501, 40540, 40613, 42108, 42109,
  49918, 49919, 49920,
]);
/** mssql/tedious codes for a connection that broke or never came up (not ETIMEOUT of a request: that may have run). */
const transientConnectionCodes: ReadonlySet<string> = new Set(['ESOCKET', 'ECONNCLOSED', 'ECONNRESET']);

export function isTransientSqlError(error: unknown): boolean {
  return someCause(
    error,
    (candidate) =>
      (typeof candidate.number === 'number' && transientSqlErrorNumbers.has(candidate.number)) ||
      (typeof candidate.code === 'string' && transientConnectionCodes.has(candidate.code)),
  );
}

export const defaultSqlRetryPolicy: RetryPolicy = { maxAttempts: 5, baseDelayMs: 500, maxDelayMs: 15_000 };

export interface SqlRetryOptions {
  policy?: RetryPolicy;
  /** Waits between attempts (tests pass a recorder). */
  sleep?: (ms: number) => Promise<void>;
}

/** Runs `work` again, after a back-off, while it fails with a transient error and attempts remain. */
export async function withTransientRetry<T>(work: () => Promise<T>, options: SqlRetryOptions = {}): Promise<T> {
  const policy = options.policy ?? defaultSqlRetryPolicy;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt + 1 >= policy.maxAttempts || !isTransientSqlError(error)) throw error;
      await sleep(backoffDelayMs(attempt, policy));
    }
  }
}

/** Each op is its own (autocommit) transaction here, so each is retried whole. */
function retryingOps(ops: SqlOps, retry: SqlRetryOptions): SqlOps {
  return {
    aggregate: (table, query) => withTransientRetry(() => ops.aggregate(table, query), retry),
    insert: (table, row) => withTransientRetry(() => ops.insert(table, row), retry),
    select: (table, query) => withTransientRetry(() => ops.select(table, query), retry),
    update: (table, set, where) => withTransientRetry(() => ops.update(table, set, where), retry),
    delete: (table, where) => withTransientRetry(() => ops.delete(table, where), retry),
  };
}

/** SQL Server reports a unique index violation as error 2601 and a unique constraint violation as 2627. */
export function isMssqlDuplicateKey(error: unknown): boolean {
  return someCause(error, (candidate) => candidate.number === 2601 || candidate.number === 2627);
}

/** The SQL Server side of the repository: statements built on `db`, run by `run`. */
export function mssqlAdapter(
  db: AnyMsSqlDatabase,
  close: () => Promise<void>,
  run: QueryRunner = runOnServer,
  retry: SqlRetryOptions = {},
): DialectAdapter {
  return {
    dialect: 'mssql',
    tables: schema,
    ops: retryingOps(mssqlOps(db, run), retry),
    // Inside a transaction nothing is retried alone: a broken connection ends the transaction, so it restarts whole.
    transaction: (work) => withTransientRetry(() => db.transaction((tx) => work(mssqlOps(tx as AnyMsSqlDatabase, run))), retry),
    isDuplicateKey: isMssqlDuplicateKey,
    close,
  };
}

export const azureSqlScope = 'https://database.windows.net/.default';

/** Asks for a token for `scope` whatever scope the driver derives from the server's login answer. */
function scopedCredential(credential: TokenCredential, scope: string): TokenCredential {
  return {
    getToken: (_scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> =>
      credential.getToken(scope, options),
  };
}

export type MssqlConnection =
  /**
   * Azure SQL with Entra authentication: the app's managed identity (or any TokenCredential) gets the token.
   * `scope` for sovereign clouds (e.g. https://database.usgovcloudapi.net/.default); default: Azure public cloud.
   */
  | { server: string; database: string; credential: TokenCredential; port?: number; scope?: string }
  /** An explicit mssql config, e.g. built from `MSSQL_URL` in tests. */
  | { config: mssql.config };

/** The mssql pool config for a connection: encrypted, Entra token authentication for Azure SQL. */
export function mssqlConfig(connection: MssqlConnection): mssql.config {
  if ('config' in connection) return connection.config;
  return {
    server: connection.server,
    database: connection.database,
    port: connection.port ?? 1433,
    // Azure SQL's guidance: at least 30 s, so a login during a reconfiguration waits instead of failing.
    connectionTimeout: 30_000,
    options: { encrypt: true, trustServerCertificate: false },
    authentication: {
      type: 'token-credential',
      options: { credential: scopedCredential(connection.credential, connection.scope ?? azureSqlScope) },
    },
  };
}

/** An mssql config from a URL such as `mssql://user:password@127.0.0.1:1433/dbdist?trustServerCertificate=true`. */
export function mssqlConfigFromUrl(url: string): mssql.config {
  const parsed = new URL(url);
  return {
    server: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : 1433,
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || undefined,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    options: {
      encrypt: parsed.searchParams.get('encrypt') !== 'false',
      trustServerCertificate: parsed.searchParams.get('trustServerCertificate') === 'true',
    },
  };
}

export interface MssqlStoreOptions extends RepositoryOptions {
  /** Apply the committed migrations before returning (tests; production migrates at deploy time). */
  migrate?: boolean;
}

/** Enabled DML triggers on the tables of the store's schema: any one breaks OUTPUT without INTO (Msg 334). */
export const enabledTriggersStatement =
  'SELECT OBJECT_NAME(parent_id) AS table_name, name AS trigger_name FROM sys.triggers ' +
  'WHERE parent_class = 1 AND is_disabled = 0 AND OBJECT_SCHEMA_NAME(parent_id) = SCHEMA_NAME()';

/** Refuses to run the store on tables with triggers, naming them (the fix is the trigger's owner's). */
export async function assertNoTriggers(query: (text: string) => Promise<{ recordset?: Array<Record<string, unknown>> }>): Promise<void> {
  const rows = (await query(enabledTriggersStatement)).recordset ?? [];
  if (rows.length > 0) {
    const names = rows.map((row) => `${String(row.trigger_name)} on ${String(row.table_name)}`).join(', ');
    throw new AppError(
      'config_invalid',
      `The store's tables must carry no enabled triggers (its INSERT/UPDATE/DELETE use OUTPUT without INTO): ${names}`,
    );
  }
}

export async function createMssqlStore(connection: MssqlConnection, options: MssqlStoreOptions = {}): Promise<Store> {
  // Drizzle gets a pool that is already connected: built from a connection string, db.transaction failed.
  const pool = await withTransientRetry(() => new mssql.ConnectionPool(mssqlConfig(connection)).connect());
  const db = drizzle({ client: pool });
  if (options.migrate) await migrateMssql(db);
  await withTransientRetry(() => assertNoTriggers((text) => pool.request().query(text)));
  return createRepositoryStore(mssqlAdapter(db, () => pool.close()), options);
}
