/** Approve and reject (issue 11 item 4): the handlers through endpoint(), on PGlite and the local issuer. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { approveJob, getJob, listJobs, rejectJob } from '../../functions/jobs.js';
import { JobView } from '../../shared/contracts/jobs.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
let seeded: SeededDatabase;

beforeAll(async () => {
  t = await startTestDeps();
});
afterAll(() => t?.close());
beforeEach(async () => {
  seeded = await seedDatabase(t.deps.store, { policy: { distribution: 'raw-needs-approval' } });
});

const auditOf = async (jobId: string) => (await t.deps.store.listAudit({ jobId, limit: 200 })).items;
const post = (handler: typeof approveJob, verb: 'approve' | 'reject', jobId: string, token: string, body: unknown = {}) =>
  invoke(handler, { method: 'POST', path: `jobs/${jobId}/${verb}`, params: { id: jobId }, token, body });

describe('POST /api/jobs/{id}/approve', () => {
  it('raises Approved for the orchestration with the approver and the reason, and answers 202', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'AwaitingApproval' });
    const approver = randomUUID();
    t.orchestrations.instance(job.id, 'Running');
    const res = await post(approveJob, 'approve', job.id, t.tokens.approver({ oid: approver }), { reason: 'OPS-7' });
    expect(res.status).toBe(202);
    expect(JobView.parse(res.json).status).toBe('AwaitingApproval');
    expect(t.orchestrations.raised.at(-1)).toEqual({
      jobId: job.id,
      eventName: 'Approved',
      payload: {
        by: { type: 'user', id: approver, name: `${approver}@contoso.example` },
        requestedBy: { oid: approver, upn: `${approver}@contoso.example` },
        reason: 'OPS-7',
      },
    });
  });

  it('refuses self-approval with 403, audits the refusal and raises nothing', async () => {
    const oid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid: oid, status: 'AwaitingApproval' });
    const before = t.orchestrations.snapshot();
    const res = await post(approveJob, 'approve', job.id, t.tokens.approver({ oid }));
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.json.detail).toMatch(/may not approve a job they requested themselves/);
    expect(t.orchestrations.snapshot()).toEqual(before);
    const denied = (await auditOf(job.id)).filter((row) => row.action === 'job.approval_denied');
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ actorId: oid, detail: { decision: 'approved' } });
  });

  it('refuses a caller without the Approver role (403, audited), even an Admin', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'AwaitingApproval' });
    for (const token of [t.tokens.requester(), t.tokens.admin()]) {
      expect((await post(approveJob, 'approve', job.id, token)).status).toBe(403);
    }
    expect((await auditOf(job.id)).filter((row) => row.action === 'job.approval_denied')).toHaveLength(2);
  });

  it('answers 409 for a job that does not await approval', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Queued' });
    const res = await post(approveJob, 'approve', job.id, t.tokens.approver());
    expect(res.status).toBe(409);
    expect(res.json.jobStatus).toBe('Queued');
  });
});

describe('POST /api/jobs/{id}/reject', () => {
  it('answers 409 when no live orchestration can apply the decision, and raises nothing', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'AwaitingApproval' });
    const res = await post(rejectJob, 'reject', job.id, t.tokens.approver(), { reason: 'no' });
    expect(res.status).toBe(409);
    expect(t.orchestrations.raised.filter((event) => event.jobId === job.id)).toEqual([]);
  });

  it('requires a reason (400 naming the field)', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'AwaitingApproval' });
    const before = t.orchestrations.snapshot();
    const res = await post(rejectJob, 'reject', job.id, t.tokens.approver(), {});
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.json)).toContain('reason');
    expect(t.orchestrations.snapshot()).toEqual(before);
  });

  it('raises Rejected with the reason', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'AwaitingApproval' });
    t.orchestrations.instance(job.id, 'Running');
    const res = await post(rejectJob, 'reject', job.id, t.tokens.approver(), { reason: 'use the sanitized copy' });
    expect(res.status).toBe(202);
    expect(t.orchestrations.raised.at(-1)).toMatchObject({ jobId: job.id, eventName: 'Rejected', payload: { reason: 'use the sanitized copy' } });
  });
});

describe('approvers reading jobs', () => {
  it('lists every job awaiting approval to an Approver (of any requester), only their own otherwise', async () => {
    const pending = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'AwaitingApproval' });
    const other = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Queued' });
    const approver = t.tokens.approver();
    const res = await invoke(listJobs, { method: 'GET', path: 'jobs', query: { status: 'AwaitingApproval', limit: '100' }, token: approver });
    expect(res.status).toBe(200);
    const ids = res.json.items.map((j: JobView) => j.id);
    expect(ids).toContain(pending.id);
    expect(res.json.items.every((j: JobView) => j.status === 'AwaitingApproval')).toBe(true);
    const all = await invoke(listJobs, { method: 'GET', path: 'jobs', query: { limit: '100' }, token: approver });
    expect(all.json.items.map((j: JobView) => j.id)).not.toContain(other.id);
  });

  it('shows who decided, when and why on GET', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'AwaitingApproval' });
    const at = new Date('2026-11-23T10:00:00.000Z');
    await t.deps.store.transitionJob(
      job.id,
      { from: ['AwaitingApproval'], to: 'Rejected', patch: { approvalDecision: 'rejected', approvalByOid: 'oid-amir', approvalByUpn: 'amir@contoso.example', approvalAt: at, approvalReason: 'no' } },
      { actorType: 'user', actorId: 'oid-amir', action: 'job.rejected', target: `job/${job.id}`, jobId: job.id },
    );
    const res = await invoke(getJob, { method: 'GET', path: `jobs/${job.id}`, params: { id: job.id }, token: t.tokens.approver() });
    expect(res.status).toBe(200);
    expect(JobView.parse(res.json).approval).toEqual({ decision: 'rejected', by: { oid: 'oid-amir', upn: 'amir@contoso.example' }, at: at.toISOString(), reason: 'no' });
  });
});
