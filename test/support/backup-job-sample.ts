/**
 * One sample job as the orchestration sees it after `prepareJob`, the runner's reports about it, and the answers
 * that take it to Available: for replay tests of both backup orchestrators and the replay benchmark, which drive
 * the orchestrators with the same answers.
 */
import { ACTIVITY, type PreparedJob } from '../../orchestrations/backupJob.activities.js';
import { INTEGRITY_ACTIVITY } from '../../orchestrations/integrity.activities.js';
import { ORCHESTRATION_EVENTS, type RunnerEvent } from '../../shared/contracts/runner.js';
import { OrchestrationDriver } from '../../dev/durable-history.js';

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

export const SAMPLE_SHA256 = 'ab'.repeat(32);
/** A user's request (`Cancel`/`Delete` payload) and the audit actor it must become. */
export const ALICE_REQUEST = { by: { type: 'user', id: 'oid-alice', name: 'alice@corp.example' } };
export const ALICE_ACTOR = { actorType: 'user', actorId: 'oid-alice', actorName: 'alice@corp.example' };
export const done = (status: string) => ({ ok: true, status });

let eventCounter = 0;
const nextEventId = (kind: string) => `evt-${kind}-${++eventCounter}`;
export const accepted = (over: Partial<RunnerEvent> = {}): RunnerEvent =>
  ({ type: 'accepted', eventId: nextEventId('accepted'), runnerId: 'runner-eu-1', attempt: 1, ...over }) as RunnerEvent;
export const progress = (percent: number, bytes: number, eventId = nextEventId('progress')): RunnerEvent => ({ type: 'progress', eventId, percent, bytes });
export const uploaded = (over: Partial<RunnerEvent> = {}): RunnerEvent =>
  ({
    type: 'uploaded',
    eventId: nextEventId('uploaded'),
    blobPath: BLOB_PATH,
    sizeBytes: 4096,
    sha256: SAMPLE_SHA256,
    compression: 'none',
    encrypted: false,
    ...over,
  }) as RunnerEvent;
export const failed = (code: string, message: string): RunnerEvent => ({ type: 'failed', eventId: nextEventId('failed'), code, message });

export const runnerSays = (run: OrchestrationDriver, event: RunnerEvent) => run.raiseEvent(ORCHESTRATION_EVENTS.runner, event);

type Orchestrator = Parameters<typeof OrchestrationDriver.start>[0];
export interface SampleRunOptions {
  policy?: Partial<PreparedJob['policy']>;
  schemaVersion?: number;
}

/** The sample job started on `orchestrator` and answered up to "Queued, waiting for a runner". */
export async function queuedSampleJob(orchestrator: Orchestrator, name: string, options: SampleRunOptions = {}): Promise<OrchestrationDriver> {
  const run = await OrchestrationDriver.start(orchestrator, {
    instanceId: JOB_ID,
    input: { jobId: JOB_ID },
    startAt: T0,
    name,
    ...(options.schemaVersion === undefined ? {} : { schemaVersion: options.schemaVersion }),
  });
  await run.completeActivity(ACTIVITY.prepareJob, preparedJob(options.policy));
  await run.completeActivity(ACTIVITY.enqueueJob, done('Queued'));
  return run;
}

/** …then accepted by a runner and Running. */
export async function runningSampleJob(orchestrator: Orchestrator, name: string, options: SampleRunOptions = {}): Promise<OrchestrationDriver> {
  const run = await queuedSampleJob(orchestrator, name, options);
  await runnerSays(run, accepted());
  await run.completeActivity(ACTIVITY.markRunning, done('Running'));
  return run;
}

/** …then uploaded, verified and Available with its first link. */
export async function availableSampleJob(orchestrator: Orchestrator, name: string, options: SampleRunOptions = {}): Promise<OrchestrationDriver> {
  const run = await runningSampleJob(orchestrator, name, options);
  await runnerSays(run, uploaded());
  await run.completeActivity(ACTIVITY.beginVerification, done('Verifying'));
  await run.completeActivity(ACTIVITY.verifyUpload, { ok: true, sizeBytes: 4096, sha256: SAMPLE_SHA256 });
  await answerIntegritySteps(run);
  await run.completeActivity(ACTIVITY.markAvailable, done('Available'));
  await run.completeActivity(ACTIVITY.issueDownloadLink, { ok: true, expiresAt: new Date(run.now.getTime() + 3_600_000).toISOString(), reused: false });
  return run;
}

/** The sample's re-hash result (one slice: the sample blob is small) and the key that signs its manifest. */
export const SAMPLE_REHASH = { ok: true, done: true, sizeBytes: 4096, sha256: SAMPLE_SHA256 } as const;
export const SAMPLE_MANIFEST_KEY_ID = 'https://kv-sample.vault.azure.net/keys/manifest-signing/0001';

/** backupJob2's integrity steps, answered as for an honest upload (v1 has none: nothing is pending then). */
export async function answerIntegritySteps(run: OrchestrationDriver): Promise<void> {
  if (!run.waitingActivities.some((activity) => activity.name === INTEGRITY_ACTIVITY.rehashBlob)) return;
  await run.completeActivity(INTEGRITY_ACTIVITY.rehashBlob, SAMPLE_REHASH);
  await run.completeActivity(INTEGRITY_ACTIVITY.publishManifest, { ok: true, manifestKeyId: SAMPLE_MANIFEST_KEY_ID });
}
