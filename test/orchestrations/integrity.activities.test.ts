/**
 * The integrity activities against the real stand-ins (PGlite store, production blob gateway on Azurite), and
 * re-verification end to end: the real reverifyBackup orchestrator on the in-process Durable host, started by the
 * timer's service function, finds a flipped byte in Azurite, marks the job Corrupt and the API refuses its links.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditAction } from '../../shared/contracts/audit.js';
import type { JobRecord } from '../../shared/db/store.js';
import { checkManifestSignature, type SignedManifest } from '../../shared/integrity/manifest.js';
import { sidecarPaths } from '../../shared/storage/paths.js';
import {
  integrityActivities,
  publishManifest,
  recordReverification,
  rehashBlob,
  type RehashBlobInput,
  type RehashBlobResult,
} from '../../orchestrations/integrity.activities.js';
import { markAvailable } from '../../orchestrations/backupJob.activities.js';
import { REVERIFY_BACKUP_ORCHESTRATOR, reverifyBackupOrchestrator } from '../../orchestrations/reverifyBackup.js';
import { startDueReverifications } from '../../services/integrity.js';
import { InProcessDurableHost } from '../../dev/durable-host.js';
import { inProcessJobOrchestrations } from '../../dev/durable-orchestrations.js';
import { LocalManifestSigner } from '../../dev/manifest-signer.js';
import { createDownloadLink, getJob } from '../../functions/jobs.js';
import { invoke } from '../support/http.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';

const BUDGET = 64 * 1024;
let t: TestDeps;
let seeded: SeededDatabase;
const requesterOid = randomUUID();

beforeAll(async () => {
  t = await startTestDeps({ rehashBudgetBytes: BUDGET });
  seeded = await seedDatabase(t.deps.store, { policy: { reverifyEveryDays: 5 } });
});
afterAll(() => t?.close());

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function putBlob(path: string, bytes: Buffer): Promise<void> {
  await t.container.getBlockBlobClient(path).upload(bytes, bytes.length);
}

async function readText(path: string): Promise<string> {
  return (await t.container.getBlobClient(path).downloadToBuffer()).toString('utf8');
}

async function exists(path: string): Promise<boolean> {
  return t.container.getBlobClient(path).exists();
}

async function auditRows(jobId: string, action: AuditAction) {
  return (await t.deps.store.listAudit({ jobId, action, limit: 50 })).items;
}

/** Runs rehashBlob slice after slice, as the orchestration would, counting the calls. */
async function rehashAll(blobPath: string, between?: (slice: number) => Promise<void>): Promise<{ result: RehashBlobResult; calls: number }> {
  let input: RehashBlobInput = { blobPath, offset: 0, state: null, etag: null };
  for (let calls = 1; ; calls++) {
    // Through JSON, as activity inputs and results travel.
    const result = JSON.parse(JSON.stringify(await rehashBlob(JSON.parse(JSON.stringify(input))))) as RehashBlobResult;
    if (!result.ok || result.done) return { result, calls };
    await between?.(calls);
    input = { blobPath, offset: result.offset, state: result.state, etag: result.etag };
  }
}

/** An Available job whose blob holds `bytes`, verified with their digest, its re-verification due a minute ago. */
async function availableJobWith(bytes: Buffer): Promise<JobRecord> {
  const job = await seedJob(t.deps.store, seeded, {
    requesterOid,
    status: 'Available',
    verified: { sizeBytes: bytes.length, sha256: sha256(bytes), reverifyDueAt: new Date(Date.now() - 60_000) },
  });
  await putBlob(job.blobPath, bytes);
  return job;
}

