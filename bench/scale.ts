/**
 * Scale simulation (issue 16, item 6): many jobs through the in-process stack (dev/stack.ts: the real HTTP
 * handlers, the real `backupJob2` orchestrator and activities on the in-process Durable host, the AMQP broker for
 * the real Service Bus client, Azurite) with one runner per server, each on its own subscription, doing small
 * synthetic backups (dev/fake-engine.ts). What one job costs the control plane, per job:
 *
 * - control-plane CPU: this process's CPU minus the broker's own (dev/servicebus-broker.ts meters its socket
 *   reads). Runners and requesters run in a child process (bench/scale-world.ts), Azurite is a child process and
 *   the store is a PostgreSQL server, so none of them is in this process. Left in, and small: the OIDC issuer
 *   (it answers the one JWKS fetch) and this file's bookkeeping between phases;
 * - Durable history events, episodes and activities, from the host's stored histories;
 * - Service Bus traffic, counted at the broker;
 * - SQL statements and rows, counted on the store's pool (bench/lib/sql-counter.ts), and the PostgreSQL server's
 *   CPU for them when the server runs on this machine;
 * - audit rows, counted in audit_events by job;
 * - request → Available from the jobs' own audit timestamps, split into: to the runner's acceptance (API,
 *   orchestration start, enqueue, delivery), the runner's part (the synthetic backup: engine, upload SAS, upload to
 *   Azurite, report) and verification (metadata, re-hash, signed manifest, publish). Overhead = total − runner part.
 *
 * Phases, in one run: warm-up (one job per server: connections, JIT), unloaded (jobs one at a time: the latency
 * floor), loaded (every requester at once: one per server, so no job waits for a busy runner; the machine's
 * throughput), then the loaded jobs' retention expiry (timers fired) and one dead-letter sweep over every
 * subscription (the Function App's minute timer).
 */
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import azureFunctions from '@azure/functions';
import pg from 'pg';
import { startLocalStack, ensureRunnerSubscription, JOBS_TOPIC, type LocalStack } from '../dev/stack.js';
import { HistoryEventType } from '../dev/durable-history.js';
import { createPostgresStore } from '../shared/db/postgres.js';
import { failDeadLetteredJobs } from '../services/dead-letters.js';
import type { BrokerStats } from '../dev/servicebus-broker.js';
import { postgresAvailable, startPostgres } from '../test/support/postgres.js';
import { spawnBundled } from './lib/child.js';
import { childCpuSeconds } from './lib/proc.js';
import { fixed, printTable } from './lib/report.js';
import { countStatements, sqlDelta, type SqlCounter, type SqlCounts } from './lib/sql-counter.js';
import { percentile } from './lib/stats.js';
import type { PhaseOutcome, WorldInput, WorldMessage, WorldResult } from './scale-world.js';

export interface ScaleOptions {
  jobs: number;
  runners: number;
  /** Size of each synthetic backup. */
  backupKiB: number;
  /** Jobs requested one at a time for the latency floor. */
  unloadedJobs: number;
}

interface Snapshot {
  cpuMs: number;
  broker: BrokerStats;
  sql: SqlCounts;
  sqlServerCpuMs: number | undefined;
  azuriteCpuMs: number | undefined;
  elu: ReturnType<typeof performance.eventLoopUtilization>;
  /** The machine's 1-minute load average: on a shared machine it says how much of the wall time was ours. */
  load: number;
  at: number;
}

interface PhaseCost {
  name: string;
  jobs: number;
  wallMs: number;
  controlPlaneCpuMs: number;
  brokerCpuMs: number;
  sqlServerCpuMs: number | undefined;
  azuriteCpuMs: number | undefined;
  eventLoopUtilization: number;
  load: [number, number];
  broker: BrokerStats;
  sql: SqlCounts;
}

const retentionDays = 7; // the policy default

function snapshot(stack: LocalStack, sql: SqlCounter): Snapshot {
  const cpu = process.cpuUsage();
  const azurite = childCpuSeconds('azurite');
  const server = sql.serverCpuSeconds();
  return {
    cpuMs: (cpu.user + cpu.system) / 1000,
    broker: stack.broker.stats(),
    sql: sql.snapshot(),
    sqlServerCpuMs: server === undefined ? undefined : server * 1000,
    azuriteCpuMs: azurite === undefined ? undefined : azurite * 1000,
    elu: performance.eventLoopUtilization(),
    load: loadavg()[0]!,
    at: performance.now(),
  };
}

