import { DrizzleQueryError } from 'drizzle-orm/errors';
import { describe, expect, it } from 'vitest';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-mssql';
import {
  azureSqlScope,
  isMssqlDuplicateKey,
  isTransientSqlError,
  mssqlAdapter,
  mssqlConfig,
  mssqlConfigFromUrl,
  withTransientRetry,
  type QueryRunner,
} from '../../../shared/db/mssql.js';
import { isPgDuplicateKey } from '../../../shared/db/postgres.js';

class RecordingCredential implements TokenCredential {
  scopes: (string | string[])[] = [];
  async getToken(scopes: string | string[]): Promise<AccessToken> {
    this.scopes.push(scopes);
    return { token: 'token', expiresOnTimestamp: Date.now() + 60_000 };
  }
}

describe('SQL Server connection', () => {
  it('authenticates to Azure SQL with the injected credential, asking for the Azure SQL scope, over TLS', async () => {
    const credential = new RecordingCredential();
    const config = mssqlConfig({ server: 'sql-dbdist.database.windows.net', database: 'dbdist', credential });
    expect(config).toMatchObject({
      server: 'sql-dbdist.database.windows.net',
      database: 'dbdist',
      port: 1433,
      options: { encrypt: true, trustServerCertificate: false },
      authentication: { type: 'token-credential' },
    });
    expect(config).not.toHaveProperty('password');
    // The driver asks with the scope the server names at login; we always ask for Azure SQL's.
    const driverCredential = (config.authentication!.options as { credential: TokenCredential }).credential;
    await driverCredential.getToken('https://other.example/.default');
    expect(credential.scopes).toEqual([azureSqlScope]);
    expect(azureSqlScope).toBe('https://database.windows.net/.default');
  });

  it('passes an explicit config through untouched', () => {
    const explicit = { server: '127.0.0.1', user: 'sa', password: 'x' };
    expect(mssqlConfig({ config: explicit })).toBe(explicit);
  });

  it('reads a test server URL', () => {
    expect(mssqlConfigFromUrl('mssql://sa:p%40ss@127.0.0.1:14330/dbdist?trustServerCertificate=true')).toEqual({
      server: '127.0.0.1',
      port: 14330,
      database: 'dbdist',
      user: 'sa',
      password: 'p@ss',
      options: { encrypt: true, trustServerCertificate: true },
    });
  });
});

describe('duplicate key detection', () => {
  it('recognises SQL Server 2601/2627 and PostgreSQL 23505, also when Drizzle or mssql wrap the driver error', () => {
    const tedious = Object.assign(new Error('Cannot insert duplicate key row'), { number: 2601 });
    const mssqlError = Object.assign(new Error('request failed'), { originalError: tedious });
    expect(isMssqlDuplicateKey(new DrizzleQueryError('insert …', [], mssqlError))).toBe(true);
    expect(isMssqlDuplicateKey(Object.assign(new Error('pk'), { number: 2627 }))).toBe(true);
    expect(isMssqlDuplicateKey(Object.assign(new Error('check'), { number: 547 }))).toBe(false);

    const pgError = Object.assign(new Error('duplicate key value'), { code: '23505' });
    expect(isPgDuplicateKey(new DrizzleQueryError('insert …', [], pgError))).toBe(true);
    expect(isPgDuplicateKey(Object.assign(new Error('check'), { code: '23514' }))).toBe(false);
    expect(isPgDuplicateKey(undefined)).toBe(false);
  });
});

describe('transient Azure SQL errors', () => {
  const transient = (number: number) => Object.assign(new Error(`error ${number}`), { number });
  const wrapped = (number: number) => new DrizzleQueryError('update …', [], Object.assign(new Error('request failed'), { originalError: transient(number) }));
  const fast = { policy: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000 } };

  it.each([40613, 40501, 40197, 49918, 49919, 49920, 10928, 10929, 4060, 1205])('treats %i as transient, also wrapped', (number) => {
    expect(isTransientSqlError(wrapped(number))).toBe(true);
  });

  it('treats a broken connection as transient, and constraint, permission and timeout errors as not', () => {
    expect(isTransientSqlError(Object.assign(new Error('closed'), { code: 'ECONNCLOSED' }))).toBe(true);
    expect(isTransientSqlError(Object.assign(new Error('socket'), { code: 'ESOCKET' }))).toBe(true);
    for (const number of [2601, 2628, 547, 229]) expect(isTransientSqlError(transient(number))).toBe(false);
    // A request that timed out may have run: not retried blindly.
    expect(isTransientSqlError(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' }))).toBe(false);
  });

  it('retries with growing back-off until the work succeeds', async () => {
    const waits: number[] = [];
    let attempts = 0;
    const result = await withTransientRetry(
      async () => {
        attempts++;
        if (attempts < 3) throw wrapped(40613);
        return 'done';
      },
      { ...fast, sleep: async (ms) => void waits.push(ms) },
    );
    expect(result).toBe('done');
    expect(attempts).toBe(3);
    expect(waits).toHaveLength(2);
    waits.forEach((ms, attempt) => expect(ms).toBeLessThan(100 * 2 ** attempt));
  });

  it('gives up after the last attempt with the last error, and never retries a non-transient one', async () => {
    let attempts = 0;
    await expect(withTransientRetry(async () => { attempts++; throw transient(40501); }, { ...fast, sleep: async () => {} })).rejects.toThrow('error 40501');
    expect(attempts).toBe(4);
    attempts = 0;
    await expect(withTransientRetry(async () => { attempts++; throw transient(2628); }, { ...fast, sleep: async () => {} })).rejects.toThrow('error 2628');
    expect(attempts).toBe(1);
  });

  it('the adapter restarts a whole transaction, and retries a read outside one', async () => {
    const db = drizzle.mock();
    let transactions = 0;
    const statements: string[] = [];
    let failReads = 2;
    const run: QueryRunner = async (query) => {
      const { sql } = query.toSQL();
      statements.push(sql);
      if (sql.startsWith('select') && failReads-- > 0) throw wrapped(40197);
      return [];
    };
    const flakyDb = Object.assign(Object.create(db) as typeof db, {
      transaction: async (work: (tx: typeof db) => Promise<unknown>) => {
        transactions++;
        const result = await work(db);
        if (transactions === 1) throw wrapped(1205); // deadlock victim at commit: everything rolled back
        return result;
      },
    });
    const adapter = mssqlAdapter(flakyDb, async () => {}, run, { sleep: async () => {} });
    await adapter.transaction(async (ops) => ops.update('jobs', { status: 'Queued' }, sql`1 = 1`));
    expect(transactions).toBe(2);
    expect(statements.filter((s) => s.startsWith('update'))).toHaveLength(2);

    statements.length = 0;
    expect(await adapter.ops.select('jobs', { where: sql`1 = 1` })).toEqual([]);
    expect(statements).toHaveLength(3);
  });

  it('waits 30 s for a connection, and asks for a configured token scope (sovereign clouds)', async () => {
    const credential = new RecordingCredential();
    const config = mssqlConfig({ server: 'sql-x.database.usgovcloudapi.net', database: 'd', credential, scope: 'https://database.usgovcloudapi.net/.default' });
    expect(config.connectionTimeout).toBe(30_000);
    await (config.authentication!.options as { credential: TokenCredential }).credential.getToken(azureSqlScope);
    expect(credential.scopes).toEqual(['https://database.usgovcloudapi.net/.default']);
  });
});
