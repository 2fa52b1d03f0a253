import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cancelJob, createDownloadLink, createJob, deleteJobBackup, getJob, listJobs } from '../../functions/jobs.js';
import { JobView } from '../../shared/contracts/jobs.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps, testSha256 } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
let seeded: SeededDatabase;

beforeAll(async () => {
  t = await startTestDeps();
});
afterAll(() => t?.close());

beforeEach(async () => {
  seeded = await seedDatabase(t.deps.store);
  t.deps.now = () => new Date();
});

const auditOf = async (jobId: string) => (await t.deps.store.listAudit({ jobId, limit: 200 })).items;

describe('POST /api/jobs', () => {
  it('writes the job Pending with its audit row, starts the orchestration and answers 202 with Location', async () => {
    const oid = randomUUID();
    const res = await invoke(createJob, {
      method: 'POST',
      path: 'jobs',
      token: t.tokens.requester({ oid, extraGroups: [seeded.requesterGroupId] }),
      body: { databaseId: seeded.database.id, options: { compression: 'zstd' }, reason: 'CHG-42' },
    });
    expect(res.status).toBe(202);
    const job = JobView.parse(res.json);
    expect(res.headers.get('location')).toBe(`/api/jobs/${job.id}`);
    expect(job).toMatchObject({ status: 'Pending', databaseId: seeded.database.id, engine: 'sqlserver', requestedBy: { oid } });
    expect(job.options).toEqual({ compression: 'zstd', encryption: 'none' });

    const stored = await t.deps.store.getJob(job.id);
    expect(stored?.status).toBe('Pending');
    expect(stored?.blobPath).toBe(`${seeded.server.id}/${seeded.database.id}/${job.id}.bak.zst`);
    const audit = await auditOf(job.id);
    expect(audit.map((a) => a.action)).toEqual(['job.requested']);
    expect(audit[0]).toMatchObject({ actorType: 'user', actorId: oid, ip: '203.0.113.7', userAgent: 'dbdist-tests/1.0' });
    expect(audit[0]?.detail).toMatchObject({ reason: 'CHG-42' });
    expect(t.orchestrations.started).toContain(job.id);
  });

  it('lets an Admin request any database without being in its requester groups', async () => {
    const res = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: { databaseId: seeded.database.id } });
    expect(res.status).toBe(202);
  });

  it('refuses a Requester outside the database requester groups, writing nothing', async () => {
    const before = t.orchestrations.snapshot();
    const res = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.requester(), body: { databaseId: seeded.database.id } });
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect((await t.deps.store.listJobs({ limit: 10, status: 'Pending' })).items.filter((j) => j.databaseId === seeded.database.id)).toEqual([]);
    expect(t.orchestrations.snapshot()).toEqual(before);
  });

  it('answers 409 for a disabled database and for an engine the policy does not allow', async () => {
    const disabled = await seedDatabase(t.deps.store, { enabled: false });
    const postgresOnly = await seedDatabase(t.deps.store, { engine: 'sqlserver', policy: { allowedEngines: ['postgres'] } });
    for (const target of [disabled, postgresOnly]) {
      const res = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: { databaseId: target.database.id } });
      expect(res.status).toBe(409);
    }
  });

  it('answers 404 for a database that is not registered', async () => {
    const res = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: { databaseId: randomUUID() } });
    expect(res.status).toBe(404);
  });

  it('marks the job Failed and answers 503 when the orchestration cannot be started', async () => {
    t.orchestrations.failNextStart = new Error('durable host unreachable, see https://host/runtime/webhooks?code=SECRET');
    const res = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: { databaseId: seeded.database.id } });
    expect(res.status).toBe(503);
    expect(res.text).not.toContain('SECRET');
    const failed = (await t.deps.store.listJobs({ limit: 50, status: 'Failed' })).items.find((j) => j.databaseId === seeded.database.id);
    expect(failed?.errorCode).toBe('orchestration_start_failed');
    expect((await auditOf(failed!.id)).map((a) => a.action).sort()).toEqual(['job.failed', 'job.requested']);
    expect(res.logs.some((line) => line.level === 'error' && line.message.includes('SECRET'))).toBe(true);
  });
});

