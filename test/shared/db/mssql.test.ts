import { DrizzleQueryError } from 'drizzle-orm/errors';
import { describe, expect, it } from 'vitest';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { azureSqlScope, isMssqlDuplicateKey, mssqlConfig, mssqlConfigFromUrl } from '../../../shared/db/mssql.js';
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
