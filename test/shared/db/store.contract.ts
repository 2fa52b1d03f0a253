/**
 * The Store contract (shared/db/store.ts) as one suite, run against every implementation by the
 * `*.test.ts` files next to this one. Each test builds its own servers, databases and jobs with fresh ids, so tests
 * can share a store; the ones that list "everything" take a fresh store from the factory.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditAction } from '../../../shared/contracts/audit.js';
import { errorCodeMaxLength, errorMessageMaxLength } from '../../../shared/contracts/common.js';
import { allowedTransitions, type JobStatus } from '../../../shared/contracts/jobs.js';
import { FailedEvent } from '../../../shared/contracts/runner.js';
import { DatabaseSchedule, defaultDatabasePolicy } from '../../../shared/contracts/servers.js';
import { isAppError } from '../../../shared/errors.js';
import type { AuditEntry, JobRecord, NewJob, Store } from '../../../shared/db/store.js';

export type StoreFactory = () => Promise<Store>;

function actor(action: AuditAction, extra: Partial<AuditEntry> = {}): AuditEntry {
  return { actorType: 'user', actorId: 'contract-admin', actorName: 'Contract Admin', action, target: 'test', ...extra };
}

/** The statuses a new (Pending) job passes through, in order, to reach `target`: the shortest allowed path. */
function pathTo(target: JobStatus): JobStatus[] {
  const paths = new Map<JobStatus, JobStatus[]>([['Pending', []]]);
  const queue: JobStatus[] = ['Pending'];
  for (let status = queue.shift(); status !== undefined; status = queue.shift()) {
    for (const next of allowedTransitions[status]) {
      if (!paths.has(next)) {
        paths.set(next, [...paths.get(status)!, next]);
        queue.push(next);
      }
    }
  }
  return paths.get(target)!;
}

