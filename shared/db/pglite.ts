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
  /** A PGlite instance the caller owns (and closes). */
  client?: PGlite;
}

/** A migrated store on PGlite. Closing the store closes the PGlite instance it created. */
export async function createPgliteStore(options: PgliteStoreOptions = {}): Promise<Store> {
  const client = options.client ?? new PGlite(options.dataDir);
  const db = drizzle({ client });
  await migratePg(db);
  return createPgStoreFromDb(db, async () => {
    if (!options.client) await client.close();
  }, options);
}
