/**
 * A restore rehearsal: proof that a stored backup restores, and how long that takes (the RTO evidence).
 *
 *   read SAS → download (SHA-256 of the stored bytes) → decrypt → decompress → restore into scratch →
 *   count rows per table → compare with the counts recorded at backup time → drop the scratch database
 *
 * A damaged blob fails twice over: the decoders or the restore choke on it, and the digest of what was read
 * differs from the one recorded at upload. The scratch database is dropped on every path.
 */
import { createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobClient } from '@azure/storage-blob';
import type { Compression } from '../../shared/contracts/common.js';
import { errorMessage } from '../../shared/errors.js';
import { JobFailure, isJobFailure } from '../errors.js';
import type { Logger } from '../logger.js';
import { createDecryptStream } from '../pipeline/crypto.js';
import { createDecompressStream } from '../pipeline/compression.js';
import { scratchName } from '../sanitize/scratch.js';
import type { ScratchDriver } from '../sanitize/types.js';

export interface RehearsalJob {
  /** Names the scratch database; the rehearsal's own id. */
  rehearsalId: string;
  compression: Compression;
  encrypted: boolean;
  /** What the control plane recorded at upload: the stored bytes' digest and the per-table row counts. */
  sha256: string;
  tableRowCounts?: Record<string, number>;
}

export interface RehearsalOutcome {
  result: 'passed' | 'failed';
  /** Download + restore, the time a real recovery would take to have the database back. */
  restoreDurationMs: number;
  tableRowCounts: Record<string, number>;
  /** Why it failed: a code and a sentence (no SAS, no data). */
  code?: string;
  message?: string;
}

export interface RehearsalOptions {
  /** A read-only SAS URL for the backup's blob, issued for this rehearsal. */
  sourceUrl: string;
  encryptionKey?: Buffer;
  signal: AbortSignal;
  attemptId: string;
  logger: Logger;
  now?: () => number;
  /** Opens the blob; default @azure/storage-blob's BlobClient on the SAS URL (tests pass the same, against Azurite). */
  open?: (url: string, signal: AbortSignal) => Promise<Readable>;
}

async function openBlob(url: string, signal: AbortSignal): Promise<Readable> {
  const response = await new BlobClient(url).download(0, undefined, { abortSignal: signal });
  if (!response.readableStreamBody) throw new JobFailure('download_failed', 'The backup blob has no body');
  return response.readableStreamBody as Readable;
}

/** Differences between recorded and restored counts, one sentence each. */
export function compareRowCounts(expected: Record<string, number>, actual: Record<string, number>): string[] {
  const tables = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
  return tables
    .filter((t) => expected[t] !== actual[t])
    .map((t) => `${t}: ${expected[t] ?? 'absent'} at backup, ${actual[t] ?? 'absent'} restored`);
}

export async function rehearseRestore(job: RehearsalJob, driver: ScratchDriver, options: RehearsalOptions): Promise<RehearsalOutcome> {
  const now = options.now ?? Date.now;
  const scratch = scratchName(driver.prefix, job.rehearsalId, options.attemptId);
  const log = options.logger.child({ rehearsalId: job.rehearsalId, scratch });
  if (job.encrypted && !options.encryptionKey) {
    return { result: 'failed', restoreDurationMs: 0, tableRowCounts: {}, code: 'encryption_key_missing', message: 'The backup is encrypted and this runner has no encryptionKeyFile' };
  }
  const started = now();
  let restoreDurationMs = 0;
  let restoring: Promise<void> | undefined;
  try {
    const digest = createHash('sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        digest.update(chunk);
        callback(null, chunk);
      },
    });
    const stages: NodeJS.ReadWriteStream[] = [hashing];
    if (job.encrypted) stages.push(createDecryptStream(options.encryptionKey!));
    const decompress = createDecompressStream(job.compression);
    if (decompress) stages.push(decompress);
    const source = await (options.open ?? openBlob)(options.sourceUrl, options.signal);
    const plain = new Transform({ transform: (chunk, _encoding, callback) => callback(null, chunk) });
    const decoded = pipeline(source, ...(stages as [NodeJS.ReadWriteStream]), plain);
    // A restore may stop reading before the end: the rest still flows through the digest.
    const restored = driver.restoreFromBackup(plain, scratch, options.signal).then(() => {
      plain.resume();
    });
    restoring = restored.catch(() => undefined);
    await Promise.all([decoded, restored]);
    restoreDurationMs = now() - started;
    const read = digest.digest('hex');
    if (read !== job.sha256) throw new JobFailure('backup_damaged', `The stored bytes' SHA-256 is ${read}, not ${job.sha256} as recorded at upload`);
    const tableRowCounts = await driver.countRows(scratch);
    const mismatches = job.tableRowCounts ? compareRowCounts(job.tableRowCounts, tableRowCounts) : [];
    if (mismatches.length > 0) {
      return { result: 'failed', restoreDurationMs, tableRowCounts, code: 'row_count_mismatch', message: mismatches.join('; ').slice(0, 4000) };
    }
    log.info({ restoreDurationMs, tables: Object.keys(tableRowCounts).length, countsChecked: Boolean(job.tableRowCounts) }, 'restore rehearsal passed');
    return { result: 'passed', restoreDurationMs, tableRowCounts };
  } catch (error) {
    if (options.signal.aborted) throw error;
    const code = isJobFailure(error) ? error.code : 'restore_failed';
    log.warn({ code, error: errorMessage(error) }, 'restore rehearsal failed');
    return { result: 'failed', restoreDurationMs: restoreDurationMs || now() - started, tableRowCounts: {}, code, message: errorMessage(error).slice(0, 4000) };
  } finally {
    // A download that fails at once (a wrong key, a damaged header) must not race the restore still creating the
    // scratch database: dropped before it exists, it would be left behind. The failed input stops the restore.
    await restoring;
    await driver.drop(scratch).catch((error: unknown) => log.error({ error: errorMessage(error) }, 'could not drop the scratch database; it is dropped at the next start-up'));
  }
}