describe('GET /api/jobs', () => {
  it('lists only the caller’s own jobs, newest first, with cursor paging and a status filter', async () => {
    const oid = randomUUID();
    const base = Date.now() - 60_000;
    const mine = [];
    for (let i = 0; i < 5; i++) mine.push(await seedJob(t.deps.store, seeded, { requesterOid: oid, createdAt: new Date(base + i * 1000) }));
    await seedJob(t.deps.store, seeded, { requesterOid: randomUUID() });
    const token = t.tokens.requester({ oid });

    const first = await invoke(listJobs, { path: 'jobs', token, query: { limit: '2' } });
    expect(first.status).toBe(200);
    expect(first.json.items.map((j: JobView) => j.id)).toEqual([mine[4]!.id, mine[3]!.id]);
    const second = await invoke(listJobs, { path: 'jobs', token, query: { limit: '2', cursor: first.json.nextCursor } });
    const third = await invoke(listJobs, { path: 'jobs', token, query: { limit: '2', cursor: second.json.nextCursor } });
    expect(second.json.items.map((j: JobView) => j.id)).toEqual([mine[2]!.id, mine[1]!.id]);
    expect(third.json.items.map((j: JobView) => j.id)).toEqual([mine[0]!.id]);
    expect(third.json.nextCursor).toBeUndefined();

    const cancelled = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Cancelled' });
    const filtered = await invoke(listJobs, { path: 'jobs', token, query: { status: 'Cancelled' } });
    expect(filtered.json.items.map((j: JobView) => j.id)).toEqual([cancelled.id]);
  });

  it('shows an Admin everyone’s jobs', async () => {
    const other = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID() });
    const res = await invoke(listJobs, { path: 'jobs', token: t.tokens.admin(), query: { limit: '200' } });
    expect(res.json.items.map((j: JobView) => j.id)).toContain(other.id);
  });

  it('rejects a bad limit and an unknown query parameter, naming them', async () => {
    const token = t.tokens.requester();
    const bad = await invoke(listJobs, { path: 'jobs', token, query: { limit: '0' } });
    expect(bad.status).toBe(400);
    expect(bad.json.errors.map((e: { field: string }) => e.field)).toContain('query.limit');
    const unknown = await invoke(listJobs, { path: 'jobs', token, query: { owner: 'someone' } });
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(unknown.json.errors)).toContain('owner');
    const cursor = await invoke(listJobs, { path: 'jobs', token, query: { cursor: 'bm90LWEtY3Vyc29y' } });
    expect(cursor.status).toBe(400);
    expect(cursor.json.errors.map((e: { field: string }) => e.field)).toContain('query.cursor');
  });
});

describe('GET /api/jobs/{id}', () => {
  it('never shows a download link, to anyone: a link is returned once, by POST …/download-link', async () => {
    const oid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Available' });
    await t.deps.store.recordDownloadLink(job.id, { expiresAt: new Date(Date.now() + 30 * 60_000) }, { actorType: 'system', actorId: 'test', action: 'sas.download_issued', target: `job/${job.id}`, jobId: job.id });
    for (const token of [t.tokens.requester({ oid }), t.tokens.admin(), t.tokens.auditor()]) {
      const res = await invoke(getJob, { path: `jobs/${job.id}`, params: { id: job.id }, token });
      expect(res.status).toBe(200);
      expect(res.json.id).toBe(job.id);
      expect(res.json).not.toHaveProperty('downloadLink');
    }
  });

  it('refuses another Requester, and answers 404 for an unknown id and 400 for a malformed one', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID() });
    expect((await invoke(getJob, { path: `jobs/${job.id}`, params: { id: job.id }, token: t.tokens.requester() })).status).toBe(403);
    const missing = randomUUID();
    expect((await invoke(getJob, { path: `jobs/${missing}`, params: { id: missing }, token: t.tokens.admin() })).status).toBe(404);
    const malformed = await invoke(getJob, { path: 'jobs/nope', params: { id: 'nope' }, token: t.tokens.admin() });
    expect(malformed.status).toBe(400);
    expect(malformed.json.errors[0].field).toBe('params.id');
  });
});

