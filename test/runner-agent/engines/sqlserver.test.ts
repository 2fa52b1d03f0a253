import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sql from 'mssql';
import sqlParser from 'node-sql-parser';
import { afterAll, describe, expect, it } from 'vitest';
import type { SqlServerSettings } from '../../../runner-agent/config.js';
import { developer, recordingPoolIn, scriptedServerSettings } from './recording-pool.js';
import {
  backupStatement,
  createSqlServerEngine,
  databaseLookupStatement,
  mapSqlError,
  identityStatement,
  mssqlConfig,
  odbcConnectionString,
  percentFromInfo,
  quoteIdentifier,
  serverFactsStatement,
  verifyStatement,
} from '../../../runner-agent/engines/sqlserver.js';
import { collect } from '../helpers.js';

const settings = scriptedServerSettings;

const workDir = mkdtempSync(join(tmpdir(), 'dbdist-sql-engine-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const recordingPool = recordingPoolIn(workDir);

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
      infoMessages: [
        { number: 3211, message: '10 percent processed.' },
        { number: 3211, message: '50 percent processed.' },
        { number: 4035, message: 'Processed 360 pages for database' },
        { number: 3211, message: '100 percent processed.' },
      ],
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
      { command: serverFactsStatement, inputs: {} },
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
    expect(calls.find((c) => c.command.startsWith('BACKUP'))?.inputs.path).toBe('\\\\runner01\\dbdist-work\\dbdist-j3-a.bak');
  });
});

const run = (engine: ReturnType<typeof createSqlServerEngine>, jobId: string, database = 'Sales') => {
  const progress: number[] = [];
  const promise = engine.backup({ jobId, databaseName: database }, { signal: new AbortController().signal, onProgress: (p) => progress.push(p), attemptId: 'a' });
  return { promise, progress };
};

describe('SQL Server engine: what the server allows', () => {
  it.each([
    ['Express', { engine_edition: 4, edition: 'Express Edition (64-bit)', can_verify: 1 }],
    ['Web', { engine_edition: 2, edition: 'Web Edition (64-bit)', can_verify: 1 }],
  ])('omits COMPRESSION on %s edition', async (_name, facts) => {
    const { pool, calls } = recordingPool({ databases: ['Sales'], facts });
    const { promise } = run(createSqlServerEngine(settings, { workDir, connect: async () => pool }), 'ex1');
    await (await promise).cleanup();
    const backup = calls.find((c) => c.command.startsWith('BACKUP'))!;
    expect(backup.command).toBe('BACKUP DATABASE [Sales] TO DISK = @path WITH COPY_ONLY, CHECKSUM, STATS = 5');
  });

  it('keeps COMPRESSION on Standard edition', async () => {
    const { pool, calls } = recordingPool({ databases: ['Sales'], facts: { engine_edition: 2, edition: 'Standard Edition (64-bit)', can_verify: 1 } });
    await (await run(createSqlServerEngine(settings, { workDir, connect: async () => pool }), 'std1').promise).cleanup();
    expect(calls.find((c) => c.command.startsWith('BACKUP'))!.command).toContain('COMPRESSION');
  });

  it('fails before BACKUP when verify is on and the login lacks CREATE DATABASE (whenVerifyNotPermitted fail)', async () => {
    const { pool, calls } = recordingPool({ databases: ['Sales'], facts: { ...developer, can_verify: 0 } });
    await expect(run(createSqlServerEngine(settings, { workDir, connect: async () => pool }), 'nv1').promise).rejects.toMatchObject({
      code: 'verify_not_permitted',
      message: expect.stringContaining('CREATE DATABASE'),
    });
    expect(calls.map((c) => c.command)).toEqual([databaseLookupStatement, serverFactsStatement]);
  });

  it('skips verification with a warning when configured to (whenVerifyNotPermitted skip)', async () => {
    const { pool, calls } = recordingPool({
      databases: ['Sales'],
      facts: { ...developer, can_verify: 0 },
      infoMessages: [{ number: 3211, message: '100 percent processed.' }],
    });
    const warnings: string[] = [];
    const engine = createSqlServerEngine({ ...settings, whenVerifyNotPermitted: 'skip' }, { workDir, connect: async () => pool, warn: (m) => warnings.push(m) });
    const { promise, progress } = run(engine, 'nv2');
    const backup = await promise;
    await backup.cleanup();
    expect(calls.map((c) => c.command)).not.toContain(verifyStatement);
    expect(progress).toEqual([70]);
    expect(backup.percentAfter?.(1000)).toBe(100);
    expect(warnings).toEqual([expect.stringContaining('skipping verification')]);
  });

  it('names the server-side path in the failure and the log when the file is not where the runner looks', async () => {
    const { pool } = recordingPool({ databases: ['Sales'] });
    const warnings: string[] = [];
    const engine = createSqlServerEngine(
      { ...settings, verify: false, backupDirectory: 'D:\\SQLBackup\\dbdist' },
      { workDir, connect: async () => pool, warn: (m) => warnings.push(m) },
    );
    await expect(run(engine, 'miss1').promise).rejects.toMatchObject({
      code: 'backup_file_missing',
      message: expect.stringContaining('D:\\SQLBackup\\dbdist\\dbdist-miss1-a.bak'),
    });
    expect(warnings).toEqual([expect.stringContaining('left on the SQL Server host')]);
  });

  it('resolves a relative workDir before naming the file for SQL Server', async () => {
    const { pool, calls } = recordingPool({ databases: ['Sales'] });
    const engine = createSqlServerEngine({ ...settings, verify: false }, { workDir: 'relative-work', connect: async () => pool });
    await run(engine, 'rel1').promise.catch(() => undefined);
    expect(String(calls.find((c) => c.command.startsWith('BACKUP'))!.inputs.path)).toBe(join(process.cwd(), 'relative-work', 'dbdist-rel1-a.bak'));
  });
});

