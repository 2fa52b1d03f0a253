/**
 * A small per-job checkpoint in the work directory, so a runner killed mid-upload of a LOCAL backup file (SQL
 * Server's `BACKUP … TO DISK` file, PostgreSQL's `postgres.spoolToWorkDir` dump) neither backs the database up
 * again nor sends again the blocks that already reached Blob Storage. Engine output streamed from a pipe cannot
 * be replayed, so such uploads have no checkpoint and restart clean.
 *
 *   dbdist-<jobId>.checkpoint.json = { the finished file (path, size, mtime) and the engine's verdict on it,
 *                                      then, once the upload starts, its block size, compression and blob path }
 *
 * It is written only after the engine finished and its restore check passed (RESTORE VERIFYONLY, pg_restore
 * --list), with the file flushed to disk first, so it never vouches for a half-written backup. A file whose size
 * or mtime no longer match is not trusted: checkpoint and file are discarded and the attempt starts clean.
 *
 * What was staged is not recorded here: the blob's uncommitted block list (Get Block List) is the truth, and
 * block ids bind their bytes (pipeline/upload.ts), so a resumed upload reuses a block only if its bytes match.
 * Encrypted uploads keep no upload part: a resumed age stream would need the file key on disk, and re-encrypting
 * changed plaintext under it would reuse nonces; they read the local file again under a fresh key instead.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { BackupEngine, Compression } from '../../shared/contracts/common.js';
import { RestoreCheck } from '../../shared/contracts/runner.js';
import { errorMessage } from '../../shared/errors.js';
import type { EngineBackup } from '../engines/types.js';

const CHECKPOINT_SUFFIX = '.checkpoint.json';

const UploadCheckpoint = z.object({
  version: z.literal(1),
  jobId: z.string().min(1),
  /** After it the job is refused anyway: the start-up sweep removes the checkpoint and its file. */
  runDeadline: z.string(),
  engine: BackupEngine,
  file: z.object({ path: z.string().min(1), sizeBytes: z.number().int().nonnegative(), mtimeMs: z.number() }),
  restoreCheck: RestoreCheck.optional(),
  tableRowCounts: z.record(z.string(), z.number().int().nonnegative()).optional(),
  /** Set when an unencrypted upload of the file started: a later attempt keeps these to find its blocks again. */
  upload: z.object({ blobPath: z.string().min(1), blockBytes: z.number().int().positive(), compression: Compression }).optional(),
});
export type UploadCheckpoint = z.infer<typeof UploadCheckpoint>;

export function checkpointPath(workDir: string, jobId: string): string {
  return join(workDir, `dbdist-${jobId}${CHECKPOINT_SUFFIX}`);
}

/** Flushes a file's bytes to disk; a directory too where the platform allows it (not on Windows). */
async function flush(path: string, mode: 'r' | 'r+'): Promise<void> {
  let handle;
  try {
    handle = await open(path, mode);
    await handle.sync();
  } catch {
    // A directory cannot be opened for sync on Windows; a file SQL Server wrote on a share may refuse r+. SQL
    // Server writes its backup files write-through, so the bytes are on disk when BACKUP returns.
  } finally {
    await handle?.close();
  }
}

/** Size and mtime of the finished local file, flushed to disk before anything vouches for it. */
export async function finishedFile(path: string): Promise<UploadCheckpoint['file']> {
  await flush(path, 'r+');
  const facts = await stat(path);
  return { path, sizeBytes: facts.size, mtimeMs: facts.mtimeMs };
}

