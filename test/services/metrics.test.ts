/** Control-plane metrics after a scripted sequence of jobs, parsed as Prometheus text (PGlite store). */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgliteStore } from '../../dev/stores.js';
import type { JobStatus } from '../../shared/contracts/jobs.js';
import type { Store } from '../../shared/db/store.js';
import { renderMetrics } from '../../services/metrics.js';
import { parsePrometheus, sample } from '../support/prometheus.js';
import { seedDatabase, seedJob, type SeededDatabase } from '../support/deps.js';

let store: Store;
let sales: SeededDatabase;
let hr: SeededDatabase;
const now = new Date();
const system = { actorType: 'system', actorId: 'metrics-test' } as const;

async function failed(seeded: SeededDatabase, errorCode: string) {
  const job = await seedJob(store, seeded, { requesterOid: randomUUID(), status: 'Queued' });
  await store.transitionJob(job.id, { from: ['Queued'], to: 'Failed', patch: { errorCode, completedAt: now } }, { ...system, action: 'job.failed', target: `job/${job.id}` });
}

async function available(seeded: SeededDatabase, sizeBytes: number, minutes: { queued: number; run: number }) {
  const created = new Date(now.getTime() - (minutes.queued + minutes.run) * 60_000);
  const job = await seedJob(store, seeded, { requesterOid: randomUUID(), status: 'Verifying', createdAt: created });
  const acceptedAt = new Date(created.getTime() + minutes.queued * 60_000);
  await store.transitionJob(
    job.id,
    { from: ['Verifying'], to: 'Available', patch: { sizeBytes, acceptedAt, completedAt: now, expiresAt: new Date(now.getTime() + 86_400_000) } },
    { ...system, action: 'job.available', target: `job/${job.id}` },
  );
  return job;
}

beforeAll(async () => {
  store = await createPgliteStore();
  sales = await seedDatabase(store, { name: 'sales', policy: { rpoHours: 24 } });
  hr = await seedDatabase(store, { name: 'hr' });
  const first = await available(sales, 1000, { queued: 1, run: 10 });
  await available(sales, 3000, { queued: 3, run: 30 });
  await available(hr, 500, { queued: 2, run: 5 });
  await failed(sales, 'engine_error');
  await failed(sales, 'delivery_failed');
  await failed(sales, 'delivery_failed');
  await store.appendAudit({ ...system, action: 'sas.download_issued', target: `job/${first.id}`, jobId: first.id });
  await store.appendAudit({ ...system, action: 'sas.download_issued', target: `job/${first.id}`, jobId: first.id });
  await store.appendAudit({ ...system, action: 'sas.download_denied', target: `job/${first.id}`, jobId: first.id });
  await store.setRpoBreach(sales.database.id, now, { ...system, action: 'rpo.breached', target: `database/${sales.database.id}` });
});
afterAll(() => store?.close());

describe('GET /api/metrics content', () => {
  it('counts jobs by database, status and error code, bytes stored and link counters', async () => {
    const text = await renderMetrics({ store, now: () => now });
    expect(text.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheus(text.body);
    const salesLabels = { database_id: sales.database.id, database: 'sales' };
    const jobs = (status: JobStatus, errorCode = '', labels = salesLabels) => sample(families, 'dbdist_jobs', { ...labels, status, error_code: errorCode });
    expect(jobs('Available')).toBe(2);
    expect(jobs('Failed', 'engine_error')).toBe(1);
    expect(jobs('Failed', 'delivery_failed')).toBe(2);
    expect(jobs('Available', '', { database_id: hr.database.id, database: 'hr' })).toBe(1);
    expect(sample(families, 'dbdist_backup_bytes_stored', salesLabels)).toBe(4000);
    expect(sample(families, 'dbdist_backup_bytes_stored', { database: 'hr' })).toBe(500);
    expect(sample(families, 'dbdist_sas_issued_total')).toBe(2);
    expect(sample(families, 'dbdist_sas_denied_total')).toBe(1);
    expect(sample(families, 'dbdist_audit_events_total', { action: 'job.failed' })).toBe(3);
    expect(families.get('dbdist_audit_events_total')?.type).toBe('COUNTER');
  });

  it('shows the age of the last good backup, the RPO and whether it is breached', async () => {
    const later = new Date(now.getTime() + 90 * 60_000);
    const families = parsePrometheus((await renderMetrics({ store, now: () => later })).body);
    expect(sample(families, 'dbdist_last_good_backup_age_seconds', { database: 'sales' })).toBe(90 * 60);
    expect(sample(families, 'dbdist_last_good_backup_timestamp_seconds', { database: 'hr' })).toBe(now.getTime() / 1000);
    expect(sample(families, 'dbdist_rpo_seconds', { database: 'sales' })).toBe(24 * 3600);
    expect(sample(families, 'dbdist_rpo_breached', { database: 'sales' })).toBe(1);
    // No RPO set: no RPO series at all, rather than a misleading 0.
    expect(sample(families, 'dbdist_rpo_breached', { database: 'hr' })).toBeUndefined();
  });

  it('summarises queue wait, run time and request-to-available of the last day', async () => {
    const families = parsePrometheus((await renderMetrics({ store, now: () => now })).body);
    const median = (name: string) => {
      const family = families.get(name);
      expect(family?.type).toBe('SUMMARY');
      return Number(family?.metrics[0]?.quantiles?.['0.5']);
    };
    // Medians of {1, 3, 2} min, {10, 30, 5} min and {11, 33, 7} min.
    expect(median('dbdist_job_queue_wait_seconds')).toBe(120);
    expect(median('dbdist_job_run_seconds')).toBe(600);
    expect(median('dbdist_job_request_to_available_seconds')).toBe(660);
    expect(families.get('dbdist_job_run_seconds')?.metrics[0]).toMatchObject({ count: '3', sum: String((10 + 30 + 5) * 60) });
  });
});
