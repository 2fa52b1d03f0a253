/**
 * Stores for tests. `createPgliteStore()` is the everyday one: in-memory PostgreSQL (PGlite), migrated, fresh per
 * call, nothing to start. `createPostgresStore(url)` talks to a real server (see test/support/postgres.ts).
 */
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { createPostgresStore as createNodePostgresStore, migratePg } from '../shared/db/postgres.js';
import { createPgliteStore as createPgliteStoreOn } from '../shared/db/pglite.js';
import type { Store } from '../shared/db/store.js';

/**
 * A fresh PGlite takes seconds and, while initdb runs, ~750 MiB of memory; loading a copy of an initialized one takes
 * about a second and ~200 MiB. So each process runs initdb once, keeps the empty cluster's data directory as a
 * template (the embedded demo database and its restore check start from it too), and migrates one copy of it into
 * the template every store starts from.
 */
let emptyTemplate: Promise<Blob> | undefined;
export function emptyPgliteDataDir(): Promise<Blob> {
  emptyTemplate ??= (async () => {
    const client = await PGlite.create();
    try {
      return await client.dumpDataDir('none');
    } finally {
      await client.close();
    }
  })();
  return emptyTemplate;
}

let template: Promise<Blob> | undefined;
function migratedTemplate(): Promise<Blob> {
  template ??= (async () => {
    const client = new PGlite({ loadDataDir: await emptyPgliteDataDir() });
    try {
      await migratePg(drizzle({ client }));
      return await client.dumpDataDir('none');
    } finally {
      await client.close();
    }
  })();
  return template;
}

/** A fresh, migrated, in-memory store, independent of every other. Call `store.close()` when done. */
export async function createPgliteStore(options: { now?: () => Date } = {}): Promise<Store> {
  return createPgliteStoreOn({ ...options, loadDataDir: await migratedTemplate() });
}

/** What `allRows` needs of a PostgreSQL client: PGlite, a node-postgres pool or client. */
export interface RowsClient {
  query(sql: string): Promise<{ rows: unknown[] }>;
}

/** Every row of every table of a PostgreSQL database (the migrations' own included): what a secret scan reads. */
export async function allRows(client: RowsClient): Promise<Record<string, unknown[]>> {
  const tables = await client.query(
    `select table_schema as schema, table_name as name from information_schema.tables
      where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`,
  );
  const rows: Record<string, unknown[]> = {};
  for (const { schema, name } of tables.rows as Array<{ schema: string; name: string }>) {
    rows[`${schema}.${name}`] = (await client.query(`select * from "${schema}"."${name}"`)).rows;
  }
  return rows;
}

/** A fresh store as createPgliteStore makes it, with its PGlite instance for raw reads: close the store, then it. */
export async function createInspectablePgliteStore(): Promise<{ store: Store; client: PGlite }> {
  const client = new PGlite({ loadDataDir: await migratedTemplate() });
  return { client, store: await createPgliteStoreOn({ client }) };
}

/** A migrated store on a real PostgreSQL database (e.g. one made by `createTestDatabase` in postgres.ts). */
export function createPostgresStore(connectionString: string, options: { now?: () => Date } = {}): Promise<Store> {
  return createNodePostgresStore({ connectionString, migrate: true, ...options });
}