describe('rehashBlob', () => {
  it('hashes a blob in budget-sized slices, resuming from the saved state, to the digest of its bytes', async () => {
    const bytes = randomBytes(5 * BUDGET + 123);
    const path = `rehash/${randomUUID()}.bak`;
    await putBlob(path, bytes);
    const { result, calls } = await rehashAll(path);
    expect(result).toEqual({ ok: true, done: true, sizeBytes: bytes.length, sha256: sha256(bytes) });
    expect(calls).toBe(6);
  });

  it('hashes a large slice read as one stream, in batches for the hashing thread, in order', async () => {
    const bytes = randomBytes(3 * 8 * 1024 * 1024 + 5); // six 4 MiB batches and one of 5 bytes
    const path = `rehash/${randomUUID()}.bak`;
    await putBlob(path, bytes);
    const budget = t.deps.integrity.rehashBudgetBytes;
    t.deps.integrity.rehashBudgetBytes = 64 * 1024 * 1024;
    try {
      expect(await rehashAll(path)).toEqual({ result: { ok: true, done: true, sizeBytes: bytes.length, sha256: sha256(bytes) }, calls: 1 });
    } finally {
      t.deps.integrity.rehashBudgetBytes = budget;
    }
  });

  it('hashes an empty blob', async () => {
    const path = `rehash/${randomUUID()}.bak`;
    await putBlob(path, Buffer.alloc(0));
    expect((await rehashAll(path)).result).toEqual({ ok: true, done: true, sizeBytes: 0, sha256: sha256(Buffer.alloc(0)) });
  });

  it('reports a blob rewritten between slices instead of mixing two versions', async () => {
    const bytes = randomBytes(3 * BUDGET);
    const path = `rehash/${randomUUID()}.bak`;
    await putBlob(path, bytes);
    const { result } = await rehashAll(path, async (slice) => {
      if (slice === 1) await putBlob(path, bytes); // same bytes, new version: still not what the first slice read
    });
    expect(result).toMatchObject({ ok: false, code: 'blob_changed' });
  });

  it('reports a missing blob', async () => {
    expect(await rehashBlob({ blobPath: `rehash/${randomUUID()}.bak`, offset: 0, state: null, etag: null })).toMatchObject({ ok: false, code: 'blob_missing' });
  });
});

describe('publishManifest', () => {
  const facts = (job: JobRecord, bytes: Buffer) => ({
    jobId: job.id,
    at: '2026-12-01T10:00:00.000Z',
    expiresAt: '2026-12-08T10:00:00.000Z',
    sizeBytes: bytes.length,
    sha256: sha256(bytes),
    runner: { id: 'runner-eu-1', attempt: 2 },
    restoreCheck: { tool: 'RESTORE VERIFYONLY' as const, ok: true },
    encryptionKeyId: null,
  });

  it('writes a sha256sum sidecar and a manifest signed by the current key', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid, status: 'Verifying' });
    const bytes = randomBytes(1000);
    const result = await publishManifest(facts(job, bytes));
    const signer = t.deps.integrity.signer as LocalManifestSigner;
    expect(result).toEqual({ ok: true, manifestKeyId: signer.currentKeyId });

    const paths = sidecarPaths(job.blobPath);
    expect(await readText(paths.sha256)).toMatch(new RegExp(`^${sha256(bytes)}  Sales-\\d{8}-\\d{4}\\.bak\\.gz\\n$`));
    const text = await readText(paths.manifest);
    const checked = checkManifestSignature(text, await signer.publicKeys(), new Date('2026-12-02T00:00:00Z'));
    expect(checked).toMatchObject({
      ok: true,
      kid: signer.currentKeyId,
      manifest: {
        jobId: job.id,
        database: { id: seeded.database.id, name: 'Sales' },
        server: { id: seeded.server.id, name: seeded.server.name },
        engine: 'sqlserver',
        options: { compression: 'gzip', encrypted: false, encryptionKeyId: null },
        file: { sizeBytes: 1000, sha256: sha256(bytes) },
        runner: { id: 'runner-eu-1', attempt: 2 },
        restoreCheck: { tool: 'RESTORE VERIFYONLY', ok: true },
        verifiedAt: '2026-12-01T10:00:00.000Z',
      },
    });
  });

  it('fails closed when the key store refuses to sign: it throws (to be retried) and writes nothing', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid, status: 'Verifying' });
    const signer = t.deps.integrity.signer as LocalManifestSigner;
    signer.refuse = new Error('Key Vault refused (403)');
    try {
      await expect(publishManifest(facts(job, randomBytes(10)))).rejects.toThrow('Key Vault refused (403)');
    } finally {
      signer.refuse = undefined;
    }
    const paths = sidecarPaths(job.blobPath);
    expect(await exists(paths.sha256)).toBe(false);
    expect(await exists(paths.manifest)).toBe(false);
  });

  it('does nothing for a job that is no longer Verifying', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid, status: 'Failed' });
    expect(await publishManifest(facts(job, randomBytes(10)))).toEqual({ ok: false, code: 'conflict', status: 'Failed' });
    expect(await exists(sidecarPaths(job.blobPath).manifest)).toBe(false);
  });
});