function costBetween(name: string, jobs: number, before: Snapshot, after: Snapshot): PhaseCost {
  const brokerDelta = Object.fromEntries(
    Object.entries(after.broker).map(([key, value]) => [key, value - before.broker[key as keyof BrokerStats]]),
  ) as unknown as BrokerStats;
  const minus = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a - b);
  return {
    name,
    jobs,
    wallMs: after.at - before.at,
    controlPlaneCpuMs: after.cpuMs - before.cpuMs - brokerDelta.cpuMs,
    brokerCpuMs: brokerDelta.cpuMs,
    sqlServerCpuMs: minus(after.sqlServerCpuMs, before.sqlServerCpuMs),
    azuriteCpuMs: minus(after.azuriteCpuMs, before.azuriteCpuMs),
    eventLoopUtilization: performance.eventLoopUtilization(after.elu, before.elu).utilization,
    load: [before.load, after.load],
    broker: brokerDelta,
    sql: sqlDelta(after.sql, before.sql),
  };
}

/** Registers `count` servers with one database each, each bound to a runner identity of its own. */
async function registerFleet(stack: LocalStack, count: number): Promise<{ runners: WorldInput['runners']; databaseIds: string[] }> {
  const runners: WorldInput['runners'] = [];
  const databaseIds: string[] = [];
  for (let i = 0; i < count; i++) {
    const server = await stack.api<{ id: string }>('POST', '/api/servers', { token: stack.tokens.admin, body: { name: `scale-${i}`, host: `db${i}.scale.example`, engine: 'postgres' } });
    if (server.status !== 201) throw new Error(`registering server ${i}: ${server.status} ${server.text.slice(0, 300)}`);
    const database = await stack.api<{ id: string }>('POST', `/api/servers/${server.body.id}/databases`, {
      token: stack.tokens.admin,
      body: { name: 'app', requesterGroupIds: [stack.requesterGroupId] },
    });
    if (database.status !== 201) throw new Error(`registering database ${i}: ${database.status} ${database.text.slice(0, 300)}`);
    const identity = { clientId: randomUUID(), servicePrincipalId: randomUUID() };
    await stack.bindRunner(server.body.id, identity);
    runners.push({
      serverId: server.body.id,
      subscription: ensureRunnerSubscription(stack.broker, server.body.id),
      runnerId: `scale-runner-${i}`,
      token: stack.issuer.issueAppToken({ roles: ['Runner'], appId: identity.clientId, oid: identity.servicePrincipalId, expiresIn: 8 * 3600 }),
    });
    databaseIds.push(database.body.id);
  }
  return { runners, databaseIds };
}

/** Runs the world child; snapshots this process at each phase boundary it announces. */
async function runWorld(stack: LocalStack, sql: SqlCounter, input: WorldInput): Promise<{ result: WorldResult; costs: Map<string, PhaseCost> }> {
  const child: ChildProcess = await spawnBundled(new URL('./scale-world.ts', import.meta.url));
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const starts = new Map<string, Snapshot>();
  const costs = new Map<string, PhaseCost>();
  const phaseJobs = new Map(input.phases.map((phase) => [phase.name, phase.jobs]));
  const result = await new Promise<WorldResult>((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`the world process exited (${code}) before reporting`)));
    child.on('message', (message: WorldMessage) => {
      void (async () => {
        switch (message.kind) {
          case 'phase-start':
            console.log(`  phase ${message.name}: ${phaseJobs.get(message.name)} jobs …`);
            starts.set(message.name, snapshot(stack, sql));
            child.send({ kind: 'ack' });
            return;
          case 'phase-end': {
            // The jobs are Available; what follows from them (the orchestrations' last episodes) belongs to them.
            await stack.durable.whenIdle();
            const cost = costBetween(message.name, phaseJobs.get(message.name)!, starts.get(message.name)!, snapshot(stack, sql));
            costs.set(message.name, cost);
            console.log(`  phase ${message.name}: done in ${fixed(cost.wallMs / 1000, 1)} s`);
            child.send({ kind: 'ack' });
            return;
          }
          case 'result':
            resolve(message.result);
            return;
          case 'error':
            reject(new Error(`the world process failed: ${message.error}`));
        }
      })().catch(reject);
    });
    child.send({ input });
  });
  return { result, costs };
}

interface JobTimes {
  totalMs: number[];
  toAcceptedMs: number[];
  runnerMs: number[];
  verifyMs: number[];
  overheadMs: number[];
}

