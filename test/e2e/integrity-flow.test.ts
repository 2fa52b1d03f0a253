/**
 * Integrity through the whole stack (dev/stack.ts: real handlers, backupJob2 replayed in-process, Azurite, the
 * real runner agent): a runner that lies about its digest and writes matching metadata is caught by the control
 * plane's own re-hash; an honest backup comes with sidecars a requester can check with `sha256sum -c` and the
 * signed manifest with `dbdist-runner verify`'s checker; re-verification on request finds a flipped byte.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockBlobClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll, startLocalStack, type LocalStack } from '../../dev/stack.js';
import { startEmbeddedSource, type EmbeddedSource } from '../../dev/embedded-source.js';
import { verifyDownload } from '../../runner-agent/verify.js';
import type { JobRecord } from '../../shared/db/store.js';
import { waitForJob as waitForJobIn } from '../support/jobs.js';
import { sidecarPaths } from '../../shared/storage/paths.js';

type Json = Record<string, any>;

let stack: LocalStack;
let source: EmbeddedSource;
let serverId: string;
let databaseId: string;

beforeAll(async () => {
  [stack, source] = await Promise.all([startLocalStack({ lockDurationMs: 5_000, rehashBudgetBytes: 64 * 1024 }), startEmbeddedSource({ customers: 300 })]);
  const server = await stack.api<Json>('POST', '/api/servers', { token: stack.tokens.admin, body: { name: 'demo', host: 'embedded', engine: 'postgres' } });
  serverId = server.body.id;
  const database = await stack.api<Json>('POST', `/api/servers/${serverId}/databases`, {
    token: stack.tokens.admin,
    body: { name: source.databaseName, requesterGroupIds: [stack.requesterGroupId] },
  });
  databaseId = database.body.id;
});

afterAll(async () => {
  await stack?.stop();
  await source?.close();
});

async function requestBackup(): Promise<string> {
  const created = await stack.api<Json>('POST', '/api/jobs', { token: stack.tokens.alice, body: { databaseId, options: { compression: 'none' } } });
  expect(created.status).toBe(202);
  return created.body.id as string;
}

function waitForJob(jobId: string, done: (job: JobRecord) => boolean, what: string, timeoutMs = 60_000): Promise<JobRecord> {
  return waitForJobIn(stack.store, jobId, done, what, timeoutMs);
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('integrity on the whole stack', () => {
  it('catches a runner that reports a wrong SHA-256 and writes matching metadata: Failed, blob deleted, both digests audited', async () => {
    const jobId = await requestBackup();
    const queued = await waitForJob(jobId, (job) => job.status === 'Queued', 'Queued');
    // The liar is a runner identity an Admin bound to the server: runner endpoints refuse unbound runners (403).
    const liar = { clientId: randomUUID(), servicePrincipalId: randomUUID() };
    await stack.bindRunner(serverId, liar);
    const liarToken = stack.issuer.issueAppToken({ roles: ['Runner'], appId: liar.clientId, oid: liar.servicePrincipalId, expiresIn: 3600 });
    const runnerApi = (path: string, body: unknown) => stack.api<Json>('POST', `/api/runner/jobs/${jobId}/${path}`, { token: liarToken, body });
    const event = (type: string, fields: Json) => runnerApi('events', { type, eventId: `${jobId}:liar:${type}:${randomUUID()}`, ...fields });

    expect((await event('accepted', { runnerId: 'liar', attempt: 1 })).status).toBe(202);
    const target = await runnerApi('upload-target', {});
    expect(target.status).toBe(200);
    // The bytes are one thing; the runner claims another digest, and writes that claim as the blob's metadata too.
    const bytes = randomBytes(300_000);
    const claimed = sha256(Buffer.from('not these bytes'));
    await new BlockBlobClient(target.body.url).upload(bytes, bytes.length, {
      metadata: { sha256: claimed, size: String(bytes.length), engine: 'postgres', jobid: jobId, server: 'demo', database: source.databaseName },
    });
    expect((await stack.deps.blobs.getBlobFacts(queued.blobPath))?.metadata.sha256).toBe(claimed);
    expect((await event('uploaded', { blobPath: queued.blobPath, sizeBytes: bytes.length, sha256: claimed, compression: 'none', encrypted: false })).status).toBe(202);

    const failed = await waitForJob(jobId, (job) => job.status === 'Failed', 'Failed');
    expect(failed.errorCode).toBe('integrity_mismatch');
    expect(await stack.deps.blobs.getBlobFacts(queued.blobPath)).toBeUndefined();
    expect(await stack.deps.blobs.getBlobFacts(sidecarPaths(queued.blobPath).manifest)).toBeUndefined();
    const [row] = (await stack.store.listAudit({ jobId, action: 'job.failed', limit: 5 })).items;
    expect(row?.detail).toMatchObject({ errorCode: 'integrity_mismatch', reportedSha256: claimed, foundSha256: sha256(bytes), partialBlobDeleted: true });
  });

  it('an honest backup is Available with sidecars that prove the download offline, until a flipped byte makes it Corrupt', async () => {
    const runner = await stack.startRunner({ serverId, engine: source.engine });
    let jobId: string;
    try {
      jobId = await requestBackup();
      await waitForJob(jobId, (job) => ['Available', 'Failed'].includes(job.status), 'Available');
    } finally {
      await runner.stop();
    }
    const job = (await stack.store.getJob(jobId))!;
    expect(job).toMatchObject({ status: 'Available', manifestKeyId: expect.any(String) });
    expect(job.verifiedAt).not.toBeNull();

    const link = await stack.api<Json>('POST', `/api/jobs/${jobId}/download-link`, { token: stack.tokens.alice, body: {} });
    expect(link.status).toBe(200);
    const dir = mkdtempSync(join(tmpdir(), 'dbdist-e2e-'));
    try {
      const file = join(dir, link.body.fileName);
      writeFileSync(file, await readAll((await fetch(link.body.url)).body!));
      for (const sidecar of [link.body.sidecars.sha256, link.body.sidecars.manifest]) {
        const response = await fetch(sidecar.url);
        expect(response.status).toBe(200);
        writeFileSync(join(dir, sidecar.fileName), Buffer.from(await response.arrayBuffer()));
      }
      const check = spawnSync('sha256sum', ['-c', link.body.sidecars.sha256.fileName], { cwd: dir, encoding: 'utf8' });
      expect(check.stdout.trim()).toBe(`${link.body.fileName}: OK`);
      const keys = await stack.api<Json>('GET', '/api/manifest-keys');
      const { readFileSync } = await import('node:fs');
      const verified = await verifyDownload({ file, manifestText: readFileSync(join(dir, link.body.sidecars.manifest.fileName), 'utf8'), keys: keys.body.keys });
      expect(verified.proved).toBe(true);
      expect(verified.lines.join('\n')).toContain(`job ${jobId}`);
      // Who took it, from the runner's report (the embedded demo engine runs no restore check).
      expect(verified.lines.join('\n')).toMatch(/by runner runner-[0-9a-f]+ \(attempt 1\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // One byte of the stored blob flips; an auditor asks for a re-verification.
    const blob = stack.azurite.serviceClient.getContainerClient(stack.container).getBlockBlobClient(job.blobPath);
    const stored = await blob.downloadToBuffer();
    stored[Math.floor(stored.length / 2)]! ^= 0x01;
    await blob.upload(stored, stored.length);
    const asked = await stack.api<Json>('POST', `/api/jobs/${jobId}/verify`, { token: stack.tokens.auditor });
    expect(asked.status).toBe(202);
    await waitForJob(jobId, (current) => current.status === 'Corrupt', 'Corrupt');
    const refused = await stack.api<Json>('POST', `/api/jobs/${jobId}/download-link`, { token: stack.tokens.alice, body: {} });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ jobStatus: 'Corrupt', reason: 'integrity_failed' });
  });
});