describe('markAvailable with a manifest (backupJob2)', () => {
  it('records the proof: verified now, the signing key, and the first re-verification due per the policy (5 days)', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid, status: 'Verifying' });
    const at = '2026-12-01T10:00:00.000Z';
    const input = { jobId: job.id, at, sizeBytes: 10, sha256: 'c'.repeat(64), expiresAt: '2026-12-08T10:00:00.000Z', manifestKeyId: 'local:key-1' };
    expect(await markAvailable(input)).toEqual({ ok: true, status: 'Available' });
    expect(await t.deps.store.getJob(job.id)).toMatchObject({
      status: 'Available',
      verifiedAt: new Date(at),
      reverifyDueAt: new Date('2026-12-06T10:00:00.000Z'),
      manifestKeyId: 'local:key-1',
    });
    const [row] = await auditRows(job.id, 'job.available');
    expect(row?.detail).toMatchObject({ rehashedByControlPlane: true, manifestKeyId: 'local:key-1' });
  });
});

describe('recordReverification', () => {
  const expected = { sizeBytes: 1234, sha256: 'a'.repeat(64) };

  it('records an intact backup with integrity.verified and the next due date from the policy (5 days)', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid, status: 'Available' });
    const at = '2026-12-01T10:00:00.000Z';
    expect(await recordReverification({ jobId: job.id, at, expected, found: { ok: true, ...expected } })).toEqual({ ok: true, status: 'Available' });
    const after = await t.deps.store.getJob(job.id);
    expect(after).toMatchObject({ status: 'Available', verifiedAt: new Date(at), reverifyDueAt: new Date('2026-12-06T10:00:00.000Z') });
    const [row] = await auditRows(job.id, 'integrity.verified');
    expect(row?.detail).toMatchObject({ databaseId: seeded.database.id, trigger: 'schedule', sha256: expected.sha256, nextDueAt: '2026-12-06T10:00:00.000Z' });
  });

  it('moves a changed backup to Corrupt with integrity.failed naming both digests, attributed to who asked', async () => {
    const job = await seedJob(t.deps.store, seeded, { requesterOid, status: 'Available' });
    const auditor = { actorType: 'user' as const, actorId: 'oid-auditor', actorName: 'auditor@contoso.example' };
    const found = { ok: true as const, sizeBytes: 1234, sha256: 'b'.repeat(64) };
    const at = '2026-12-01T11:00:00.000Z';
    expect(await recordReverification({ jobId: job.id, at, expected, found, requestedBy: auditor })).toEqual({ ok: true, status: 'Corrupt' });
    expect(await t.deps.store.getJob(job.id)).toMatchObject({ status: 'Corrupt', corruptAt: new Date(at), errorCode: 'integrity_failed', reverifyDueAt: null });
    const [row] = await auditRows(job.id, 'integrity.failed');
    expect(row).toMatchObject({ actorId: 'oid-auditor' });
    expect(row?.detail).toMatchObject({
      databaseId: seeded.database.id,
      trigger: 'request',
      check: 'sha256_mismatch',
      expectedSha256: 'a'.repeat(64),
      foundSha256: 'b'.repeat(64),
    });
    // Recorded twice (a re-run): still Corrupt, one audit row.
    expect(await recordReverification({ jobId: job.id, at, expected, found })).toEqual({ ok: true, status: 'Corrupt' });
    expect(await auditRows(job.id, 'integrity.failed')).toHaveLength(1);
  });
});

