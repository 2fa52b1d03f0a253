import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sql from 'mssql';
import { afterAll, describe, expect, it } from 'vitest';
import type { SqlServerSettings } from '../../../runner-agent/config.js';
import {
  backupStatement,
  createSqlServerEngine,
  databaseLookupStatement,
  mapSqlError,
  parsePercentMessage,
  quoteIdentifier,
  verifyStatement,
  type SqlPool,
  type SqlRequest,
} from '../../../runner-agent/engines/sqlserver.js';
import { collect } from '../helpers.js';

const settings: SqlServerSettings = {
  host: 'sql01',
  auth: { type: 'sql', user: 'runner', password: 'x' },
  encrypt: true,
  trustServerCertificate: false,
  verify: true,
};

const workDir = mkdtempSync(join(tmpdir(), 'dbdist-sql-engine-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

interface RecordedCall {
  command: string;
  inputs: Record<string, unknown>;
}

/**
 * A stand-in for mssql's pool: records each command with its parameters, replays recorded info messages and
 * plays SQL Server's part by writing the .bak file when it sees BACKUP.
 */
function recordingPool(options: { infoMessages?: string[]; fail?: (command: string) => unknown; databases?: string[] } = {}) {
  const calls: RecordedCall[] = [];
  const pool: SqlPool = {
    request(): SqlRequest {
      const inputs: Record<string, unknown> = {};
      const listeners: Array<(info: { message: string }) => void> = [];
      const request: SqlRequest = {
        input(name, _type, value) {
          inputs[name] = value;
          return request;
        },
        on(_event, listener) {
          listeners.push(listener);
          return request;
        },
        async query(command) {
          calls.push({ command, inputs: { ...inputs } });
          const failure = options.fail?.(command);
          if (failure) throw failure;
          if (command === databaseLookupStatement) {
            const found = (options.databases ?? []).includes(String(inputs.name));
            return { recordset: found ? [{ name: inputs.name, state_desc: 'ONLINE' }] : [] };
          }
          if (command.startsWith('BACKUP DATABASE')) {
            for (const message of options.infoMessages ?? []) listeners.forEach((l) => l({ message }));
            // SQL Server writes the file; a path outside the work dir (a remote server's share) is not ours to write.
            if (String(inputs.path).startsWith(workDir)) writeFileSync(String(inputs.path), Buffer.alloc(1000, 7));
          }
          return { recordset: [] };
        },
        cancel() {},
      };
      return request;
    },
    async close() {},
  };
  return { pool, calls };
}

const hostile = 'a]; DROP DATABASE x--';

describe('SQL Server command text', () => {
  it('quotes names as T-SQL identifiers, doubling ]', () => {
    expect(quoteIdentifier('Sales')).toBe('[Sales]');
    expect(quoteIdentifier(hostile)).toBe('[a]]; DROP DATABASE x--]');
    expect(quoteIdentifier('x]]y')).toBe('[x]]]]y]');
  });

  it('keeps a hostile name inside one identifier and the path out of the text', () => {
    const text = backupStatement(hostile);
    expect(text).toBe('BACKUP DATABASE [a]]; DROP DATABASE x--] TO DISK = @path WITH COPY_ONLY, COMPRESSION, CHECKSUM, STATS = 5');
    // Between the opening [ and the closing ] every ] is doubled: the identifier cannot end early.
    const identifier = /^BACKUP DATABASE \[(.*)\] TO DISK/.exec(text)![1]!;
    expect(identifier.replace(/]]/g, '')).not.toContain(']');
  });

  it.each(['', 'x'.repeat(129), 'bad\nname', 'tab\tname', 'nul\u0000'])('refuses the name %j', (name) => {
    expect(() => backupStatement(name)).toThrow(expect.objectContaining({ code: 'invalid_database_name' }));
  });

  it('accepts a 128-character name with brackets, quotes and unicode', () => {
    expect(() => backupStatement(`${'ü'.repeat(120)}[]'"; --`)).not.toThrow();
  });
});

