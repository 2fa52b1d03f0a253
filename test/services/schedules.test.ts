/** Scheduled backups on the PGlite store. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseRecord, Store } from '../../shared/db/store.js';
import { BackupJobMessage } from '../../shared/contracts/messages.js';
import { DatabaseSchedule } from '../../shared/contracts/servers.js';
import { latestDueSlot, runDueSchedules, scheduledJobId } from '../../services/schedules.js';
import { RecordingOrchestrations, seedDatabase } from '../support/deps.js';
import { createPgliteStore } from '../../dev/stores.js';

let store: Store;
beforeAll(async () => {
  store = await createPgliteStore();
});
afterAll(() => store?.close());

const systemAudit = { actorType: 'system', actorId: 'test-seed' } as const;

async function scheduledDatabase(cron: string, options: { enabled?: boolean } = {}): Promise<DatabaseRecord> {
  const { database } = await seedDatabase(store, { enabled: options.enabled ?? true });
  const updated = await store.updateDatabase(database.id, { schedule: DatabaseSchedule.parse({ cron }) }, { ...systemAudit, action: 'database.updated', target: `database/${database.id}` });
  return updated!;
}

const depsAt = (iso: string) => ({ store, now: () => new Date(iso), recoveryRecipients: [] });

async function jobsOf(databaseId: string) {
  const page = await store.listJobs({ limit: 200 });
  return page.items.filter((job) => job.databaseId === databaseId);
}

describe('latestDueSlot (UTC)', () => {
  it('finds the latest slot at or before now within the look-back window', () => {
    expect(latestDueSlot('0 3 * * *', new Date('2026-11-23T03:00:00.000Z'))?.toISOString()).toBe('2026-11-23T03:00:00.000Z');
    expect(latestDueSlot('0 3 * * *', new Date('2026-11-23T04:59:00.000Z'))?.toISOString()).toBe('2026-11-23T03:00:00.000Z');
    expect(latestDueSlot('0 3 * * *', new Date('2026-11-23T05:00:01.000Z'))).toBeUndefined();
    expect(latestDueSlot('0 3 * * *', new Date('2026-11-23T02:59:00.000Z'))).toBeUndefined();
    expect(latestDueSlot('*/15 * * * *', new Date('2026-11-23T10:07:00.000Z'))?.toISOString()).toBe('2026-11-23T10:00:00.000Z');
  });

  it('refuses anything but a five-field cron expression', () => {
    expect(() => latestDueSlot('0 0 3 * * *', new Date())).toThrow(/five-field/);
    expect(() => latestDueSlot('every day at three', new Date())).toThrow();
  });
});

describe('scheduledJobId', () => {
  it('is a stable RFC 4122 version-5 UUID per database and slot', () => {
    const id = scheduledJobId('9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', '2026-11-23T03:00:00.000Z');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(scheduledJobId('9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', '2026-11-23T03:00:00.000Z')).toBe(id);
    expect(scheduledJobId('9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', '2026-11-24T03:00:00.000Z')).not.toBe(id);
  });
});

describe('runDueSchedules', () => {
  it('creates one Pending job for the due slot as the scheduler, audited, and starts its orchestration', async () => {
    const database = await scheduledDatabase('0 3 * * *');
    const orchestrations = new RecordingOrchestrations();
    const report = await runDueSchedules(depsAt('2026-11-23T03:04:00.000Z'), orchestrations);

    const created = report.created.filter((entry) => entry.databaseId === database.id);
    expect(created).toEqual([{ databaseId: database.id, jobId: scheduledJobId(database.id, '2026-11-23T03:00:00.000Z'), slot: '2026-11-23T03:00:00.000Z' }]);
    const [job] = await jobsOf(database.id);
    expect(job).toMatchObject({
      id: created[0]!.jobId,
      status: 'Pending',
      trigger: 'schedule',
      scheduleSlot: '2026-11-23T03:00:00.000Z',
      requesterOid: 'scheduler',
      databaseName: database.name,
      options: { compression: 'none', encryption: 'none' },
    });
    expect(job!.blobPath).toBe(`${database.serverId}/${database.id}/${job!.id}.bak`);
    // The id is a valid job id for the Service Bus message.
    expect(BackupJobMessage.shape.jobId.safeParse(job!.id).success).toBe(true);
    expect(orchestrations.started).toContain(job!.id);

    const audit = await store.listAudit({ jobId: job!.id, action: 'job.requested', limit: 10 });
    expect(audit.items).toHaveLength(1);
    expect(audit.items[0]).toMatchObject({ actorType: 'system', actorId: 'scheduler', detail: { trigger: 'schedule', slot: '2026-11-23T03:00:00.000Z' } });
  });

  it('never creates a second job for a slot, whether the tick runs again or twice at once', async () => {
    const database = await scheduledDatabase('30 1 * * *');
    const orchestrations = new RecordingOrchestrations();
    const deps = depsAt('2026-11-23T01:31:00.000Z');
    const concurrent = await Promise.all([runDueSchedules(deps, orchestrations), runDueSchedules(deps, orchestrations)]);
    const later = await runDueSchedules(depsAt('2026-11-23T01:45:00.000Z'), orchestrations);

    expect(await jobsOf(database.id)).toHaveLength(1);
    const createdCount = [...concurrent, later].flatMap((r) => r.created).filter((entry) => entry.databaseId === database.id).length;
    expect(createdCount).toBe(1);
    expect(later.existing.filter((entry) => entry.databaseId === database.id)).toHaveLength(1);
    const audit = await store.listAudit({ action: 'job.requested', jobId: scheduledJobId(database.id, '2026-11-23T01:30:00.000Z'), limit: 10 });
    expect(audit.items).toHaveLength(1);
  });

  it('finishes a slot whose orchestration did not start: the next tick starts the same Pending job', async () => {
    const database = await scheduledDatabase('0 6 * * *');
    const orchestrations = new RecordingOrchestrations();
    orchestrations.failNextStart = new Error('Durable host unavailable');
    const first = await runDueSchedules(depsAt('2026-11-23T06:00:30.000Z'), orchestrations);
    expect(first.failed.filter((entry) => entry.databaseId === database.id)).toEqual([{ databaseId: database.id, error: 'Durable host unavailable' }]);
    const [job] = await jobsOf(database.id);
    expect(job?.status).toBe('Pending');
    expect(orchestrations.started).not.toContain(job!.id);

    await runDueSchedules(depsAt('2026-11-23T06:05:30.000Z'), orchestrations);
    expect(orchestrations.started).toContain(job!.id);
    expect(await jobsOf(database.id)).toHaveLength(1);
  });

  it('skips a slot older than the look-back window and a disabled database', async () => {
    const late = await scheduledDatabase('0 0 * * *');
    const disabled = await scheduledDatabase('0 * * * *', { enabled: false });
    const orchestrations = new RecordingOrchestrations();
    await runDueSchedules(depsAt('2026-11-23T03:00:00.000Z'), orchestrations);
    expect(await jobsOf(late.id)).toEqual([]);
    expect(await jobsOf(disabled.id)).toEqual([]);
  });

  it('reports a bad schedule and carries on with the other databases', async () => {
    const bad = await scheduledDatabase('0 0 3 * * *');
    const good = await scheduledDatabase('0 12 * * *');
    const report = await runDueSchedules(depsAt('2026-11-23T12:01:00.000Z'), new RecordingOrchestrations());
    expect(report.failed.find((entry) => entry.databaseId === bad.id)?.error).toMatch(/five-field/);
    expect(await jobsOf(good.id)).toHaveLength(1);
  });
});