/** Each job's request → Available, split by its audit rows' timestamps. */
async function jobTimes(client: pg.Client, jobIds: string[]): Promise<JobTimes> {
  const { rows } = await client.query<{ job_id: string; action: string; at: Date }>(
    `select job_id, action, at from audit_events where job_id = any($1) and action in ('job.requested', 'job.running', 'job.verifying', 'job.available')`,
    [jobIds],
  );
  const byJob = new Map<string, Record<string, number>>();
  for (const row of rows) {
    const times = byJob.get(row.job_id) ?? {};
    times[row.action] = new Date(row.at).getTime();
    byJob.set(row.job_id, times);
  }
  const times: JobTimes = { totalMs: [], toAcceptedMs: [], runnerMs: [], verifyMs: [], overheadMs: [] };
  for (const t of byJob.values()) {
    const [requested, running, verifying, available] = [t['job.requested'], t['job.running'], t['job.verifying'], t['job.available']];
    if (requested === undefined || running === undefined || verifying === undefined || available === undefined) continue;
    times.totalMs.push(available - requested);
    times.toAcceptedMs.push(running - requested);
    times.runnerMs.push(verifying - running);
    times.verifyMs.push(available - verifying);
    times.overheadMs.push(available - requested - (verifying - running));
  }
  for (const list of Object.values(times) as number[][]) list.sort((a, b) => a - b);
  return times;
}

function historyOf(stack: LocalStack, jobIds: string[]): { events: number[]; episodes: number[]; activities: number[]; raised: number[] } {
  const events: number[] = [];
  const episodes: number[] = [];
  const activities: number[] = [];
  const raised: number[] = [];
  for (const id of jobIds) {
    const history = stack.durable.history(id);
    events.push(history.length);
    episodes.push(history.filter((e) => e.EventType === HistoryEventType.OrchestratorStarted).length);
    activities.push(history.filter((e) => e.EventType === HistoryEventType.TaskScheduled).length);
    raised.push(history.filter((e) => e.EventType === HistoryEventType.EventRaised).length);
  }
  return { events, episodes, activities, raised };
}

const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
const perJob = (value: number | undefined, jobs: number, digits = 1) => (value === undefined ? 'not measured' : fixed(value / jobs, digits));

