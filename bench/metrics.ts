/**
 * GET /api/metrics cost with 10,000 jobs: `renderMetrics` (services/metrics.ts: two aggregate queries and two
 * bounded reads, then prom-client's text rendering) against a PostgreSQL server (PG_URL, or a throwaway cluster
 * from the installed binaries) and against PGlite, side by side. Target: p95 ≤ 50 ms on PostgreSQL.
 *
 * The rows are written with one multi-row INSERT per table (the store's own API would take minutes for 10,000
 * jobs and their audit rows); their shape is what the store writes: 50 databases, a mix of statuses and error
 * codes, sizes, completion times over the last two days, and six audit rows per job.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { createPgliteStore } from '../shared/db/pglite.js';
import { createPostgresStore } from '../shared/db/postgres.js';
import type { Store } from '../shared/db/store.js';
import { renderMetrics } from '../services/metrics.js';
import { postgresAvailable, startPostgres } from '../test/support/postgres.js';
import { fixed, metOrNot, printTable, ratio } from './lib/report.js';

const JOBS = 10_000;
const DATABASES = 50;
const SCRAPES = 200;
const TARGET_P95_MS = 50;

const statuses = [
  ['Available', null],
  ['Available', null],
  ['Available', null],
  ['Expired', null],
  ['Expired', null],
  ['Failed', 'engine_error'],
  ['Failed', 'delivery_failed'],
  ['Cancelled', null],
  ['Running', null],
  ['Queued', null],
] as const;
const auditActions = ['job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'sas.download_issued'];

/** Rows as SQL values, written in slices so no statement is too large. */
async function seed(query: (text: string, values: unknown[]) => Promise<unknown>): Promise<void> {
  const now = Date.now();
  const serverId = randomUUID();
  const at = new Date(now);
  await query('insert into servers (id, name, host, engine, description, created_at, updated_at) values ($1, $2, $3, $4, null, $5, $5)', [serverId, 'bench', 'db.local', 'postgres', at]);
  const databaseIds = Array.from({ length: DATABASES }, () => randomUUID());
  for (const [i, id] of databaseIds.entries()) {
    await query(
      'insert into databases (id, server_id, name, requester_group_ids, policy, schedule, enabled, rpo_breached_at, created_at, updated_at) values ($1, $2, $3, $4, $5, null, true, null, $6, $6)',
      [id, serverId, `db${i}`, '[]', JSON.stringify({ maxSasTtlMinutes: 60, retentionDays: 7, allowedEngines: ['postgres'], acceptTimeoutMinutes: 60, runTimeoutMinutes: 720, rpoHours: 24 }), at],
    );
  }
  const slice = 500;
  for (let start = 0; start < JOBS; start += slice) {
    const jobValues: unknown[] = [];
    const jobRows: string[] = [];
    const auditValues: unknown[] = [];
    const auditRows: string[] = [];
    for (let i = start; i < Math.min(JOBS, start + slice); i++) {
      const id = randomUUID();
      const [status, errorCode] = statuses[i % statuses.length]!;
      const created = new Date(now - ((i * 17) % (48 * 3600)) * 1000);
      const accepted = new Date(created.getTime() + 60_000);
      const completed = status === 'Running' || status === 'Queued' ? null : new Date(accepted.getTime() + ((i % 30) + 1) * 60_000);
      const p = jobValues.length;
      jobRows.push(`($${p + 1}, $${p + 2}, $${p + 3}, 'db', 'postgres', $${p + 4}, '{}', 'oid', null, 'user', null, 'b', null, null, $${p + 5}, null, $${p + 6}, null, $${p + 7}, $${p + 7}, $${p + 8}, $${p + 9}, null)`);
      jobValues.push(id, databaseIds[i % DATABASES], serverId, status, status === 'Available' || status === 'Expired' ? 1_000_000 + i : null, errorCode, created, accepted, completed);
      for (const action of auditActions) {
        const q = auditValues.length;
        auditRows.push(`($${q + 1}, $${q + 2}, 'system', 'bench', null, $${q + 3}, $${q + 4}, $${q + 5}, null, null, '{}')`);
        auditValues.push(randomUUID(), created, action, `job/${id}`, id);
      }
    }
    await query(
      `insert into jobs (id, database_id, server_id, database_name, engine, status, options, requester_oid, requester_upn, trigger, schedule_slot, blob_path, progress_percent, progress_bytes, size_bytes, sha256, error_code, error_message, created_at, updated_at, accepted_at, completed_at, expires_at) values ${jobRows.join(', ')}`,
      jobValues,
    );
    await query(
      `insert into audit_events (id, at, actor_type, actor_id, actor_name, action, target, job_id, ip, user_agent, detail) values ${auditRows.join(', ')}`,
      auditValues,
    );
  }
}

async function scrapeTimes(store: Store): Promise<{ p50: number; p95: number; bytes: number }> {
  let bytes = 0;
  for (let i = 0; i < 10; i++) bytes = (await renderMetrics({ store, now: () => new Date() })).body.length; // warm up
  const times: number[] = [];
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = performance.now();
    await renderMetrics({ store, now: () => new Date() });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(SCRAPES * 0.5)]!, p95: times[Math.floor(SCRAPES * 0.95)]!, bytes };
}

export async function runMetricsBench(): Promise<void> {
  const results: Array<[string, { p50: number; p95: number; bytes: number }]> = [];
  if (postgresAvailable) {
    const server = await startPostgres();
    try {
      const url = await server.createDatabase();
      const store = await createPostgresStore({ connectionString: url, migrate: true });
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await seed((text, values) => client.query(text, values));
      await client.query('analyze');
      await client.end();
      results.push(['PostgreSQL', await scrapeTimes(store)]);
      const [, pgResult] = results[0]!;
      console.log(`PostgreSQL: p50 ${fixed(pgResult.p50, 1)} ms, p95 ${fixed(pgResult.p95, 1)} ms (PGlite follows; its seeding takes minutes)`);
      await store.close();
    } finally {
      await server.stop();
    }
  } else {
    console.log('PostgreSQL skipped: no server (set PG_URL or install the postgresql server package).');
  }
  const client = new PGlite();
  const lite = await createPgliteStore({ client });
  await seed((text, values) => client.query(text, values));
  results.push(['PGlite', await scrapeTimes(lite)]);
  await lite.close();
  await client.close();

  printTable(
    `GET /api/metrics (renderMetrics) with ${JOBS} jobs in ${DATABASES} databases and ${JOBS * auditActions.length} audit rows, ${SCRAPES} scrapes`,
    ['store', 'p50 ms', 'p95 ms', 'body bytes', `target p95 ≤ ${TARGET_P95_MS} ms`],
    results.map(([name, r]) => [name, fixed(r.p50, 1), fixed(r.p95, 1), r.bytes, metOrNot(r.p95 <= TARGET_P95_MS)]),
  );
  if (results.length === 2) console.log(`PGlite p95 ÷ PostgreSQL p95: ${ratio(results[1]![1].p95, results[0]![1].p95)}`);
}
