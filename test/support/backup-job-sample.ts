/**
 * One sample job as the orchestration sees it after `prepareJob`: for replay tests of the backupJob
 * orchestrator and the replay benchmark, which drive the same orchestrator with the same answers.
 */
import type { PreparedJob } from '../../orchestrations/backupJob.activities.js';

export const JOB_ID = '6f1d2c3b-4a59-4e68-8d7c-0b1a2c3d4e5f';
export const SERVER_ID = '0d6b4b8e-2a7c-4f0e-9d55-3a1c2b4d5e6f';
export const DATABASE_ID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
export const BLOB_PATH = `backups/${SERVER_ID}/${DATABASE_ID}/${JOB_ID}.bak`;
/** When the sample job starts (orchestration time). */
export const T0 = new Date('2026-11-23T09:00:00.000Z');
export const UPLOAD_SAS_TTL_MINUTES = 30;
export const samplePolicy: PreparedJob['policy'] = { acceptTimeoutMinutes: 60, runTimeoutMinutes: 12 * 60, retentionDays: 7, maxSasTtlMinutes: 60 };

/** `prepareJob`'s answer for the sample job, with policy fields overridden as a test needs. */
export function preparedJob(overrides: Partial<PreparedJob['policy']> = {}): PreparedJob {
  return {
    ok: true,
    blobPath: BLOB_PATH,
    policy: { ...samplePolicy, ...overrides },
    uploadSasTtlMinutes: UPLOAD_SAS_TTL_MINUTES,
    message: {
      schemaVersion: 1,
      jobId: JOB_ID,
      serverId: SERVER_ID,
      server: { name: 'sql01', host: 'sql01.corp.example' },
      databaseId: DATABASE_ID,
      databaseName: 'Sales',
      engine: 'sqlserver',
      options: { compression: 'none', encryption: 'none' },
      blobPath: BLOB_PATH,
      requestedAt: T0.toISOString(),
    },
  };
}
