import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { MaskingRuleSet } from '../../../shared/contracts/masking.js';
import type { SqlServerSettings } from '../../../runner-agent/config.js';
import { databaseLookupStatement, serverFactsStatement, type SqlPool, type SqlRequest } from '../../../runner-agent/engines/sqlserver.js';
import { silentLogger } from '../../../runner-agent/logger.js';
import { sanitizedBackup } from '../../../runner-agent/sanitize/sanitized-backup.js';
import {
  columnsStatement,
  createSqlServerScratch,
  fileListStatement,
  leftoversStatement,
  tablesStatement,
} from '../../../runner-agent/sanitize/sqlserver.js';
import { assertTsql, parseTsql } from './tsql.js';
import { scriptedServerSettings } from '../engines/recording-pool.js';

const settings = scriptedServerSettings;
const workDir = mkdtempSync(join(tmpdir(), 'dbdist-sql-scratch-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const hostileTable = 'us]ers; DROP TABLE x--';
const hostileColumn = "e]mail'); --";

interface Call {
  database: string;
  command: string;
  inputs: Record<string, unknown>;
}

/** Plays SQL Server for the scratch driver: one scripted instance, every statement recorded with its database. */
function scriptedInstance(options: { failMasking?: boolean; leftovers?: string[]; leakAfterMasking?: boolean } = {}) {
  const calls: Call[] = [];
  const masked = new Set<string>();
  const catalog = [
    { schema: 'dbo', table: hostileTable, column: 'id', data_type: 'int', max_length: null },
    { schema: 'dbo', table: hostileTable, column: hostileColumn, data_type: 'nvarchar', max_length: 200 },
    { schema: 'dbo', table: hostileTable, column: 'password_hash', data_type: 'varchar', max_length: 100 },
    { schema: 'dbo', table: hostileTable, column: 'full_name', data_type: 'nvarchar', max_length: -1 },
    { schema: 'dbo', table: hostileTable, column: 'phone', data_type: 'varchar', max_length: 40 },
    { schema: 'audit', table: 'log', column: 'id', data_type: 'int', max_length: null },
  ];
  const connect = async (_settings: SqlServerSettings, database = 'master'): Promise<SqlPool> => ({
    request(): SqlRequest {
      const inputs: Record<string, unknown> = {};
      const request: SqlRequest = {
        input(name, _type, value) {
          inputs[name] = value;
          return request;
        },
        on: () => request,
        async query(command) {
          calls.push({ database, command, inputs: { ...inputs } });
          if (command === serverFactsStatement) return { recordset: [{ engine_edition: 3, edition: 'Enterprise Edition', can_verify: 1 }] };
          if (command === databaseLookupStatement) return { recordset: [{ name: inputs.name, state_desc: 'ONLINE' }] };
          if (command.startsWith('BACKUP DATABASE')) writeFileSync(String(inputs.path), Buffer.alloc(512, 1));
          if (command === fileListStatement) return { recordset: [{ LogicalName: 'crm', Type: 'D' }, { LogicalName: 'crm_log', Type: 'L' }] };
          if (command === columnsStatement) return { recordset: catalog };
          if (command === tablesStatement) return { recordset: [{ schema: 'dbo', table: hostileTable }, { schema: 'audit', table: 'log' }] };
          if (command === leftoversStatement) return { recordset: (options.leftovers ?? []).map((name) => ({ name })) };
          if (command.startsWith('SET XACT_ABORT ON')) {
            if (options.failMasking) throw Object.assign(new Error("Invalid object name 'no_such_table'."), { number: 208 });
            masked.add(database);
          }
          if (command.startsWith('SELECT DISTINCT')) {
            const after = masked.has(database) && !options.leakAfterMasking;
            return { recordset: after ? [{ v: 'user_0123456789ab@example.invalid' }] : [{ v: 'ada@corp.example' }, { v: 'bob@corp.example' }] };
          }
          if (command.startsWith('SELECT COUNT_BIG')) return { recordset: [{ n: masked.has(database) && command.includes('[log]') ? 0 : 10 }] };
          return { recordset: [] };
        },
        cancel() {},
      };
      return request;
    },
    async close() {},
  });
  return { calls, connect };
}

const rules = MaskingRuleSet.parse({
  version: 4,
  rules: [
    { table: hostileTable, column: hostileColumn, strategy: 'email' },
    { table: hostileTable, column: 'password_hash', strategy: 'hash' },
    { table: hostileTable, column: 'full_name', strategy: 'name' },
    { table: hostileTable, column: 'phone', strategy: 'fixed', value: "0'0" },
    { schema: 'audit', table: 'log', strategy: 'excludeData' },
  ],
  sql: ["UPDATE [dbo].[us]]ers; DROP TABLE x--] SET [id] = [id] WHERE 1 = 0"],
  sensitivePatterns: ['password', 'mail', 'phone'],
});

function driver(instance: ReturnType<typeof scriptedInstance>) {
  return createSqlServerScratch({
    connection: settings,
    source: settings,
    dataDirectory: 'D:\\scratch\\data',
    logDirectory: 'E:\\scratch\\log',
    prefix: 'dbdist_scratch_',
    workDir,
    connect: instance.connect,
  });
}

const options = () => ({ signal: new AbortController().signal, attemptId: 'a1b2c3', logger: silentLogger() });

describe('SQL Server scratch target (scripted instance)', () => {
  it('backs up, restores WITH MOVE after FILELISTONLY, masks in one transaction, verifies, backs up the scratch copy and drops it', async () => {
    const instance = scriptedInstance();
    const backup = await sanitizedBackup({ jobId: '5d1e6c4a-0000-4000-8000-000000000001', databaseName: 'crm]prod', masking: rules }, driver(instance), options());
    const scratch = 'dbdist_scratch_5d1e6c4a0000_a1b2c3';
    const flow = instance.calls.map((c) => `${c.database}: ${c.command.split(/\s+/).slice(0, 2).join(' ')}`);
    expect(flow.slice(0, 5)).toEqual(['master: SELECT CAST(SERVERPROPERTY(\'EngineEdition\')', 'master: BACKUP DATABASE', 'master: RESTORE FILELISTONLY', 'master: RESTORE DATABASE', `${scratch}: SELECT c.TABLE_SCHEMA`]);
    expect(instance.calls[1]!.command).toContain('[crm]]prod]');

    const restore = instance.calls[3]!;
    expect(restore.command).toBe(`RESTORE DATABASE [${scratch}] FROM DISK = @path WITH MOVE @logical0 TO @physical0, MOVE @logical1 TO @physical1, CHECKSUM, RECOVERY, STATS = 10`);
    expect(restore.inputs).toMatchObject({
      logical0: 'crm',
      physical0: `D:\\scratch\\data\\${scratch}_0.mdf`,
      logical1: 'crm_log',
      physical1: `E:\\scratch\\log\\${scratch}_1.ldf`,
    });

    const batch = instance.calls.find((c) => c.command.startsWith('SET XACT_ABORT ON'))!;
    expect(batch.database).toBe(scratch);
    expect(batch.command).toMatch(/^SET XACT_ABORT ON;\nBEGIN TRANSACTION;\nDELETE FROM \[audit\]\.\[log\];\nUPDATE \[dbo\]\.\[us\]\]ers; DROP TABLE x--\] SET /);
    expect(batch.command.endsWith('COMMIT TRANSACTION;')).toBe(true);
    expect(Buffer.isBuffer(batch.inputs.ipad) && (batch.inputs.ipad as Buffer).length).toBe(64);
    expect(batch.inputs.fixed0).toBe("0'0"); // a parameter, never spliced in

    await backup.cleanup();
    const last = instance.calls.at(-1)!;
    expect(last.command).toMatch(/^IF DB_ID\(@name\) IS NOT NULL BEGIN ALTER DATABASE/);
    expect(last.inputs.name).toBe(scratch);
    expect(instance.calls.some((c) => c.database === 'master' && c.command.startsWith('BACKUP DATABASE [dbdist_scratch_'))).toBe(true);
    expect(backup.tableRowCounts).toEqual({ [`dbo.${hostileTable}`]: 10, 'audit.log': 0 });
    expect(existsSync(join(workDir, `${scratch}.bak`))).toBe(false);

    // Every statement is T-SQL, and each hostile name stays one identifier.
    const named = new Set(
      instance.calls.flatMap((c) => {
        try {
          return assertTsql(c.command);
        } catch (error) {
          throw new Error(`${c.command}: ${String(error)}`);
        }
      }),
    );
    expect(named).toContain(hostileTable);
    expect(named).toContain(hostileColumn);
    expect(named).toContain('crm]prod');
  });

  it('fails closed when the masking batch fails, and drops the scratch database', async () => {
    const instance = scriptedInstance({ failMasking: true });
    await expect(sanitizedBackup({ jobId: '5d1e6c4a-0000-4000-8000-000000000002', databaseName: 'crm', masking: rules }, driver(instance), options())).rejects.toMatchObject({
      code: 'masking_failed',
      message: expect.stringContaining('no_such_table'),
    });
    expect(instance.calls.at(-1)!.command).toMatch(/DROP DATABASE \[dbdist_scratch_5d1e6c4a0000_a1b2c3\]/);
    expect(instance.calls.some((c) => c.command.startsWith('BACKUP DATABASE [dbdist_scratch_'))).toBe(false);
  });

  it('fails verification when an original value survives masking', async () => {
    const instance = scriptedInstance({ leakAfterMasking: true });
    await expect(sanitizedBackup({ jobId: '5d1e6c4a-0000-4000-8000-000000000003', databaseName: 'crm', masking: rules }, driver(instance), options())).rejects.toMatchObject({
      code: 'sanitize_verify_failed',
    });
    expect(instance.calls.at(-1)!.command).toMatch(/DROP DATABASE/);
  });

  it('restores a downloaded .bak for a rehearsal through the same FILELISTONLY / WITH MOVE path', async () => {
    const instance = scriptedInstance();
    await driver(instance).restoreFromBackup(Readable.from([Buffer.alloc(1024, 3)]), 'dbdist_scratch_rehearsal1', new AbortController().signal);
    const [files, restore] = instance.calls;
    expect(files!.command).toBe(fileListStatement);
    expect(String(files!.inputs.path)).toBe(join(workDir, 'dbdist_scratch_rehearsal1.bak'));
    expect(restore!.command).toContain('RESTORE DATABASE [dbdist_scratch_rehearsal1]');
    expect(existsSync(join(workDir, 'dbdist_scratch_rehearsal1.bak'))).toBe(false);
  });

  it('drops leftovers with the prefix at start-up, refusing any other name', async () => {
    const instance = scriptedInstance({ leftovers: ['dbdist_scratch_old1', 'dbdist_scratch_old2'] });
    const scratch = driver(instance);
    expect(await scratch.dropLeftovers()).toEqual(['dbdist_scratch_old1', 'dbdist_scratch_old2']);
    expect(instance.calls.filter((c) => c.command.includes('DROP DATABASE')).map((c) => c.inputs.name)).toEqual(['dbdist_scratch_old1', 'dbdist_scratch_old2']);
    await expect(scratch.drop('Sales')).rejects.toThrow(/not a scratch database/);
    for (const call of instance.calls) assertTsql(call.command);
  });

  it("canary: the parser still lacks RESTORE, DROP DATABASE, COUNT_BIG and escaped ']' (drop the workarounds when this fails)", () => {
    for (const text of ['RESTORE FILELISTONLY FROM DISK = @path', 'DROP DATABASE [a]', 'SELECT COUNT_BIG(*) AS n FROM [t]', 'SELECT * FROM [a]]b]']) {
      expect(() => parseTsql(text), text).toThrow();
    }
    // …and the checker is not a rubber stamp.
    expect(() => assertTsql('UPDATE [t] SET [c] = WHERE')).toThrow();
    expect(() => assertTsql('RESTORE DATABASE [x] FROM DISK = @path WITH MOVE @a TO @b')).toThrow();
  });
});