describe('SQL Server engine with a recorded server', () => {
  it('looks the name up, backs up to @path, verifies, streams the file and removes it', async () => {
    const { pool, calls } = recordingPool({
      databases: [hostile],
      infoMessages: ['10 percent processed.', '50 percent processed.', 'Processed 360 pages for database', '100 percent processed.'],
    });
    const engine = createSqlServerEngine(settings, { workDir, connect: async () => pool });
    const progress: number[] = [];
    const backup = await engine.backup(
      { jobId: 'job-1', databaseName: hostile },
      { signal: new AbortController().signal, onProgress: (p) => progress.push(p), attemptId: 'att1' },
    );
    const expectedPath = join(workDir, 'dbdist-job-1-att1.bak');
    expect(calls).toEqual([
      { command: databaseLookupStatement, inputs: { name: hostile } },
      { command: backupStatement(hostile), inputs: { path: expectedPath } },
      { command: verifyStatement, inputs: { path: expectedPath } },
    ]);
    for (const call of calls) expect(call.command).not.toContain(workDir);
    expect(progress).toEqual([7, 35, 70, 75]);
    expect(backup.sizeHint).toBe(1000);
    expect(backup.percentAfter?.(500)).toBeCloseTo(87.5);
    expect((await collect(backup.stream)).length).toBe(1000);
    await backup.cleanup();
    expect(existsSync(expectedPath)).toBe(false);
  });

  it('refuses a database that sys.databases does not list, before any BACKUP', async () => {
    const { pool, calls } = recordingPool({ databases: ['Other'] });
    const engine = createSqlServerEngine(settings, { workDir, connect: async () => pool });
    await expect(
      engine.backup({ jobId: 'j', databaseName: 'Sales' }, { signal: new AbortController().signal, onProgress: () => {}, attemptId: 'a' }),
    ).rejects.toMatchObject({ code: 'database_not_found' });
    expect(calls.map((c) => c.command)).toEqual([databaseLookupStatement]);
  });

  it('maps a failed BACKUP and removes the partial file', async () => {
    const diskFull = Object.assign(new Error('BACKUP DATABASE is terminating abnormally.'), {
      number: 3013,
      precedingErrors: [{ number: 3202, message: 'Write on "x.bak" failed: 112(There is not enough space on the disk.)' }],
    });
    const { pool } = recordingPool({
      databases: ['Sales'],
      fail: (command) => {
        if (!command.startsWith('BACKUP')) return undefined;
        writeFileSync(join(workDir, 'dbdist-j2-a.bak'), 'partial');
        return diskFull;
      },
    });
    const engine = createSqlServerEngine(settings, { workDir, connect: async () => pool });
    await expect(
      engine.backup({ jobId: 'j2', databaseName: 'Sales' }, { signal: new AbortController().signal, onProgress: () => {}, attemptId: 'a' }),
    ).rejects.toMatchObject({ code: 'disk_full', message: expect.stringContaining('not enough space') });
    expect(existsSync(join(workDir, 'dbdist-j2-a.bak'))).toBe(false);
  });

  it('names the path for a remote SQL Server by its own directory', async () => {
    const { pool, calls } = recordingPool({ databases: ['Sales'] });
    const engine = createSqlServerEngine(
      { ...settings, verify: false, backupDirectory: '\\\\runner01\\dbdist-work' },
      { workDir, connect: async () => pool },
    );
    await engine
      .backup({ jobId: 'j3', databaseName: 'Sales' }, { signal: new AbortController().signal, onProgress: () => {}, attemptId: 'a' })
      .catch(() => undefined); // no file appears in workDir here: the recorder does not write to the share
    expect(calls[1]?.inputs.path).toBe('\\\\runner01\\dbdist-work\\dbdist-j3-a.bak');
  });
});

