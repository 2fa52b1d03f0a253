/**
 * Resuming the upload of a local backup file (issue 12): the real job runner, the real upload pipeline and the
 * checkpoint in a real work directory, against Azurite behind real SAS URLs; Get Block List through the blob
 * gateway, as the control plane answers it. An attempt is cut short the way a shutdown past its grace period
 * does it (the message is given back; file and checkpoint stay, as after a kill -9), then the job is delivered
 * again. The engine is the real SQL Server engine; a scripted server writes the .bak into the work directory, as
 * BACKUP … TO DISK does (no SQL Server runs here). test/e2e/runner-process.test.ts kills a real runner process.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { BlockBlobClient } from '@azure/storage-blob';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupJobMessage } from '../../shared/contracts/messages.js';
import type { RunnerEvent, UploadedEvent } from '../../shared/contracts/runner.js';
import type { BlobGateway } from '../../shared/storage/gateway.js';
import { createSqlServerEngine } from '../../runner-agent/engines/sqlserver.js';
import type { BackupEngineDriver } from '../../runner-agent/engines/types.js';
import { runJob, type JobRunnerDeps } from '../../runner-agent/job-runner.js';
import { checkpointPath, sweepCheckpoints } from '../../runner-agent/pipeline/checkpoint.js';
import { createAgeDecryptStream, generateAgeIdentity } from '../../runner-agent/pipeline/age.js';
import { KeyedSemaphore } from '../../runner-agent/semaphore.js';
import { uploadBackup } from '../../runner-agent/pipeline/upload.js';
import { startAzurite, type Azurite } from '../../dev/azurite.js';
import { gatewayWithContainer, writeTarget } from './blob-target.js';
import { recordingPoolIn, scriptedServerSettings } from './engines/recording-pool.js';

const BLOCK = 64 * 1024;
/** About 3 MB of text-like rows: gzip makes some 25 blocks of 64 KiB out of it. */
const SOURCE = Buffer.from(
  Array.from({ length: 40_000 }, (_, i) => `${i}\t${createHash('sha256').update(String(i)).digest('hex')}\trow ${i % 97}\n`).join(''),
);
const SOURCE_SHA256 = createHash('sha256').update(SOURCE).digest('hex');

let azurite: Azurite;
let gateway: BlobGateway;
let container: string;
const dirs: string[] = [];

