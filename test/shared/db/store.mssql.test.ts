/**
 * The Store contract on a real SQL Server, only where one is reachable: set MSSQL_URL, e.g.
 * `mssql://sa:Passw0rd!@127.0.0.1:1433/master?trustServerCertificate=true`. Each store gets a fresh database
 * (created on that server, migrated with the committed T-SQL migrations, dropped afterwards).
 * No SQL Server can run on the development machines, so this is skipped there (see mssql.tsql.test.ts for what
 * is checked without one).
 */
import { randomBytes } from 'node:crypto';
import mssql from 'mssql';
import { afterAll, describe } from 'vitest';
import { createMssqlStore, mssqlConfigFromUrl } from '../../../shared/db/mssql.js';
import { storeContract } from './store.contract.js';

const url = process.env.MSSQL_URL;

describe.skipIf(!url)('SQL Server (MSSQL_URL)', () => {
  const created: string[] = [];
  const adminConfig = () => mssqlConfigFromUrl(url!);

  async function withAdmin(work: (pool: mssql.ConnectionPool) => Promise<void>) {
    const pool = await new mssql.ConnectionPool(adminConfig()).connect();
    try {
      await work(pool);
    } finally {
      await pool.close();
    }
  }

  afterAll(async () => {
    if (created.length === 0) return;
    await withAdmin(async (pool) => {
      for (const name of created) {
        await pool.request().batch(`alter database [${name}] set single_user with rollback immediate; drop database [${name}]`);
      }
    });
  });

  storeContract('SQL Server', async () => {
    const name = `dbdist_test_${randomBytes(6).toString('hex')}`;
    await withAdmin(async (pool) => {
      await pool.request().batch(`create database [${name}]`);
    });
    created.push(name);
    return createMssqlStore({ config: { ...adminConfig(), database: name } }, { migrate: true });
  });
});
