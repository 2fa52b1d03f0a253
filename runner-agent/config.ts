/**
 * The runner's settings: a JSON file (`--config path`) and/or `DBDIST_RUNNER_*` environment variables
 * (environment wins). Secrets (client secret, database passwords) are accepted from the environment only, so a
 * config file can be shared or checked in without leaking anything.
 *
 * A bad setting stops start-up with its name, and every bad setting is named in one error (as shared/config.ts
 * does for the control plane).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { Compression } from '../shared/contracts/common.js';
import { AppError, errorMessage, type FieldError } from '../shared/errors.js';
import { DEFAULT_SCRATCH_PREFIX, SCRATCH_PREFIX_PATTERN } from './sanitize/scratch.js';

const nonEmpty = z.string().trim().min(1);
const positiveInt = z.number().int().positive();
/** A local directory, made absolute against the runner's working directory once, at start-up. */
const localDirectory = nonEmpty.transform((path) => resolve(path));
/**
 * A directory as SQL Server sees it: a relative path would land in SQL Server's own default backup folder while
 * the runner looks elsewhere, so only `C:\…`, `\\host\share\…` or `/…` are accepted.
 */
const serverDirectory = nonEmpty.refine((path) => /^[A-Za-z]:[\\/]/.test(path) || /^\\\\[^\\]+\\[^\\]+/.test(path) || path.startsWith('/'), {
  message: 'must be an absolute path as SQL Server sees it (C:\\dir, \\\\host\\share\\dir or /dir)',
});

const sqlServerAuth = z.discriminatedUnion('type', [
  /** Windows integrated (SSPI) as the service account; needs the optional `msnodesqlv8` driver. */
  z.object({ type: z.literal('windows') }).strict(),
  /** A Windows account by name and password (NTLM); password from DBDIST_RUNNER_SQLSERVER_PASSWORD. */
  z.object({ type: z.literal('ntlm'), domain: nonEmpty, user: nonEmpty, password: nonEmpty }).strict(),
  /** A SQL login; password from DBDIST_RUNNER_SQLSERVER_PASSWORD. */
  z.object({ type: z.literal('sql'), user: nonEmpty, password: nonEmpty }).strict(),
  /** The runner's own Entra app registration (same certificate/secret as for the API). */
  z.object({ type: z.literal('entra') }).strict(),
]);

const sqlServerSettings = z
  .object({
    host: nonEmpty,
    /** Named instance (resolved through SQL Browser); leave out for the default instance. */
    instanceName: nonEmpty.optional(),
    port: positiveInt.max(65535).optional(),
    auth: sqlServerAuth,
    encrypt: z.boolean().default(true),
    trustServerCertificate: z.boolean().default(false),
    /**
     * The work directory as SQL Server sees it, when that differs from `workDir` (a remote instance writing to
     * a share the runner reads, e.g. `\\runner-host\dbdist-work`). Defaults to `workDir`.
     */
    backupDirectory: serverDirectory.optional(),
    /** `RESTORE VERIFYONLY ... WITH CHECKSUM` on the temp file before it is uploaded (needs CREATE DATABASE). */
    verify: z.boolean().default(true),
    /**
     * When `verify` is on but the login lacks CREATE DATABASE (which RESTORE VERIFYONLY needs): `fail` the job
     * before BACKUP starts, or `skip` the verification with a warning in the log.
     */
    whenVerifyNotPermitted: z.enum(['fail', 'skip']).default('fail'),
    /**
     * A small database this runner may back up, used by `check` to prove that the file SQL Server writes under
     * `backupDirectory` appears in `workDir` (e.g. an empty `dbdist_probe`). Without it `check` cannot prove it.
     */
    probeDatabase: nonEmpty.optional(),
    /** ODBC driver for `auth.type = windows` (msnodesqlv8). */
    odbcDriver: nonEmpty.default('ODBC Driver 18 for SQL Server'),
  })
  .strict()
  .refine((s) => !(s.instanceName && s.port), { path: ['port'], message: 'set either instanceName or port, not both' });

