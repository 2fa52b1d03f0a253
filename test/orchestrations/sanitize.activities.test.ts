/**
 * What the backupJob activities do for sanitized databases and restore evidence, on the PGlite store: the job
 * message carries the database's masking rules, the job records their version, and the upload report's row
 * counts land on the job for a later rehearsal.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MaskingRuleSet } from '../../shared/contracts/masking.js';
import type { DatabasePolicy } from '../../shared/contracts/servers.js';
import { BackupJobMessage } from '../../shared/contracts/messages.js';
import { beginVerification, enqueueJob, prepareJob } from '../../orchestrations/backupJob.activities.js';
import { type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';

let t: TestDeps;
beforeAll(async () => {
  t = await startTestDeps();
});
afterAll(() => t?.close());

const masking = MaskingRuleSet.parse({ version: 5, rules: [{ table: 'users', column: 'email', strategy: 'email' }] });
const at = '2026-11-23T09:00:00.000Z';

async function prepared(policy: Partial<DatabasePolicy>) {
  const seeded = await seedDatabase(t.deps.store, { policy });
  const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID() });
  const result = await prepareJob({ jobId: job.id, at });
  if (!result.ok) throw new Error(result.code);
  return { job, message: BackupJobMessage.parse({ ...result.message, runDeadline: '2026-11-23T21:00:00.000Z' }) };
}

describe('sanitized databases in the backupJob activities', () => {
  it('sends the masking rules with the job and records their version when it is queued', async () => {
    const { job, message } = await prepared({ distribution: 'sanitized', masking });
    expect(message.masking).toEqual(masking);
    expect(await enqueueJob({ jobId: job.id, at, message })).toMatchObject({ ok: true });
    expect(await t.deps.store.getJob(job.id)).toMatchObject({ status: 'Queued', maskingVersion: 5 });
    const queued = (await t.deps.store.listAudit({ jobId: job.id, action: 'job.queued', limit: 5 })).items[0];
    expect(queued?.detail).toMatchObject({ maskingVersion: 5 });
  });

  it('sends no rules for a raw database, even one that has rules on file', async () => {
    const { job, message } = await prepared({ distribution: 'raw', masking });
    expect(message.masking).toBeUndefined();
    await enqueueJob({ jobId: job.id, at, message });
    expect((await t.deps.store.getJob(job.id))?.maskingVersion).toBeNull();
  });

  it('keeps the reported row counts on the job when verification begins', async () => {
    const seeded = await seedDatabase(t.deps.store);
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Running' });
    const counts = { 'public.users': 50, 'public.audit_log': 0 };
    const reported = { blobPath: job.blobPath, sizeBytes: 10, sha256: 'a'.repeat(64), compression: 'none' as const, encrypted: false, tableRowCounts: counts };
    expect(await beginVerification({ jobId: job.id, at, reported })).toMatchObject({ ok: true });
    expect(await t.deps.store.getJob(job.id)).toMatchObject({ status: 'Verifying', tableRowCounts: counts });
  });
});
