import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJob, rehearseJob } from '../../functions/jobs.js';
import { issueRehearsalSource, postRehearsalReport } from '../../functions/runner.js';
import { BackupJobMessage, JobMessage } from '../../shared/contracts/messages.js';
import { parseJobMessage } from '../../runner-agent/job-runner.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
let seeded: SeededDatabase;
beforeAll(async () => {
  t = await startTestDeps();
  seeded = await seedDatabase(t.deps.store);
});
afterAll(() => t?.close());

const auditOf = async (jobId: string) => (await t.deps.store.listAudit({ jobId, limit: 200 })).items;
const rehearse = (jobId: string, token = t.tokens.admin()) => invoke(rehearseJob, { method: 'POST', path: `jobs/${jobId}/rehearse`, params: { id: jobId }, token });
const source = (jobId: string, token = t.tokens.runner()) =>
  invoke(issueRehearsalSource, { method: 'POST', path: `runner/jobs/${jobId}/rehearsal-source`, params: { id: jobId }, token });
const report = (jobId: string, body: unknown, token = t.tokens.runner()) =>
  invoke(postRehearsalReport, { method: 'POST', path: `runner/jobs/${jobId}/rehearsal`, params: { id: jobId }, token, body });

describe('POST /api/jobs/{id}/rehearse', () => {
  it('puts a rehearsal message for the job’s server on the topic and audits the request', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    const before = t.queue.enqueued.length;
    const res = await rehearse(job.id);
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ jobId: job.id });
    const sent = t.queue.enqueued.slice(before);
    expect(sent).toEqual([
      { schemaVersion: 1, kind: 'rehearsal', rehearsalId: res.json.rehearsalId, jobId: job.id, serverId: job.serverId, engine: job.engine, requestedAt: res.json.requestedAt },
    ]);
    const requested = (await auditOf(job.id)).filter((a) => a.action === 'restore.rehearsal_requested');
    expect(requested).toHaveLength(1);
    expect(requested[0]!.detail).toMatchObject({ rehearsalId: res.json.rehearsalId, trigger: 'user' });
  });

  it('is for Admins only: a requester gets 403 and nothing is sent', async () => {
    const requesterOid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid, status: 'Available' });
    const before = t.queue.enqueued.length;
    expect((await rehearse(job.id, t.tokens.requester())).status).toBe(403);
    expect(t.queue.enqueued.length).toBe(before);
    expect((await auditOf(job.id)).map((a) => a.action)).not.toContain('restore.rehearsal_requested');
  });

  it('answers 409 with the job status for a backup that is not Available, and sends nothing', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    const before = t.queue.enqueued.length;
    const res = await rehearse(job.id);
    expect(res.status).toBe(409);
    expect(res.json).toMatchObject({ jobStatus: 'Running' });
    expect(t.queue.enqueued.length).toBe(before);
  });

  it('answers 404 for an unknown job', async () => {
    expect((await rehearse(randomUUID())).status).toBe(404);
  });
});

describe('the rehearsal message', () => {
  it('is valid on both sides, and a runner that only knows backup messages refuses it', () => {
    const message = { schemaVersion: 1, kind: 'rehearsal', rehearsalId: randomUUID(), jobId: randomUUID(), serverId: randomUUID(), engine: 'postgres', requestedAt: new Date().toISOString() };
    expect(JobMessage.safeParse(message).success).toBe(true);
    // The contract an old runner reads: strict, so `kind` makes it dead-letter rather than back up anything.
    expect(BackupJobMessage.safeParse(message).success).toBe(false);
    const parsed = parseJobMessage(message);
    expect(parsed.ok && 'kind' in parsed.job ? parsed.job.kind : 'refused').toBe('rehearsal');
  });
});

describe('runner rehearsal endpoints', () => {
  it('issues an audited read link with the recorded digest, then records the outcome with its audit row', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    const res = await source(job.id);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ sha256: job.sha256 ?? (await t.deps.store.getJob(job.id))!.sha256, compression: 'gzip', encrypted: false });
    expect(new URL(res.json.url).searchParams.get('sp')).toBe('r');
    expect((await auditOf(job.id)).map((a) => a.action)).toContain('sas.rehearsal_issued');

    const rehearsalId = randomUUID();
    const done = await report(job.id, { rehearsalId, result: 'failed', restoreDurationMs: 1234, code: 'backup_damaged', message: 'digest differs' });
    expect(done.status).toBe(200);
    const view = await invoke(getJob, { method: 'GET', path: `jobs/${job.id}`, params: { id: job.id }, token: t.tokens.admin() });
    expect(view.json.restoreRehearsal).toMatchObject({ result: 'failed', durationMs: 1234, error: 'backup_damaged: digest differs' });
    const rehearsed = (await auditOf(job.id)).filter((a) => a.action === 'restore.rehearsed');
    expect(rehearsed).toHaveLength(1);
    expect(rehearsed[0]!.detail).toMatchObject({ rehearsalId, result: 'failed', durationMs: 1234, code: 'backup_damaged' });
  });

  it('refuses an unbound runner with 403 and a runner.denied row, and records nothing', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    expect((await source(job.id, t.tokens.unboundRunner())).status).toBe(403);
    expect((await report(job.id, { rehearsalId: randomUUID(), result: 'passed', restoreDurationMs: 5 }, t.tokens.unboundRunner())).status).toBe(403);
    const actions = (await auditOf(job.id)).map((a) => a.action);
    expect(actions.filter((a) => a === 'runner.denied')).toHaveLength(2);
    expect(actions).not.toContain('sas.rehearsal_issued');
    expect(actions).not.toContain('restore.rehearsed');
    expect((await t.deps.store.getJob(job.id))!.restoreResult).toBeNull();
  });

  it('answers 409 for a backup that is not Available', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Expired' });
    expect((await source(job.id)).status).toBe(409);
    expect((await report(job.id, { rehearsalId: randomUUID(), result: 'passed', restoreDurationMs: 5 })).status).toBe(409);
  });
});
