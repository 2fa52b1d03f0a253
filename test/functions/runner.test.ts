import { randomUUID } from 'node:crypto';
import { BlockBlobClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJob } from '../../functions/jobs.js';
import { issueProbeTarget, issueUploadTarget, listRunners, listStagedBlocks, postRunnerEvent, postRunnerHeartbeat } from '../../functions/runner.js';
import { PROGRESS_RECORD_INTERVAL_MS } from '../../shared/contracts/runner.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps, testRunner } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
let seeded: SeededDatabase;
beforeAll(async () => {
  t = await startTestDeps();
  seeded = await seedDatabase(t.deps.store);
});
afterAll(() => t?.close());

const auditOf = async (jobId: string) => (await t.deps.store.listAudit({ jobId, limit: 200 })).items.map((a) => a.action);
const uploadTarget = (jobId: string, token = t.tokens.runner()) =>
  invoke(issueUploadTarget, { method: 'POST', path: `runner/jobs/${jobId}/upload-target`, params: { id: jobId }, token });
const postEvent = (jobId: string, body: unknown, token = t.tokens.runner()) =>
  invoke(postRunnerEvent, { method: 'POST', path: `runner/jobs/${jobId}/events`, params: { id: jobId }, token, body });

describe('POST /api/runner/jobs/{id}/upload-target', () => {
  it('issues a write SAS that writes exactly the job’s blob, and audits it', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    const res = await uploadTarget(job.id);
    expect(res.status).toBe(200);
    expect(res.json.blobPath).toBe(job.blobPath);
    const minutes = (Date.parse(res.json.expiresAt) - Date.now()) / 60_000;
    expect(minutes).toBeGreaterThan(t.deps.limits.uploadSasTtlMinutes - 1);
    expect(minutes).toBeLessThanOrEqual(t.deps.limits.uploadSasTtlMinutes);

    await new BlockBlobClient(res.json.url).upload('dump bytes', 10);
    const written = await t.container.getBlobClient(job.blobPath).downloadToBuffer();
    expect(written.toString()).toBe('dump bytes');

    // The same signature on another path of the container is refused.
    const elsewhere = new URL(res.json.url);
    elsewhere.pathname = elsewhere.pathname.replace(/[^/]+$/, 'other.bak');
    await expect(new BlockBlobClient(elsewhere.toString()).upload('x', 1)).rejects.toMatchObject({ statusCode: 403 });
    expect(await auditOf(job.id)).toContain('sas.upload_issued');
  });

  it('answers 409 with the job status once the job is not runnable, and audits nothing', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Cancelled' });
    const res = await uploadTarget(job.id);
    expect(res.status).toBe(409);
    expect(res.json).toMatchObject({ status: 409, jobStatus: 'Cancelled', code: 'conflict' });
    expect(await auditOf(job.id)).not.toContain('sas.upload_issued');
  });

  it('answers 404 for an unknown job', async () => {
    expect((await uploadTarget(randomUUID())).status).toBe(404);
  });

  it("says when the job's blob is already committed with this job's metadata, from the blob's own length", async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    expect((await uploadTarget(job.id)).json.committed).toBeUndefined();
    const sha256 = 'ab'.repeat(32);
    const metadata = { sha256, size: '10', jobid: job.id, compression: 'gzip', encrypted: 'false' };
    const blob = t.container.getBlockBlobClient(job.blobPath);
    await blob.upload('dump bytes', 10, { metadata });
    expect((await uploadTarget(job.id)).json.committed).toEqual({ sizeBytes: 10, sha256, compression: 'gzip', encrypted: false });

    // Another job's metadata, or a size that disagrees with the blob, is nothing to finish.
    await blob.upload('dump bytes', 10, { metadata: { ...metadata, jobid: randomUUID() } });
    expect((await uploadTarget(job.id)).json.committed).toBeUndefined();
    await blob.upload('dump bytes', 10, { metadata: { ...metadata, size: '11' } });
    expect((await uploadTarget(job.id)).json.committed).toBeUndefined();
  });
});

