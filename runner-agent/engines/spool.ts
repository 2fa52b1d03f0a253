/**
 * Spooling a streamed backup to a file in the work directory before it is uploaded (`postgres.spoolToWorkDir`):
 * the engine runs to its end (and its restore check passes) without waiting on the network, and the upload reads
 * a finished local file, which a crashed attempt's successor can upload again, resuming where the blocks stop,
 * without backing the database up a second time. Costs disk room for the largest backup and one local read.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { JobFailure, isJobFailure } from '../errors.js';
import { errorMessage } from '../../shared/errors.js';
import type { EngineBackup } from './types.js';

export async function spoolToFile(backup: EngineBackup, path: string): Promise<EngineBackup> {
  try {
    await pipeline(backup.stream, createWriteStream(path, { flags: 'wx' }));
    await backup.done;
  } catch (error) {
    backup.done.catch(() => undefined);
    await rm(path, { force: true });
    await backup.cleanup();
    if (isJobFailure(error)) throw error;
    const full = /ENOSPC/.test(errorMessage(error));
    throw new JobFailure(full ? 'disk_full' : 'spool_failed', `Writing the backup to ${path} failed: ${errorMessage(error)}`, { cause: error });
  }
  const { size } = await stat(path);
  return {
    stream: createReadStream(path, { highWaterMark: 1024 * 1024 }),
    done: Promise.resolve(),
    sizeHint: size,
    ...(backup.restoreCheck ? { restoreCheck: backup.restoreCheck } : {}),
    ...(backup.tableRowCounts ? { tableRowCounts: backup.tableRowCounts } : {}),
    localFile: path,
    cleanup: async () => {
      await rm(path, { force: true });
      await backup.cleanup();
    },
  };
}