beforeAll(async () => {
  azurite = await startAzurite();
  ({ gateway, container } = await gatewayWithContainer(azurite));
}, 60_000);
afterAll(async () => {
  await azurite?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const sqlSettings = scriptedServerSettings;

/** The real SQL Server engine; the scripted server writes SOURCE as the .bak. Counts the BACKUP statements run. */
function sqlServerEngine(workDir: string): BackupEngineDriver & { readonly backups: number } {
  const { pool, calls } = recordingPoolIn(workDir)({ databases: ['Sales'], backupBytes: SOURCE });
  const engine = createSqlServerEngine(sqlSettings, { workDir, connect: async () => pool });
  return Object.defineProperty(engine, 'backups', { get: () => calls.filter((call) => call.command.startsWith('BACKUP DATABASE')).length }) as BackupEngineDriver & {
    readonly backups: number;
  };
}

interface Harness {
  deps: JobRunnerDeps;
  engine: ReturnType<typeof sqlServerEngine>;
  events: RunnerEvent[];
  logs: Array<Record<string, unknown>>;
  workDir: string;
  /** Blocks the service acknowledged (stageBlock calls that returned) in this harness's attempts. */
  staged: { count: number; bytes: number };
  /** Aborts the current attempt (a shutdown past its grace) once this many blocks were staged. */
  interruptAfterBlocks?: number;
  attempt(job: BackupJobMessage): ReturnType<typeof runJob>;
}

function harness(options: { blockBytes?: number; workDir?: string } = {}): Harness {
  const workDir = options.workDir ?? mkdtempSync(join(tmpdir(), 'dbdist-resume-'));
  dirs.push(workDir);
  const logs: Array<Record<string, unknown>> = [];
  const events: RunnerEvent[] = [];
  const engine = sqlServerEngine(workDir);
  let shutdown = new AbortController();
  const h: Harness = {
    engine,
    events,
    logs,
    workDir,
    staged: { count: 0, bytes: 0 },
    deps: {
      runnerId: 'resume-test',
      api: {
        postEvent: async (jobId, event) => {
          events.push(event);
          return { kind: 'ok', value: { jobId, status: 'Running', duplicate: false } };
        },
        uploadTarget: async (jobId) => ({ kind: 'ok', value: await writeTarget(gateway, `backups/${jobId}.bak.gz`) }),
        stagedBlocks: async (jobId) => {
          const blobPath = `backups/${jobId}.bak.gz`;
          return { kind: 'ok', value: { blobPath, blocks: await gateway.listStagedBlocks(blobPath) } };
        },
      },
      engines: { sqlserver: engine },
      semaphore: new KeyedSemaphore(1),
      logger: pino({ level: 'info' }, new Writable({ write: (line: Buffer, _e, done) => (logs.push(JSON.parse(line.toString())), done()) })),
      progress: { minIntervalMs: 0, heartbeatMs: 0 },
      workDir,
      outageBoundMs: 0,
      uploadOptions: {
        blockBytes: options.blockBytes ?? BLOCK,
        parallelism: 2,
        clientFor: (url) => {
          const client = new BlockBlobClient(url);
          const stageBlock = client.stageBlock.bind(client);
          client.stageBlock = async (...args: Parameters<BlockBlobClient['stageBlock']>) => {
            const response = await stageBlock(...args);
            h.staged.count += 1;
            h.staged.bytes += args[2];
            if (h.interruptAfterBlocks !== undefined && h.staged.count >= h.interruptAfterBlocks) shutdown.abort(new Error('runner shutting down'));
            return response;
          };
          return client;
        },
      },
    },
    attempt(job) {
      shutdown = new AbortController();
      return runJob(job, { deliveryCount: 0, signal: shutdown.signal }, h.deps);
    },
  };
  return h;
}

function message(options: { encrypted?: string } = {}): BackupJobMessage {
  const jobId = randomUUID();
  return {
    schemaVersion: 1,
    jobId,
    serverId: randomUUID(),
    server: { name: 'sql1', host: 'sql1.example' },
    databaseId: randomUUID(),
    databaseName: 'Sales',
    engine: 'sqlserver',
    options: { compression: 'gzip', encryption: options.encrypted ? 'age' : 'none' },
    ...(options.encrypted ? { ageRecipients: [options.encrypted] } : {}),
    blobPath: `backups/${jobId}.bak.gz`,
    requestedAt: new Date().toISOString(),
    runDeadline: new Date(Date.now() + 3_600_000).toISOString(),
  } as BackupJobMessage;
}

/** Runs an attempt that is cut short after `blocks` staged blocks; the message is given back. */
async function interruptedAttempt(h: Harness, job: BackupJobMessage, blocks: number): Promise<number> {
  h.interruptAfterBlocks = blocks;
  expect(await h.attempt(job)).toMatchObject({ action: 'abandon' });
  h.interruptAfterBlocks = undefined;
  const stagedBefore = (await gateway.listStagedBlocks(job.blobPath)).length;
  expect(stagedBefore).toBeGreaterThanOrEqual(blocks);
  h.staged = { count: 0, bytes: 0 };
  return stagedBefore;
}

/** The committed blob, decompressed (and decrypted): its SHA-256, and the size/digest of the stored bytes. */
async function stored(job: BackupJobMessage, identity?: string): Promise<{ sourceSha256: string; sha256: string; sizeBytes: number }> {
  const blob = azurite.serviceClient.getContainerClient(container).getBlobClient(job.blobPath);
  const bytes = await blob.downloadToBuffer();
  const hash = createHash('sha256');
  const sink = new Writable({ write: (chunk: Buffer, _e, done) => (hash.update(chunk), done()) });
  const body = (await blob.download()).readableStreamBody!;
  if (identity) await pipeline(body, createAgeDecryptStream([identity]), createGunzip(), sink);
  else await pipeline(body, createGunzip(), sink);
  return { sourceSha256: hash.digest('hex'), sha256: createHash('sha256').update(bytes).digest('hex'), sizeBytes: bytes.length };
}

const uploadedOf = (h: Harness) => h.events.find((e): e is UploadedEvent => e.type === 'uploaded');
const leftovers = async (h: Harness) => (await readdir(h.workDir)).sort();

describe('content block ids (upload pipeline)', () => {
  it('reuses a staged block only when its bytes match: a block that changed is sent again', async () => {
    const blobPath = `backups/${randomUUID()}.bak`;
    const first = Buffer.from(SOURCE.subarray(0, 10 * BLOCK));
    const second = Buffer.from(first);
    second[3 * BLOCK + 5] = second[3 * BLOCK + 5]! ^ 0xff; // block 3 differs, every other block is the same
    const upload = (source: Buffer, listStaged?: () => Promise<Array<{ id: string; sizeBytes: number }>>) =>
      uploadBackup({
        source: Readable.from([source]),
        sourceSizeHint: source.length,
        compression: 'none',
        getTarget: async () => writeTarget(gateway, blobPath),
        metadata: { engine: 'sqlserver', jobid: 'j', server: 's', database: 'd' },
        blockBytes: BLOCK,
        resume: listStaged ? { listStaged } : {},
        beforeCommit: async () => {
          if (!listStaged) throw new Error('an attempt that dies before its commit');
        },
      });
    await expect(upload(first)).rejects.toThrow('dies before its commit');
    expect(await gateway.listStagedBlocks(blobPath)).toHaveLength(10);

    const result = await upload(second, () => gateway.listStagedBlocks(blobPath));
    expect(result.resume).toEqual({ stagedBefore: 10, reusedBlocks: 9, reusedBytes: 9 * BLOCK, sentBytes: BLOCK });
    expect(result.sha256).toBe(createHash('sha256').update(second).digest('hex'));
    const stored = await azurite.serviceClient.getContainerClient(container).getBlobClient(blobPath).downloadToBuffer();
    expect(stored.equals(second)).toBe(true);
  });
});

describe('resuming the upload of a local backup file', () => {
  it('after an interrupted attempt: no second backup, staged blocks reused, only the blocks in flight sent again', async () => {
    const h = harness();
    const job = message();
    const stagedBefore = await interruptedAttempt(h, job, 8);
    // The attempt left its finished file and the checkpoint that vouches for it.
    expect(await leftovers(h)).toEqual([expect.stringMatching(/\.bak$/), `dbdist-${job.jobId}.checkpoint.json`].sort());

    expect(await h.attempt(job)).toEqual({ action: 'complete', reason: 'uploaded' });
    expect(h.engine.backups).toBe(1);
    const uploaded = uploadedOf(h)!;
    const blob = await stored(job);
    expect(blob.sourceSha256).toBe(SOURCE_SHA256);
    expect(uploaded).toMatchObject({ sha256: blob.sha256, sizeBytes: blob.sizeBytes, restoreCheck: { tool: 'RESTORE VERIFYONLY', ok: true } });
    // Every block the first attempt got staged was reused; what was sent is the rest of the blob.
    const resumed = h.logs.find((line) => String(line.msg).startsWith(`resumed upload of job ${job.jobId}`))!;
    expect(resumed.reusedBlocks).toBeGreaterThanOrEqual(stagedBefore);
    expect(h.staged.bytes).toBe(blob.sizeBytes - (resumed.reusedBytes as number));
    expect(h.staged.bytes).toBeLessThanOrEqual(blob.sizeBytes - stagedBefore * BLOCK);
    expect(h.logs.some((line) => String(line.msg).startsWith(`resuming upload of job ${job.jobId}: `) && (line.stagedBlocks as number) >= stagedBefore)).toBe(true);
    // Committed: file and checkpoint are gone.
    expect(await leftovers(h)).toEqual([]);
  });

  it('a changed local file is not trusted: checkpoint and file are discarded and the database is backed up again', async () => {
    const h = harness();
    const job = message();
    await interruptedAttempt(h, job, 4);
    const [file] = (await leftovers(h)).filter((name) => name.endsWith('.bak'));
    await appendFile(join(h.workDir, file!), 'tampered');

    expect(await h.attempt(job)).toEqual({ action: 'complete', reason: 'uploaded' });
    expect(h.engine.backups).toBe(2);
    expect(h.logs.some((line) => line.msg === 'discarded the upload checkpoint of an earlier attempt; starting clean' && String(line.reason).includes('changed'))).toBe(true);
    expect((await stored(job)).sourceSha256).toBe(SOURCE_SHA256);
    expect(await leftovers(h)).toEqual([]);
  });

  it('blocks gone from the blob (another commit discarded them): the file is still reused and every block is sent', async () => {
    const h = harness();
    const job = message();
    await interruptedAttempt(h, job, 6);
    // Put Block List discards every uncommitted block of the blob; this blob is not the job's backup (no job id).
    const other = azurite.serviceClient.getContainerClient(container).getBlockBlobClient(job.blobPath);
    const otherId = Buffer.from('other0-0000000000000000').toString('base64');
    await other.stageBlock(otherId, 'x', 1);
    await other.commitBlockList([otherId]);
    expect(await gateway.listStagedBlocks(job.blobPath)).toEqual([]);

    expect(await h.attempt(job)).toEqual({ action: 'complete', reason: 'uploaded' });
    expect(h.engine.backups).toBe(1);
    const blob = await stored(job);
    expect(blob.sourceSha256).toBe(SOURCE_SHA256);
    expect(h.staged.bytes).toBe(blob.sizeBytes);
    expect(h.logs.find((line) => String(line.msg).startsWith('resumed upload'))).toMatchObject({ reusedBlocks: 0 });
  });

  it("a changed block size setting: the resumed upload keeps the checkpoint's block size, so the staged blocks still fit", async () => {
    const first = harness();
    const job = message();
    const stagedBefore = await interruptedAttempt(first, job, 5);
    const second = harness({ blockBytes: 4 * BLOCK, workDir: first.workDir });

    expect(await second.attempt(job)).toEqual({ action: 'complete', reason: 'uploaded' });
    expect(second.engine.backups).toBe(0); // the second runner's engine never ran: the file was reused
    expect(second.logs.find((line) => String(line.msg).startsWith('resumed upload'))?.reusedBlocks).toBeGreaterThanOrEqual(stagedBefore);
    const blocks = await azurite.serviceClient.getContainerClient(container).getBlockBlobClient(job.blobPath).getBlockList('committed');
    expect(new Set(blocks.committedBlocks!.slice(0, -1).map((block) => block.size))).toEqual(new Set([BLOCK]));
    expect((await stored(job)).sourceSha256).toBe(SOURCE_SHA256);
  });

  it('an encrypted copy: the finished file is reused, but the upload starts over under a fresh key', async () => {
    const h = harness();
    const { identity, recipient } = generateAgeIdentity();
    const job = message({ encrypted: recipient });
    await interruptedAttempt(h, job, 4);
    const checkpoint = JSON.parse(await readFile(checkpointPath(h.workDir, job.jobId), 'utf8')) as Record<string, unknown>;
    expect(checkpoint.upload).toBeUndefined(); // nothing about the age stream (file key, nonce) is kept on disk

    expect(await h.attempt(job)).toEqual({ action: 'complete', reason: 'uploaded' });
    expect(h.engine.backups).toBe(1);
    const blob = await stored(job, identity);
    expect(blob.sourceSha256).toBe(SOURCE_SHA256);
    expect(h.staged.bytes).toBe(blob.sizeBytes);
    expect(h.logs.some((line) => String(line.msg).startsWith('resumed upload'))).toBe(false);
    expect(h.logs.some((line) => String(line.msg).startsWith('encrypted copy: its upload starts over'))).toBe(true);
  });

  it('a torn or foreign checkpoint is discarded and the attempt starts clean', async () => {
    const h = harness();
    const job = message();
    await writeFile(checkpointPath(h.workDir, job.jobId), '{"version":1,"jobId":');
    expect(await h.attempt(job)).toEqual({ action: 'complete', reason: 'uploaded' });
    expect(h.engine.backups).toBe(1);
    expect(h.logs.some((line) => line.msg === 'discarded the upload checkpoint of an earlier attempt; starting clean' && String(line.reason).includes('not JSON'))).toBe(true);
    expect(await leftovers(h)).toEqual([]);
  });

  it('a checkpoint past its run deadline is swept at start-up with its file, and so is a file no checkpoint names; a live one stays', async () => {
    const h = harness();
    const stale = { ...message(), runDeadline: new Date(Date.now() + 10 * 60_000).toISOString() };
    const live = message();
    await interruptedAttempt(h, stale, 2);
    await interruptedAttempt(h, live, 2);
    expect(await leftovers(h)).toHaveLength(4);
    // A file an attempt killed mid-BACKUP left behind: no checkpoint vouches for it.
    const stray = join(h.workDir, `dbdist-${randomUUID()}-0123456789abcdef.bak`);
    await writeFile(stray, 'partial');
    expect(await sweepCheckpoints(h.workDir)).toEqual([]);
    expect(await leftovers(h)).toHaveLength(4);
    expect(await sweepCheckpoints(h.workDir, Date.now() + 20 * 60_000)).toEqual([stale.jobId]);
    expect((await leftovers(h)).every((name) => name.includes(live.jobId))).toBe(true);
    expect(await leftovers(h)).toHaveLength(2);
  });
});
