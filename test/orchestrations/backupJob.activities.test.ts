/**
 * The backupJob activities against the real stand-ins: the PGlite store and the production blob gateway on
 * Azurite (test/support/deps.ts). The job queue is a recording implementation of our own port.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AuditAction } from '../../shared/contracts/audit.js';
import type { JobStatus } from '../../shared/contracts/jobs.js';
import { BackupJobMessage } from '../../shared/contracts/messages.js';
import type { JobRecord } from '../../shared/db/store.js';
import {
  awaitApproval,
  decideApproval,
  beginVerification,
  enqueueJob,
  expireBackup,
  failJob,
  issueDownloadLink,
  markAvailable,
  markRunning,
  prepareJob,
  recordProgress,
  removeLateUpload,
  verifyUpload,
  type UploadReport,
} from '../../orchestrations/backupJob.activities.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';

let t: TestDeps;
let seeded: SeededDatabase;
const requesterOid = randomUUID();

beforeAll(async () => {
  t = await startTestDeps();
  seeded = await seedDatabase(t.deps.store, { policy: { acceptTimeoutMinutes: 45, runTimeoutMinutes: 300, retentionDays: 3, maxSasTtlMinutes: 30 } });
});
afterAll(() => t?.close());
beforeEach(() => {
  t.queue.enqueued.length = 0;
});

const at = (iso = '2026-11-23T09:00:00.000Z') => iso;

async function auditActions(jobId: string, action?: AuditAction): Promise<AuditAction[]> {
  const page = await t.deps.store.listAudit({ jobId, ...(action ? { action } : {}), limit: 100 });
  return page.items.map((row) => row.action);
}

async function job(jobId: string): Promise<JobRecord> {
  const found = await t.deps.store.getJob(jobId);
  if (!found) throw new Error(`job ${jobId} is gone`);
  return found;
}

const newJob = (status: JobStatus = 'Pending', options: { expiresAt?: Date } = {}) =>
  seedJob(t.deps.store, seeded, { requesterOid, status, ...options });

async function putBlob(path: string, bytes: Buffer, metadata: Record<string, string>): Promise<void> {
  await t.container.getBlockBlobClient(path).upload(bytes, bytes.length, { metadata });
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('prepareJob', () => {
  it('returns the job message and the policy as plain data', async () => {
    const pending = await newJob();
    const result = await prepareJob({ jobId: pending.id, at: at() });
    if (!result.ok) throw new Error(`expected ok, got ${result.code}`);
    expect(result.policy).toEqual({
      acceptTimeoutMinutes: 45,
      runTimeoutMinutes: 300,
      retentionDays: 3,
      maxSasTtlMinutes: 30,
      distribution: 'raw',
      approvalTimeoutHours: 72,
    });
    expect(result.requesterOid).toBe(requesterOid);
    expect(result.blobPath).toBe(pending.blobPath);
    // With the orchestrator's deadline added it is a valid Service Bus job message.
    const message = BackupJobMessage.parse({ ...result.message, runDeadline: '2026-11-23T15:45:00.000Z' });
    expect(message).toMatchObject({
      jobId: pending.id,
      serverId: seeded.server.id,
      server: { name: seeded.server.name, host: seeded.server.host },
      databaseId: seeded.database.id,
      databaseName: 'Sales',
      engine: 'sqlserver',
      options: pending.options,
      blobPath: pending.blobPath,
      requestedAt: pending.createdAt.toISOString(),
    });
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });

  it('refuses a job that is gone or past Queued', async () => {
    expect(await prepareJob({ jobId: randomUUID(), at: at() })).toEqual({ ok: false, code: 'job_not_found' });
    const failed = await newJob('Failed');
    expect(await prepareJob({ jobId: failed.id, at: at() })).toEqual({ ok: false, code: 'conflict', status: 'Failed' });
  });
});

describe('enqueueJob', () => {
  it('moves the job to Queued with its audit row, then sends the message; a re-run sends again but writes nothing', async () => {
    const pending = await newJob();
    const prepared = await prepareJob({ jobId: pending.id, at: at() });
    if (!prepared.ok) throw new Error('prepare failed');
    const message = { ...prepared.message, runDeadline: '2026-11-23T15:45:00.000Z' };

    expect(await enqueueJob({ jobId: pending.id, at: at(), message })).toEqual({ ok: true, status: 'Queued' });
    expect((await job(pending.id)).status).toBe('Queued');
    expect(t.queue.enqueued).toEqual([message]);

    // The extension may run it again (a lost completion): the message id deduplicates the send.
    expect(await enqueueJob({ jobId: pending.id, at: at(), message })).toEqual({ ok: true, status: 'Queued' });
    expect(t.queue.enqueued.map((m) => m.jobId)).toEqual([pending.id, pending.id]);
    expect(await auditActions(pending.id, 'job.queued')).toHaveLength(1);
  });

  it('sends nothing for a job cancelled meanwhile', async () => {
    const cancelled = await newJob('Cancelled');
    const message = { jobId: cancelled.id } as BackupJobMessage;
    expect(await enqueueJob({ jobId: cancelled.id, at: at(), message })).toEqual({ ok: false, code: 'conflict', status: 'Cancelled' });
    expect(t.queue.enqueued).toEqual([]);
  });
});

describe('state steps are compare-and-set and idempotent', () => {
  it('markRunning records acceptance once; a re-run writes nothing more', async () => {
    const queued = await newJob('Queued');
    const input = { jobId: queued.id, at: at('2026-11-23T09:05:00.000Z'), runnerId: 'runner-1', attempt: 1, acceptedBy: 'accepted' as const };
    expect(await markRunning(input)).toEqual({ ok: true, status: 'Running' });
    expect(await markRunning(input)).toEqual({ ok: true, status: 'Running' });
    const running = await job(queued.id);
    expect(running.status).toBe('Running');
    expect(running.acceptedAt?.toISOString()).toBe('2026-11-23T09:05:00.000Z');
    const rows = await t.deps.store.listAudit({ jobId: queued.id, action: 'job.running', limit: 10 });
    expect(rows.items).toHaveLength(1);
    expect(rows.items[0]).toMatchObject({ actorType: 'system', actorId: 'orchestrator', detail: { runnerId: 'runner-1', attempt: 1 } });
  });

  it('markRunning refuses a job that was cancelled', async () => {
    const cancelled = await newJob('Cancelled');
    expect(await markRunning({ jobId: cancelled.id, at: at(), runnerId: null, attempt: null, acceptedBy: 'progress' })).toEqual({
      ok: false,
      code: 'conflict',
      status: 'Cancelled',
    });
  });

  it('recordProgress writes the progress on the job row', async () => {
    const running = await newJob('Running');
    await recordProgress({ jobId: running.id, at: at(), percent: 42.5, bytes: 123_456 });
    expect(await job(running.id)).toMatchObject({ progressPercent: 42.5, progressBytes: 123_456 });
  });

  it('markAvailable sets size, digest, completion and expiry once', async () => {
    const verifying = await newJob('Verifying');
    const input = { jobId: verifying.id, at: at(), sizeBytes: 99, sha256: 'c'.repeat(64), expiresAt: '2026-11-26T09:00:00.000Z' };
    expect(await markAvailable(input)).toEqual({ ok: true, status: 'Available' });
    expect(await markAvailable(input)).toEqual({ ok: true, status: 'Available' });
    const available = await job(verifying.id);
    expect(available).toMatchObject({ status: 'Available', sizeBytes: 99, sha256: 'c'.repeat(64) });
    expect(available.expiresAt?.toISOString()).toBe('2026-11-26T09:00:00.000Z');
    expect(available.completedAt?.toISOString()).toBe(at());
    expect(await auditActions(verifying.id, 'job.available')).toHaveLength(1);
  });
});

describe('verification against a real blob', () => {
  const bytes = Buffer.from('-- a backup, or something that stands in for one --\n'.repeat(100));

  async function uploadedJob(metadata: Record<string, string> | undefined): Promise<{ job: JobRecord; report: UploadReport }> {
    const running = await newJob('Running');
    if (metadata) await putBlob(running.blobPath, bytes, metadata);
    const report: UploadReport = { blobPath: running.blobPath, sizeBytes: bytes.length, sha256: sha256(bytes), compression: 'gzip', encrypted: false };
    return { job: running, report };
  }

  it('beginVerification audits what the runner reported', async () => {
    const { job: running, report } = await uploadedJob(undefined);
    expect(await beginVerification({ jobId: running.id, at: at(), reported: report })).toEqual({ ok: true, status: 'Verifying' });
    expect(await beginVerification({ jobId: running.id, at: at(), reported: report })).toEqual({ ok: true, status: 'Verifying' });
    const rows = await t.deps.store.listAudit({ jobId: running.id, action: 'job.verifying', limit: 10 });
    expect(rows.items).toHaveLength(1);
    expect(rows.items[0]?.detail).toMatchObject({ reportedSizeBytes: bytes.length, reportedSha256: report.sha256 });
    expect(await job(running.id)).toMatchObject({ progressPercent: 100, progressBytes: bytes.length });
  });

  it('accepts a blob whose size and sha256 metadata match the report', async () => {
    const { job: running, report } = await uploadedJob({ sha256: sha256(bytes), engine: 'sqlserver' });
    expect(await verifyUpload({ jobId: running.id, expectedBlobPath: running.blobPath, reported: report })).toEqual({
      ok: true,
      sizeBytes: bytes.length,
      sha256: sha256(bytes),
    });
  });

  it('refuses a wrong digest, a wrong size, a missing blob and another path', async () => {
    const wrongDigest = await uploadedJob({ sha256: 'f'.repeat(64) });
    expect(await verifyUpload({ jobId: wrongDigest.job.id, expectedBlobPath: wrongDigest.job.blobPath, reported: wrongDigest.report })).toMatchObject({
      ok: false,
      code: 'sha256_mismatch',
    });

    const noDigest = await uploadedJob({ engine: 'sqlserver' });
    expect(await verifyUpload({ jobId: noDigest.job.id, expectedBlobPath: noDigest.job.blobPath, reported: noDigest.report })).toMatchObject({
      ok: false,
      code: 'sha256_mismatch',
    });

    const wrongSize = await uploadedJob({ sha256: sha256(bytes) });
    const reportedBigger = { ...wrongSize.report, sizeBytes: bytes.length + 1 };
    expect(await verifyUpload({ jobId: wrongSize.job.id, expectedBlobPath: wrongSize.job.blobPath, reported: reportedBigger })).toMatchObject({
      ok: false,
      code: 'size_mismatch',
    });

    const missing = await uploadedJob(undefined);
    expect(await verifyUpload({ jobId: missing.job.id, expectedBlobPath: missing.job.blobPath, reported: missing.report })).toMatchObject({
      ok: false,
      code: 'blob_missing',
    });

    const elsewhere = await uploadedJob({ sha256: sha256(bytes) });
    const otherPath = { ...elsewhere.report, blobPath: `${elsewhere.job.blobPath}.other` };
    expect(await verifyUpload({ jobId: elsewhere.job.id, expectedBlobPath: elsewhere.job.blobPath, reported: otherPath })).toMatchObject({
      ok: false,
      code: 'wrong_blob_path',
    });
  });
});

describe('issueDownloadLink (kept for v1 instances in flight)', () => {
  it('mints nothing, stores nothing and audits nothing: links are minted on request only', async () => {
    const available = await newJob('Available', { expiresAt: new Date(Date.now() + 3 * 24 * 3600_000) });
    const auditBefore = await t.deps.store.listAudit({ jobId: available.id, limit: 50 });
    expect(await issueDownloadLink({ jobId: available.id, maxSasTtlMinutes: 30 })).toEqual({ ok: false, code: 'minted_on_request' });
    expect((await job(available.id)).downloadExpiresAt).toBeNull();
    expect(await t.deps.store.listAudit({ jobId: available.id, limit: 50 })).toEqual(auditBefore);
  });
});

describe('approval steps', () => {
  const amir = { oid: 'oid-amir', upn: 'amir@contoso.example' };

  it('awaitApproval moves Pending to AwaitingApproval with job.awaiting_approval, once', async () => {
    const pending = await newJob();
    expect(await awaitApproval({ jobId: pending.id, at: at(), timeoutHours: 72 })).toEqual({ ok: true, status: 'AwaitingApproval' });
    expect(await awaitApproval({ jobId: pending.id, at: at(), timeoutHours: 72 })).toEqual({ ok: true, status: 'AwaitingApproval' });
    expect(await auditActions(pending.id, 'job.awaiting_approval')).toHaveLength(1);
  });

  it('decideApproval approved: back to Pending with who, when and why, audited as the approver; the job can be enqueued', async () => {
    const waiting = await newJob('AwaitingApproval');
    const input = { jobId: waiting.id, at: at('2026-11-23T10:00:00.000Z'), decision: 'approved' as const, by: amir, reason: 'OPS-7' };
    expect(await decideApproval(input)).toEqual({ ok: true, status: 'Pending' });
    expect(await job(waiting.id)).toMatchObject({
      status: 'Pending',
      approvalDecision: 'approved',
      approvalByOid: 'oid-amir',
      approvalByUpn: 'amir@contoso.example',
      approvalAt: new Date('2026-11-23T10:00:00.000Z'),
      approvalReason: 'OPS-7',
    });
    const rows = await t.deps.store.listAudit({ jobId: waiting.id, action: 'job.approved', limit: 10 });
    expect(rows.items.map((row) => [row.actorId, row.detail])).toEqual([['oid-amir', { reason: 'OPS-7' }]]);
  });

  it('decideApproval on timeout: Rejected with approval_timeout, by the orchestrator; refused once the job moved on', async () => {
    const waiting = await newJob('AwaitingApproval');
    const input = { jobId: waiting.id, at: at(), decision: 'rejected' as const, by: null, reason: 'No approver decided within 72 hours.', errorCode: 'approval_timeout' as const };
    expect(await decideApproval(input)).toEqual({ ok: true, status: 'Rejected' });
    expect(await job(waiting.id)).toMatchObject({ status: 'Rejected', errorCode: 'approval_timeout', approvalDecision: 'rejected', approvalByOid: 'orchestrator' });
    const rows = await t.deps.store.listAudit({ jobId: waiting.id, action: 'job.rejected', limit: 10 });
    expect(rows.items[0]).toMatchObject({ actorType: 'system', actorId: 'orchestrator' });

    const queued = await newJob('Queued');
    expect(await decideApproval({ ...input, jobId: queued.id })).toEqual({ ok: false, code: 'conflict', status: 'Queued' });
  });
});

describe('failJob', () => {
  it('deletes the partial upload and fails the job with its error, once', async () => {
    const running = await newJob('Running');
    await putBlob(running.blobPath, Buffer.from('half a backup'), {});
    const input = { jobId: running.id, at: at(), to: 'Failed' as const, errorCode: 'run_timeout', errorMessage: 'too slow' };
    expect(await failJob(input)).toEqual({ ok: true, status: 'Failed' });
    expect(await failJob(input)).toEqual({ ok: true, status: 'Failed' });

    expect(await t.deps.blobs.getBlobFacts(running.blobPath)).toBeUndefined();
    expect(await job(running.id)).toMatchObject({ status: 'Failed', errorCode: 'run_timeout', errorMessage: 'too slow' });
    const rows = await t.deps.store.listAudit({ jobId: running.id, action: 'job.failed', limit: 10 });
    expect(rows.items).toHaveLength(1);
    expect(rows.items[0]?.detail).toMatchObject({ errorCode: 'run_timeout', from: 'Running', partialBlobDeleted: true });
  });

  it('cancels as the user who asked, and refuses to cancel a job under verification', async () => {
    const queued = await newJob('Queued');
    const actor = { actorType: 'user' as const, actorId: 'oid-alice', actorName: 'alice@contoso.example' };
    expect(await failJob({ jobId: queued.id, at: at(), to: 'Cancelled', errorCode: 'cancelled', errorMessage: 'no longer needed', actor })).toEqual({
      ok: true,
      status: 'Cancelled',
    });
    const rows = await t.deps.store.listAudit({ jobId: queued.id, action: 'job.cancelled', limit: 10 });
    expect(rows.items[0]).toMatchObject({ actorType: 'user', actorId: 'oid-alice', actorName: 'alice@contoso.example' });

    const verifying = await newJob('Verifying');
    expect(await failJob({ jobId: verifying.id, at: at(), to: 'Cancelled', errorCode: 'cancelled', errorMessage: 'x' })).toEqual({
      ok: false,
      code: 'conflict',
      status: 'Verifying',
    });
    expect((await job(verifying.id)).status).toBe('Verifying');
  });
});

describe('removeLateUpload', () => {
  it('deletes an upload committed after the job was cancelled and leaves the job row as it is', async () => {
    const cancelled = await newJob('Queued');
    expect(await failJob({ jobId: cancelled.id, at: at(), to: 'Cancelled', errorCode: 'cancelled', errorMessage: 'x' })).toMatchObject({ ok: true });
    // The runner committed between its last check and the cancel.
    await putBlob(cancelled.blobPath, Buffer.from('late backup'), {});
    const auditBefore = (await t.deps.store.listAudit({ jobId: cancelled.id, limit: 100 })).items.length;

    expect(await removeLateUpload({ jobId: cancelled.id, blobPath: cancelled.blobPath })).toEqual({ ok: true, deleted: true });
    expect(await t.deps.blobs.getBlobFacts(cancelled.blobPath)).toBeUndefined();
    expect(await removeLateUpload({ jobId: cancelled.id, blobPath: cancelled.blobPath })).toEqual({ ok: true, deleted: false });
    expect((await job(cancelled.id)).status).toBe('Cancelled');
    expect((await t.deps.store.listAudit({ jobId: cancelled.id, limit: 100 })).items).toHaveLength(auditBefore);
  });
});

describe('expireBackup', () => {
  it('deletes the blob and marks the job Expired with its audit row, once', async () => {
    const available = await newJob('Available');
    await putBlob(available.blobPath, Buffer.from('the backup'), {});
    const input = { jobId: available.id, at: at(), reason: 'retention' as const };
    expect(await expireBackup(input)).toEqual({ ok: true, status: 'Expired' });
    expect(await expireBackup(input)).toEqual({ ok: true, status: 'Expired' });

    expect(await t.deps.blobs.getBlobFacts(available.blobPath)).toBeUndefined();
    expect((await job(available.id)).status).toBe('Expired');
    const rows = await t.deps.store.listAudit({ jobId: available.id, action: 'job.expired', limit: 10 });
    expect(rows.items).toHaveLength(1);
    expect(rows.items[0]).toMatchObject({ actorType: 'system', actorId: 'orchestrator', detail: { reason: 'retention', blobDeleted: true } });
  });

  it('refuses a job that never became Available', async () => {
    const failed = await newJob('Failed');
    expect(await expireBackup({ jobId: failed.id, at: at(), reason: 'deleted' })).toEqual({ ok: false, code: 'conflict', status: 'Failed' });
  });
});