describe('POST /api/runner/jobs/{id}/events', () => {
  it('raises the event at the job’s orchestration and acknowledges it', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Queued' });
    t.orchestrations.instance(job.id, 'Running');
    const event = { type: 'accepted', eventId: `acc-${randomUUID()}`, runnerId: 'runner-01', attempt: 1 };
    const res = await postEvent(job.id, event);
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ jobId: job.id, status: 'Queued', duplicate: false });
    expect(t.orchestrations.raised.at(-1)).toEqual({ jobId: job.id, eventName: 'RunnerEvent', payload: event });
  });

  it('writes progress on a Running job to the job row only (throttled), and GET /api/jobs/{id} shows it live', async () => {
    const requesterOid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid, status: 'Running' });
    const clock = { now: new Date(Date.now() + 60_000) };
    const realNow = t.deps.now;
    t.deps.now = () => clock.now;
    try {
      const before = t.orchestrations.snapshot();
      const report = (percent: number) => postEvent(job.id, { type: 'progress', eventId: `p-${randomUUID()}`, percent, bytes: percent * 1000 });
      expect((await report(10)).json).toEqual({ jobId: job.id, status: 'Running', duplicate: false });
      const firstAt = clock.now;
      clock.now = new Date(firstAt.getTime() + PROGRESS_RECORD_INTERVAL_MS - 1);
      expect((await report(11)).status).toBe(202); // accepted, but within the interval: not written
      const view = async () => (await invoke(getJob, { method: 'GET', path: `jobs/${job.id}`, params: { id: job.id }, token: t.tokens.requester({ oid: requesterOid }) })).json;
      expect((await view()).progress).toEqual({ percent: 10, bytes: 10_000, updatedAt: firstAt.toISOString() });

      clock.now = new Date(firstAt.getTime() + PROGRESS_RECORD_INTERVAL_MS);
      await report(40);
      expect((await view()).progress).toEqual({ percent: 40, bytes: 40_000, updatedAt: clock.now.toISOString() });
      // Progress never became orchestration history, nor an audit row.
      expect(t.orchestrations.snapshot()).toEqual(before);
      expect(await auditOf(job.id)).not.toContain('job.progress');
    } finally {
      t.deps.now = realNow;
    }
  });

  it('passes progress on a Queued job to the orchestration (it implies acceptance), and lifecycle events always', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Queued' });
    t.orchestrations.instance(job.id, 'Running');
    const progress = { type: 'progress', eventId: `p-${randomUUID()}`, percent: 1, bytes: 10 };
    expect((await postEvent(job.id, progress)).status).toBe(202);
    expect(t.orchestrations.raised.at(-1)).toEqual({ jobId: job.id, eventName: 'RunnerEvent', payload: progress });
    expect(await t.deps.store.getJob(job.id)).toMatchObject({ progressPercent: 1, progressBytes: 10 });

    const running = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    t.orchestrations.instance(running.id, 'Running');
    const failed = { type: 'failed', eventId: `f-${randomUUID()}`, code: 'backup_failed', message: 'disk full' };
    expect((await postEvent(running.id, failed)).status).toBe(202);
    expect(t.orchestrations.raised.at(-1)).toEqual({ jobId: running.id, eventName: 'RunnerEvent', payload: failed });
  });

  it('answers 409 naming the status when the job is no longer runnable, and raises nothing', async () => {
    for (const status of ['Pending', 'Verifying', 'Available', 'Failed', 'Cancelled'] as const) {
      const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status });
      const before = t.orchestrations.snapshot();
      const res = await postEvent(job.id, { type: 'progress', eventId: `p-${randomUUID()}`, percent: 5, bytes: 1 });
      expect(res.status, status).toBe(409);
      expect(res.json.jobStatus).toBe(status);
      expect(t.orchestrations.snapshot()).toEqual(before);
    }
  });

  it('refuses an upload reported for another path than the job’s', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    const before = t.orchestrations.snapshot();
    const res = await postEvent(job.id, {
      type: 'uploaded',
      eventId: `up-${randomUUID()}`,
      blobPath: 'backups/elsewhere.bak',
      sizeBytes: 10,
      sha256: 'c'.repeat(64),
      compression: 'none',
      encrypted: false,
    });
    expect(res.status).toBe(400);
    expect(res.json.errors[0].field).toBe('body.blobPath');
    expect(t.orchestrations.snapshot()).toEqual(before);
  });

  it('rejects an event that does not match the contract, naming the field', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    const unknownType = await postEvent(job.id, { type: 'exploded', eventId: 'evt-12345678' });
    expect(unknownType.status).toBe(400);
    expect(unknownType.json.errors.map((e: { field: string }) => e.field)).toContain('body.type');
    const badPercent = await postEvent(job.id, { type: 'progress', eventId: 'evt-12345678', percent: 101, bytes: 1 });
    expect(badPercent.json.errors.map((e: { field: string }) => e.field)).toContain('body.percent');
  });

  it('refuses a user token that claims the Runner app role', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    const userWithRunnerRole = t.issuer.issueUserToken({ roles: ['Runner'] });
    expect((await postEvent(job.id, { type: 'progress', eventId: 'evt-12345678', percent: 1, bytes: 1 }, userWithRunnerRole)).status).toBe(403);
    expect((await uploadTarget(job.id, userWithRunnerRole)).status).toBe(403);
  });
});