export function storeContract(backend: string, createStore: StoreFactory): void {
  describe(`Store contract on ${backend}`, () => {
    let store: Store;
    beforeAll(async () => {
      store = await createStore();
    });
    afterAll(() => store?.close());

    /** A fresh server + database to hang jobs on. */
    async function seed(on: Store = store) {
      const server = await on.createServer({ name: `srv-${randomUUID()}`, host: 'db.local', engine: 'postgres' }, actor('server.created'));
      const database = await on.createDatabase(
        {
          serverId: server.id,
          name: 'sales',
          requesterGroupIds: [randomUUID()],
          policy: defaultDatabasePolicy,
          schedule: null,
          enabled: true,
        },
        actor('database.created'),
      );
      return { server, database };
    }

    function newJob(seeded: Awaited<ReturnType<typeof seed>>, overrides: Partial<NewJob> = {}): NewJob {
      const id = randomUUID();
      return {
        id,
        databaseId: seeded.database.id,
        serverId: seeded.server.id,
        databaseName: seeded.database.name,
        engine: 'postgres',
        options: { compression: 'gzip', encryption: 'age' },
        requesterOid: `oid-${randomUUID()}`,
        requesterUpn: 'alice@example.com',
        trigger: 'user',
        blobPath: `backups/${id}.dump`,
        ...overrides,
      };
    }

    async function jobIn(status: JobStatus, on: Store = store, job?: NewJob): Promise<JobRecord> {
      const created = await on.createJob(job ?? newJob(await seed(on)), actor('job.requested'));
      let current = created;
      for (const to of pathTo(status)) {
        const result = await on.transitionJob(current.id, { from: [current.status], to }, actor(`job.${to.toLowerCase()}` as AuditAction));
        if (!result.ok) throw new Error(`could not move job to ${to}`);
        current = result.job;
      }
      return current;
    }

    async function auditOf(jobId: string, on: Store = store) {
      return (await on.listAudit({ jobId, limit: 200 })).items;
    }

    describe('servers and databases', () => {
      it('creates, reads, lists and updates a server, with an audit row for each change', async () => {
        const actorId = `admin-${randomUUID()}`;
        const created = await store.createServer(
          { name: 'primary', host: 'sql01\\prod', engine: 'sqlserver', description: 'Finance' },
          actor('server.created', { actorId }),
        );
        expect(created).toMatchObject({ name: 'primary', host: 'sql01\\prod', engine: 'sqlserver', description: 'Finance' });
        expect(await store.getServer(created.id)).toEqual(created);
        expect((await store.listServers()).map((s) => s.id)).toContain(created.id);

        const updated = await store.updateServer(created.id, { host: 'sql02', description: null }, actor('server.updated', { actorId }));
        expect(updated).toMatchObject({ id: created.id, name: 'primary', host: 'sql02', description: null });
        expect(await store.getServer(created.id)).toEqual(updated);

        const trail = (await store.listAudit({ actor: actorId, limit: 10 })).items.map((row) => row.action);
        expect(trail).toEqual(['server.updated', 'server.created']);
      });

      it('answers undefined for unknown ids and writes no audit row for an update that found nothing', async () => {
        const actorId = `admin-${randomUUID()}`;
        expect(await store.getServer(randomUUID())).toBeUndefined();
        expect(await store.getDatabase(randomUUID())).toBeUndefined();
        expect(await store.updateServer(randomUUID(), { name: 'x' }, actor('server.updated', { actorId }))).toBeUndefined();
        expect(await store.updateDatabase(randomUUID(), { enabled: false }, actor('database.updated', { actorId }))).toBeUndefined();
        expect(await store.deleteDatabase(randomUUID(), actor('database.deleted', { actorId }))).toBe('not_found');
        expect(await store.deleteServer(randomUUID(), actor('server.deleted', { actorId }))).toBe('not_found');
        expect((await store.listAudit({ actor: actorId, limit: 10 })).items).toEqual([]);
      });

      it('keeps a database’s groups, policy and schedule through a round trip and a partial update', async () => {
        const { server } = await seed();
        const groups = [randomUUID(), randomUUID()];
        const policy = { ...defaultDatabasePolicy, retentionDays: 3, allowedEngines: ['postgres' as const] };
        const database = await store.createDatabase(
          { serverId: server.id, name: 'hr', requesterGroupIds: groups, policy, schedule: DatabaseSchedule.parse({ cron: '0 3 * * *' }), enabled: true },
          actor('database.created'),
        );
        expect(database).toMatchObject({ serverId: server.id, name: 'hr', requesterGroupIds: groups, policy, schedule: DatabaseSchedule.parse({ cron: '0 3 * * *' }) });
        expect(await store.getDatabase(database.id)).toEqual(database);

        const updated = await store.updateDatabase(database.id, { schedule: null, enabled: false }, actor('database.updated'));
        expect(updated).toMatchObject({ name: 'hr', requesterGroupIds: groups, policy, schedule: null, enabled: false });
        // Ordered by name; `seed` registered "sales" on the same server.
        expect((await store.listDatabases(server.id)).map((d) => d.name)).toEqual(['hr', 'sales']);
        expect((await store.listDatabases(randomUUID()))).toEqual([]);
      });

      it('lists only enabled databases that have a schedule as scheduled', async () => {
        const { server } = await seed();
        const make = (name: string, schedule: { cron: string } | null, enabled: boolean) =>
          store.createDatabase(
            { serverId: server.id, name, requesterGroupIds: [], policy: defaultDatabasePolicy, schedule: schedule && DatabaseSchedule.parse(schedule), enabled },
            actor('database.created'),
          );
        const scheduled = await make('scheduled', { cron: '0 3 * * *' }, true);
        const disabled = await make('disabled', { cron: '0 3 * * *' }, false);
        const unscheduled = await make('unscheduled', null, true);
        const ids = (await store.listScheduledDatabases()).map((d) => d.id);
        expect(ids).toContain(scheduled.id);
        expect(ids).not.toContain(disabled.id);
        expect(ids).not.toContain(unscheduled.id);
      });

      it('refuses to delete a server while databases are registered under it', async () => {
        const actorId = `admin-${randomUUID()}`;
        const { server, database } = await seed();
        expect(await store.deleteServer(server.id, actor('server.deleted', { actorId }))).toBe('has_databases');
        expect(await store.getServer(server.id)).toBeDefined();

        expect(await store.deleteDatabase(database.id, actor('database.deleted', { actorId }))).toBe('deleted');
        expect(await store.getDatabase(database.id)).toBeUndefined();
        expect(await store.deleteServer(server.id, actor('server.deleted', { actorId }))).toBe('deleted');
        expect(await store.getServer(server.id)).toBeUndefined();

        const trail = (await store.listAudit({ actor: actorId, limit: 10 })).items.map((row) => row.action);
        expect(trail).toEqual(['server.deleted', 'database.deleted']);
      });
    });

    describe('jobs', () => {
      it('creates a Pending job with its job.requested audit row', async () => {
        const job = newJob(await seed(), { createdAt: new Date('2026-01-02T03:04:05.678Z') });
        const created = await store.createJob(job, actor('job.requested', { ip: '10.0.0.1', userAgent: 'test', detail: { reason: 'TICKET-1' } }));
        expect(created).toMatchObject({
          id: job.id,
          status: 'Pending',
          options: { compression: 'gzip', encryption: 'age' },
          trigger: 'user',
          scheduleSlot: null,
          createdAt: new Date('2026-01-02T03:04:05.678Z'),
          progressPercent: null,
          downloadExpiresAt: null,
          expiresAt: null,
        });
        expect(await store.getJob(job.id)).toEqual(created);
        const [row, ...others] = await auditOf(job.id);
        expect(others).toEqual([]);
        expect(row).toMatchObject({
          action: 'job.requested',
          jobId: job.id,
          actorId: 'contract-admin',
          actorName: 'Contract Admin',
          ip: '10.0.0.1',
          userAgent: 'test',
          detail: { reason: 'TICKET-1' },
        });
      });

      it('writes neither the job nor the audit row when the audit row cannot be written', async () => {
        const job = newJob(await seed());
        // Not an action the audit table accepts (its CHECK constraint lists them): the insert fails after the job's.
        const badAudit = actor('not.an.action' as AuditAction);
        await expect(store.createJob(job, badAudit)).rejects.toThrow();
        expect(await store.getJob(job.id)).toBeUndefined();
        expect(await auditOf(job.id)).toEqual([]);
      });

      it('moves a job only from the expected status, with one audit row per change', async () => {
        const job = await jobIn('Pending');
        const queued = await store.transitionJob(job.id, { from: ['Pending'], to: 'Queued' }, actor('job.queued'));
        expect(queued).toMatchObject({ ok: true, job: { id: job.id, status: 'Queued' } });

        // A replayed activity: the job is no longer Pending, so nothing is written.
        const replay = await store.transitionJob(job.id, { from: ['Pending'], to: 'Queued' }, actor('job.queued'));
        expect(replay).toEqual({ ok: false, current: expect.objectContaining({ id: job.id, status: 'Queued' }) });
        expect((await auditOf(job.id)).map((row) => row.action)).toEqual(['job.queued', 'job.requested']);
      });

      it('refuses transitions the lifecycle does not allow, even when `from` matches', async () => {
        const job = await jobIn('Queued');
        const skip = await store.transitionJob(job.id, { from: ['Queued'], to: 'Available' }, actor('job.available'));
        expect(skip).toEqual({ ok: false, current: expect.objectContaining({ status: 'Queued' }) });
        const verifying = await jobIn('Verifying');
        const cancel = await store.transitionJob(verifying.id, { from: ['Verifying'], to: 'Cancelled' }, actor('job.cancelled'));
        expect(cancel.ok).toBe(false);
        expect((await store.getJob(verifying.id))?.status).toBe('Verifying');
        expect((await auditOf(job.id)).map((row) => row.action)).toEqual(['job.queued', 'job.requested']);
      });

      it('applies a transition’s patch and time', async () => {
        const job = await jobIn('Verifying');
        const at = new Date('2026-03-04T05:06:07.089Z');
        const expiresAt = new Date('2026-03-11T05:06:07.089Z');
        const result = await store.transitionJob(
          job.id,
          { from: ['Verifying'], to: 'Available', at, patch: { sizeBytes: 5_000_000_000, sha256: 'ab'.repeat(32), completedAt: at, expiresAt } },
          actor('job.available', { actorType: 'system', actorId: 'orchestrator' }),
        );
        expect(result).toMatchObject({ ok: true, job: { status: 'Available', sizeBytes: 5_000_000_000, sha256: 'ab'.repeat(32), completedAt: at, expiresAt, updatedAt: at } });
        expect(await store.getJob(job.id)).toEqual(result.ok && result.job);
        // The transition's time is the audit row's time (here earlier than the rows before it).
        const row = (await auditOf(job.id)).find((candidate) => candidate.action === 'job.available');
        expect(row).toMatchObject({ at, actorType: 'system', actorId: 'orchestrator', jobId: job.id });
      });

      it('records a failure with the longest message the runner contract allows, and truncates a longer one', async () => {
        // Multi-byte text: nvarchar counts UTF-16 units, PostgreSQL varchar counts characters; both must hold it.
        const longest = `${'é'.repeat(errorMessageMaxLength - 2)}😀`;
        expect(FailedEvent.safeParse({ type: 'failed', eventId: randomUUID(), code: 'x'.repeat(errorCodeMaxLength), message: longest }).success).toBe(true);
        const failed = await store.transitionJob(
          (await jobIn('Running')).id,
          { from: ['Running'], to: 'Failed', patch: { errorCode: 'x'.repeat(errorCodeMaxLength), errorMessage: longest } },
          actor('job.failed'),
        );
        expect(failed).toMatchObject({ ok: true, job: { status: 'Failed', errorMessage: longest } });

        // Longer (e.g. a driver message): the transition still happens, the message is cut at a character boundary.
        const tooLong = `${'a'.repeat(errorMessageMaxLength - 1)}😀 and more`;
        const cut = await store.transitionJob(
          (await jobIn('Running')).id,
          { from: ['Running'], to: 'Failed', patch: { errorCode: 'sql_error', errorMessage: tooLong } },
          actor('job.failed'),
        );
        expect(cut).toMatchObject({ ok: true, job: { status: 'Failed', errorMessage: 'a'.repeat(errorMessageMaxLength - 1) } });
      });

      it('reports an unknown job as not transitioned', async () => {
        expect(await store.transitionJob(randomUUID(), { from: ['Pending'], to: 'Queued' }, actor('job.queued'))).toEqual({ ok: false, current: undefined });
      });

      it('records progress on a running job only, without an audit row', async () => {
        const running = await jobIn('Running');
        const auditBefore = await auditOf(running.id);
        await store.updateJobProgress(running.id, { percent: 42.5, bytes: 1234 });
        expect(await store.getJob(running.id)).toMatchObject({ progressPercent: 42.5, progressBytes: 1234 });
        expect(await auditOf(running.id)).toEqual(auditBefore);

        const failed = await jobIn('Failed');
        expect(await store.updateJobProgress(failed.id, { percent: 10, bytes: 1 })).toBe(false);
        expect(await store.getJob(failed.id)).toMatchObject({ progressPercent: null, progressBytes: null, progressUpdatedAt: null });
      });

      it('throttles progress in one statement: nothing is written within `notWithinMs` of the last write', async () => {
        const running = await jobIn('Running');
        const t0 = new Date(Date.now() + 60_000);
        const at = (ms: number) => new Date(t0.getTime() + ms);
        const write = (percent: number, ms: number) => store.updateJobProgress(running.id, { percent, bytes: percent * 10, at: at(ms) }, { notWithinMs: 15_000 });
        expect(await write(1, 0)).toBe(true);
        expect(await write(2, 14_999)).toBe(false);
        expect(await store.getJob(running.id)).toMatchObject({ progressPercent: 1, progressBytes: 10, progressUpdatedAt: at(0) });
        expect(await write(3, 15_000)).toBe(true);
        expect(await store.getJob(running.id)).toMatchObject({ progressPercent: 3, progressBytes: 30, progressUpdatedAt: at(15_000), updatedAt: at(15_000) });
      });

      it('records a download link on an Available job with its sas.download_issued audit row', async () => {
        const available = await jobIn('Available');
        const expiresAt = new Date(Date.now() + 60 * 60_000);
        const linked = await store.recordDownloadLink(available.id, { expiresAt }, actor('sas.download_issued', { detail: { ttlMinutes: 60 } }));
        expect(linked).toMatchObject({ id: available.id, downloadExpiresAt: expiresAt, status: 'Available' });
        expect(linked).not.toHaveProperty('downloadUrl');
        const [latest] = await auditOf(available.id);
        expect(latest).toMatchObject({ action: 'sas.download_issued', jobId: available.id, detail: { ttlMinutes: 60 } });

        const running = await jobIn('Running');
        const before = await auditOf(running.id);
        expect(await store.recordDownloadLink(running.id, { expiresAt }, actor('sas.download_issued'))).toBeUndefined();
        expect((await store.getJob(running.id))?.downloadExpiresAt).toBeNull();
        expect(await auditOf(running.id)).toEqual(before);
      });
      it('keeps masking version and row counts from a transition patch, and records a rehearsal on an Available job only', async () => {
        const verifying = await jobIn('Verifying');
        const counts = { 'public.users': 50, 'public."odd.name"': 0 };
        const done = await store.transitionJob(
          verifying.id,
          { from: ['Verifying'], to: 'Available', patch: { maskingVersion: 7, tableRowCounts: counts } },
          actor('job.available'),
        );
        expect(done).toMatchObject({ ok: true, job: { maskingVersion: 7, tableRowCounts: counts, restoreResult: null } });

        const at = new Date('2026-06-01T10:00:00.000Z');
        const rehearsed = await store.recordRestoreRehearsal(
          verifying.id,
          { at, durationMs: 4321, result: 'passed', error: null },
          actor('restore.rehearsed', { detail: { durationMs: 4321 } }),
        );
        expect(rehearsed).toMatchObject({ restoreVerifiedAt: at, restoreDurationMs: 4321, restoreResult: 'passed', restoreError: null, status: 'Available' });
        expect((await auditOf(verifying.id)).find((row) => row.action === 'restore.rehearsed')).toMatchObject({ at, detail: { durationMs: 4321 } });

        const running = await jobIn('Running');
        const before = await auditOf(running.id);
        expect(await store.recordRestoreRehearsal(running.id, { at, durationMs: 1, result: 'failed', error: 'x' }, actor('restore.rehearsed'))).toBeUndefined();
        expect(await auditOf(running.id)).toEqual(before);
      });
    });

    describe('scheduled jobs', () => {
      it('creates one job per database and slot, even when called concurrently', async () => {
        const seeded = await seed();
        const slot = '2026-05-01T03:00:00.000Z';
        const attempts = Array.from({ length: 5 }, () => newJob(seeded, { trigger: 'schedule', scheduleSlot: slot }));
        const results = await Promise.all(
          attempts.map((job) => store.createScheduledJob({ ...job, scheduleSlot: slot }, actor('job.requested', { actorType: 'system', actorId: 'scheduler' }))),
        );
        const created = results.filter((job): job is JobRecord => job !== undefined);
        expect(created).toHaveLength(1);
        expect(created[0]).toMatchObject({ scheduleSlot: slot, trigger: 'schedule', status: 'Pending' });
        for (const attempt of attempts) {
          const stored = await store.getJob(attempt.id);
          expect(stored === undefined ? 'absent' : 'present').toBe(attempt.id === created[0]!.id ? 'present' : 'absent');
          expect((await auditOf(attempt.id)).length).toBe(attempt.id === created[0]!.id ? 1 : 0);
        }

        const nextSlot = await store.createScheduledJob({ ...newJob(seeded, { trigger: 'schedule' }), scheduleSlot: '2026-05-02T03:00:00.000Z' }, actor('job.requested'));
        expect(nextSlot).toBeDefined();
        const otherDatabase = await seed();
        const sameSlotElsewhere = await store.createScheduledJob({ ...newJob(otherDatabase, { trigger: 'schedule' }), scheduleSlot: slot }, actor('job.requested'));
        expect(sameSlotElsewhere).toBeDefined();
      });

      it('does not limit user jobs, which have no slot', async () => {
        const seeded = await seed();
        await store.createJob(newJob(seeded), actor('job.requested'));
        await expect(store.createJob(newJob(seeded), actor('job.requested'))).resolves.toBeDefined();
      });
    });

    describe('listing', () => {
      let listing: Store;
      beforeAll(async () => {
        listing = await createStore();
      });
      afterAll(() => listing?.close());

      async function allPages<T>(fetchPage: (cursor?: string) => Promise<{ items: T[]; nextCursor?: string }>) {
        const pages: T[][] = [];
        let cursor: string | undefined;
        do {
          const page = await fetchPage(cursor);
          pages.push(page.items);
          cursor = page.nextCursor;
        } while (cursor && pages.length < 50);
        return pages;
      }

      it('pages jobs newest first, own or all, with a cursor that survives identical timestamps', async () => {
        const seeded = await seed(listing);
        const sameInstant = new Date('2026-02-01T00:00:00.000Z');
        const alice = 'oid-alice';
        const aliceJobs: JobRecord[] = [];
        for (let i = 0; i < 5; i++) {
          aliceJobs.push(await listing.createJob(newJob(seeded, { requesterOid: alice, createdAt: sameInstant }), actor('job.requested')));
        }
        const newest = await listing.createJob(newJob(seeded, { requesterOid: alice, createdAt: new Date('2026-02-02T00:00:00.000Z') }), actor('job.requested'));
        const bob = await listing.createJob(newJob(seeded, { requesterOid: 'oid-bob', createdAt: sameInstant }), actor('job.requested'));

        const pages = await allPages((cursor) => listing.listJobs({ requesterOid: alice, limit: 2, cursor }));
        expect(pages.map((page) => page.length)).toEqual([2, 2, 2]);
        const ids = pages.flat().map((job) => job.id);
        const tied = aliceJobs.map((job) => job.id).sort().reverse();
        expect(ids).toEqual([newest.id, ...tied]);

        const everyone = (await allPages((cursor) => listing.listJobs({ limit: 3, cursor }))).flat().map((job) => job.id);
        expect(new Set(everyone)).toEqual(new Set([...ids, bob.id]));
        expect(everyone).toHaveLength(7);

        await listing.transitionJob(bob.id, { from: ['Pending'], to: 'Queued' }, actor('job.queued'));
        expect((await listing.listJobs({ status: 'Queued', limit: 10 })).items.map((job) => job.id)).toEqual([bob.id]);
        expect((await listing.listJobs({ requesterOid: alice, status: 'Queued', limit: 10 })).items).toEqual([]);
        expect((await listing.listJobs({ requesterOid: 'oid-nobody', limit: 10 })).nextCursor).toBeUndefined();
      });

      it('filters audit rows by time range, actor, action and job, and pages them', async () => {
        const t0 = new Date('2027-01-01T00:00:00.000Z');
        const minute = (n: number) => new Date(t0.getTime() + n * 60_000);
        const jobId = randomUUID();
        const rows = [
          await listing.appendAudit({ ...actor('sas.upload_issued', { actorId: 'runner-1', actorName: 'Runner One', jobId }), at: minute(0) }),
          await listing.appendAudit({ ...actor('job.cancel_requested', { actorId: 'carol', actorName: 'carol@example.com', jobId }), at: minute(1) }),
          await listing.appendAudit({ ...actor('sas.download_denied', { actorId: 'dave', actorName: 'dave@example.com' }), at: minute(2) }),
        ];
        expect(rows[0]).toMatchObject({ actorType: 'user', ip: null, userAgent: null, detail: {}, at: minute(0) });

        const ids = async (filter: Omit<Parameters<Store['listAudit']>[0], 'limit'>) =>
          (await listing.listAudit({ limit: 50, ...filter })).items.map((row) => row.id);
        expect(await ids({ from: minute(1), to: minute(2) })).toEqual([rows[2]!.id, rows[1]!.id]);
        expect(await ids({ from: minute(0), to: minute(0) })).toEqual([rows[0]!.id]);
        expect(await ids({ actor: 'carol' })).toEqual([rows[1]!.id]);
        expect(await ids({ actor: 'Runner One' })).toEqual([rows[0]!.id]);
        expect(await ids({ action: 'sas.download_denied', from: t0 })).toEqual([rows[2]!.id]);
        expect(await ids({ jobId })).toEqual([rows[1]!.id, rows[0]!.id]);
        expect(await ids({ jobId, action: 'sas.upload_issued' })).toEqual([rows[0]!.id]);

        // Five rows at one instant, paged two at a time: every row exactly once, ordered by id within the instant.
        const tied: string[] = [];
        for (let i = 0; i < 5; i++) tied.push((await listing.appendAudit({ ...actor('job.progress', { actorId: 'pager' }), at: minute(10) })).id);
        const pages = await allPages((cursor) => listing.listAudit({ actor: 'pager', limit: 2, cursor }));
        expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
        expect(pages.flat().map((row) => row.id)).toEqual([...tied].sort().reverse());
      });

      it('rejects a cursor it did not issue', async () => {
        const error = await listing.listJobs({ limit: 10, cursor: 'bm90LWEtY3Vyc29y' }).catch((caught: unknown) => caught);
        expect(isAppError(error) && error.code).toBe('validation_failed');
      });

      it('lists Available jobs past their expiry, oldest first', async () => {
        const now = new Date();
        const expiring = async (minutesAgo: number, status: JobStatus = 'Available') => {
          const job = await jobIn('Verifying', listing);
          const expiresAt = new Date(now.getTime() - minutesAgo * 60_000);
          await listing.transitionJob(job.id, { from: ['Verifying'], to: 'Available', patch: { expiresAt } }, actor('job.available'));
          if (status === 'Expired') await listing.transitionJob(job.id, { from: ['Available'], to: 'Expired' }, actor('job.expired'));
          return job.id;
        };
        const older = await expiring(30);
        const newer = await expiring(5);
        await expiring(-60); // not yet due
        await expiring(40, 'Expired'); // already handled
        expect((await listing.listExpiredJobs(now, 10)).map((job) => job.id)).toEqual([older, newer]);
        expect((await listing.listExpiredJobs(now, 1)).map((job) => job.id)).toEqual([older]);
      });
    });

    describe('metrics, RPO state and the notification outbox', () => {
      it('tallies jobs per database, status and error code with bytes and the newest completion, in one query', async () => {
        const fresh = await createStore();
        try {
          const seeded = await seed(fresh);
          const done = async (sizeBytes: number, completedAt: Date) => {
            const job = await jobIn('Verifying', fresh, newJob(seeded));
            await fresh.transitionJob(job.id, { from: ['Verifying'], to: 'Available', patch: { sizeBytes, completedAt } }, actor('job.available'));
          };
          await done(100, new Date('2026-11-01T00:00:00Z'));
          await done(250, new Date('2026-11-02T00:00:00Z'));
          const failed = await jobIn('Queued', fresh, newJob(seeded));
          await fresh.transitionJob(failed.id, { from: ['Queued'], to: 'Failed', patch: { errorCode: 'delivery_failed' } }, actor('job.failed'));
          const tallies = await fresh.tallyJobs();
          expect(tallies).toHaveLength(2);
          expect(tallies.find((row) => row.status === 'Available')).toEqual({
            databaseId: seeded.database.id,
            status: 'Available',
            errorCode: null,
            jobs: 2,
            bytes: 350,
            lastCompletedAt: new Date('2026-11-02T00:00:00Z'),
          });
          expect(tallies.find((row) => row.status === 'Failed')).toMatchObject({ jobs: 1, errorCode: 'delivery_failed', bytes: 0 });
          const counts = new Map((await fresh.countAuditActions()).map((row) => [row.action, row.count]));
          expect(counts.get('job.available')).toBe(2);
          expect(counts.get('job.failed')).toBe(1);
          expect(counts.get('job.requested')).toBe(3);
          const completed = await fresh.listCompletedJobs(new Date('2026-11-01T12:00:00Z'), 10);
          expect(completed.map((job) => job.sizeBytes)).toEqual([250]);
        } finally {
          await fresh.close();
        }
      });

      it('records an RPO breach and its recovery once each, audited', async () => {
        const { database } = await seed();
        const since = new Date('2026-11-20T00:00:00Z');
        const target = `database/${database.id}`;
        expect((await store.setRpoBreach(database.id, since, actor('rpo.breached', { target })))?.rpoBreachedAt).toEqual(since);
        expect(await store.setRpoBreach(database.id, new Date(), actor('rpo.breached', { target }))).toBeUndefined();
        expect((await store.getDatabase(database.id))?.rpoBreachedAt).toEqual(since);
        expect((await store.setRpoBreach(database.id, null, actor('rpo.recovered', { target })))?.rpoBreachedAt).toBeNull();
        expect(await store.setRpoBreach(database.id, null, actor('rpo.recovered', { target }))).toBeUndefined();
        const actions = (await store.listAudit({ actor: 'contract-admin', limit: 500 })).items.filter((row) => row.target === target);
        expect(actions.map((row) => row.action).sort()).toEqual(['rpo.breached', 'rpo.recovered']);
      });

      it('writes an outbox row with each notifiable audit row, and only those, and tracks delivery attempts', async () => {
        const fresh = await createStore();
        try {
          const seeded = await seed(fresh);
          const job = await jobIn('Verifying', fresh, newJob(seeded));
          await fresh.transitionJob(job.id, { from: ['Verifying'], to: 'Available' }, actor('job.available'));
          await fresh.appendAudit(actor('rpo.breached', { target: 'database/x' }));
          const due = await fresh.listPendingNotifications(new Date(Date.now() + 1000), 10);
          expect(due.map((item) => item.event.action)).toEqual(['job.available', 'rpo.breached']);
          expect(due[0]).toMatchObject({ attempts: 0, deliveredTo: [], event: { jobId: job.id } });

          const later = new Date(Date.now() + 60_000);
          await fresh.recordNotificationAttempt(due[0]!.event.id, { deliveredTo: ['eventgrid'], done: false, nextAttemptAt: later, error: 'webhook: 503', at: new Date() });
          await fresh.recordNotificationAttempt(due[1]!.event.id, { deliveredTo: ['eventgrid', 'webhook'], done: true, nextAttemptAt: later, error: null, at: new Date() });
          expect(await fresh.listPendingNotifications(new Date(Date.now() + 1000), 10)).toEqual([]);
          const retry = await fresh.listPendingNotifications(new Date(later.getTime() + 1), 10);
          expect(retry).toHaveLength(1);
          expect(retry[0]).toMatchObject({ attempts: 1, deliveredTo: ['eventgrid'], event: { id: due[0]!.event.id } });
        } finally {
          await fresh.close();
        }
      });
    });

    describe('encryption recipients', () => {
      const keyA = { recipient: 'age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqa', fingerprint: 'aaaaaaaaaaaaaaaa' };
      const keyB = { recipient: 'age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqb', fingerprint: 'bbbbbbbbbbbbbbbb' };

      it("replaces a requester's keys with an audit row, leaving other requesters' alone", async () => {
        const [alice, bob] = [`oid-${randomUUID()}`, `oid-${randomUUID()}`];
        await store.replaceRequesterRecipients(bob, [keyA], actor('recipients.updated', { actorId: bob }));
        const saved = await store.replaceRequesterRecipients(alice, [keyB, keyA], actor('recipients.updated', { actorId: alice }));
        expect(saved.map((r) => r.fingerprint)).toEqual([keyB.fingerprint, keyA.fingerprint]);
        expect((await store.listRequesterRecipients(alice)).map((r) => r.recipient)).toEqual([keyB.recipient, keyA.recipient]);
        await store.replaceRequesterRecipients(alice, [], actor('recipients.updated', { actorId: alice }));
        expect(await store.listRequesterRecipients(alice)).toEqual([]);
        expect((await store.listRequesterRecipients(bob)).map((r) => r.fingerprint)).toEqual([keyA.fingerprint]);
        const audit = await store.listAudit({ actor: alice, action: 'recipients.updated', limit: 10 });
        expect(audit.items).toHaveLength(2);
      });

      it("keeps a job's recipients (public keys, fingerprints, roles) on its record", async () => {
        const recipients = [{ ...keyA, role: 'requester' as const }, { ...keyB, role: 'recovery' as const }];
        const job = await store.createJob(newJob(await seed(), { encryptionRecipients: recipients }), actor('job.requested'));
        expect(job.encryptionRecipients).toEqual(recipients);
        expect((await store.getJob(job.id))?.encryptionRecipients).toEqual(recipients);
        const plain = await store.createJob(newJob(await seed(), { options: { compression: 'none', encryption: 'none' } }), actor('job.requested'));
        expect(plain.encryptionRecipients).toBeNull();
      });
    });

    it('answers a ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