describe('POST /api/jobs/{id}/cancel', () => {
  const cancel = (jobId: string, oid: string) => invoke(cancelJob, { method: 'POST', path: `jobs/${jobId}/cancel`, params: { id: jobId }, token: t.tokens.requester({ oid }) });

  it('audits the request and raises Cancel for a running job whose orchestration is live (202)', async () => {
    const oid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Running' });
    t.orchestrations.instance(job.id, 'Running');
    const res = await cancel(job.id, oid);
    expect(res.status).toBe(202);
    expect((await auditOf(job.id)).map((a) => a.action)).toContain('job.cancel_requested');
    expect(t.orchestrations.raised.at(-1)).toMatchObject({ jobId: job.id, eventName: 'Cancel', payload: { requestedBy: { oid } } });
  });

  it.each(['NotFound', 'Completed', 'Failed', 'Terminated'] as const)(
    'cancels the job directly when its orchestration is %s: never a 500, the blob cleared, audited',
    async (state) => {
      const oid = randomUUID();
      const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Queued' });
      if (state !== 'NotFound') t.orchestrations.instance(job.id, state);
      await t.container.getBlockBlobClient(job.blobPath).upload('partial', 7);
      const res = await cancel(job.id, oid);
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ id: job.id, status: 'Cancelled', error: { code: 'cancelled' } });
      expect(await t.deps.store.getJob(job.id)).toMatchObject({ status: 'Cancelled' });
      expect(await t.container.getBlockBlobClient(job.blobPath).exists()).toBe(false);
      const cancelled = (await auditOf(job.id)).find((a) => a.action === 'job.cancelled');
      expect(cancelled).toMatchObject({ actorType: 'user', actorId: oid, detail: { orchestrationState: state, from: 'Queued', partialBlobDeleted: true } });
      expect(t.orchestrations.raised.filter((e) => e.jobId === job.id)).toEqual([]);
    },
  );

  it('answers 409 saying it is too late once the upload has finished (Verifying and after), and raises nothing', async () => {
    for (const status of ['Verifying', 'Available'] as const) {
      const oid = randomUUID();
      const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status });
      t.orchestrations.instance(job.id, 'Running');
      const before = t.orchestrations.snapshot();
      const res = await cancel(job.id, oid);
      expect(res.status).toBe(409);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.json).toMatchObject({ status: 409, jobStatus: status, code: 'conflict' });
      expect(res.json.detail).toContain(`is ${status}: the backup has been uploaded, so it is too late to cancel`);
      expect(t.orchestrations.snapshot()).toEqual(before);
      expect((await auditOf(job.id)).map((a) => a.action)).not.toContain('job.cancel_requested');
    }
  });

  it('answers 409 for a job that has already ended', async () => {
    const oid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Failed' });
    const res = await cancel(job.id, oid);
    expect(res.status).toBe(409);
    expect(res.json.detail).toContain('is Failed: it has already ended');
  });
});

