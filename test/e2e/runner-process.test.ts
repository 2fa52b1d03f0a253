/**
 * Full flow with the runner as its own OS process, started through the real CLI (`dbdist-runner start`) with
 * real MSAL (certificate credential at the local issuer), the real @azure/service-bus client and the real
 * pg_dump engine against a real PostgreSQL server. The API is reached through a loopback TCP proxy that the
 * tests cut; PostgreSQL through a throttled one (so the backup takes a few seconds, and each pg_dump run is one
 * counted connection). Short lock duration, delivery count and outage bound come from configuration only.
 * For the kill -9 case the runner's Blob Storage traffic goes through a counting CONNECT proxy (HTTPS_PROXY), so
 * the bytes sent again after the restart are measured on the wire, not taken from the runner's word.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startLocalStack, JOBS_TOPIC, type LocalStack } from '../../dev/stack.js';
import { prepareRunnerProcess, spawnRunner, type RunnerProcess } from '../../dev/runner-process.js';
import { startConnectProxy, startTcpProxy, type TcpProxy } from '../../dev/tcp-proxy.js';
import type { AuditRecord, JobRecord } from '../../shared/db/store.js';
import { postgresAvailable, startPostgres, type PostgresServer } from '../support/postgres.js';

type Json = Record<string, any>;
const LOCK_MS = 3_000;
const MAX_DELIVERIES = 5;
/** About 2.5 MB of table data at 600 KB/s: a pg_dump of some four seconds. */
const ROWS = 60_000;
const PG_BYTES_PER_SECOND = 600_000;

let stack: LocalStack;
let postgres: PostgresServer;
let databaseName: string;
let apiProxy: TcpProxy;
let dir: string;
const runners: RunnerProcess[] = [];
const proxies: TcpProxy[] = [];

const pgTest = describe.skipIf(!postgresAvailable);

