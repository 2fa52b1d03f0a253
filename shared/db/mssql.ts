/**
 * SQL Server / Azure SQL flavour of the store (production). Only what differs by dialect lives here:
 * `.output()` instead of RETURNING, `.top()` instead of LIMIT, duplicate-key error numbers, and the connection.
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
import { aggregateFields, createRepositoryStore, someCause, type DialectAdapter, type RepositoryOptions, type SqlOps } from './repository.js';
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

/** SQL Server reports a unique index violation as error 2601 and a unique constraint violation as 2627. */
export function isMssqlDuplicateKey(error: unknown): boolean {
  return someCause(error, (candidate) => candidate.number === 2601 || candidate.number === 2627);
}

/** The SQL Server side of the repository: statements built on `db`, run by `run`. */
export function mssqlAdapter(db: AnyMsSqlDatabase, close: () => Promise<void>, run: QueryRunner = runOnServer): DialectAdapter {
  return {
    dialect: 'mssql',
    tables: schema,
    ops: mssqlOps(db, run),
    transaction: (work) => db.transaction((tx) => work(mssqlOps(tx as AnyMsSqlDatabase, run))),
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
  /** Azure SQL with Entra authentication: the app's managed identity (or any TokenCredential) gets the token. */
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

export async function createMssqlStore(connection: MssqlConnection, options: MssqlStoreOptions = {}): Promise<Store> {
  // Drizzle gets a pool that is already connected: built from a connection string, db.transaction failed.
  const pool = await new mssql.ConnectionPool(mssqlConfig(connection)).connect();
  const db = drizzle({ client: pool });
  if (options.migrate) await migrateMssql(db);
  return createRepositoryStore(mssqlAdapter(db, () => pool.close()), options);
}
