import { describe, expect, it } from 'vitest';
import { backupBlobPath, downloadFileName, type BackupNaming } from '../../../shared/storage/paths.js';

const naming: BackupNaming = {
  jobId: '0b9f6c1e-6a51-4f3e-9a1c-5d2e8b7f4a10',
  serverId: 'c3a0e0a4-1111-4d5e-8f00-000000000001',
  databaseId: 'd7e0f2b1-2222-4a6b-9c00-000000000002',
  engine: 'sqlserver',
  compression: 'none',
  encryption: 'none',
};
const createdAt = new Date('2026-11-23T09:05:42.123Z');

describe('backupBlobPath', () => {
  it('places a job under its server and database ids, named by the job id', () => {
    expect(backupBlobPath(naming)).toBe(
      'c3a0e0a4-1111-4d5e-8f00-000000000001/d7e0f2b1-2222-4a6b-9c00-000000000002/0b9f6c1e-6a51-4f3e-9a1c-5d2e8b7f4a10.bak',
    );
  });

  it.each([
    [{ engine: 'sqlserver', compression: 'none', encryption: 'none' }, '.bak'],
    [{ engine: 'sqlserver', compression: 'zstd', encryption: 'age' }, '.bak.zst.age'],
    [{ engine: 'sqlserver', compression: 'zstd', encryption: 'dbde' }, '.bak.zst.enc'],
    [{ engine: 'postgres', compression: 'none', encryption: 'none' }, '.dump'],
    [{ engine: 'postgres', compression: 'gzip', encryption: 'none' }, '.dump.gz'],
    [{ engine: 'postgres', compression: 'gzip', encryption: 'dbde' }, '.dump.gz.enc'],
  ] as const)('ends %o with %s', (variant, suffix) => {
    const path = backupBlobPath({ ...naming, ...variant });
    expect(path.endsWith(`/${naming.jobId}${suffix}`)).toBe(true);
  });

  it('gives different jobs different paths', () => {
    expect(backupBlobPath(naming)).not.toBe(backupBlobPath({ ...naming, jobId: 'e1e1e1e1-3333-4b4b-8c8c-000000000003' }));
  });
});

describe('downloadFileName', () => {
  it('names the database, the UTC creation minute and the extension', () => {
    expect(downloadFileName('Sales', createdAt, { engine: 'sqlserver', compression: 'gzip', encryption: 'none' })).toBe(
      'Sales-20261123-0905.bak.gz',
    );
    expect(downloadFileName('orders_v2', createdAt, { engine: 'postgres', compression: 'none', encryption: 'dbde' })).toBe(
      'orders_v2-20261123-0905.dump.enc',
    );
  });

  it.each([
    '../../etc/passwd',
    '..\\..\\windows\\system32',
    'a"; filename="evil.exe',
    'line\r\nSet-Cookie: session=1',
    '.hidden',
    'con/../../x',
    'Données clients 2026 — été',
    '<script>alert(1)</script>',
    '%2e%2e%2fsecret',
    'name\u0000with-nul',
  ])('turns hostile name %j into one safe path segment', (hostile) => {
    const name = downloadFileName(hostile, createdAt, { engine: 'postgres', compression: 'zstd', encryption: 'none' });
    // No separators, quotes, controls or non-ASCII; not hidden (no leading dot); the stamp and extension intact.
    expect(name).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*-20261123-0905\.dump\.zst$/);
  });

  it('falls back to a neutral name when nothing usable is left', () => {
    for (const empty of ['', '...', '___', '"""', '日本語']) {
      const name = downloadFileName(empty, createdAt, { engine: 'sqlserver', compression: 'none', encryption: 'none' });
      expect(name).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*-20261123-0905\.bak$/);
    }
    expect(downloadFileName('', createdAt, { engine: 'sqlserver', compression: 'none', encryption: 'none' })).toBe(
      'database-20261123-0905.bak',
    );
  });

  it('caps a very long database name', () => {
    const name = downloadFileName('x'.repeat(500), createdAt, { engine: 'sqlserver', compression: 'none', encryption: 'none' });
    expect(name.length).toBeLessThanOrEqual(80 + '-20261123-0905.bak'.length);
    expect(name.startsWith('x'.repeat(80))).toBe(true);
  });
});
