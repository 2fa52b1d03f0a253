/**
 * The control plane's metrics in Prometheus text format (GET /api/metrics), derived from the store on each
 * scrape: two aggregate queries (jobs per database/status/error code; audit rows per action) and two bounded
 * reads (the registry; jobs completed in the last day, for durations). Derived from the store rather than
 * counted in memory, so every Function App instance answers the same and a restart loses nothing.
 */
import { Counter, Gauge, Registry, Summary } from 'prom-client';
import type { JobStatus } from '../shared/contracts/jobs.js';
import type { DatabaseRecord, JobRecord, JobTally } from '../shared/db/store.js';
import type { Deps } from './deps.js';

/** How far back job durations are summarised. */
export const DURATION_WINDOW_MS = 24 * 60 * 60 * 1000;
/** At most this many completed jobs go into the duration summaries (the newest). */
export const DURATION_SAMPLE_LIMIT = 2000;

export interface MetricsText {
  contentType: string;
  body: string;
}

/** The newest completion of a good (Available) backup per database. */
export function lastGoodBackups(tallies: readonly JobTally[]): Map<string, Date> {
  const last = new Map<string, Date>();
  for (const tally of tallies) {
    if (tally.status !== 'Available' || !tally.lastCompletedAt) continue;
    const known = last.get(tally.databaseId);
    if (!known || tally.lastCompletedAt > known) last.set(tally.databaseId, tally.lastCompletedAt);
  }
  return last;
}

const seconds = (from: Date | null, to: Date | null): number | undefined =>
  from && to && to >= from ? (to.getTime() - from.getTime()) / 1000 : undefined;

export async function renderMetrics(deps: Pick<Deps, 'store' | 'now'>): Promise<MetricsText> {
  const now = deps.now();
  const [tallies, auditCounts, databases, completed] = await Promise.all([
    deps.store.tallyJobs(),
    deps.store.countAuditActions(),
    deps.store.listAllDatabases(),
    deps.store.listCompletedJobs(new Date(now.getTime() - DURATION_WINDOW_MS), DURATION_SAMPLE_LIMIT),
  ]);
  const registry = new Registry();
  const names = new Map(databases.map((database) => [database.id, database.name]));
  const label = (databaseId: string) => ({ database_id: databaseId, database: names.get(databaseId) ?? '' });

  jobGauges(registry, tallies, label);
  auditCounters(registry, auditCounts);
  recoveryGauges(registry, databases, lastGoodBackups(tallies), now, label);
  durationSummaries(registry, completed);

  return { contentType: registry.contentType, body: await registry.metrics() };
}

function jobGauges(registry: Registry, tallies: readonly JobTally[], label: (id: string) => Record<string, string>): void {
  const jobs = new Gauge({
    name: 'dbdist_jobs',
    help: 'Jobs by database, status and error code (Failed jobs carry theirs; dead letters are error_code="delivery_failed").',
    labelNames: ['database_id', 'database', 'status', 'error_code'],
    registers: [registry],
  });
  const stored = new Gauge({
    name: 'dbdist_backup_bytes_stored',
    help: 'Bytes of the backups kept now (Available jobs), by database.',
    labelNames: ['database_id', 'database'],
    registers: [registry],
  });
  const storedTotals = new Map<string, number>();
  for (const tally of tallies) {
    jobs.set({ ...label(tally.databaseId), status: tally.status, error_code: tally.errorCode ?? '' }, tally.jobs);
    if (tally.status === 'Available') storedTotals.set(tally.databaseId, (storedTotals.get(tally.databaseId) ?? 0) + tally.bytes);
  }
  for (const [databaseId, bytes] of storedTotals) stored.set(label(databaseId), bytes);
}

/** Audit actions that have their own, plainly named counter; every action is also in dbdist_audit_events_total. */
const namedCounters: ReadonlyArray<{ name: string; help: string; actions: readonly string[]; result?: (action: string) => string }> = [
  { name: 'dbdist_sas_issued_total', help: 'Download links issued.', actions: ['sas.download_issued'] },
  { name: 'dbdist_sas_denied_total', help: 'Download links refused.', actions: ['sas.download_denied'] },
  {
    name: 'dbdist_integrity_checks_total',
    help: 'Re-verifications of stored backups, by result.',
    actions: ['integrity.verified', 'integrity.failed'],
    result: (action) => (action === 'integrity.verified' ? 'verified' : 'failed'),
  },
  { name: 'dbdist_runner_denied_total', help: 'Runner calls refused for a server the runner is not bound to.', actions: ['runner.denied'] },
];

