/**
 * The PostgreSQL store over PGlite (in-process PostgreSQL): the local sandbox and tests, never production
 * (@electric-sql/pglite is a dev dependency, which is why this is a module of its own).
 */
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { createPgStoreFromDb, migratePg } from './postgres.js';
import type { RepositoryOptions } from './repository.js';
import type { Store } from './store.js';

export interface PgliteStoreOptions extends RepositoryOptions {
  /** Directory to keep data in; in memory when omitted. */
  dataDir?: string;
  /** Start from a copy of another instance's data (`PGlite.dumpDataDir()`): much faster than a fresh initdb. */
  loadDataDir?: Blob;
  /** A PGlite instance the caller owns (and closes). */
  client?: PGlite;
}

/** A migrated store on PGlite. Closing the store closes the PGlite instance it created. */
export async function createPgliteStore(options: PgliteStoreOptions = {}): Promise<Store> {
  const client = options.client ?? new PGlite({ dataDir: options.dataDir, loadDataDir: options.loadDataDir });
  const db = drizzle({ client });
  await migratePg(db); // a no-op when the data already has every migration
  return createPgStoreFromDb(db, async () => {
    if (!options.client) await client.close();
  }, options);
}