describe('POST /api/runner/jobs/{id}/staged-blocks', () => {
  const stagedBlocks = (jobId: string, token = t.tokens.runner()) =>
    invoke(listStagedBlocks, { method: 'POST', path: `runner/jobs/${jobId}/staged-blocks`, params: { id: jobId }, token });

  it("lists the uncommitted blocks on the job's blob, which the runner's own SAS cannot read", async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    expect((await stagedBlocks(job.id)).json).toEqual({ blobPath: job.blobPath, blocks: [] });
    const target = await uploadTarget(job.id);
    const writer = new BlockBlobClient(target.json.url);
    const ids = ['000000-aaaaaaaaaaaaaaaa', '000001-bbbbbbbbbbbbbbbb'].map((id) => Buffer.from(id).toString('base64'));
    await writer.stageBlock(ids[0]!, 'first block', 11);
    await writer.stageBlock(ids[1]!, 'second', 6);
    await expect(writer.getBlockList('uncommitted')).rejects.toMatchObject({ statusCode: 403 });

    const res = await stagedBlocks(job.id);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ blobPath: job.blobPath, blocks: [{ id: ids[0], sizeBytes: 11 }, { id: ids[1], sizeBytes: 6 }] });
  });

  it('answers 409 for a job no longer runnable and 403 (audited) for an unbound runner', async () => {
    const cancelled = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Cancelled' });
    expect((await stagedBlocks(cancelled.id)).status).toBe(409);
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    expect((await stagedBlocks(job.id, t.tokens.unboundRunner())).status).toBe(403);
    const denied = (await t.deps.store.listAudit({ jobId: job.id, limit: 50 })).items.filter((row) => row.action === 'runner.denied');
    expect(denied.map((row) => row.detail.endpoint)).toEqual(['staged-blocks']);
  });
});

