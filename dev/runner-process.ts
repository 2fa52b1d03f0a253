/**
 * The real runner as its own OS process against the local stack: registers an app registration for it at the
 * local issuer (certificate credential, app role Runner), creates its subscription, writes a ready config file
 * and starts `dbdist-runner start` (runner-agent/cli.ts) with real MSAL, the real Service Bus client and the
 * real engines. Used by `npm run sandbox -- --serve` (which prints how to start it) and by the full-flow tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JOBS_TOPIC, ensureRunnerSubscription, type LocalStack } from './stack.js';
import { createClientCertificate, ensureLoopbackCert } from './tls.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
export const runnerCliPath = join(repoRoot, 'runner-agent', 'cli.ts');

export interface RunnerProcessOptions {
  serverId: string;
  /** Where the config, the certificate and the work directory go. */
  dir: string;
  /** The API as the runner reaches it (e.g. through a TCP proxy); default the stack's. */
  apiBaseUrl?: string;
  /** `spoolToWorkDir`: pg_dump writes a local file first, so a killed runner's successor can resume its upload. */
  postgres?: { host: string; port: number; user: string; password?: string; spoolToWorkDir?: boolean };
  runnerId?: string;
  /** Any other runner setting (e.g. `outageBoundSeconds`, `lockRenewalMaxMinutes`). */
  settings?: Record<string, unknown>;
}

export interface RunnerProcessSetup {
  configPath: string;
  /** Environment the process needs besides the config (secrets live only here, and the loopback CA). */
  env: Record<string, string>;
  clientId: string;
  servicePrincipalId: string;
  subscription: string;
  /** A shell line that starts the runner with this setup. */
  commandLine: string;
}

export async function prepareRunnerProcess(stack: LocalStack, options: RunnerProcessOptions & { bind?: boolean }): Promise<RunnerProcessSetup> {
  mkdirSync(options.dir, { recursive: true });
  const runnerId = options.runnerId ?? `runner-${randomUUID().slice(0, 8)}`;
  const certificate = createClientCertificate(options.dir, runnerId);
  const app = stack.issuer.registerClient({ certificatePem: certificate.certificatePem, roles: ['Runner'] });
  const subscription = ensureRunnerSubscription(stack.broker, options.serverId);
  if (options.bind !== false) await stack.bindRunner(options.serverId, app);
  const config = {
    runnerId,
    serverIds: [options.serverId],
    serviceBus: { topic: JOBS_TOPIC, subscription },
    api: { baseUrl: options.apiBaseUrl ?? stack.apiBaseUrl, scope: `${stack.issuer.apiAppIdUri}/.default` },
    entra: { tenantId: stack.issuer.tenantId, clientId: app.clientId, certificatePath: certificate.pemPath, authorityHost: stack.issuer.baseUrl },
    ...(options.postgres
      ? {
          postgres: {
            host: options.postgres.host,
            port: options.postgres.port,
            user: options.postgres.user,
            maintenanceDatabase: 'postgres',
            ...(options.postgres.spoolToWorkDir ? { spoolToWorkDir: true } : {}),
          },
        }
      : {}),
    workDir: join(options.dir, 'work'),
    ...options.settings,
  };
  const configPath = join(options.dir, `${runnerId}.json`);
  writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const env: Record<string, string> = {
    DBDIST_RUNNER_SERVICEBUS_CONNECTION_STRING: stack.broker.connectionString,
    NODE_EXTRA_CA_CERTS: ensureLoopbackCert().certPath,
    ...(options.postgres?.password ? { DBDIST_RUNNER_PG_PASSWORD: options.postgres.password } : {}),
  };
  const commandLine = `${Object.entries(env)
    .map(([name, value]) => `${name}='${value}'`)
    .join(' ')} npx tsx ${runnerCliPath} start --config ${configPath}`;
  return { configPath, env, clientId: app.clientId, servicePrincipalId: app.servicePrincipalId, subscription, commandLine };
}

export interface RunnerProcess {
  child: ChildProcess;
  /** Log lines (pino JSON, parsed) so far. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the first log line (past or future) matching `predicate`. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  /** SIGTERM (graceful) or SIGKILL (a crash). */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<number | null>;
}

/**
 * Starts `dbdist-runner <command>` as a child process (default `start`), from the TypeScript source through tsx,
 * or from `script`: the CLI built to JavaScript, as it runs in production (the benchmarks measure its memory).
 * `env` adds to the setup's environment (e.g. HTTPS_PROXY, which the Azure SDK honours, to route the runner's Blob
 * Storage traffic through a proxy).
 */
export function spawnRunner(
  setup: RunnerProcessSetup,
  options: { command?: string[]; echo?: boolean; env?: Record<string, string>; script?: string } = {},
): RunnerProcess {
  const entry = options.script ? [options.script] : ['--import', 'tsx', runnerCliPath];
  const child = spawn(process.execPath, [...entry, ...(options.command ?? ['start']), '--config', setup.configPath], {
    cwd: repoRoot,
    env: { ...process.env, ...setup.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{ predicate: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }> = [];
  let pending = '';
  const onText = (text: string) => {
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const raw of lines) {
      if (options.echo) process.stderr.write(`[runner] ${raw}\n`);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        line = { msg: raw };
      }
      logs.push(line);
      for (const waiter of waiters.filter((w) => w.predicate(line))) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  };
  child.stdout!.setEncoding('utf8').on('data', onText);
  child.stderr!.setEncoding('utf8').on('data', onText);
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  return {
    child,
    logs,
    exited,
    waitForLog(predicate, timeoutMs = 30_000) {
      const found = logs.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(() => reject(new Error('timed out waiting for a runner log line')), timeoutMs);
        waiters.push({
          predicate,
          resolve: (line) => {
            clearTimeout(timer);
            resolveLine(line);
          },
        });
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