const postgresSettings = z
  .object({
    host: nonEmpty,
    port: positiveInt.max(65535).default(5432),
    user: nonEmpty,
    /** From DBDIST_RUNNER_PG_PASSWORD only; without it pg_dump reads ~/.pgpass (or PGPASSFILE). */
    password: nonEmpty.optional(),
    /** Database used for `check`'s connectivity test. */
    maintenanceDatabase: nonEmpty.default('postgres'),
    /** Directory holding pg_dump; default: PATH, then the newest /usr/lib/postgresql/<n>/bin. */
    binDir: nonEmpty.optional(),
    sslMode: z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
    /**
     * Count every table's rows in the dump's own snapshot (a full read of each table) so a restore rehearsal can
     * compare them (default true); turn off for databases too large to read twice.
     */
    recordRowCounts: z.boolean().optional(),
    /**
     * Write pg_dump's archive to workDir before uploading it (default false: straight from pg_dump's stdout).
     * Needs room for the largest dump; in return a runner that crashes mid-upload resumes the upload of the
     * finished file instead of dumping again (docs/runner.md).
     */
    spoolToWorkDir: z.boolean().optional(),
  })
  .strict();

/**
 * Where sanitized copies and restore rehearsals happen: servers on which the runner may create and drop
 * databases named `<prefix>…` (and nothing else). Without it, jobs that need one fail with scratch_not_configured.
 */
