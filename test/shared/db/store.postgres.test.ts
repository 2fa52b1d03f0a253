import { afterAll, beforeAll, describe } from 'vitest';
import { postgresAvailable, startPostgres, type PostgresServer } from '../../support/postgres.js';
import { createPostgresStore } from '../../../dev/stores.js';
import { storeContract } from './store.contract.js';

// Skipped only where no PostgreSQL server exists locally; in CI (`CI` set) the fixture fails instead.
describe.skipIf(!postgresAvailable)('PostgreSQL server', () => {
  let postgres: PostgresServer;
  beforeAll(async () => {
    postgres = await startPostgres();
  });
  afterAll(() => postgres?.stop());

  // A fresh database per store: concurrent scheduled jobs really race here, on separate connections.
  storeContract('PostgreSQL', async () => createPostgresStore(await postgres.createDatabase()));
});
