/**
 * Approval of raw copies (issue 11 item 4) on the sandbox stack (dev/stack.ts): real handlers over loopback
 * HTTPS, the real backupJob2 orchestration in the in-process Durable host, the real runner on the AMQP broker,
 * Azurite, PGlite, RS256 tokens of the demo people (alice the requester, the approver).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../dev/stack.js';
import { startEmbeddedSource, type EmbeddedSource } from '../../dev/embedded-source.js';
import type { JobRecord } from '../../shared/db/store.js';

type Json = Record<string, any>;

let stack: LocalStack;
let source: EmbeddedSource;
let serverId: string;
let databaseId: string;

beforeAll(async () => {
  [stack, source] = await Promise.all([startLocalStack({ lockDurationMs: 5_000 }), startEmbeddedSource({ customers: 50 })]);
  const server = await stack.api<Json>('POST', '/api/servers', { token: stack.tokens.admin, body: { name: 'demo', host: 'embedded', engine: 'postgres' } });
  serverId = server.body.id;
  const database = await stack.api<Json>('POST', `/api/servers/${serverId}/databases`, {
    token: stack.tokens.admin,
    body: { name: source.databaseName, requesterGroupIds: [stack.requesterGroupId], policy: { distribution: 'raw-needs-approval' } },
  });
  expect(database.status).toBe(201);
  expect(database.body.policy).toMatchObject({ distribution: 'raw-needs-approval', approvalTimeoutHours: 72 });
  databaseId = database.body.id;
});

afterAll(async () => {
  await stack?.stop();
  await source?.close();
});

async function waitForStatus(jobId: string, statuses: string[], timeoutMs = 60_000): Promise<JobRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await stack.store.getJob(jobId);
    if (job && statuses.includes(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not reach ${statuses.join('/')}; it is ${job?.status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const request = async () => {
  const created = await stack.api<Json>('POST', '/api/jobs', { token: stack.tokens.alice, body: { databaseId } });
  expect(created.status).toBe(202);
  return created.body.id as string;
};

describe('approval on the sandbox stack', () => {
  it('waits for an approver, refuses the requester, and runs to Available once approved', async () => {
    const runner = await stack.startRunner({ serverId, engine: source.engine });
    try {
      const jobId = await request();
      await waitForStatus(jobId, ['AwaitingApproval']);
      // Nothing was queued while it waits.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await stack.store.getJob(jobId))?.status).toBe('AwaitingApproval');

      const byAlice = await stack.api<Json>('POST', `/api/jobs/${jobId}/approve`, { token: stack.tokens.alice, body: {} });
      expect(byAlice.status).toBe(403);

      const pending = await stack.api<Json>('GET', '/api/jobs?status=AwaitingApproval', { token: stack.tokens.approver });
      expect(pending.status).toBe(200);
      expect(pending.body.items.map((job: Json) => job.id)).toContain(jobId);

      const approved = await stack.api<Json>('POST', `/api/jobs/${jobId}/approve`, { token: stack.tokens.approver, body: { reason: 'OPS-7' } });
      expect(approved.status).toBe(202);
      const done = await waitForStatus(jobId, ['Available', 'Failed', 'Cancelled', 'Rejected']);
      expect(done.status).toBe('Available');

      const view = await stack.api<Json>('GET', `/api/jobs/${jobId}`, { token: stack.tokens.alice });
      expect(view.body.approval).toMatchObject({ decision: 'approved', reason: 'OPS-7' });
      expect(view.body.approval.by.oid).not.toBe(view.body.requestedBy.oid);
      const actions = (await stack.store.listAudit({ jobId, limit: 100 })).items.map((row) => row.action);
      expect(actions).toEqual(expect.arrayContaining(['job.awaiting_approval', 'job.approval_denied', 'job.approved', 'job.queued', 'job.available']));
    } finally {
      await runner.stop();
    }
  });

  it('ends a rejected request Rejected with the reason, and nothing is uploaded', async () => {
    const jobId = await request();
    await waitForStatus(jobId, ['AwaitingApproval']);
    const rejected = await stack.api<Json>('POST', `/api/jobs/${jobId}/reject`, { token: stack.tokens.approver, body: { reason: 'use the sanitized copy' } });
    expect(rejected.status).toBe(202);
    const job = await waitForStatus(jobId, ['Rejected', 'Failed', 'Cancelled', 'Available']);
    expect(job).toMatchObject({ status: 'Rejected', errorCode: 'rejected', approvalDecision: 'rejected', approvalReason: 'use the sanitized copy' });
    const actions = (await stack.store.listAudit({ jobId, limit: 100 })).items.map((row) => row.action);
    expect(actions).toContain('job.rejected');
    expect(actions).not.toContain('job.queued');
  });
});
