/**
 * PostgreSQL flavour of the store: node-postgres in the sandbox and tests, PGlite through shared/db/pglite.ts.
 * Only what differs by dialect lives here: `.returning()`, `.limit()`, and how a duplicate key is reported.
 */
import { fileURLToPath } from 'node:url';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import type { PgAsyncDatabase, PgColumn, PgTable, SelectedFields } from 'drizzle-orm/pg-core';
import pg from 'pg';
import { aggregateFields, createRepositoryStore, someCause, type DialectAdapter, type RepositoryOptions, type SqlOps } from './repository.js';
import type { Rows } from './rows.js';
import * as schema from './schema.pg.js';
import type { Store } from './store.js';

/** Any Drizzle PostgreSQL database or transaction (node-postgres, PGlite). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyPgDatabase = PgAsyncDatabase<any, any>;

export const pgTables = schema;
const tableOf = (name: keyof Rows): PgTable => schema[name];

export const pgMigrationsFolder = fileURLToPath(new URL('./migrations/pg', import.meta.url));

/** Applies the committed migrations (shared/db/migrations/pg); safe to run on every start. */
export async function migratePg(db: AnyPgDatabase): Promise<void> {
  // The node-postgres and PGlite migrators are the same function over any async Drizzle pg database.
  await migrate(db as NodePgDatabase, { migrationsFolder: pgMigrationsFolder });
}

function pgOps(db: AnyPgDatabase): SqlOps {
  return {
    async aggregate(table, query) {
      // The fields are this dialect's own columns, typed dialect-neutrally in the query.
      const groups = Object.values(query.groupBy) as PgColumn[];
      return db.select(aggregateFields(query) as SelectedFields).from(tableOf(table)).where(query.where).groupBy(...groups);
    },
    async insert(table, row) {
      const [inserted] = await db.insert(tableOf(table)).values(row).returning();
      return inserted as Rows[typeof table];
    },
    async select(table, query) {
      const base = db.select().from(tableOf(table)).where(query.where).orderBy(...(query.orderBy ?? []));
      return (await (query.limit === undefined ? base : base.limit(query.limit))) as Rows[typeof table][];
    },
    async update(table, set, where) {
      return (await db.update(tableOf(table)).set(set).where(where).returning()) as Rows[typeof table][];
    },
    async delete(table, where) {
      return (await db.delete(tableOf(table)).where(where).returning()).length;
    },
  };
}

/** PostgreSQL reports a unique violation as SQLSTATE 23505 (node-postgres and PGlite alike). */
export function isPgDuplicateKey(error: unknown): boolean {
  return someCause(error, (candidate) => candidate.code === '23505');
}

export function createPgStoreFromDb(db: AnyPgDatabase, close: () => Promise<void>, options: RepositoryOptions = {}): Store {
  const adapter: DialectAdapter = {
    dialect: 'postgres',
    tables: schema,
    ops: pgOps(db),
    transaction: (work) => db.transaction((tx) => work(pgOps(tx))),
    isDuplicateKey: isPgDuplicateKey,
    close,
  };
  return createRepositoryStore(adapter, options);
}

export interface PostgresStoreOptions extends RepositoryOptions {
  /** A node-postgres pool the caller owns, or a connection string (then the store owns and closes its pool). */
  pool?: pg.Pool;
  connectionString?: string;
  /** Apply the committed migrations before returning. */
  migrate?: boolean;
}

export async function createPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const ownsPool = !options.pool;
  const pool = options.pool ?? new pg.Pool({ connectionString: options.connectionString });
  if (ownsPool) {
    // The server may end an idle pooled connection (restart, failover, a dropped database). The pool discards it
    // and connects afresh on next use, but it reports it as an 'error' event, which kills the process unheard.
    pool.on('error', (error) => console.warn(`PostgreSQL closed an idle pooled connection: ${error.message}`));
  }
  const db = drizzle({ client: pool });
  if (options.migrate) await migratePg(db);
  return createPgStoreFromDb(db, async () => {
    if (ownsPool) await pool.end();
  }, options);
}