describe('DELETE /api/jobs/{id}/backup', () => {
  const remove = (jobId: string, oid: string) =>
    invoke(deleteJobBackup, { method: 'DELETE', path: `jobs/${jobId}/backup`, params: { id: jobId }, token: t.tokens.requester({ oid }) });

  it('raises Delete for an Available backup whose orchestration is live, and refuses one that is not Available', async () => {
    const oid = randomUUID();
    const available = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Available' });
    t.orchestrations.instance(available.id, 'Running');
    const res = await remove(available.id, oid);
    expect(res.status).toBe(202);
    expect(t.orchestrations.raised.at(-1)).toMatchObject({ jobId: available.id, eventName: 'Delete' });
    expect((await auditOf(available.id)).map((a) => a.action)).toContain('job.delete_requested');

    const running = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Running' });
    const refused = await remove(running.id, oid);
    expect(refused.status).toBe(409);
    expect(refused.json.jobStatus).toBe('Running');
  });

  it.each(['NotFound', 'Completed', 'Failed'] as const)(
    'deletes directly when the orchestration is %s: blob deleted, job Expired, audited to the caller (never a 500)',
    async (state) => {
      const oid = randomUUID();
      const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Available' });
      if (state !== 'NotFound') t.orchestrations.instance(job.id, state);
      await t.container.getBlockBlobClient(job.blobPath).upload('backup bytes', 12);
      const res = await remove(job.id, oid);
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ id: job.id, status: 'Expired' });
      expect(await t.container.getBlockBlobClient(job.blobPath).exists()).toBe(false);
      const expired = (await auditOf(job.id)).find((a) => a.action === 'job.expired');
      expect(expired).toMatchObject({ actorType: 'user', actorId: oid, detail: { reason: 'deleted', blobDeleted: true, orchestrationState: state } });
      // A Completed instance would have dropped the event (410): nothing counted as delivered.
      expect(t.orchestrations.raised.filter((e) => e.jobId === job.id)).toEqual([]);
    },
  );
});

