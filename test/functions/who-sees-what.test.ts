/**
 * Who sees what, through the real handlers: a Requester lists the databases they may request (with the policy
 * a request needs, nothing more), an Auditor lists every job, and a schedule's options and recipients group
 * decide what its jobs are and who may download them.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, listRequestableDatabases } from '../../functions/databases.js';
import { createDownloadLink, getJob, listJobs } from '../../functions/jobs.js';
import { runDueSchedules } from '../../services/schedules.js';
import { type TestDeps, RecordingOrchestrations, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
beforeAll(async () => {
  t = await startTestDeps();
});
afterAll(() => t?.close());

const requestable = async (token: string) => {
  const res = await invoke(listRequestableDatabases, { path: 'databases', token });
  expect(res.status, res.text).toBe(200);
  return res.json.items as Array<Record<string, any>>;
};

describe('GET /api/databases', () => {
  it("lists for a Requester exactly the enabled databases of their groups, with the policy fields a request needs", async () => {
    const mine = await seedDatabase(t.deps.store, { name: 'Mine', policy: { maxSasTtlMinutes: 15, bindLinksToRequester: true } });
    const others = await seedDatabase(t.deps.store, { name: 'Others' });
    const disabled = await seedDatabase(t.deps.store, { name: 'Off', enabled: false });
    const wrongEngine = await seedDatabase(t.deps.store, { name: 'Pg only', policy: { allowedEngines: ['postgres'] } });
    const token = t.tokens.requester({ extraGroups: [mine.requesterGroupId, disabled.requesterGroupId, wrongEngine.requesterGroupId] });

    const items = await requestable(token);
    expect(items).toEqual([
      {
        id: mine.database.id,
        serverId: mine.server.id,
        name: 'Mine',
        engine: 'sqlserver',
        policy: { allowedEngines: ['sqlserver', 'postgres'], maxSasTtlMinutes: 15, retentionDays: 7, bindLinksToRequester: true, distribution: 'raw' },
      },
    ]);
    // Who else may request it is not theirs to see.
    expect(JSON.stringify(items)).not.toContain(mine.requesterGroupId);

    const adminIds = (await requestable(t.tokens.admin())).map((d) => d.id);
    expect(adminIds).toEqual(expect.arrayContaining([mine.database.id, others.database.id]));
    expect(adminIds).not.toContain(disabled.database.id);
    expect(await requestable(t.tokens.requester())).toEqual([]);
  });
});

describe('GET /api/jobs as an Auditor', () => {
  it("lists everyone's jobs, as an Admin does", async () => {
    const seeded = await seedDatabase(t.deps.store);
    const jobs = [await seedJob(t.deps.store, seeded, { requesterOid: randomUUID() }), await seedJob(t.deps.store, seeded, { requesterOid: randomUUID() })];
    const res = await invoke(listJobs, { path: 'jobs', query: { limit: '200' }, token: t.tokens.auditor() });
    expect(res.status).toBe(200);
    expect(res.json.items.map((j: { id: string }) => j.id)).toEqual(expect.arrayContaining(jobs.map((j) => j.id)));
    const requesterView = await invoke(listJobs, { path: 'jobs', query: { limit: '200' }, token: t.tokens.requester() });
    expect(requesterView.json.items).toEqual([]);
  });
});

describe('schedules with options and recipients', () => {
  it('run with their options, and their recipients group may read and download the backups', async () => {
    const { server } = await seedDatabase(t.deps.store);
    const recipients = randomUUID();
    const created = await invoke(createDatabase, {
      method: 'POST',
      path: `servers/${server.id}/databases`,
      params: { serverId: server.id },
      token: t.tokens.admin(),
      body: { name: 'Nightly', schedule: { cron: '0 3 * * *', options: { compression: 'zstd', encryption: 'dbde' }, recipientGroupId: recipients.toUpperCase() } },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.json.schedule).toEqual({ cron: '0 3 * * *', options: { compression: 'zstd', encryption: 'dbde' }, recipientGroupId: recipients });

    const realNow = t.deps.now;
    t.deps.now = () => new Date('2026-12-01T03:05:00Z');
    const report = await runDueSchedules(t.deps, new RecordingOrchestrations()).finally(() => (t.deps.now = realNow));
    expect(report.created).toHaveLength(1);
    const job = (await t.deps.store.getJob(report.created[0]!.jobId))!;
    expect(job.options).toEqual({ compression: 'zstd', encryption: 'dbde' });
    expect(job.blobPath).toContain('.zst');

    // Make it Available as the orchestration would, then ask as a recipient and as a stranger.
    for (const [from, to] of [['Pending', 'Queued'], ['Queued', 'Running'], ['Running', 'Verifying'], ['Verifying', 'Available']] as const) {
      const patch = to === 'Available' ? { sizeBytes: 10, sha256: 'a'.repeat(64), completedAt: new Date(), expiresAt: new Date(Date.now() + 86_400_000) } : {};
      await t.deps.store.transitionJob(job.id, { from: [from], to, patch }, { actorType: 'system', actorId: 'test', action: `job.${to.toLowerCase()}` as never, target: `job/${job.id}`, jobId: job.id });
    }
    const recipient = t.tokens.requester({ extraGroups: [recipients] });
    const link = await invoke(createDownloadLink, { method: 'POST', path: `jobs/${job.id}/download-link`, params: { id: job.id }, token: recipient, body: {} });
    expect(link.status, link.text).toBe(200);
    expect((await invoke(getJob, { path: `jobs/${job.id}`, params: { id: job.id }, token: recipient })).status).toBe(200);

    const stranger = await invoke(createDownloadLink, { method: 'POST', path: `jobs/${job.id}/download-link`, params: { id: job.id }, token: t.tokens.requester(), body: {} });
    expect(stranger.status).toBe(403);
    const audit = (await t.deps.store.listAudit({ jobId: job.id, limit: 50 })).items.map((a) => a.action);
    expect(audit).toEqual(expect.arrayContaining(['sas.download_issued', 'sas.download_denied']));
  });
});
