import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { unreachableAdvice } from '../../../shared/db/migrate-access.js';

/** mssql wraps tedious's login error (which carries the server's message but no number) in its own ConnectionError. */
const loginError = (message: string) =>
  Object.assign(new Error(message), { code: 'ELOGIN', originalError: Object.assign(new Error(message), { code: 'ELOGIN' }) });

describe('why the migration cannot reach Azure SQL', () => {
  it('names the IP the firewall refused and the azd command that admits it', () => {
    const advice = unreachableAdvice(
      loginError("Cannot open server 'sql-x' requested by the login. Client with IP address '203.0.113.7' is not allowed to access the server."),
    );
    expect(advice).toContain('azd env set SQL_CLIENT_IP_ADDRESS 203.0.113.7 && azd provision');
  });

  it('recognises a private-endpoint-only server and a blocked port', () => {
    expect(unreachableAdvice(loginError('Connection was denied because Deny Public Network Access is set to Yes.'))).toContain('virtual network');
    expect(unreachableAdvice(Object.assign(new Error('Failed to connect to sql-x:1433'), { code: 'ESOCKET' }))).toContain('1433');
  });

  it('gives no advice for anything else, so the hook still fails on it', () => {
    expect(unreachableAdvice(loginError("Login failed for user '<token-identified principal>'."))).toBeUndefined();
    expect(unreachableAdvice(Object.assign(new Error('Invalid object name'), { number: 208 }))).toBeUndefined();
  });
});

const run = promisify(execFile);
const migrate = (args: string[], env: Record<string, string>) =>
  run(process.execPath, ['--import', 'tsx', 'shared/db/migrate-azure-sql.ts', ...args], { env: { ...process.env, ...env }, timeout: 120_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, out: stdout + stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, out: error.stdout + error.stderr }),
  );

describe('npm run db:migrate as the azd post-provision hook', { timeout: 180_000 }, () => {
  it('does not try, and does not fail azd up, when the server is private-endpoint only', async () => {
    const result = await migrate(['--from-azd-hook'], { SQL_SERVER: 'sql-x.database.windows.net', SQL_DATABASE: 'dbdist', SQL_CONNECTIVITY: 'PrivateEndpoint' });
    expect(result).toMatchObject({ code: 0, out: expect.stringContaining('schema NOT applied') });
  });

  it('warns and exits 0 when the server cannot be reached, but fails when run by hand', async () => {
    // Nothing listens on loopback port 1433 here (no SQL Server can run on these machines): the connection is refused.
    const env = { SQL_SERVER: '127.0.0.1', SQL_DATABASE: 'dbdist', SQL_CONNECTIVITY: 'PublicAzureServices' };
    const hook = await migrate(['--from-azd-hook'], env);
    expect(hook).toMatchObject({ code: 0, out: expect.stringContaining('1433 may be blocked') });
    const byHand = await migrate([], env);
    expect(byHand.code).toBe(1);
  });
});