function auditCounters(registry: Registry, counts: ReadonlyArray<{ action: string; count: number }>): void {
  const all = new Counter({ name: 'dbdist_audit_events_total', help: 'Audit rows by action.', labelNames: ['action'], registers: [registry] });
  const byAction = new Map(counts.map((row) => [row.action, row.count]));
  for (const [action, count] of byAction) all.inc({ action }, count);
  for (const spec of namedCounters) {
    const counter = new Counter({ name: spec.name, help: spec.help, labelNames: spec.result ? ['result'] : [], registers: [registry] });
    for (const action of spec.actions) {
      const count = byAction.get(action) ?? 0;
      if (spec.result) counter.inc({ result: spec.result(action) }, count);
      else counter.inc(count);
    }
  }
}

function recoveryGauges(
  registry: Registry,
  databases: readonly DatabaseRecord[],
  lastGood: ReadonlyMap<string, Date>,
  now: Date,
  label: (id: string) => Record<string, string>,
): void {
  const lastGoodAt = new Gauge({
    name: 'dbdist_last_good_backup_timestamp_seconds',
    help: 'When the newest Available backup of the database completed (Unix time).',
    labelNames: ['database_id', 'database'],
    registers: [registry],
  });
  const age = new Gauge({
    name: 'dbdist_last_good_backup_age_seconds',
    help: 'Age of the newest Available backup of the database.',
    labelNames: ['database_id', 'database'],
    registers: [registry],
  });
  const rpo = new Gauge({
    name: 'dbdist_rpo_seconds',
    help: "The database policy's recovery point objective.",
    labelNames: ['database_id', 'database'],
    registers: [registry],
  });
  const breached = new Gauge({
    name: 'dbdist_rpo_breached',
    help: '1 while the RPO is breached (as last recorded by the RPO check), else 0.',
    labelNames: ['database_id', 'database'],
    registers: [registry],
  });
  for (const database of databases) {
    const at = lastGood.get(database.id);
    if (at) {
      lastGoodAt.set(label(database.id), at.getTime() / 1000);
      age.set(label(database.id), Math.max(0, (now.getTime() - at.getTime()) / 1000));
    }
    if (database.policy.rpoHours !== undefined) {
      rpo.set(label(database.id), database.policy.rpoHours * 3600);
      breached.set(label(database.id), database.rpoBreachedAt ? 1 : 0);
    }
  }
}

const goodStatuses: ReadonlySet<JobStatus> = new Set(['Available', 'Expired']);

function durationSummaries(registry: Registry, completed: readonly JobRecord[]): void {
  // One unlabelled summary per phase: plain to query, and every exposition parser reads it the same.
  const summary = (name: string, help: string) => new Summary({ name, help, percentiles: [0.5, 0.9, 0.99], registers: [registry] });
  const queueWait = summary('dbdist_job_queue_wait_seconds', 'Request to accepted by a runner, jobs completed good in the last 24 h.');
  const run = summary('dbdist_job_run_seconds', 'Accepted to completed (backup, upload, verify), jobs completed good in the last 24 h.');
  const total = summary('dbdist_job_request_to_available_seconds', 'Request to Available, jobs completed good in the last 24 h.');
  const throughput = summary('dbdist_job_throughput_bytes_per_second', 'Stored bytes per second of run time, jobs completed good in the last 24 h.');
  for (const job of completed) {
    if (!goodStatuses.has(job.status)) continue;
    const phases: Array<[Summary, number | undefined]> = [
      [queueWait, seconds(job.createdAt, job.acceptedAt)],
      [run, seconds(job.acceptedAt, job.completedAt)],
      [total, seconds(job.createdAt, job.completedAt)],
    ];
    for (const [metric, value] of phases) if (value !== undefined) metric.observe(value);
    const runSeconds = seconds(job.acceptedAt, job.completedAt);
    if (runSeconds && job.sizeBytes) throughput.observe(job.sizeBytes / runSeconds);
  }
}
