/**
 * The whole mission on local stand-ins (dev/stack.ts — the same stack `npm run sandbox` runs): real HTTP
 * handlers over loopback HTTPS, the real backupJob orchestration replayed in-process, the real runner agent on
 * the real @azure/service-bus client (against the AMQP broker fixture), Azurite with user-delegation SAS,
 * PGlite as the store, real RS256 tokens.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll, startLocalStack, JOBS_TOPIC, type LocalStack } from '../../dev/stack.js';
import { startEmbeddedSource, restoreAndFingerprint, type EmbeddedSource } from '../../dev/embedded-source.js';
import type { BackupEngineDriver } from '../../runner-agent/engines/types.js';
import type { AuditRecord, JobRecord } from '../../shared/db/store.js';
import { sidecarPaths } from '../../shared/storage/paths.js';
import { waitForJob as waitForJobIn } from '../support/jobs.js';

type Json = Record<string, any>;

let stack: LocalStack;
let source: EmbeddedSource;
let serverId: string;
let databaseId: string;

beforeAll(async () => {
  [stack, source] = await Promise.all([startLocalStack({ lockDurationMs: 5_000, ...(process.env.DBDIST_E2E_LOG ? { log: (line: string) => console.log(line) } : {}) }), startEmbeddedSource({ customers: 500 })]);
  const server = await stack.api<Json>('POST', '/api/servers', { token: stack.tokens.admin, body: { name: 'demo', host: 'embedded', engine: 'postgres' } });
  expect(server.status).toBe(201);
  serverId = server.body.id;
  const database = await stack.api<Json>('POST', `/api/servers/${serverId}/databases`, {
    token: stack.tokens.admin,
    body: { name: source.databaseName, requesterGroupIds: [stack.requesterGroupId] },
  });
  expect(database.status).toBe(201);
  databaseId = database.body.id;
});

afterAll(async () => {
  await stack?.stop();
  await source?.close();
});

async function requestBackup(compression: 'none' | 'gzip' = 'none'): Promise<string> {
  const created = await stack.api<Json>('POST', '/api/jobs', { token: stack.tokens.alice, body: { databaseId, options: { compression } } });
  expect(created.status).toBe(202);
  return created.body.id as string;
}

function waitForJob(jobId: string, done: (job: JobRecord) => boolean, what: string, timeoutMs = 60_000): Promise<JobRecord> {
  return waitForJobIn(stack.store, jobId, done, what, timeoutMs);
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function auditOf(jobId: string): Promise<AuditRecord[]> {
  return (await stack.store.listAudit({ jobId, limit: 200 })).items;
}

function countActions(rows: AuditRecord[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const row of rows) counts[row.action] = (counts[row.action] ?? 0) + 1;
  return counts;
}

async function committedBlobs(): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of stack.azurite.serviceClient.getContainerClient(stack.container).listBlobsFlat()) names.push(blob.name);
  return names;
}

/** The embedded source's engine, holding its stream halfway until released: a backup "in progress". */
function gatedEngine(inner: BackupEngineDriver) {
  let reachedHalf!: () => void;
  const halfway = new Promise<void>((resolve) => (reachedHalf = resolve));
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const engine: BackupEngineDriver = {
    name: inner.name,
    check: () => inner.check(),
    async backup(job, options) {
      const backup = await inner.backup(job, options);
      const bytes = await readAll(backup.stream);
      async function* held() {
        const half = Math.floor(bytes.length / 2);
        yield bytes.subarray(0, half);
        reachedHalf();
        await gate;
        yield bytes.subarray(half);
      }
      // No size hint: the upload then uses the small test block size and stages the first half at once.
      return { stream: Readable.from(held()), done: backup.done, cleanup: backup.cleanup };
    },
  };
  return { engine, halfway, release: () => open() };
}