describe('re-verification end to end (timer → reverifyBackup → Corrupt → links refused)', () => {
  it('finds one flipped byte in Azurite, marks the job Corrupt and refuses its download links with the reason', async () => {
    const host = new InProcessDurableHost({
      orchestrators: { [REVERIFY_BACKUP_ORCHESTRATOR]: reverifyBackupOrchestrator },
      activities: integrityActivities,
    });
    const orchestrations = inProcessJobOrchestrations(host, 'unused');
    try {
      const bytes = randomBytes(3 * BUDGET + 7);
      const intact = await availableJobWith(bytes);
      const tampered = await availableJobWith(bytes);
      // One byte in the middle of the stored blob flips (bit rot, or someone with write access).
      const changed = Buffer.from(bytes);
      changed[Math.floor(changed.length / 2)]! ^= 0x01;
      await putBlob(tampered.blobPath, changed);

      const report = await startDueReverifications(t.deps, orchestrations);
      expect(report.started).toEqual(expect.arrayContaining([intact.id, tampered.id]));
      await host.whenIdle();
      // A second tick while nothing changed starts nothing new for these jobs (they are no longer due).
      expect((await startDueReverifications(t.deps, orchestrations)).started).not.toContain(intact.id);

      expect(await t.deps.store.getJob(intact.id)).toMatchObject({ status: 'Available' });
      expect((await t.deps.store.getJob(intact.id))!.reverifyDueAt!.getTime()).toBeGreaterThan(Date.now() + 4 * 86_400_000);
      expect(await auditRows(intact.id, 'integrity.verified')).toHaveLength(1);

      const corrupt = await t.deps.store.getJob(tampered.id);
      expect(corrupt).toMatchObject({ status: 'Corrupt', errorCode: 'integrity_failed' });
      const [failed] = await auditRows(tampered.id, 'integrity.failed');
      expect(failed?.detail).toMatchObject({ check: 'sha256_mismatch', expectedSha256: sha256(bytes), foundSha256: sha256(changed) });

      // The requester's link request is refused with 409 naming the reason, and the refusal is audited.
      const token = t.tokens.requester({ oid: requesterOid, extraGroups: [seeded.requesterGroupId] });
      const refused = await invoke(createDownloadLink, { method: 'POST', path: `jobs/${tampered.id}/download-link`, params: { id: tampered.id }, token, body: {} });
      expect(refused.status).toBe(409);
      expect(refused.json).toMatchObject({ jobStatus: 'Corrupt', reason: 'integrity_failed', corruptAt: corrupt!.corruptAt!.toISOString() });
      expect(refused.json.detail).toContain(`SHA-256 is ${sha256(changed)}`);
      expect(await auditRows(tampered.id, 'sas.download_denied')).toHaveLength(1);

      // The job view shows when and why.
      const view = await invoke(getJob, { path: `jobs/${tampered.id}`, params: { id: tampered.id }, token });
      expect(view.json).toMatchObject({
        status: 'Corrupt',
        error: { code: 'integrity_failed' },
        integrity: { corruptAt: corrupt!.corruptAt!.toISOString(), reverifyDueAt: null },
      });
      // The intact one still gets its link.
      const link = await invoke(createDownloadLink, { method: 'POST', path: `jobs/${intact.id}/download-link`, params: { id: intact.id }, token, body: {} });
      expect(link.status).toBe(200);
    } finally {
      host.close();
    }
  });
});