beforeAll(async () => {
  if (!postgresAvailable) return;
  [stack, postgres] = await Promise.all([startLocalStack({ lockDurationMs: LOCK_MS, maxDeliveryCount: MAX_DELIVERIES }), startPostgres()]);
  const url = await postgres.createDatabase();
  databaseName = decodeURIComponent(new URL(url).pathname.slice(1));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`CREATE TABLE events AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload FROM generate_series(1, ${ROWS}) g`);
  await client.end();
  const api = new URL(stack.apiBaseUrl);
  apiProxy = await startTcpProxy({ target: { host: api.hostname, port: Number(api.port) } });
  dir = mkdtempSync(join(tmpdir(), 'dbdist-runner-process-'));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await apiProxy?.close();
  await postgres?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  stack?.interceptApi(undefined);
  apiProxy?.restore();
  await Promise.all(runners.splice(0).map((runner) => runner.stop('SIGKILL')));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

interface Served {
  serverId: string;
  databaseId: string;
  runner: RunnerProcess;
  /** Starts another runner process with the same config (the same work directory), as a restart after a crash. */
  restart(): Promise<RunnerProcess>;
  /** pg_dump runs so far (each is one connection through the throttled proxy; the engine's row-count snapshot
   * connection, application_name `dbdist-runner snapshot`, is not a run of its own and is not counted). */
  engineRuns: () => number;
  clientId: string;
}

/**
 * A server + database registered for this case, and a runner process (outage bound in seconds) serving it;
 * `spool` makes pg_dump write a local file first, `settings` and `env` go to the runner as they are.
 */
async function serveWithRunner(
  outageBoundSeconds: number,
  options: { bind?: boolean; spool?: boolean; settings?: Record<string, unknown>; env?: Record<string, string> } = {},
): Promise<Served> {
  // The engine's row-count snapshot (`postgres.recordRowCounts`, on by default) opens its own connection, in plain
  // text with application_name `dbdist-runner snapshot` (pg_dump's says `dbdist-runner`): counted apart.
  const pgProxy = await startTcpProxy({
    target: { host: postgres.host, port: postgres.port },
    bytesPerSecond: PG_BYTES_PER_SECOND,
    countConnectionsSending: Buffer.from('application_name\0dbdist-runner snapshot\0'),
  });
  proxies.push(pgProxy);
  const server = await stack.api<Json>('POST', '/api/servers', {
    token: stack.tokens.admin,
    body: { name: `pg-${Date.now()}`, host: `${postgres.host}:${postgres.port}`, engine: 'postgres' },
  });
  expect(server.status).toBe(201);
  const database = await stack.api<Json>('POST', `/api/servers/${server.body.id}/databases`, {
    token: stack.tokens.admin,
    body: { name: databaseName, requesterGroupIds: [stack.requesterGroupId] },
  });
  expect(database.status).toBe(201);
  const setup = await prepareRunnerProcess(stack, {
    serverId: server.body.id,
    dir,
    apiBaseUrl: `https://127.0.0.1:${apiProxy.port}`,
    postgres: {
      host: pgProxy.host,
      port: pgProxy.port,
      user: postgres.user,
      ...(new URL(postgres.url).password ? { password: decodeURIComponent(new URL(postgres.url).password) } : {}),
      ...(options.spool ? { spoolToWorkDir: true } : {}),
    },
    settings: { outageBoundSeconds, lockRenewalMaxMinutes: 10, logLevel: 'info', ...options.settings },
    bind: options.bind ?? true,
  });
  const start = async () => {
    const runner = spawnRunner(setup, { echo: Boolean(process.env.DBDIST_E2E_LOG), ...(options.env ? { env: options.env } : {}) });
    runners.push(runner);
    await runner.waitForLog((line) => line.msg === 'listening for backup jobs', 30_000);
    return runner;
  };
  return {
    serverId: server.body.id,
    databaseId: database.body.id,
    runner: await start(),
    restart: start,
    engineRuns: () => pgProxy.connections - pgProxy.connectionsSending,
    clientId: setup.clientId,
  };
}

async function requestBackup(databaseId: string): Promise<string> {
  const created = await stack.api<Json>('POST', '/api/jobs', { token: stack.tokens.alice, body: { databaseId, options: { compression: 'gzip' } } });
  expect(created.status).toBe(202);
  return created.body.id as string;
}

async function waitForJob(jobId: string, done: (job: JobRecord) => boolean, what: string, timeoutMs = 90_000): Promise<JobRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await stack.store.getJob(jobId);
    if (job && done(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not become ${what}; it is ${job?.status} (${job?.errorCode ?? ''} ${job?.errorMessage ?? ''})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const ended = (job: JobRecord) => ['Available', 'Failed', 'Cancelled', 'Expired'].includes(job.status);
const auditOf = async (jobId: string): Promise<AuditRecord[]> => (await stack.store.listAudit({ jobId, limit: 500 })).items;
const deadLettersOf = (served: Served, jobId: string) =>
  stack.broker.deadLetters(JOBS_TOPIC, `runner-${served.serverId}`).filter((m) => m.messageId === jobId || (m.body as Json)?.jobId === jobId);

/** A runner event of `type` for `jobId`, as the API host receives it. */
function isEvent(request: { path: string; body: Buffer }, jobId: string, type: string): boolean {
  if (!request.path.endsWith(`/runner/jobs/${jobId}/events`)) return false;
  try {
    return (JSON.parse(request.body.toString('utf8')) as Json).type === type;
  } catch {
    return false;
  }
}

pgTest('the runner as a separate process through API outages', () => {
  it('(a) API cut mid-backup for longer than a few deliveries would last, within the bound: Available once, no dead letter', async () => {
    const served = await serveWithRunner(60);
    const jobId = await requestBackup(served.databaseId);
    // Cut at the first progress report (the dump is streaming), for 20 s: several deliveries' worth under the
    // old abandon-on-failure handling (each delivery gave up after the API client's few seconds of retries).
    let cutAt = 0;
    stack.interceptApi((request) => {
      if (cutAt === 0 && isEvent(request, jobId, 'progress')) {
        cutAt = Date.now();
        apiProxy.cut();
        setTimeout(() => apiProxy.restore(), 20_000);
      }
      return 'pass';
    });
    const job = await waitForJob(jobId, ended, 'Available');
    expect(job.status).toBe('Available');
    expect(cutAt).toBeGreaterThan(0);
    expect(served.engineRuns()).toBe(1);
    expect(deadLettersOf(served, jobId)).toHaveLength(0);
    const actions = (await auditOf(jobId)).map((row) => row.action);
    expect(actions.filter((action) => action === 'job.available')).toHaveLength(1);
    // The runner said what it was waiting for.
    expect(served.runner.logs.some((line) => line.jobId === jobId && typeof line.waitingFor === 'string' && String(line.waitingFor).includes('API'))).toBe(true);
  }, 120_000);

  it('(b) API cut for a few seconds right after the commit: Available without a second backup', async () => {
    const served = await serveWithRunner(60);
    const jobId = await requestBackup(served.databaseId);
    let dropped = 0;
    stack.interceptApi((request) => {
      if (dropped === 0 && isEvent(request, jobId, 'uploaded')) {
        dropped += 1;
        apiProxy.cut();
        setTimeout(() => apiProxy.restore(), 5_000);
        return 'drop';
      }
      return 'pass';
    });
    const job = await waitForJob(jobId, ended, 'Available');
    expect(job.status).toBe('Available');
    expect(dropped).toBe(1);
    expect(served.engineRuns()).toBe(1);
    expect(deadLettersOf(served, jobId)).toHaveLength(0);
  }, 120_000);

  it('(b2) API gone longer than the bound right after the commit: the redelivery reports the committed blob, no second backup', async () => {
    const served = await serveWithRunner(4);
    const jobId = await requestBackup(served.databaseId);
    let dropped = 0;
    stack.interceptApi((request) => {
      if (dropped === 0 && isEvent(request, jobId, 'uploaded')) {
        dropped += 1;
        apiProxy.cut();
        setTimeout(() => apiProxy.restore(), 10_000);
        return 'drop';
      }
      return 'pass';
    });
    const job = await waitForJob(jobId, ended, 'Available');
    expect(job.status).toBe('Available');
    expect(served.engineRuns()).toBe(1);
    expect(deadLettersOf(served, jobId)).toHaveLength(0);
    expect(served.runner.logs.some((line) => line.messageId === jobId && line.msg === 'message settled' && line.action === 'abandon')).toBe(true);
    expect(served.runner.logs.some((line) => line.jobId === jobId && line.msg === 'backup already committed by an earlier delivery; reporting it')).toBe(true);
  }, 120_000);

  it('(c) API cut for longer than the bound: dead-lettered, and the job fails delivery_failed promptly, audited', async () => {
    const served = await serveWithRunner(2);
    const jobId = await requestBackup(served.databaseId);
    stack.interceptApi((request) => {
      if (!apiProxy.isCut && isEvent(request, jobId, 'progress')) apiProxy.cut(); // restored after the test
      return 'pass';
    });
    const job = await waitForJob(jobId, ended, 'Failed');
    expect(job).toMatchObject({ status: 'Failed', errorCode: 'delivery_failed' });
    expect(job.errorMessage).toContain('MaxDeliveryCountExceeded');
    const failedRow = (await auditOf(jobId)).find((row) => row.action === 'job.failed');
    expect(failedRow).toMatchObject({ actorType: 'system', actorId: 'dead-letter-watcher' });
    expect(failedRow?.detail).toMatchObject({ errorCode: 'delivery_failed', deadLetterReason: 'MaxDeliveryCountExceeded', deliveryCount: MAX_DELIVERIES });
    // Every delivery was abandoned by the runner only after waiting out the bound; the last one dead-lettered it.
    const abandons = served.runner.logs.filter((line) => line.messageId === jobId && line.msg === 'message settled' && line.action === 'abandon');
    expect(abandons).toHaveLength(MAX_DELIVERIES);
    const lastAbandonAt = Math.max(...abandons.map((line) => (typeof line.time === 'number' ? line.time : Date.parse(String(line.time)))));
    expect(job.completedAt!.getTime() - lastAbandonAt).toBeLessThan(5_000);
    // The dead letter was handled (completed right after the job failed), not left behind.
    const deadline = Date.now() + 5_000;
    while (deadLettersOf(served, jobId).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(deadLettersOf(served, jobId)).toHaveLength(0);
    expect(served.engineRuns()).toBe(1);
  }, 120_000);

  it('(d) kill -9 mid-upload of a spooled local dump, restart: no second dump, re-sent bytes < one block + the blocks in flight', async () => {
    const BLOCK = 64 * 1024;
    const PARALLELISM = 2;
    // The runner's Blob Storage traffic goes through a counting CONNECT proxy (HTTPS_PROXY, honoured by the Azure
    // SDK), throttled so the upload of some 35 blocks lasts a few seconds.
    const blobProxy = await startConnectProxy({ bytesPerSecond: 250_000 });
    proxies.push(blobProxy as unknown as TcpProxy);
    const served = await serveWithRunner(60, {
      spool: true,
      settings: { upload: { blockKiB: BLOCK / 1024, parallelism: PARALLELISM } },
      env: { HTTPS_PROXY: blobProxy.url },
    });
    const jobId = await requestBackup(served.databaseId);
    const { blobPath } = (await stack.store.getJob(jobId))!;
    const staged = () => stack.deps.blobs.listStagedBlocks(blobPath);
    // Kill once ten blocks are staged, as the blob itself shows.
    const deadline = Date.now() + 60_000;
    while ((await staged()).length < 10) {
      if (Date.now() > deadline) throw new Error('the upload never got ten blocks staged');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await served.runner.stop('SIGKILL');
    // What the killed runner had sent still arrives (as over a real network); then the service has it all.
    for (const until = Date.now() + 30_000; blobProxy.openTunnels > 0 && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(blobProxy.openTunnels).toBe(0);
    const uploadedBeforeKill = blobProxy.bytesUp;

    // The dump was finished before the upload began: its checkpoint names it. Its digest is what must be stored.
    const checkpoint = JSON.parse(readFileSync(join(dir, 'work', `dbdist-${jobId}.checkpoint.json`), 'utf8')) as Json;
    const dumpSha256 = createHash('sha256').update(readFileSync(checkpoint.file.path as string)).digest('hex');
    const before = await staged();
    const stagedBytes = before.reduce((sum, block) => sum + block.sizeBytes, 0);

    blobProxy.resetCounts();
    const restarted = await served.restart();
    const job = await waitForJob(jobId, ended, 'Available');
    expect(job.status).toBe('Available');
    expect(served.engineRuns()).toBe(1); // the spooled dump was uploaded again, the database not dumped again
    expect((await auditOf(jobId)).filter((row) => row.action === 'job.available')).toHaveLength(1);

    // Everything the restarted runner sent to Blob Storage (TLS and HTTP overhead included), less the blob's bytes
    // no block of the killed runner held, was sent twice. At most `parallelism` blocks can have been in flight.
    const resent = blobProxy.bytesUp - (job.sizeBytes! - stagedBytes);
    console.info(
      `(d) blob ${job.sizeBytes} bytes; staged before the kill ${before.length} blocks (${stagedBytes} bytes); sent before the kill ` +
        `${uploadedBeforeKill}, after the restart ${blobProxy.bytesUp}; re-sent ${resent} < ${BLOCK} + ${PARALLELISM} × ${BLOCK} in flight`,
    );
    expect(stagedBytes).toBeGreaterThanOrEqual(10 * BLOCK);
    expect(resent).toBeLessThan(BLOCK + PARALLELISM * BLOCK);

    const resumed = restarted.logs.find((line) => line.jobId === jobId && String(line.msg).startsWith(`resumed upload of job ${jobId}:`));
    expect(resumed?.reusedBlocks).toBeGreaterThanOrEqual(before.length);
    expect(restarted.logs.some((line) => line.jobId === jobId && line.msg === 'an earlier attempt finished the backup: uploading its local file, not backing up again')).toBe(true);
    // What is stored is the dump the killed runner made, and nothing is left in the work directory.
    const stored = createHash('sha256');
    const download = await stack.azurite.serviceClient.getContainerClient(stack.container).getBlobClient(blobPath).download();
    await pipeline(download.readableStreamBody!, createGunzip(), new Writable({ write: (chunk: Buffer, _e, done) => (stored.update(chunk), done()) }));
    expect(stored.digest('hex')).toBe(dumpSha256);
    expect(readdirSync(join(dir, 'work')).filter((name) => name.includes(jobId))).toEqual([]);
  }, 120_000);

  it('a bound runner process shows in GET /api/runners; an unbound one is refused (403, runner.denied audited) and never backs up', async () => {
    const bound = await serveWithRunner(60);
    const unbound = await serveWithRunner(1, { bind: false });
    await unbound.runner.waitForLog((line) => String(line.msg).includes('does not bind this runner'), 15_000);
    let runners = await stack.api<Json>('GET', '/api/runners', { token: stack.tokens.admin });
    for (let tries = 0; tries < 50 && !runners.body.runners.some((r: Json) => r.clientId === bound.clientId); tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      runners = await stack.api<Json>('GET', '/api/runners', { token: stack.tokens.admin });
    }
    expect(runners.status).toBe(200);
    const seen = runners.body.runners.find((r: Json) => r.clientId === bound.clientId);
    expect(seen).toMatchObject({ health: 'live', serverIds: [bound.serverId], inFlightJobs: 0 });
    expect(seen.freeScratchBytes).toBeGreaterThan(0);
    const uncovered = runners.body.serversWithoutLiveRunner.map((s: Json) => s.id);
    expect(uncovered).not.toContain(bound.serverId);
    expect(uncovered).toContain(unbound.serverId);

    const jobId = await requestBackup(unbound.databaseId);
    const deadline = Date.now() + 30_000;
    let denied: AuditRecord | undefined;
    while (!denied && Date.now() < deadline) {
      denied = (await auditOf(jobId)).find((row) => row.action === 'runner.denied');
      if (!denied) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(denied).toMatchObject({ actorType: 'app', detail: { endpoint: 'events', serverId: unbound.serverId, clientId: unbound.clientId } });
    expect(unbound.engineRuns()).toBe(0);
    expect((await stack.store.getJob(jobId))?.status).toBe('Queued');
  }, 120_000);
});