describe('SQL Server engine check: path mapping probe', () => {
  it('has SQL Server back up the probe database and reads the file in workDir, then removes it', async () => {
    const { pool, calls } = recordingPool({ databases: ['dbdist_probe'] });
    const engine = createSqlServerEngine({ ...settings, probeDatabase: 'dbdist_probe' }, { workDir, connect: async () => pool });
    const line = await engine.check();
    const probe = calls.find((c) => c.command.startsWith('BACKUP'))!;
    expect(probe.command).toBe(backupStatement('dbdist_probe'));
    expect(String(probe.inputs.path)).toMatch(new RegExp(`^${workDir.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}[/\\\\]dbdist-probe-[0-9a-f]{12}\\.bak$`));
    expect(calls.map((c) => c.command)).toContain(verifyStatement);
    expect(line).toMatch(/^SQL Server 16\.0\.1000\.6 Developer Edition \(64-bit\) at sql01 as DOM\\runner; COMPRESSION; verify permitted; SQL Server wrote .* the runner read .* \(1000 bytes\)/);
    expect(existsSync(String(probe.inputs.path))).toBe(false);
  });

  it('fails when SQL Server writes somewhere the runner cannot see, naming both paths', async () => {
    const { pool } = recordingPool({ databases: ['dbdist_probe'] });
    const engine = createSqlServerEngine(
      { ...settings, probeDatabase: 'dbdist_probe', backupDirectory: '\\\\sqlhost\\backup' },
      { workDir, connect: async () => pool },
    );
    await expect(engine.check()).rejects.toMatchObject({ code: 'backup_file_missing', message: expect.stringMatching(/\\\\sqlhost\\backup\\dbdist-probe-.*runner cannot read/) });
  });

  it('fails without a probe database, saying the mapping is not proven', async () => {
    const { pool } = recordingPool();
    const engine = createSqlServerEngine(settings, { workDir, connect: async () => pool });
    await expect(engine.check()).rejects.toThrow(/path mapping NOT proven: set sqlServer.probeDatabase/);
  });

  it('fails when verify is required but not permitted', async () => {
    const { pool } = recordingPool({ databases: ['dbdist_probe'], facts: { ...developer, can_verify: 0 } });
    const engine = createSqlServerEngine({ ...settings, probeDatabase: 'dbdist_probe' }, { workDir, connect: async () => pool });
    await expect(engine.check()).rejects.toMatchObject({ code: 'verify_not_permitted' });
  });
});

