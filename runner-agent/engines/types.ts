/**
 * What every backup engine offers the job runner. An engine produces the backup as a byte stream; the upload
 * pipeline decides where it goes. Engines know nothing about Service Bus, the API or Blob Storage.
 */
import type { Readable } from 'node:stream';
import type { BackupEngine, Compression } from '../../shared/contracts/common.js';
import type { RestoreCheck } from '../../shared/contracts/runner.js';
import { JobFailure } from '../errors.js';

export interface EngineJob {
  jobId: string;
  /** The database to back up, exactly as named in the job message. */
  databaseName: string;
  /** How the runner will compress the stream: an engine that can compress itself leaves it to the runner then. */
  compression?: Compression;
  /** Tables whose definition is kept but whose rows are left out (PostgreSQL only; others refuse). */
  excludeTableData?: Array<{ schema: string; table: string }>;
}

export interface EngineBackupOptions {
  /** Aborting stops the engine (kills pg_dump, cancels the T-SQL request). */
  signal: AbortSignal;
  /** Overall progress in percent (0–100), when the engine can tell. */
  onProgress: (percent: number) => void;
  /** Unique per attempt: names temp files so a retried attempt never meets an earlier one's leftovers. */
  attemptId: string;
}

export interface EngineBackup {
  /** The backup's bytes. Fails (errors) with a JobFailure when the engine fails, even after some bytes. */
  stream: Readable;
  /** Settles when the engine has finished: resolves on success, rejects with a JobFailure otherwise. */
  done: Promise<void>;
  /** Size of the stream when known up front (a finished .bak file). */
  sizeHint?: number;
  /** Overall percent once `bytesRead` bytes of the stream were consumed, when the engine can tell. */
  percentAfter?: (bytesRead: number) => number;
  /** The pre-commit restore check's verdict, once `done` resolved (undefined when the engine ran none). */
  restoreCheck?: () => RestoreCheck | undefined;
  /**
   * The backup is this finished file on the runner's disk, and `stream` reads it from its start: the job runner
   * checkpoints it so a crashed attempt's successor uploads it again without a second backup, and resumes the
   * upload (pipeline/checkpoint.ts). Unset for output streamed from a pipe, which cannot be replayed.
   */
  localFile?: string;
  /** Removes temp files; called once, whatever happened. */
  cleanup: () => Promise<void>;
  /** Rows per table (`schema.table`) in exactly what the stream holds, when the engine can count them. */
  tableRowCounts?: Record<string, number>;
}

export interface BackupEngineDriver {
  readonly name: BackupEngine;
  backup(job: EngineJob, options: EngineBackupOptions): Promise<EngineBackup>;
  /** Connectivity and permission check for the `check` command: a line saying what was verified. */
  check(): Promise<string>;
  /** Releases connections (shutdown). */
  close?(): Promise<void>;
}

/** Database names as the engines accept them: what a job message allows, minus control characters. */
export function assertDatabaseName(name: string): void {
  // eslint-disable-next-line no-control-regex
  if (name.length === 0 || name.length > 128 || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new JobFailure(
      'invalid_database_name',
      `Refusing database name ${JSON.stringify(name)}: it must have 1-128 characters and no control characters`,
    );
  }
}