describe('SQL Server progress and errors', () => {
  it('parses STATS messages', () => {
    expect(parsePercentMessage('5 percent processed.')).toBe(5);
    expect(parsePercentMessage('100 percent processed.')).toBe(100);
    expect(parsePercentMessage('Processed 360 pages for database \'Sales\', file \'Sales\' on file 1.')).toBeUndefined();
    expect(parsePercentMessage('BACKUP DATABASE successfully processed 362 pages in 0.051 seconds (55.365 MB/sec).')).toBeUndefined();
    expect(parsePercentMessage('150 percent processed.')).toBeUndefined();
  });

  it.each([
    [{ number: 262, message: 'BACKUP DATABASE permission denied in database \'Sales\'.' }, 'permission_denied'],
    [{ number: 911, message: 'Database \'Nope\' does not exist.' }, 'database_not_found'],
    [{ number: 3013, message: 'terminating', precedingErrors: [{ number: 3201, message: 'Cannot open backup device. Operating system error 5(Access is denied.)' }] }, 'backup_device_error'],
    [{ number: 3013, message: 'terminating', precedingErrors: [{ number: 3202, message: 'Write failed: 112(not enough space)' }] }, 'disk_full'],
    [{ number: 1844, message: 'BACKUP DATABASE WITH COMPRESSION is not supported on Express Edition (64-bit).' }, 'compression_unsupported'],
    [{ number: 3023, message: 'Backup, file manipulation operations ... must be serialized.' }, 'backup_conflict'],
    [{ code: 'ELOGIN', message: "Login failed for user 'runner'." }, 'sql_login_failed'],
    [{ code: 'ESOCKET', message: 'Failed to connect to sql01:1433' }, 'sql_unreachable'],
    [{ number: 50000, message: 'something else' }, 'sql_error'],
  ])('maps %j to %s', (error, code) => {
    expect(mapSqlError(error).code).toBe(code);
  });

  it('maps a failed VERIFYONLY to verify_failed', () => {
    expect(mapSqlError({ number: 3013, message: 'VERIFY DATABASE is terminating abnormally.' }, 'verify').code).toBe('verify_failed');
  });
});

/** Only where a SQL Server shares a directory with this host (e.g. a local instance): MSSQL_URL=mssql://user:pass@host:port */
describe.skipIf(!process.env.MSSQL_URL)('SQL Server engine against a real server (MSSQL_URL)', () => {
  it('backs up a database with a hostile name', async () => {
    const url = new URL(process.env.MSSQL_URL!);
    const real: SqlServerSettings = {
      host: url.hostname,
      port: Number(url.port || 1433),
      auth: { type: 'sql', user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) },
      encrypt: url.searchParams.get('encrypt') !== 'false',
      trustServerCertificate: true,
      verify: true,
      ...(process.env.MSSQL_BACKUP_DIR ? { backupDirectory: process.env.MSSQL_BACKUP_DIR } : {}),
    };
    const name = `dbdist ${hostile} ${randomUUID().slice(0, 6)}`;
    const admin = await new sql.ConnectionPool({
      server: real.host,
      port: real.port,
      user: url.username,
      password: decodeURIComponent(url.password),
      options: { encrypt: real.encrypt, trustServerCertificate: true },
    }).connect();
    try {
      await admin.request().query(`CREATE DATABASE ${quoteIdentifier(name)}`);
      const engine = createSqlServerEngine(real, { workDir: process.env.MSSQL_WORK_DIR ?? workDir });
      const progress: number[] = [];
      const backup = await engine.backup(
        { jobId: randomUUID(), databaseName: name },
        { signal: new AbortController().signal, onProgress: (p) => progress.push(p), attemptId: 'real' },
      );
      const bytes = await collect(backup.stream);
      await backup.cleanup();
      await engine.close?.();
      expect(bytes.length).toBeGreaterThan(0);
      expect(progress.at(-1)).toBe(75);
    } finally {
      await admin.request().query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)}`).catch(() => undefined);
      await admin.close();
    }
  });
});