describe('full flow on local stand-ins', () => {
  let availableJobId: string;

  it('walks a request to an audited, verified download that restores the same data', async () => {
    const runner = await stack.startRunner({ serverId, engine: source.engine });
    try {
      const jobId = await requestBackup('none');
      const statuses: string[] = [];
      await waitForJob(jobId, (job) => {
        if (statuses.at(-1) !== job.status) statuses.push(job.status);
        return ['Available', 'Failed', 'Cancelled'].includes(job.status);
      }, 'Available');
      const job = (await stack.store.getJob(jobId))!;
      expect(job.status).toBe('Available');
      // Every state is passed through in order (a fast step may be missed by polling, never reordered).
      const order = ['Pending', 'Queued', 'Running', 'Verifying', 'Available'];
      expect(statuses.map((s) => order.indexOf(s))).toEqual([...statuses.map((s) => order.indexOf(s))].sort((a, b) => a - b));

      // The job shows no link; the requester mints one, returned once, and it downloads the exact bytes.
      const view = await stack.api<Json>('GET', `/api/jobs/${jobId}`, { token: stack.tokens.alice });
      expect(view.status).toBe(200);
      expect(view.body.downloadLink).toBeUndefined();
      const link = await stack.api<Json>('POST', `/api/jobs/${jobId}/download-link`, { token: stack.tokens.alice, body: {} });
      expect(link.status).toBe(200);
      const download = await fetch(link.body.url);
      expect(download.status).toBe(200);
      const bytes = await readAll(download.body!);
      expect(bytes.length).toBe(job.sizeBytes);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(job.sha256);
      expect(await restoreAndFingerprint(bytes)).toEqual(await source.fingerprint());

      // The auditor sees every step once, in order, and the SAS issued.
      const audit = await stack.api<Json>('GET', `/api/audit?jobId=${jobId}`, { token: stack.tokens.auditor });
      expect(audit.status).toBe(200);
      const actions = (audit.body.items as Json[]).map((row) => row.action).reverse();
      expect(actions.filter((a) => a.startsWith('job.'))).toEqual(['job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available']);
      expect(actions).toContain('sas.upload_issued');
      const issued = (audit.body.items as Json[]).filter((row) => row.action === 'sas.download_issued');
      expect(issued.map((row) => row.detail.correlationId)).toEqual([link.body.correlationId]);
      expect(stack.broker.counts(JOBS_TOPIC, `runner-${serverId}`)).toMatchObject({ active: 0, locked: 0, deadLettered: 0 });
      availableJobId = jobId;
    } finally {
      await runner.stop();
    }
  });

  it("refuses a link to someone else's backup and audits the attempt", async () => {
    const before = countActions(await auditOf(availableJobId));
    const denied = await stack.api<Json>('POST', `/api/jobs/${availableJobId}/download-link`, { token: stack.tokens.mallory, body: {} });
    expect(denied.status).toBe(403);
    expect(denied.headers.get('content-type')).toContain('application/problem+json');
    expect(denied.text).not.toContain('sig=');
    const after = countActions(await auditOf(availableJobId));
    expect(after['sas.download_denied'] ?? 0).toBe((before['sas.download_denied'] ?? 0) + 1);
    expect(after['sas.download_issued']).toBe(before['sas.download_issued']);
  });

  it('a download link stops working once it has expired', async () => {
    const realNow = stack.deps.now;
    // Issue the link as if it were two hours ago: by the storage service's clock it has already expired.
    stack.deps.now = () => new Date(Date.now() - 2 * 3600_000);
    let link: Json;
    try {
      const issued = await stack.api<Json>('POST', `/api/jobs/${availableJobId}/download-link`, { token: stack.tokens.alice, body: { ttlMinutes: 5 } });
      expect(issued.status).toBe(200);
      link = issued.body;
    } finally {
      stack.deps.now = realNow;
    }
    expect(Date.parse(link.expiresAt)).toBeLessThan(Date.now());
    const refused = await fetch(link.url);
    expect(refused.status).toBe(403);
    // A fresh link works again.
    const fresh = await stack.api<Json>('POST', `/api/jobs/${availableJobId}/download-link`, { token: stack.tokens.alice, body: {} });
    expect((await fetch(fresh.body.url)).status).toBe(200);
  });

  it('a runner killed mid-backup: the message comes back, the job completes once with one blob', async () => {
    const blobsBefore = await committedBlobs();
    const stalled = gatedEngine(source.engine);
    const first = await stack.startRunner({ serverId, engine: stalled.engine, blockBytes: 16 * 1024 });
    const jobId = await requestBackup('none');
    await stalled.halfway;
    await waitForJob(jobId, (job) => job.status === 'Running', 'Running');
    // The runner process dies: connections drop, nothing is settled or reported.
    await first.crash();

    const second = await stack.startRunner({ serverId, engine: source.engine, blockBytes: 16 * 1024 });
    try {
      const job = await waitForJob(jobId, (j) => ['Available', 'Failed', 'Cancelled'].includes(j.status), 'Available');
      expect(job.status).toBe('Available');
      await until(() => second.consumer.activeJobs === 0, 'the second runner to settle its message');

      // One backup blob, and beside it only its own two integrity sidecars (no second backup, no stray sidecars).
      const newBlobs = (await committedBlobs()).filter((name) => !blobsBefore.includes(name));
      const sidecars = sidecarPaths(job.blobPath);
      expect(newBlobs.filter((name) => !name.endsWith('.sha256') && !name.endsWith('.manifest.json'))).toEqual([job.blobPath]);
      expect([...newBlobs].sort()).toEqual([job.blobPath, sidecars.sha256, sidecars.manifest].sort());
      const props = await stack.azurite.serviceClient.getContainerClient(stack.container).getBlobClient(job.blobPath).getProperties();
      expect(props.contentLength).toBe(job.sizeBytes);
      expect(props.metadata?.sha256).toBe(job.sha256);

      const counts = countActions(await auditOf(jobId));
      expect(counts).toMatchObject({ 'job.requested': 1, 'job.queued': 1, 'job.running': 1, 'job.verifying': 1, 'job.available': 1 });
      expect(counts['job.failed']).toBeUndefined();
      expect(counts['sas.upload_issued']).toBeGreaterThanOrEqual(2);
      expect(stack.broker.counts(JOBS_TOPIC, `runner-${serverId}`)).toMatchObject({ active: 0, locked: 0, deadLettered: 0 });
      const delivered = stack.broker.messages(JOBS_TOPIC, `runner-${serverId}`);
      expect(delivered).toHaveLength(0);
    } finally {
      stalled.release();
      await second.stop();
    }
  });

  it('a cancel mid-backup ends Cancelled, stops the runner and leaves no blob', async () => {
    const blobsBefore = await committedBlobs();
    const stalled = gatedEngine(source.engine);
    const runner = await stack.startRunner({ serverId, engine: stalled.engine, blockBytes: 16 * 1024 });
    try {
      const jobId = await requestBackup('none');
      await stalled.halfway;
      await waitForJob(jobId, (job) => job.status === 'Running', 'Running');

      const cancel = await stack.api<Json>('POST', `/api/jobs/${jobId}/cancel`, { token: stack.tokens.alice });
      expect(cancel.status).toBe(202);
      const job = await waitForJob(jobId, (j) => j.status === 'Cancelled', 'Cancelled');
      expect(job.status).toBe('Cancelled');

      // The runner goes on, learns of the cancel on its next call (409) and stops without committing.
      stalled.release();
      await until(() => runner.consumer.activeJobs === 0, 'the runner to stop the cancelled job');
      await stack.durable.whenIdle();
      expect((await stack.store.getJob(jobId))!.status).toBe('Cancelled');
      // The runner asked once more just before committing, heard 409 and committed nothing.
      expect((await committedBlobs()).filter((name) => !blobsBefore.includes(name))).toEqual([]);
      // Once every write SAS of the job has expired the orchestration clears the blob path once more and ends.
      stack.durable.fireTimers(jobId, new Date(Date.now() + 2 * 3600_000));
      await stack.durable.whenIdle();
      expect((await stack.durable.getStatus(jobId)).runtimeStatus).toBe('Completed');
      expect((await committedBlobs()).filter((name) => !blobsBefore.includes(name))).toEqual([]);
      const counts = countActions(await auditOf(jobId));
      expect(counts).toMatchObject({ 'job.cancel_requested': 1, 'job.cancelled': 1 });
      expect(counts['job.available']).toBeUndefined();
      expect(stack.broker.counts(JOBS_TOPIC, `runner-${serverId}`)).toMatchObject({ active: 0, locked: 0, deadLettered: 0 });
    } finally {
      stalled.release();
      await runner.stop();
    }
  });

  it('leaves no SAS (no `sig=`) in any row of any table after all of the above', async () => {
    const tables = await stack.storeRows();
    // Guard against a vacuous pass: the flows above wrote jobs and audit rows, links issued among them.
    expect(Object.keys(tables)).toEqual(expect.arrayContaining(['public.jobs', 'public.audit_events']));
    expect(tables['public.audit_events']!.length).toBeGreaterThan(10);
    expect(JSON.stringify(tables['public.audit_events'])).toContain('sas.download_issued');
    const leaks = Object.entries(tables).flatMap(([table, rows]) =>
      rows.filter((row) => /sig=|[?&]sig%3D/i.test(JSON.stringify(row))).map((row) => `${table}: ${JSON.stringify(row).slice(0, 200)}`),
    );
    expect(leaks).toEqual([]);
  });
});