describe('SQL Server statements parse as T-SQL', () => {
  const parser = new sqlParser.Parser();
  it.each([serverFactsStatement, identityStatement, databaseLookupStatement])('%s', (statement) => {
    expect(() => parser.astify(statement, { database: 'TransactSQL' })).not.toThrow();
  });

  // node-sql-parser has no BACKUP/RESTORE grammar: their exact shapes are pinned instead (see the tests above).
  it('BACKUP has exactly the documented options, with or without COMPRESSION', () => {
    expect(backupStatement('S', { compression: true })).toMatch(/^BACKUP DATABASE \[S\] TO DISK = @path WITH COPY_ONLY, COMPRESSION, CHECKSUM, STATS = 5$/);
    expect(backupStatement('S', { compression: false })).toMatch(/^BACKUP DATABASE \[S\] TO DISK = @path WITH COPY_ONLY, CHECKSUM, STATS = 5$/);
  });
});

describe('Windows integrated auth (msnodesqlv8)', () => {
  const windows = { ...settings, auth: { type: 'windows' as const }, trustServerCertificate: true };
  it('passes an explicit ODBC Driver 18 connection string that keeps TrustServerCertificate', () => {
    expect(odbcConnectionString(windows)).toBe(
      'Driver={ODBC Driver 18 for SQL Server};Server=sql01,1433;Database=master;Trusted_Connection=yes;Encrypt=yes;TrustServerCertificate=yes;APP=dbdist-runner;',
    );
    expect((mssqlConfig(windows) as { connectionString?: string }).connectionString).toBe(odbcConnectionString(windows));
  });

  it('names a named instance and quotes values that could end an attribute', () => {
    const named = { ...windows, host: 'h;x', instanceName: 'INST', encrypt: false, trustServerCertificate: false };
    expect(odbcConnectionString(named)).toContain('Server={h;x\\INST};');
    expect(odbcConnectionString(named)).toContain('Encrypt=no;TrustServerCertificate=no;');
    expect(odbcConnectionString({ ...windows, odbcDriver: 'ODBC Driver 17 for SQL Server' })).toMatch(/^Driver=\{ODBC Driver 17 for SQL Server\};/);
  });

  it('gives the tedious driver no connection string', () => {
    expect((mssqlConfig(settings) as { connectionString?: string }).connectionString).toBeUndefined();
  });
});

describe('SQL Server progress and errors', () => {
  it('takes progress from message 3211 whatever the server language, and from no other message', () => {
    expect(percentFromInfo({ number: 3211, message: '5 percent processed.' })).toBe(5);
    expect(percentFromInfo({ number: 3211, message: '100 percent processed.' })).toBe(100);
    expect(percentFromInfo({ number: 3211, message: '30 Prozent verarbeitet.' })).toBe(30);
    expect(percentFromInfo({ number: 3211, message: '40 pour cent traités.' })).toBe(40);
    expect(percentFromInfo({ number: 4035, message: 'Processed 360 pages for database \'Sales\', file \'Sales\' on file 1.' })).toBeUndefined();
    expect(percentFromInfo({ number: 3014, message: 'BACKUP DATABASE successfully processed 362 pages in 0.051 seconds.' })).toBeUndefined();
    expect(percentFromInfo({ message: '10 percent processed.' })).toBeUndefined();
    expect(percentFromInfo({ number: 3211, message: '150 percent processed.' })).toBeUndefined();
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
      whenVerifyNotPermitted: 'fail',
      odbcDriver: 'ODBC Driver 18 for SQL Server',
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