const scratchSettings = z
  .object({
    prefix: z
      .string()
      .regex(SCRATCH_PREFIX_PATTERN, 'must be 3-30 lower-case letters, digits or _, starting with a letter')
      .default(DEFAULT_SCRATCH_PREFIX),
    /** A PostgreSQL server (often a small one next to the runner); password from DBDIST_RUNNER_SCRATCH_PG_PASSWORD. */
    postgres: postgresSettings.optional(),
    sqlServer: z
      .object({
        /** The scratch instance; default: the `sqlServer` connection. Password from DBDIST_RUNNER_SCRATCH_SQLSERVER_PASSWORD. */
        connection: sqlServerSettings.optional(),
        /** Where RESTORE … WITH MOVE puts the scratch data and log files, as that instance sees it. */
        dataDirectory: nonEmpty,
        logDirectory: nonEmpty.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const runnerConfigFields = z.object({
  /**
   * Server ids (as registered in dbdist) this runner backs up; jobs for any other server are dead-lettered.
   * Defence in depth behind the subscription's serverId filter. Omitted: every job that arrives is attempted.
   */
  serverIds: z.array(z.uuid({ message: 'must be server ids (GUIDs) as registered in dbdist' })).min(1).optional(),
  /** Reported in `accepted` events and logs; e.g. the host name. */
  runnerId: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be 1-128 letters, digits, dots, dashes or underscores'),
  serviceBus: z
    .object({
      fullyQualifiedNamespace: z
        .string()
        .regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'must be a host name such as sb-dbdist.servicebus.windows.net')
        .optional(),
      /** Development only (the emulator or a local broker); production uses Entra credentials. */
      connectionString: nonEmpty.optional(),
      topic: nonEmpty.default('backup-jobs'),
      subscription: nonEmpty,
    })
    .strict()
    .refine((s) => Boolean(s.fullyQualifiedNamespace) !== Boolean(s.connectionString), {
      path: ['fullyQualifiedNamespace'],
      message: 'set exactly one of fullyQualifiedNamespace or connectionString',
    }),
  api: z
    .object({
      baseUrl: z.url({ protocol: /^https?$/, message: 'must be an http(s):// URL' }),
      /** e.g. `api://dbdist/.default`: the API's application id URI + `/.default`. */
      scope: nonEmpty,
    })
    .strict(),
  entra: z
    .object({
      tenantId: nonEmpty,
      clientId: nonEmpty,
      /** PEM file with the private key and the certificate. */
      certificatePath: nonEmpty.optional(),
      clientSecret: nonEmpty.optional(),
      authorityHost: z.url({ protocol: /^https$/, message: 'must be an https:// URL' }).default('https://login.microsoftonline.com'),
    })
    .strict()
    .refine((e) => Boolean(e.certificatePath) !== Boolean(e.clientSecret), {
      path: ['certificatePath'],
      message: 'set exactly one of certificatePath or the DBDIST_RUNNER_CLIENT_SECRET environment variable',
    }),
  sqlServer: sqlServerSettings.optional(),
  postgres: postgresSettings.optional(),
  scratch: scratchSettings.optional(),
  /** Temp files (SQL Server .bak) live here; needs room for the largest backup. Made absolute at start-up. */
  workDir: localDirectory,
  /**
   * Upload blocks: size in KiB (default 8 MiB; a large backup gets bigger blocks to stay under 50,000) and how many
   * are sent at once. A resumed upload re-sends at most the blocks in flight when the attempt died.
   */
  upload: z
    .object({ blockKiB: positiveInt.min(64).max(4000 * 1024).default(8 * 1024), parallelism: positiveInt.max(16).default(4) })
    .strict()
    .default({ blockKiB: 8 * 1024, parallelism: 4 }),
  /** Backups running at once against one database server. */
  concurrencyPerInstance: positiveInt.max(16).default(1),
  /** How long a message lock is renewed; must exceed the longest backup. */
  lockRenewalMaxMinutes: positiveInt.default(12 * 60),
  /**
   * While the API or Blob Storage is unreachable, how long one job waits for it (message kept locked, capped
   * back-off) before giving the message back to Service Bus.
   */
  outageBoundSeconds: positiveInt.default(15 * 60),
  /** How often the runner reports itself to the API (`GET /api/runners` shows it). */
  heartbeatSeconds: positiveInt.default(60),
  /** On SIGTERM, how long running backups may take to finish before their messages are abandoned. */
  shutdownGraceSeconds: z.number().int().nonnegative().default(120),
  /** Compression for the manual `backup` command (jobs carry their own choice). */
  compressionDefault: Compression.default('none'),
  /**
   * Retired: the runner-key (DBDE) format's key. Jobs are encrypted with age to the recipients they name; keep the
   * key file itself (not this setting) to open old copies with `dbdist-runner decrypt --key-file`.
   */
  encryptionKeyFile: nonEmpty.optional(),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** Traces (issue 14): off unless an OTLP/HTTP traces endpoint is set (e.g. `http://collector:4318/v1/traces`). */
  telemetry: z
    .object({ otlpEndpoint: z.url({ protocol: /^https?$/, message: 'must be an http(s):// URL' }).optional() })
    .strict()
    .default({}),
  /** Prometheus text at `http://host:port/metrics` (issue 14): off unless a port is set. */
  metrics: z
    .object({ port: z.number().int().nonnegative().max(65535).optional(), host: nonEmpty.default('127.0.0.1') })
    .strict()
    .default({ host: '127.0.0.1' }),
});

const needsAnEngine = { path: ['sqlServer'], message: 'configure sqlServer and/or postgres' };

/** Everything the service (`start`, `check`) needs. Unknown keys are refused: a typo must not go unnoticed. */
export const runnerConfigSchema = runnerConfigFields.strict().refine((c) => c.sqlServer || c.postgres, needsAnEngine);

/**
 * What the operator's manual `backup` command needs: the database connections only, so it also works on a host
 * without Service Bus or API settings. The service's other settings may be present and are ignored.
 */
export const localBackupConfigSchema = runnerConfigFields
  .pick({ sqlServer: true, postgres: true, workDir: true, compressionDefault: true, encryptionKeyFile: true, logLevel: true })
  .extend({ workDir: localDirectory.prefault('.') })
  .refine((c) => c.sqlServer || c.postgres, needsAnEngine);

export type RunnerConfig = z.output<typeof runnerConfigSchema>;
export type LocalBackupConfig = z.output<typeof localBackupConfigSchema>;
export type SqlServerSettings = NonNullable<RunnerConfig['sqlServer']>;
export type PostgresSettings = NonNullable<RunnerConfig['postgres']>;
export type ScratchSettings = NonNullable<RunnerConfig['scratch']>;

type ValueKind = 'string' | 'number' | 'boolean' | 'list';

/** Every environment variable, the config field it sets, and how its text is read. */
export const envVariables: ReadonlyArray<{ env: string; path: string; kind: ValueKind; secret?: true }> = [
  { env: 'DBDIST_RUNNER_ID', path: 'runnerId', kind: 'string' },
  { env: 'DBDIST_RUNNER_OTLP_ENDPOINT', path: 'telemetry.otlpEndpoint', kind: 'string' },
  { env: 'DBDIST_RUNNER_METRICS_PORT', path: 'metrics.port', kind: 'number' },
  { env: 'DBDIST_RUNNER_METRICS_HOST', path: 'metrics.host', kind: 'string' },
  { env: 'DBDIST_RUNNER_SERVER_IDS', path: 'serverIds', kind: 'list' },
  { env: 'DBDIST_RUNNER_SERVICEBUS_NAMESPACE', path: 'serviceBus.fullyQualifiedNamespace', kind: 'string' },
  { env: 'DBDIST_RUNNER_SERVICEBUS_CONNECTION_STRING', path: 'serviceBus.connectionString', kind: 'string', secret: true },
  { env: 'DBDIST_RUNNER_SERVICEBUS_TOPIC', path: 'serviceBus.topic', kind: 'string' },
  { env: 'DBDIST_RUNNER_SERVICEBUS_SUBSCRIPTION', path: 'serviceBus.subscription', kind: 'string' },
  { env: 'DBDIST_RUNNER_API_BASE_URL', path: 'api.baseUrl', kind: 'string' },
  { env: 'DBDIST_RUNNER_API_SCOPE', path: 'api.scope', kind: 'string' },
  { env: 'DBDIST_RUNNER_TENANT_ID', path: 'entra.tenantId', kind: 'string' },
  { env: 'DBDIST_RUNNER_CLIENT_ID', path: 'entra.clientId', kind: 'string' },
  { env: 'DBDIST_RUNNER_CLIENT_CERTIFICATE_PATH', path: 'entra.certificatePath', kind: 'string' },
  { env: 'DBDIST_RUNNER_CLIENT_SECRET', path: 'entra.clientSecret', kind: 'string', secret: true },
  { env: 'DBDIST_RUNNER_AUTHORITY_HOST', path: 'entra.authorityHost', kind: 'string' },
  { env: 'DBDIST_RUNNER_SQLSERVER_HOST', path: 'sqlServer.host', kind: 'string' },
  { env: 'DBDIST_RUNNER_SQLSERVER_INSTANCE', path: 'sqlServer.instanceName', kind: 'string' },
  { env: 'DBDIST_RUNNER_SQLSERVER_PORT', path: 'sqlServer.port', kind: 'number' },
  { env: 'DBDIST_RUNNER_SQLSERVER_AUTH', path: 'sqlServer.auth.type', kind: 'string' },
  { env: 'DBDIST_RUNNER_SQLSERVER_DOMAIN', path: 'sqlServer.auth.domain', kind: 'string' },
  { env: 'DBDIST_RUNNER_SQLSERVER_USER', path: 'sqlServer.auth.user', kind: 'string' },
  { env: 'DBDIST_RUNNER_SQLSERVER_PASSWORD', path: 'sqlServer.auth.password', kind: 'string', secret: true },
  { env: 'DBDIST_RUNNER_SQLSERVER_ENCRYPT', path: 'sqlServer.encrypt', kind: 'boolean' },
  { env: 'DBDIST_RUNNER_SQLSERVER_TRUST_SERVER_CERTIFICATE', path: 'sqlServer.trustServerCertificate', kind: 'boolean' },
  { env: 'DBDIST_RUNNER_SQLSERVER_BACKUP_DIRECTORY', path: 'sqlServer.backupDirectory', kind: 'string' },
  { env: 'DBDIST_RUNNER_SQLSERVER_VERIFY', path: 'sqlServer.verify', kind: 'boolean' },
  { env: 'DBDIST_RUNNER_SQLSERVER_WHEN_VERIFY_NOT_PERMITTED', path: 'sqlServer.whenVerifyNotPermitted', kind: 'string' },
  { env: 'DBDIST_RUNNER_SQLSERVER_PROBE_DATABASE', path: 'sqlServer.probeDatabase', kind: 'string' },
  { env: 'DBDIST_RUNNER_SQLSERVER_ODBC_DRIVER', path: 'sqlServer.odbcDriver', kind: 'string' },
  { env: 'DBDIST_RUNNER_PG_HOST', path: 'postgres.host', kind: 'string' },
  { env: 'DBDIST_RUNNER_PG_PORT', path: 'postgres.port', kind: 'number' },
  { env: 'DBDIST_RUNNER_PG_USER', path: 'postgres.user', kind: 'string' },
  { env: 'DBDIST_RUNNER_PG_PASSWORD', path: 'postgres.password', kind: 'string', secret: true },
  { env: 'DBDIST_RUNNER_PG_MAINTENANCE_DATABASE', path: 'postgres.maintenanceDatabase', kind: 'string' },
  { env: 'DBDIST_RUNNER_PG_BIN_DIR', path: 'postgres.binDir', kind: 'string' },
  { env: 'DBDIST_RUNNER_PG_SSLMODE', path: 'postgres.sslMode', kind: 'string' },
  { env: 'DBDIST_RUNNER_PG_SPOOL_TO_WORK_DIR', path: 'postgres.spoolToWorkDir', kind: 'boolean' },
  { env: 'DBDIST_RUNNER_UPLOAD_BLOCK_KIB', path: 'upload.blockKiB', kind: 'number' },
  { env: 'DBDIST_RUNNER_UPLOAD_PARALLELISM', path: 'upload.parallelism', kind: 'number' },
  { env: 'DBDIST_RUNNER_SCRATCH_PG_PASSWORD', path: 'scratch.postgres.password', kind: 'string', secret: true },
  { env: 'DBDIST_RUNNER_SCRATCH_SQLSERVER_PASSWORD', path: 'scratch.sqlServer.connection.auth.password', kind: 'string', secret: true },
  { env: 'DBDIST_RUNNER_WORK_DIR', path: 'workDir', kind: 'string' },
  { env: 'DBDIST_RUNNER_CONCURRENCY_PER_INSTANCE', path: 'concurrencyPerInstance', kind: 'number' },
  { env: 'DBDIST_RUNNER_LOCK_RENEWAL_MAX_MINUTES', path: 'lockRenewalMaxMinutes', kind: 'number' },
  { env: 'DBDIST_RUNNER_OUTAGE_BOUND_SECONDS', path: 'outageBoundSeconds', kind: 'number' },
  { env: 'DBDIST_RUNNER_HEARTBEAT_SECONDS', path: 'heartbeatSeconds', kind: 'number' },
  { env: 'DBDIST_RUNNER_SHUTDOWN_GRACE_SECONDS', path: 'shutdownGraceSeconds', kind: 'number' },
  { env: 'DBDIST_RUNNER_COMPRESSION_DEFAULT', path: 'compressionDefault', kind: 'string' },
  { env: 'DBDIST_RUNNER_ENCRYPTION_KEY_FILE', path: 'encryptionKeyFile', kind: 'string' },
  { env: 'DBDIST_RUNNER_LOG_LEVEL', path: 'logLevel', kind: 'string' },
];

const envNameByPath = new Map(envVariables.map((v) => [v.path, v.env]));

/** Reads a variable's text; text that is not of the kind is kept as is so the schema names the field. */
function fromEnvText(raw: string, kind: ValueKind): unknown {
  if (kind === 'number') return /^\s*\d+\s*$/.test(raw) ? Number(raw) : raw;
  if (kind === 'list') return raw.split(',').map((item) => item.trim()).filter((item) => item.length > 0);
  if (kind === 'boolean') {
    const lower = raw.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(lower)) return true;
    if (['false', '0', 'no'].includes(lower)) return false;
  }
  return raw;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

function getPath(source: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined), source);
}

function configError(problems: FieldError[], where: string): AppError {
  return new AppError('config_invalid', `Invalid runner config (${where}): ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, {
    fieldErrors: problems,
    details: { where },
  });
}

/**
 * Validates a merged config object. Missing required fields say where they can be set.
 */
export function parseRunnerConfig<S extends z.ZodType = typeof runnerConfigSchema>(
  raw: unknown,
  where = 'config',
  schema: S = runnerConfigSchema as unknown as S,
): z.output<S> {
  const result = schema.safeParse(raw, {
    error: (issue) => (issue.code === 'invalid_type' && issue.input === undefined ? 'is required but not set' : undefined),
  });
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.map(String).join('.') || '(root)';
    const env = envNameByPath.get(field);
    const hint = issue.message === 'is required but not set' && env ? ` (config file key "${field}" or ${env})` : '';
    return { field, message: `${issue.message}${hint}` };
  });
  throw configError(problems, where);
}

export interface LoadConfigOptions<S extends z.ZodType> {
  /** JSON config file; optional when the environment carries every setting. */
  configPath?: string;
  env?: Record<string, string | undefined>;
  /** Default: the full service schema. */
  schema?: S;
}

/** Reads the config file (if any), lays the environment over it and validates the result. */
export function loadRunnerConfig<S extends z.ZodType = typeof runnerConfigSchema>({
  configPath,
  env = process.env,
  schema,
}: LoadConfigOptions<S> = {}): z.output<S> {
  let fromFile: Record<string, unknown> = {};
  if (configPath) {
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (error) {
      throw configError([{ field: '--config', message: `cannot be read: ${errorMessage(error)}` }], configPath);
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('the top level must be a JSON object');
      fromFile = parsed as Record<string, unknown>;
    } catch (error) {
      throw configError([{ field: '--config', message: `is not valid JSON: ${errorMessage(error)}` }], configPath);
    }
    const secretsInFile = envVariables
      .filter((v) => v.secret && getPath(fromFile, v.path) !== undefined)
      .map((v) => ({ field: v.path, message: `must not be in the config file: set ${v.env} in the service's environment` }));
    if (secretsInFile.length > 0) throw configError(secretsInFile, configPath);
  }

  const merged = structuredClone(fromFile);
  for (const { env: name, path, kind } of envVariables) {
    const raw = env[name];
    if (raw !== undefined && raw !== '') setPath(merged, path, fromEnvText(raw, kind));
  }
  return parseRunnerConfig(merged, configPath ? `${configPath} + environment` : 'environment', schema ?? (runnerConfigSchema as unknown as S));
}
