/** The retention safety net on the PGlite store and Azurite (test/support/deps.ts). */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobGateway } from '../../shared/storage/gateway.js';
import type { JobRecord } from '../../shared/db/store.js';
import type { OrchestrationState } from '../../services/orchestrations.js';
import { RETENTION_SWEEPER, expireBackup, sweepExpiredBackups } from '../../services/retention.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';

let t: TestDeps;
let seeded: SeededDatabase;

beforeAll(async () => {
  t = await startTestDeps();
  seeded = await seedDatabase(t.deps.store);
});
afterAll(() => t?.close());

const HOUR = 3600_000;

/** An Available job whose retention ended `hoursAgo` hours ago, with its blob in storage. */
async function availableJob(hoursAgo: number): Promise<JobRecord> {
  const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available', expiresAt: new Date(Date.now() - hoursAgo * HOUR) });
  await t.container.getBlockBlobClient(job.blobPath).upload('bytes', 5);
  return job;
}

/** Orchestration states as a test decides them; unknown ids are NotFound (purged or never started). */
function orchestrationsIn(states: Record<string, OrchestrationState>) {
  return { getState: async (jobId: string): Promise<OrchestrationState> => states[jobId] ?? 'NotFound' };
}

async function statusOf(jobId: string) {
  return (await t.deps.store.getJob(jobId))?.status;
}

describe('expireBackup (shared by the orchestration and the sweep)', () => {
  it('deletes the blob first, then moves the job to Expired with one audit row; again is harmless', async () => {
    const job = await availableJob(1);
    const now = new Date();
    const first = await expireBackup(t.deps, { jobId: job.id, reason: 'deleted', actor: RETENTION_SWEEPER, at: now });
    expect(first).toEqual({ ok: true, status: 'Expired', blobDeleted: true, alreadyExpired: false });
    const second = await expireBackup(t.deps, { jobId: job.id, reason: 'deleted', actor: RETENTION_SWEEPER, at: now });
    expect(second).toEqual({ ok: true, status: 'Expired', blobDeleted: false, alreadyExpired: true });

    expect(await t.deps.blobs.getBlobFacts(job.blobPath)).toBeUndefined();
    const rows = await t.deps.store.listAudit({ jobId: job.id, action: 'job.expired', limit: 10 });
    expect(rows.items).toHaveLength(1);
    expect(rows.items[0]).toMatchObject({ actorId: 'retention-sweeper', detail: { reason: 'deleted', blobDeleted: true, blobPath: job.blobPath } });
  });

  it('leaves a job that is not Available alone, blob included', async () => {
    const running = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    await t.container.getBlockBlobClient(running.blobPath).upload('partial', 7);
    expect(await expireBackup(t.deps, { jobId: running.id, reason: 'retention', actor: RETENTION_SWEEPER, at: new Date() })).toEqual({
      ok: false,
      code: 'not_available',
      status: 'Running',
    });
    expect(await t.deps.blobs.getBlobFacts(running.blobPath)).toBeDefined();
    expect(await expireBackup(t.deps, { jobId: randomUUID(), reason: 'retention', actor: RETENTION_SWEEPER, at: new Date() })).toEqual({
      ok: false,
      code: 'job_not_found',
    });
  });
});

describe('sweepExpiredBackups', () => {
  it('expires overdue backups whose orchestration is gone or finished, and leaves running orchestrations to their timer', async () => {
    const purged = await availableJob(3);
    const completed = await availableJob(2);
    const failed = await availableJob(2);
    const terminated = await availableJob(2);
    const stillRunning = await availableJob(1);
    const notYetDue = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available', expiresAt: new Date(Date.now() + HOUR) });
    const orchestrations = orchestrationsIn({
      [completed.id]: 'Completed',
      [failed.id]: 'Failed',
      [terminated.id]: 'Terminated',
      [stillRunning.id]: 'Running',
      [notYetDue.id]: 'NotFound',
    });

    const report = await sweepExpiredBackups(t.deps, orchestrations, { limit: 100 });
    expect(report.expired.sort()).toEqual([purged.id, completed.id, failed.id, terminated.id].sort());
    expect(report.leftToOrchestration).toContain(stillRunning.id);
    expect(report.failed).toEqual([]);

    for (const job of [purged, completed, failed, terminated]) {
      expect(await statusOf(job.id)).toBe('Expired');
      expect(await t.deps.blobs.getBlobFacts(job.blobPath)).toBeUndefined();
    }
    expect(await statusOf(stillRunning.id)).toBe('Available');
    expect(await t.deps.blobs.getBlobFacts(stillRunning.blobPath)).toBeDefined();
    expect(await statusOf(notYetDue.id)).toBe('Available');

    const audit = await t.deps.store.listAudit({ jobId: failed.id, action: 'job.expired', limit: 10 });
    expect(audit.items[0]).toMatchObject({ actorType: 'system', actorId: 'retention-sweeper', detail: { reason: 'retention', orchestrationState: 'Failed' } });

    // The next sweep finds nothing more to do for these.
    const again = await sweepExpiredBackups(t.deps, orchestrations, { limit: 100 });
    expect(again.expired).toEqual([]);
  });

  it('reports a job it could not expire and carries on with the others', async () => {
    const broken = await availableJob(5);
    const fine = await availableJob(5);
    const failingBlobs: BlobGateway = {
      ...t.deps.blobs,
      deleteBlob: async (path) => {
        if (path === broken.blobPath) throw new Error('storage unavailable');
        return t.deps.blobs.deleteBlob(path);
      },
    };
    const report = await sweepExpiredBackups({ ...t.deps, blobs: failingBlobs }, orchestrationsIn({}), { limit: 100 });
    expect(report.failed).toEqual([{ jobId: broken.id, error: 'storage unavailable' }]);
    expect(report.expired).toContain(fine.id);
    expect(await statusOf(broken.id)).toBe('Available');
    expect(await statusOf(fine.id)).toBe('Expired');
  });
});
