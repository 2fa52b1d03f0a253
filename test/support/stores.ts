/**
 * Stores for tests. `createPgliteStore()` is the everyday one: in-memory PostgreSQL (PGlite), migrated, fresh per
 * call, nothing to start. `createPostgresStore(url)` talks to a real server (see test/support/postgres.ts).
 */
import { createPostgresStore as createNodePostgresStore } from '../../shared/db/postgres.js';
import { createPgliteStore as createPgliteStoreOn, type PgliteStoreOptions } from '../../shared/db/pglite.js';
import type { Store } from '../../shared/db/store.js';

/** A fresh, migrated, in-memory store. Call `store.close()` when done. */
export function createPgliteStore(options: Omit<PgliteStoreOptions, 'client' | 'dataDir'> = {}): Promise<Store> {
  return createPgliteStoreOn(options);
}

/** A migrated store on a real PostgreSQL database (e.g. one made by `createTestDatabase` in postgres.ts). */
export function createPostgresStore(connectionString: string, options: { now?: () => Date } = {}): Promise<Store> {
  return createNodePostgresStore({ connectionString, migrate: true, ...options });
}