describe('runners are bound to servers', () => {
  it('refuses an unbound runner on upload-target and events with 403 and a runner.denied audit row, whatever the status', async () => {
    for (const status of ['Queued', 'Running', 'Cancelled'] as const) {
      const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status });
      const before = t.orchestrations.snapshot();
      const target = await uploadTarget(job.id, t.tokens.unboundRunner());
      expect(target.status, status).toBe(403);
      expect(target.text).not.toContain('sig=');
      const event = await postEvent(job.id, { type: 'progress', eventId: `p-${randomUUID()}`, percent: 5, bytes: 1 }, t.tokens.unboundRunner());
      expect(event.status, status).toBe(403);
      expect(t.orchestrations.snapshot()).toEqual(before);
      const rows = (await t.deps.store.listAudit({ jobId: job.id, limit: 50 })).items;
      const denied = rows.filter((row) => row.action === 'runner.denied');
      expect(denied.map((row) => row.detail.endpoint).sort()).toEqual(['events', 'upload-target']);
      expect(denied[0]).toMatchObject({ actorType: 'app', detail: { serverId: seeded.server.id } });
      expect(rows.map((row) => row.action)).not.toContain('sas.upload_issued');
    }
  });

  it('refuses a runner whose client id is bound but whose service principal is not', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    const impostor = t.issuer.issueAppToken({ roles: ['Runner'], appId: testRunner.clientId, oid: randomUUID() });
    expect((await uploadTarget(job.id, impostor)).status).toBe(403);
  });

  it('records heartbeats and lists runners (Admin), with the servers no live bound runner serves', async () => {
    const other = await seedDatabase(t.deps.store);
    const heartbeat = (token: string, body: unknown) =>
      invoke(postRunnerHeartbeat, { method: 'POST', path: 'runner/heartbeat', token, body });
    const ack = await heartbeat(t.tokens.runner(), { runnerId: 'host-01', version: '1.2.3', serverIds: [seeded.server.id, randomUUID()], inFlightJobs: 2, freeScratchBytes: 1000 });
    expect(ack.status).toBe(200);
    expect(ack.json.boundServerIds).toEqual([seeded.server.id]);
    expect(ack.json.unboundServerIds).toHaveLength(1);
    expect((await heartbeat(t.tokens.runner(), { runnerId: 'host 01!', version: '1', serverIds: [], inFlightJobs: 0 })).status).toBe(400);

    const list = await invoke(listRunners, { method: 'GET', path: 'runners', token: t.tokens.admin() });
    expect(list.status).toBe(200);
    const host = list.json.runners.find((r: { runnerId: string }) => r.runnerId === 'host-01');
    expect(host).toMatchObject({ clientId: testRunner.clientId, version: '1.2.3', inFlightJobs: 2, freeScratchBytes: 1000, health: 'live' });
    const uncovered = list.json.serversWithoutLiveRunner.map((s: { id: string }) => s.id);
    expect(uncovered).not.toContain(seeded.server.id);
    expect(uncovered).toContain(other.server.id); // bound to the runner, but the heartbeat does not name it

    // Four minutes later the heartbeat is stale and the server uncovered.
    const realNow = t.deps.now;
    t.deps.now = () => new Date(Date.now() + 4 * 60_000);
    try {
      const later = await invoke(listRunners, { method: 'GET', path: 'runners', token: t.tokens.admin() });
      expect(later.json.runners.find((r: { runnerId: string }) => r.runnerId === 'host-01').health).toBe('stale');
      expect(later.json.serversWithoutLiveRunner.map((s: { id: string }) => s.id)).toContain(seeded.server.id);
    } finally {
      t.deps.now = realNow;
    }
    expect((await invoke(listRunners, { method: 'GET', path: 'runners', token: t.tokens.runner() })).status).toBe(403);
  });
});

describe('POST /api/runner/probe-target', () => {
  it('issues a short write+delete SAS for a fresh probe blob outside backups/, audited', async () => {
    const res = await invoke(issueProbeTarget, { method: 'POST', path: 'runner/probe-target', token: t.tokens.runner() });
    expect(res.status).toBe(200);
    expect(res.json.blobPath).toMatch(new RegExp(`^probes/${testRunner.clientId}/[0-9a-f-]{36}\\.probe$`));
    expect((Date.parse(res.json.expiresAt) - Date.now()) / 60_000).toBeLessThanOrEqual(5);
    const blob = new BlockBlobClient(res.json.url);
    await blob.upload('probe', 5);
    await blob.delete();
    const audit = (await t.deps.store.listAudit({ action: 'sas.upload_issued', limit: 200 })).items;
    expect(audit.some((row) => row.target === `probe/${res.json.blobPath}`)).toBe(true);
  });
});