export async function runScaleBench(options: ScaleOptions): Promise<void> {
  if (!postgresAvailable) {
    console.log('Scale skipped: it needs a PostgreSQL server for the store (set PG_URL or install the postgresql server package).');
    return;
  }
  const server = await startPostgres();
  const url = await server.createDatabase();
  // One pool for the store, counted; connections are kept (idle timeout off) so their server CPU can be read.
  const pool = new pg.Pool({ connectionString: url, max: 10, idleTimeoutMillis: 0 });
  // A pooled connection the server ends is reported as an 'error' event, which would kill the process unheard. At
  // the end pool.end() resolves before its sockets have closed, and dropping the database ends them: expected.
  let poolEnded = false;
  pool.on('error', (error) => {
    if (!poolEnded) console.warn(`PostgreSQL closed a pooled connection: ${error.message}`);
  });
  const sql = countStatements(pool);
  const store = await createPostgresStore({ pool, migrate: true });
  const reader = new pg.Client({ connectionString: url });
  let stack: LocalStack | undefined;
  try {
    const t0 = Date.now();
    stack = await startLocalStack({
      store: { store, client: pool },
      lockDurationMs: 60_000,
      // The sweep is measured once, on its own, below: not inside the phases.
      deadLetterSweepMs: 24 * 3600_000,
      progress: (line) => console.log(`  ${line}`),
    });
    const fleet = await registerFleet(stack, options.runners);
    console.log(`  stack up and ${options.runners} servers registered in ${fixed((Date.now() - t0) / 1000, 1)} s`);
    await reader.connect();

    const input: WorldInput = {
      connectionString: stack.broker.connectionString,
      topic: JOBS_TOPIC,
      apiBaseUrl: stack.apiBaseUrl,
      ...fleet,
      requesterToken: stack.tokens.alice,
      backupBytes: options.backupKiB * 1024,
      watchUrl: url,
      jobTimeoutMs: 300_000,
      phases: [
        { name: 'warm-up', jobs: options.runners, concurrency: options.runners },
        { name: 'unloaded', jobs: options.unloadedJobs, concurrency: 1 },
        { name: 'loaded', jobs: options.jobs, concurrency: options.runners },
      ],
    };
    const { result, costs } = await runWorld(stack, sql, input);
    const outcomes = new Map<string, PhaseOutcome>(result.phases.map((phase) => [phase.name, phase]));
    for (const phase of result.phases) {
      if (phase.notAvailable.length > 0) {
        console.log(`  ${phase.name}: ${phase.notAvailable.length} jobs did not reach Available, e.g. ${JSON.stringify(phase.notAvailable.slice(0, 3))}`);
      }
    }

    // Retention expiry of the loaded jobs: their timers fired (7 days on), as the Durable host would after a week.
    const loadedIds = outcomes.get('loaded')!.jobIds;
    const historyAtAvailable = historyOf(stack, loadedIds);
    const beforeExpiry = snapshot(stack, sql);
    const asOf = new Date(Date.now() + (retentionDays + 1) * 24 * 3600_000);
    for (const id of loadedIds) stack.durable.fireTimers(id, asOf);
    await stack.durable.whenIdle();
    const expiry = costBetween('expiry', loadedIds.length, beforeExpiry, snapshot(stack, sql));
    const expired = (await reader.query<{ n: number }>(`select count(*)::int as n from jobs where id = any($1) and status = 'Expired'`, [loadedIds])).rows[0]!.n;
    const historyAtExpired = historyOf(stack, loadedIds);

    // One dead-letter sweep over every runner subscription (the minute timer), with nothing dead-lettered.
    const beforeSweep = snapshot(stack, sql);
    await failDeadLetteredJobs(stack.deps, stack.deps.orchestrations(new azureFunctions.InvocationContext({ functionName: 'dead-letter-sweep' })));
    const sweep = costBetween('dead-letter sweep', 0, beforeSweep, snapshot(stack, sql));

    const auditRows = async (ids: string[]) =>
      (await reader.query<{ n: number }>('select count(*)::int as n from audit_events where job_id = any($1)', [ids])).rows[0]!.n;
    const loadedAuditAtExpired = await auditRows(loadedIds);

    // ---- report ----
    const measured = ['unloaded', 'loaded'].map((name) => ({ cost: costs.get(name)!, outcome: outcomes.get(name)! }));
    console.log(
      `\n${options.jobs} jobs (loaded phase), ${options.runners} runners (one subscription and one connection each), ` +
        `${options.backupKiB} KiB synthetic backups (fake engine, compression none); store: PostgreSQL ${url.replace(/\/\/[^@]*@/, '//')}`,
    );
    printTable(
      'Per job, by phase (control plane = this process minus the broker; the world runs in its own process)',
      ['per job', ...measured.map(({ cost }) => `${cost.name} (${cost.jobs})`), `expiry (${expiry.jobs})`],
      [
        ['control-plane CPU ms', ...measured.map(({ cost }) => perJob(cost.controlPlaneCpuMs, cost.jobs)), perJob(expiry.controlPlaneCpuMs, expiry.jobs)],
        ['  broker CPU ms (subtracted)', ...measured.map(({ cost }) => perJob(cost.brokerCpuMs, cost.jobs)), perJob(expiry.brokerCpuMs, expiry.jobs)],
        ['PostgreSQL server CPU ms', ...measured.map(({ cost }) => perJob(cost.sqlServerCpuMs, cost.jobs)), perJob(expiry.sqlServerCpuMs, expiry.jobs)],
        ['Azurite CPU ms', ...measured.map(({ cost }) => perJob(cost.azuriteCpuMs, cost.jobs)), perJob(expiry.azuriteCpuMs, expiry.jobs)],
        ['runners + requesters CPU ms', ...measured.map(({ cost, outcome }) => perJob(outcome.cpuMs, cost.jobs)), '-'],
        ['SQL statements', ...measured.map(({ cost }) => perJob(cost.sql.statements, cost.jobs)), perJob(expiry.sql.statements, expiry.jobs)],
        ['  SELECT / INSERT / UPDATE / DELETE', ...[...measured.map(({ cost }) => cost), expiry].map((c) => [c.sql.selects, c.sql.inserts, c.sql.updates, c.sql.deletes].map((n) => fixed(n / c.jobs, 1)).join(' / '))],
        ['  transactions (BEGIN … COMMIT)', ...[...measured.map(({ cost }) => cost), expiry].map((c) => perJob(c.sql.transactionControl / 2, c.jobs))],
        ['SQL rows read', ...[...measured.map(({ cost }) => cost), expiry].map((c) => perJob(c.sql.rowsRead, c.jobs))],
        ['SQL rows written', ...[...measured.map(({ cost }) => cost), expiry].map((c) => perJob(c.sql.rowsWritten, c.jobs))],
        ['  of which audit_events', ...[...measured.map(({ cost }) => cost), expiry].map((c) => perJob(c.sql.rowsWrittenByTable['audit_events'] ?? 0, c.jobs))],
        ['Service Bus messages sent', ...[...measured.map(({ cost }) => cost), expiry].map((c) => perJob(c.broker.sent, c.jobs, 2))],
        ['  deliveries / completions', ...[...measured.map(({ cost }) => cost), expiry].map((c) => `${fixed(c.broker.delivered / c.jobs, 2)} / ${fixed(c.broker.completed / c.jobs, 2)}`)],
        ['  lock renewals / $management requests', ...[...measured.map(({ cost }) => cost), expiry].map((c) => `${fixed(c.broker.lockRenewals / c.jobs, 2)} / ${fixed(c.broker.managementRequests / c.jobs, 2)}`)],
        ['  $cbs token puts / connections opened', ...[...measured.map(({ cost }) => cost), expiry].map((c) => `${fixed(c.broker.tokenPuts / c.jobs, 2)} / ${fixed(c.broker.connectionsOpened / c.jobs, 2)}`)],
        ['control-plane event loop busy', ...[...measured.map(({ cost }) => cost), expiry].map((c) => `${fixed(c.eventLoopUtilization * 100, 0)} %`)],
        ['machine load average (start → end)', ...[...measured.map(({ cost }) => cost), expiry].map((c) => `${fixed(c.load[0], 1)} → ${fixed(c.load[1], 1)}`)],
      ],
    );

    const loadedTimes = await jobTimes(reader, loadedIds);
    const unloadedTimes = await jobTimes(reader, outcomes.get('unloaded')!.jobIds);
    const row = (label: string, pick: (t: JobTimes) => number[]) => [
      label,
      ...[unloadedTimes, loadedTimes].flatMap((t) => [fixed(percentile(pick(t), 0.5), 0), fixed(percentile(pick(t), 0.99), 0)]),
    ];
    printTable(
      'Request → Available (ms, from each job\'s audit timestamps)',
      ['span', 'unloaded p50', 'unloaded p99', 'loaded p50', 'loaded p99'],
      [
        row('request → Available', (t) => t.totalMs),
        row('  request → accepted by the runner', (t) => t.toAcceptedMs),
        row('  accepted → uploaded (runner: the synthetic backup)', (t) => t.runnerMs),
        row('  uploaded → Available (verify, re-hash, manifest)', (t) => t.verifyMs),
        row('overhead = total − runner part', (t) => t.overheadMs),
        [
          'POST /api/jobs as the requester saw it',
          ...['unloaded', 'loaded'].flatMap((name) => {
            const sorted = [...outcomes.get(name)!.requestMs].sort((a, b) => a - b);
            return [fixed(percentile(sorted, 0.5), 0), fixed(percentile(sorted, 0.99), 0)];
          }),
        ],
      ],
    );

    const loaded = costs.get('loaded')!;
    printTable(
      'Durable, audit, throughput',
      ['figure', 'value'],
      [
        ['history events per job at Available (mean / max)', `${fixed(mean(historyAtAvailable.events), 1)} / ${Math.max(...historyAtAvailable.events)}`],
        ['history events per job at Expired (mean / max)', `${fixed(mean(historyAtExpired.events), 1)} / ${Math.max(...historyAtExpired.events)}`],
        ['episodes (replays) per job, to Expired', fixed(mean(historyAtExpired.episodes), 1)],
        ['activities per job, to Expired', fixed(mean(historyAtExpired.activities), 1)],
        ['events raised on the orchestration per job, to Expired', fixed(mean(historyAtExpired.raised), 1)],
        ['audit rows per job, to Expired', fixed(loadedAuditAtExpired / loadedIds.length, 1)],
        ['jobs Expired after the timers fired', `${expired} of ${loadedIds.length}`],
        ['loaded throughput (jobs/s, this machine)', fixed(loaded.jobs / (loaded.wallMs / 1000), 2)],
        ['loaded: control-plane CPU share of one core', `${fixed(loaded.controlPlaneCpuMs / loaded.wallMs * 100, 0)} %`],
        ['jobs not Available (all phases)', String(result.phases.reduce((n, p) => n + p.notAvailable.length, 0))],
        ['runner child peak RSS MiB', fixed(result.maxRssKiB / 1024, 0)],
        [
          `one dead-letter sweep over ${options.runners} subscriptions (empty)`,
          `${fixed(sweep.wallMs / 1000, 1)} s wall, ${fixed(sweep.controlPlaneCpuMs, 0)} ms CPU, ${sweep.broker.managementRequests + sweep.broker.tokenPuts} broker requests, ${sweep.broker.connectionsOpened} connections`,
        ],
      ],
    );
  } finally {
    await stack?.stop();
    await reader.end().catch(() => undefined);
    await store.close().catch(() => undefined);
    poolEnded = true;
    await pool.end().catch(() => undefined);
    await server.stop();
  }
}