/** Atomic replace: a crash leaves the old checkpoint or the new one, never a torn one. */
export async function saveCheckpoint(workDir: string, checkpoint: UploadCheckpoint): Promise<void> {
  const target = checkpointPath(workDir, checkpoint.jobId);
  const temp = `${target}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(JSON.stringify(UploadCheckpoint.parse(checkpoint)));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, target);
  await flush(workDir, 'r');
}

export type LoadedCheckpoint = { kind: 'none' } | { kind: 'usable'; checkpoint: UploadCheckpoint } | { kind: 'stale'; reason: string };

/**
 * The job's checkpoint if it still describes the file on disk. A stale one (unreadable, another job's, the file
 * gone or changed) is removed here with its file, so the caller simply starts clean.
 */
export async function loadCheckpoint(workDir: string, jobId: string, engine: BackupEngine): Promise<LoadedCheckpoint> {
  const path = checkpointPath(workDir, jobId);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return { kind: 'none' };
  }
  const stale = async (reason: string, filePath?: string): Promise<LoadedCheckpoint> => {
    await Promise.all([rm(path, { force: true }), filePath ? rm(filePath, { force: true }) : undefined]);
    return { kind: 'stale', reason };
  };
  let parsed;
  try {
    parsed = UploadCheckpoint.safeParse(JSON.parse(text));
  } catch (error) {
    return stale(`the checkpoint is not JSON (${errorMessage(error)})`);
  }
  if (!parsed.success) return stale('the checkpoint does not match this runner version');
  const checkpoint = parsed.data;
  if (checkpoint.jobId !== jobId) return stale(`the checkpoint is for job ${checkpoint.jobId}`);
  if (checkpoint.engine !== engine) return stale(`the checkpoint is for a ${checkpoint.engine} backup`, checkpoint.file.path);
  const facts = await stat(checkpoint.file.path).catch(() => undefined);
  if (!facts) return stale(`the local backup file ${checkpoint.file.path} is gone`);
  if (facts.size !== checkpoint.file.sizeBytes || facts.mtimeMs !== checkpoint.file.mtimeMs) {
    return stale(`the local backup file ${checkpoint.file.path} changed since the checkpoint`, checkpoint.file.path);
  }
  return { kind: 'usable', checkpoint };
}

/** Removes the checkpoint and, with `file`, the local backup file it names. */
export async function discardCheckpoint(workDir: string, jobId: string, file?: string): Promise<void> {
  await Promise.all([rm(checkpointPath(workDir, jobId), { force: true }), file ? rm(file, { force: true }) : undefined]);
}

/** A backup file an engine writes into workDir: `dbdist-<job id>-<attempt id>.bak|.dump`. */
const BACKUP_FILE = /^dbdist-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9a-f]{16}\.(bak|dump)$/i;

/**
 * At start-up, when no job runs yet: removes checkpoints (and their files) of jobs past their run deadline, which
 * no delivery can resume any more, unreadable ones, and backup files no checkpoint vouches for (an attempt killed
 * while the engine was still writing). Returns the job ids whose checkpoints were removed.
 */
export async function sweepCheckpoints(workDir: string, now: number = Date.now()): Promise<string[]> {
  const names = await readdir(workDir).catch(() => [] as string[]);
  const removed: string[] = [];
  const vouchedFor = new Set<string>();
  for (const name of names) {
    if (name.startsWith('dbdist-') && /\.checkpoint\.json\.[0-9a-f]+\.tmp$/.test(name)) {
      await rm(join(workDir, name), { force: true }); // a write cut short by a crash
      continue;
    }
    if (!name.startsWith('dbdist-') || !name.endsWith(CHECKPOINT_SUFFIX)) continue;
    const jobId = name.slice('dbdist-'.length, -CHECKPOINT_SUFFIX.length);
    const parsed = await readFile(join(workDir, name), 'utf8').then(
      (text) => UploadCheckpoint.safeParse(JSON.parse(text)),
      () => undefined,
    ).catch(() => undefined);
    const checkpoint = parsed?.success ? parsed.data : undefined;
    if (checkpoint && Date.parse(checkpoint.runDeadline) > now) {
      vouchedFor.add(resolve(checkpoint.file.path));
      continue;
    }
    await discardCheckpoint(workDir, jobId, checkpoint?.file.path);
    removed.push(jobId);
  }
  for (const name of names) {
    if (BACKUP_FILE.test(name) && !vouchedFor.has(resolve(workDir, name))) await rm(join(workDir, name), { force: true });
  }
  return removed;
}

/** The finished local backup a checkpoint vouches for, as an engine would hand it over (read from its start). */
export function backupFromCheckpoint(checkpoint: UploadCheckpoint): EngineBackup {
  const { path, sizeBytes } = checkpoint.file;
  return {
    stream: createReadStream(path, { highWaterMark: 1024 * 1024 }),
    done: Promise.resolve(),
    sizeHint: sizeBytes,
    percentAfter: (bytesRead) => (100 * Math.min(bytesRead, sizeBytes)) / Math.max(sizeBytes, 1),
    restoreCheck: () => checkpoint.restoreCheck,
    ...(checkpoint.tableRowCounts ? { tableRowCounts: checkpoint.tableRowCounts } : {}),
    localFile: path,
    cleanup: () => rm(path, { force: true }),
  };
}