describe('POST /api/jobs/{id}/download-link', () => {
  async function requestLink(jobId: string, token: string, body?: unknown) {
    return invoke(createDownloadLink, { method: 'POST', path: `jobs/${jobId}/download-link`, params: { id: jobId }, token, body });
  }

  it('issues a read SAS that downloads the backup, and audits it without the URL', async () => {
    const oid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Available' });
    await t.container.getBlockBlobClient(job.blobPath).upload('backup bytes', 12);

    const res = await requestLink(job.id, t.tokens.requester({ oid }));
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ sizeBytes: 1234, sha256: testSha256 });
    expect(res.json.fileName).toMatch(/^Sales-\d{8}-\d{4}\.bak\.gz$/);
    const minutes = (Date.parse(res.json.expiresAt) - Date.now()) / 60_000;
    expect(minutes).toBeGreaterThan(55);
    expect(minutes).toBeLessThanOrEqual(60);

    const download = await fetch(res.json.url);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('backup bytes');

    const issued = (await auditOf(job.id)).filter((a) => a.action === 'sas.download_issued');
    expect(issued).toHaveLength(1);
    expect(JSON.stringify(issued[0])).not.toContain('sig=');
    // The link is returned once: the job keeps its expiry only, and shows no link to anyone.
    expect((await t.deps.store.getJob(job.id))?.downloadExpiresAt?.toISOString()).toBe(res.json.expiresAt);
    const view = await invoke(getJob, { path: `jobs/${job.id}`, params: { id: job.id }, token: t.tokens.requester({ oid }) });
    expect(view.json).not.toHaveProperty('downloadLink');
    expect(view.text).not.toContain('sig=');
  });

  it('gives each link its own correlation id, recorded in the sas.download_issued row', async () => {
    const oid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Available' });
    const first = await requestLink(job.id, t.tokens.requester({ oid }));
    const second = await requestLink(job.id, t.tokens.requester({ oid }));
    expect(first.json.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.json.correlationId).not.toBe(first.json.correlationId);
    expect(first.json).not.toHaveProperty('boundToObjectId');
    const issued = (await auditOf(job.id)).filter((a) => a.action === 'sas.download_issued');
    expect(issued.map((a) => a.detail?.correlationId).sort()).toEqual([first.json.correlationId, second.json.correlationId].sort());
  });

  it('binds the link to its requester when the database policy says so (SAS sduoid = the caller)', async () => {
    const oid = randomUUID();
    const bound = await seedDatabase(t.deps.store, { policy: { bindLinksToRequester: true } });
    const job = await seedJob(t.deps.store, bound, { requesterOid: oid, status: 'Available' });
    const res = await requestLink(job.id, t.tokens.requester({ oid }));
    expect(res.status).toBe(200);
    expect(res.json.boundToObjectId).toBe(oid);
    expect(new URL(res.json.url).searchParams.get('sduoid')).toBe(oid);
    const [issued] = (await auditOf(job.id)).filter((a) => a.action === 'sas.download_issued');
    expect(issued?.detail).toMatchObject({ boundToObjectId: oid, correlationId: res.json.correlationId });
    // An Admin's link for the same job is bound to the Admin, who is the one downloading it.
    const adminOid = randomUUID();
    const admin = await requestLink(job.id, t.tokens.admin({ oid: adminOid }));
    expect(new URL(admin.json.url).searchParams.get('sduoid')).toBe(adminOid);
  });

  it('caps the lifetime by the database policy, the service maximum and the backup expiry', async () => {
    const oid = randomUUID();
    const token = t.tokens.requester({ oid });
    const strict = await seedDatabase(t.deps.store, { policy: { maxSasTtlMinutes: 15 } });
    const capped = await seedJob(t.deps.store, strict, { requesterOid: oid, status: 'Available' });
    const byPolicy = await requestLink(capped.id, token, { ttlMinutes: 600 });
    expect(Date.parse(byPolicy.json.expiresAt) - Date.now()).toBeLessThanOrEqual(15 * 60_000);
    expect(Date.parse(byPolicy.json.expiresAt) - Date.now()).toBeGreaterThan(14 * 60_000);

    const generous = await seedDatabase(t.deps.store, { policy: { maxSasTtlMinutes: 7 * 24 * 60 } });
    const byService = await seedJob(t.deps.store, generous, { requesterOid: oid, status: 'Available', expiresAt: new Date(Date.now() + 30 * 24 * 3600_000) });
    const serviceCapped = await requestLink(byService.id, token, { ttlMinutes: 5 * 24 * 60 });
    expect(Date.parse(serviceCapped.json.expiresAt) - Date.now()).toBeLessThanOrEqual(t.deps.limits.sasTtlMaxMinutes * 60_000);
    expect(Date.parse(serviceCapped.json.expiresAt) - Date.now()).toBeGreaterThan((t.deps.limits.sasTtlMaxMinutes - 1) * 60_000);

    const expiry = new Date(Date.now() + 10 * 60_000);
    const soonExpiring = await seedJob(t.deps.store, generous, { requesterOid: oid, status: 'Available', expiresAt: expiry });
    const byExpiry = await requestLink(soonExpiring.id, token, { ttlMinutes: 60 });
    expect(Date.parse(byExpiry.json.expiresAt)).toBeLessThanOrEqual(expiry.getTime());
  });

  it('refuses a caller who is not the requester with 403 and one sas.download_denied row', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    const res = await requestLink(job.id, t.tokens.auditor());
    expect(res.status).toBe(403);
    const audit = await auditOf(job.id);
    expect(audit.filter((a) => a.action === 'sas.download_denied')).toHaveLength(1);
    expect(audit.filter((a) => a.action === 'sas.download_issued')).toHaveLength(0);
  });

  it('answers 409 for a job that is not Available and 400 for a bad ttl', async () => {
    const oid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'Running' });
    const running = await requestLink(job.id, t.tokens.requester({ oid }));
    expect(running.status).toBe(409);
    expect(running.json.jobStatus).toBe('Running');
    const bad = await requestLink(job.id, t.tokens.requester({ oid }), { ttlMinutes: -5 });
    expect(bad.status).toBe(400);
    expect(bad.json.errors[0].field).toBe('body.ttlMinutes');
  });
});
