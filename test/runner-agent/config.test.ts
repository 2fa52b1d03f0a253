import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envVariables, loadRunnerConfig, localBackupConfigSchema, runnerConfigSchema } from '../../runner-agent/config.js';

const dir = mkdtempSync(join(tmpdir(), 'dbdist-runner-config-'));
function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const complete = {
  runnerId: 'runner-01',
  serviceBus: { fullyQualifiedNamespace: 'sb-dbdist.servicebus.windows.net', subscription: 'runner-01' },
  api: { baseUrl: 'https://func-dbdist.azurewebsites.net', scope: 'api://dbdist/.default' },
  entra: { tenantId: 'tenant', clientId: 'client', certificatePath: '/etc/dbdist-runner/cert.pem' },
  postgres: { host: 'pg01', user: 'backup' },
  workDir: '/var/lib/dbdist-runner',
};

function problemsOf(run: () => unknown): Array<{ field: string; message: string }> {
  try {
    run();
  } catch (error) {
    return (error as { fieldErrors: Array<{ field: string; message: string }> }).fieldErrors;
  }
  throw new Error('expected a config error');
}

describe('runner config', () => {
  it('reads a file and fills the documented defaults', () => {
    const config = loadRunnerConfig({ configPath: file('ok.json', complete), env: {} });
    expect(config).toMatchObject({
      serviceBus: { topic: 'backup-jobs' },
      concurrencyPerInstance: 1,
      lockRenewalMaxMinutes: 720,
      compressionDefault: 'none',
      postgres: { port: 5432, maintenanceDatabase: 'postgres' },
      entra: { authorityHost: 'https://login.microsoftonline.com' },
    });
  });

  it('serves metrics only when a port is set, on 127.0.0.1 unless told otherwise', () => {
    const off = loadRunnerConfig({ configPath: file('metrics-off.json', complete), env: {} });
    expect(off.metrics).toEqual({ host: '127.0.0.1' });
    const on = loadRunnerConfig({ configPath: file('metrics-on.json', complete), env: { DBDIST_RUNNER_METRICS_PORT: '9464', DBDIST_RUNNER_METRICS_HOST: '0.0.0.0' } });
    expect(on.metrics).toEqual({ port: 9464, host: '0.0.0.0' });
    const problems = problemsOf(() => loadRunnerConfig({ configPath: file('metrics-bad.json', { ...complete, metrics: { port: 70000 } }), env: {} }));
    expect(problems.map((problem) => problem.field)).toContain('metrics.port');
  });

  it('exports traces only when an OTLP endpoint is configured, from the file or the environment', () => {
    expect(loadRunnerConfig({ configPath: file('otel-off.json', complete), env: {} }).telemetry.otlpEndpoint).toBeUndefined();
    const fromEnv = loadRunnerConfig({ configPath: file('otel-env.json', complete), env: { DBDIST_RUNNER_OTLP_ENDPOINT: 'http://collector:4318/v1/traces' } });
    expect(fromEnv.telemetry.otlpEndpoint).toBe('http://collector:4318/v1/traces');
    const problems = problemsOf(() => loadRunnerConfig({ configPath: file('otel-bad.json', { ...complete, telemetry: { otlpEndpoint: 'collector:4318' } }), env: {} }));
    expect(problems.map((problem) => problem.field)).toContain('telemetry.otlpEndpoint');
  });

  it('lets the environment override the file, with numbers and booleans read from text', () => {
    const config = loadRunnerConfig({
      configPath: file('ok2.json', complete),
      env: {
        DBDIST_RUNNER_CONCURRENCY_PER_INSTANCE: '2',
        DBDIST_RUNNER_PG_PASSWORD: 'from-env',
        DBDIST_RUNNER_SQLSERVER_HOST: 'sql01',
        DBDIST_RUNNER_SQLSERVER_AUTH: 'sql',
        DBDIST_RUNNER_SQLSERVER_USER: 'runner',
        DBDIST_RUNNER_SQLSERVER_PASSWORD: 'pw',
        DBDIST_RUNNER_SQLSERVER_VERIFY: 'false',
      },
    });
    expect(config.concurrencyPerInstance).toBe(2);
    expect(config.postgres?.password).toBe('from-env');
    expect(config.sqlServer).toMatchObject({ host: 'sql01', auth: { type: 'sql', user: 'runner', password: 'pw' }, verify: false });
  });

  it('reads the servers a runner serves from a comma-separated variable, and names a bad id', () => {
    const serverIds = ['6f1d2c3b-4a59-4e68-8d7c-0b1a2c3d4e5f', '0d6b4b8e-2a7c-4f0e-9d55-3a1c2b4d5e6f'];
    const config = loadRunnerConfig({ configPath: file('servers.json', complete), env: { DBDIST_RUNNER_SERVER_IDS: ` ${serverIds.join(' , ')} ` } });
    expect(config.serverIds).toEqual(serverIds);
    const problems = problemsOf(() =>
      loadRunnerConfig({ configPath: file('servers-bad.json', complete), env: { DBDIST_RUNNER_SERVER_IDS: `${serverIds[0]},sql01` } }),
    );
    expect(problems).toEqual([{ field: 'serverIds.1', message: 'must be server ids (GUIDs) as registered in dbdist' }]);
  });

  it('works from the environment alone', () => {
    const env = {
      DBDIST_RUNNER_ID: 'r1',
      DBDIST_RUNNER_SERVICEBUS_CONNECTION_STRING: 'Endpoint=sb://127.0.0.1;SharedAccessKeyName=x;SharedAccessKey=y;UseDevelopmentEmulator=true',
      DBDIST_RUNNER_SERVICEBUS_SUBSCRIPTION: 'r1',
      DBDIST_RUNNER_API_BASE_URL: 'http://127.0.0.1:7071',
      DBDIST_RUNNER_API_SCOPE: 'api://dbdist/.default',
      DBDIST_RUNNER_TENANT_ID: 't',
      DBDIST_RUNNER_CLIENT_ID: 'c',
      DBDIST_RUNNER_CLIENT_SECRET: 's',
      DBDIST_RUNNER_PG_HOST: 'localhost',
      DBDIST_RUNNER_PG_USER: 'postgres',
      DBDIST_RUNNER_WORK_DIR: '/tmp/w',
    };
    expect(loadRunnerConfig({ env }).entra.clientSecret).toBe('s');
  });

  it('names each bad field, and where a missing one can be set', () => {
    const problems = problemsOf(() =>
      loadRunnerConfig({
        configPath: file('bad.json', { ...complete, runnerId: undefined, concurrencyPerInstance: 0, compressionDefault: 'lz4', extra: 1 }),
        env: {},
      }),
    );
    const fields = problems.map((p) => p.field);
    expect(fields).toEqual(expect.arrayContaining(['runnerId', 'concurrencyPerInstance', 'compressionDefault']));
    expect(problems.find((p) => p.field === 'runnerId')?.message).toMatch(/required but not set.*DBDIST_RUNNER_ID/);
    expect(problems.some((p) => /extra/.test(p.message))).toBe(true); // unknown keys are refused (typos)
  });

  it('refuses secrets in the file, naming the variable to use instead', () => {
    for (const variable of envVariables.filter((v) => v.secret)) {
      const withSecret = structuredClone(complete) as Record<string, unknown>;
      const [head, ...rest] = variable.path.split('.');
      let node = withSecret as Record<string, unknown>;
      for (const key of [head!, ...rest].slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
      node[variable.path.split('.').at(-1)!] = 'secret';
      const problems = problemsOf(() => loadRunnerConfig({ configPath: file('secret.json', withSecret), env: {} }));
      expect(problems).toEqual([{ field: variable.path, message: expect.stringContaining(variable.env) }]);
    }
  });

  it('requires exactly one Service Bus connection and one client credential', () => {
    const result = runnerConfigSchema.safeParse({ ...complete, serviceBus: { subscription: 's' }, entra: { tenantId: 't', clientId: 'c' } });
    const paths = result.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(['serviceBus.fullyQualifiedNamespace', 'entra.certificatePath']);
  });

  it('requires at least one database connection', () => {
    const result = runnerConfigSchema.safeParse({ ...complete, postgres: undefined });
    expect(result.error!.issues).toEqual([expect.objectContaining({ path: ['sqlServer'], message: 'configure sqlServer and/or postgres' })]);
  });

  it('the manual backup needs only a database connection', () => {
    const config = loadRunnerConfig({ configPath: file('local.json', { postgres: { host: 'pg', user: 'u' }, runnerId: 'ignored' }), env: {}, schema: localBackupConfigSchema });
    expect(config.postgres?.host).toBe('pg');
  });

  describe('paths', () => {
    const sqlServer = { host: 'sql01', auth: { type: 'sql', user: 'u', password: 'p' } };
    it('makes a relative workDir absolute against the working directory', () => {
      expect(runnerConfigSchema.parse({ ...complete, workDir: 'work' }).workDir).toBe(join(process.cwd(), 'work'));
      expect(localBackupConfigSchema.parse({ postgres: complete.postgres }).workDir).toBe(process.cwd());
    });

    it.each(['C:\\SQLBackup', 'd:/backup', '\\\\runner01\\dbdist-work', '/var/opt/mssql/backup'])('accepts the server-side directory %s', (backupDirectory) => {
      expect(runnerConfigSchema.parse({ ...complete, sqlServer: { ...sqlServer, backupDirectory } }).sqlServer?.backupDirectory).toBe(backupDirectory);
    });

    it.each(['backup', '.\\backup', 'C:backup', '\\backup', '\\\\host-only'])('refuses the relative server-side directory %s', (backupDirectory) => {
      const result = runnerConfigSchema.safeParse({ ...complete, sqlServer: { ...sqlServer, backupDirectory } });
      expect(result.error!.issues).toEqual([expect.objectContaining({ path: ['sqlServer', 'backupDirectory'], message: expect.stringContaining('absolute') })]);
    });

    it('defaults the SQL Server choices the engine relies on', () => {
      expect(runnerConfigSchema.parse({ ...complete, sqlServer }).sqlServer).toMatchObject({
        verify: true,
        whenVerifyNotPermitted: 'fail',
        odbcDriver: 'ODBC Driver 18 for SQL Server',
      });
    });
  });
});
