import type { OrchestrationContext, Task } from 'durable-functions';
import { describe, expect, it } from 'vitest';
import { ORCHESTRATION_EVENTS, type RunnerEvent } from '../../shared/contracts/runner.js';
import { BACKUP_JOB2_ORCHESTRATOR, backupJob2Orchestrator } from '../../orchestrations/backupJob2.js';
import { BACKUP_JOB_ORCHESTRATOR, backupJobOrchestrator, MAX_WAIT_MINUTES, type BackupJobOutcome } from '../../orchestrations/backupJob.js';
import {
  JobFlow,
  enqueueAndAwaitUpload,
  expire,
  isOutcome,
  prepare,
  publish,
  requestedBy,
  verify,
  type BackupJobInput,
} from '../../orchestrations/backupJob.flow.js';
import { ACTIVITY } from '../../orchestrations/backupJob.activities.js';
import { INTEGRITY_ACTIVITY } from '../../orchestrations/integrity.activities.js';
import { reachesOrchestration } from '../../services/runner.js';
import type { JobStatus } from '../../shared/contracts/jobs.js';
import { OrchestrationDriver, ReplayDivergenceError, ReplaySchema } from '../../dev/durable-history.js';
import {
  JOB_ID,
  SAMPLE_SHA256 as SHA,
  accepted,
  availableSampleJob,
  answerIntegritySteps,
  SAMPLE_MANIFEST_KEY_ID,
  BLOB_PATH,
  done,
  preparedJob,
  progress,
  queuedSampleJob,
  runnerSays,
  uploaded,
  type SampleRunOptions,
  ALICE_ACTOR,
  ALICE_REQUEST,
} from '../support/backup-job-sample.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const SECOND = 1000;

const names = (run: OrchestrationDriver) => run.calls.map((call) => call.name);
const outcome = (run: OrchestrationDriver) => run.output as BackupJobOutcome;
const availableJob = (options: SampleRunOptions = {}) => availableSampleJob(backupJob2Orchestrator, BACKUP_JOB2_ORCHESTRATOR, options);

/** The timers armed from the episode where the job became Available on (the retention chunks). */
const retentionTimers = (run: OrchestrationDriver, timersBefore: number) => run.timers.slice(timersBefore);
/** Call right after `availableJob`: the first chunk was armed in the episode that made the job Available. */
const firstRetentionTimer = (run: OrchestrationDriver) => run.timers.length - 1;

/**
 * `backupJob` exactly as it was before the hotfix (issue 18): the same steps, and a retention timer that is
 * cancelled on `Delete` whatever its length. Kept here to prove the replay driver catches what Azure would do.
 */
function* preHotfixBackupJob(context: OrchestrationContext): Generator<Task, BackupJobOutcome, unknown> {
  const { jobId } = context.df.getInput<BackupJobInput>();
  const flow = new JobFlow(context, jobId, BACKUP_JOB_ORCHESTRATOR);
  const prepared = yield* prepare(flow);
  if (isOutcome(prepared)) return prepared;
  const upload = yield* enqueueAndAwaitUpload(flow, prepared, 'record');
  if (isOutcome(upload)) return upload;
  const verified = yield* verify(flow, prepared, upload);
  if (isOutcome(verified)) return verified;
  const published = yield* publish(flow, prepared, verified);
  if (isOutcome(published)) return published;
  const deletion = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.delete);
  const retention = context.df.createTimer(published.expiresAt);
  const winner = yield context.df.Task.any([deletion, retention]);
  if (winner !== deletion) return yield* expire(flow, 'retention', undefined);
  retention.cancel();
  return yield* expire(flow, 'deleted', requestedBy(deletion.result).actor);
}

/** Delete on day 7 of a 30-day retention. */
async function deleteOnDay7(run: OrchestrationDriver): Promise<void> {
  const availableAt = run.now.getTime();
  await run.advanceTo(new Date(availableAt + 7 * DAY));
  await run.raiseEvent(ORCHESTRATION_EVENTS.delete, ALICE_REQUEST);
  expect(run.inputOf(ACTIVITY.expireBackup)).toMatchObject({ reason: 'deleted', actor: ALICE_ACTOR });
  await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));
}

/**
 * Delete 30 s before a timer fires (`boundary`); the first expireBackup attempt fails after 20 s, the retry
 * (5 s back-off) is still running when the timer fires, then succeeds.
 */
async function deleteJustBeforeATimerFires(run: OrchestrationDriver, boundary: number): Promise<void> {
  await run.advanceTo(new Date(boundary - 30 * SECOND));
  await run.raiseEvent(ORCHESTRATION_EVENTS.delete, ALICE_REQUEST);
  await run.advanceBy(20 * SECOND);
  await run.failActivity(ACTIVITY.expireBackup, 'blob service unavailable');
  expect(run.now.getTime()).toBe(boundary - 5 * SECOND); // the back-off timer fired: the retry is scheduled
  await run.advanceTo(new Date(boundary + 10 * SECOND)); // the timer fires while the retry runs
  await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));
}

describe('backupJob2 happy path, replay schema V4 (Azure)', () => {
  it('runs the shared steps, then waits out retention in chunks of at most 6 days and expires the backup', async () => {
    const run = await availableJob({ schemaVersion: ReplaySchema.V4, policy: { retentionDays: 7 } });
    const availableAt = run.now.getTime();
    const timersBefore = firstRetentionTimer(run);
    expect(run.customStatus).toMatchObject({ status: 'Available' });

    await run.advanceTo(new Date(availableAt + 7 * DAY - MINUTE));
    expect(run.waitingActivities).toEqual([]);
    await run.advanceTo(new Date(availableAt + 7 * DAY));
    expect(run.inputOf(ACTIVITY.expireBackup)).toEqual({ jobId: JOB_ID, at: new Date(availableAt + 7 * DAY).toISOString(), reason: 'retention' });
    await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));

    expect(names(run)).toEqual([
      ACTIVITY.prepareJob,
      ACTIVITY.enqueueJob,
      ACTIVITY.markRunning,
      ACTIVITY.beginVerification,
      ACTIVITY.verifyUpload,
      INTEGRITY_ACTIVITY.rehashBlob,
      INTEGRITY_ACTIVITY.publishManifest,
      ACTIVITY.markAvailable,
      ACTIVITY.issueDownloadLink,
      ACTIVITY.expireBackup,
    ]);
    expect(retentionTimers(run, timersBefore).map((timer) => timer.finalFireAt.getTime() - availableAt)).toEqual([6 * DAY, 7 * DAY]);
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'retention' });
    expect(run.failure).toBeUndefined();
  });
});

describe('backupJob2 progress: lifecycle events only (issue 16)', () => {
  /** A job that reports `reports` progress events between acceptance and upload, routed as the runner endpoint routes them. */
  async function historyAfterUpload(reports: number): Promise<{ run: OrchestrationDriver; raised: number }> {
    const run = await queuedSampleJob(backupJob2Orchestrator, BACKUP_JOB2_ORCHESTRATOR);
    let status: JobStatus = 'Queued';
    let raised = 0;
    const send = async (event: Parameters<typeof runnerSays>[1]) => {
      if (!reachesOrchestration(event, status)) return;
      raised++;
      await runnerSays(run, event);
      if (run.waitingActivities.some((activity) => activity.name === ACTIVITY.markRunning)) {
        await run.completeActivity(ACTIVITY.markRunning, done('Running'));
        status = 'Running';
      }
    };
    await send(accepted());
    for (let i = 1; i <= reports; i++) {
      await run.advanceBy(30 * SECOND);
      await send(progress(Math.min(99, i), i * 1000));
    }
    await send(uploaded());
    await run.completeActivity(ACTIVITY.beginVerification, done('Verifying'));
    return { run, raised };
  }

  it('keeps the history the same length however many progress reports the runner sends', async () => {
    // 75 minutes and 5 hours of reports every 30 s (both outlive the cancelled 1-hour accept timer, which fires once).
    const short = await historyAfterUpload(150);
    const long = await historyAfterUpload(600);
    expect(long.raised).toBe(2); // accepted and uploaded
    expect(long.run.history.length).toBe(short.run.history.length);
    expect(names(long.run)).not.toContain(ACTIVITY.recordProgress);
    expect(long.run.history.length).toBeLessThanOrEqual(100);
  });

  it('takes progress that arrives before `accepted` as acceptance, and ignores a stray one later (no activity, no status)', async () => {
    const run = await queuedSampleJob(backupJob2Orchestrator, BACKUP_JOB2_ORCHESTRATOR);
    await runnerSays(run, progress(5, 50));
    expect(run.inputOf(ACTIVITY.markRunning)).toMatchObject({ acceptedBy: 'progress', runnerId: null });
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));
    expect(run.waitingActivities).toEqual([]);
    const status = run.customStatus;
    await runnerSays(run, progress(50, 500));
    expect(run.waitingActivities).toEqual([]);
    expect(run.customStatus).toEqual(status);
    expect(status).toMatchObject({ status: 'Running' });
    expect(status).not.toHaveProperty('percent');
  });
});

describe('backupJob2 retention', () => {
  it('waits 30 days as five fresh 6-day timers, none of them split into intervals', async () => {
    const run = await availableJob({ policy: { retentionDays: 30 } });
    const availableAt = run.now.getTime();
    const timersBefore = firstRetentionTimer(run);
    await run.advanceTo(new Date(availableAt + 30 * DAY - SECOND));
    expect(names(run)).not.toContain(ACTIVITY.expireBackup);
    await run.advanceTo(new Date(availableAt + 30 * DAY));
    await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));

    const chunks = retentionTimers(run, timersBefore);
    expect(chunks.map((timer) => (timer.finalFireAt.getTime() - availableAt) / DAY)).toEqual([6, 12, 18, 24, 30]);
    // One TimerCreated per chunk: the extension never split one.
    expect(chunks.every((timer) => timer.fireAt.getTime() === timer.finalFireAt.getTime())).toBe(true);
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'retention' });
    expect(MAX_WAIT_MINUTES).toBe(6 * 24 * 60);
  });

  it('deletes on day 7 of 30, attributed to who asked, cancelling only the current chunk', async () => {
    const run = await availableJob({ policy: { retentionDays: 30 } });
    const timersBefore = firstRetentionTimer(run);
    await deleteOnDay7(run);
    expect(run.failure).toBeUndefined();
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'deleted' });
    expect(retentionTimers(run, timersBefore).map((timer) => timer.canceled)).toEqual([false, true]);
    expect(run.liveTimers).toEqual([]);
  });

  it('deletes 30 s before a chunk ends, through one failed expireBackup attempt, while the cancelled chunk fires', async () => {
    const run = await availableJob({ policy: { retentionDays: 30 } });
    const availableAt = run.now.getTime();
    await deleteJustBeforeATimerFires(run, availableAt + 6 * DAY);
    expect(run.failure).toBeUndefined();
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'deleted' });
    expect(names(run).filter((name) => name === ACTIVITY.expireBackup)).toHaveLength(1);
    expect(run.history.filter((event) => event.EventType === 6)).toHaveLength(1); // the one failed attempt
  });

  it('honours a Delete raised while the first link was being issued (before the first chunk)', async () => {
    const run = await OrchestrationDriver.start(backupJob2Orchestrator, { instanceId: JOB_ID, input: { jobId: JOB_ID }, startAt: new Date(0), name: BACKUP_JOB2_ORCHESTRATOR });
    await run.completeActivity(ACTIVITY.prepareJob, preparedJob({ retentionDays: 30 }));
    await run.completeActivity(ACTIVITY.enqueueJob, done('Queued'));
    await runnerSays(run, accepted());
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));
    await runnerSays(run, uploaded());
    await run.completeActivity(ACTIVITY.beginVerification, done('Verifying'));
    await run.completeActivity(ACTIVITY.verifyUpload, { ok: true, sizeBytes: 4096, sha256: SHA });
    await answerIntegritySteps(run);
    await run.completeActivity(ACTIVITY.markAvailable, done('Available'));
    await run.raiseEvent(ORCHESTRATION_EVENTS.delete, ALICE_REQUEST);
    await run.completeActivity(ACTIVITY.issueDownloadLink, { ok: true, expiresAt: run.now.toISOString(), reused: false });
    expect(run.inputOf(ACTIVITY.expireBackup)).toMatchObject({ reason: 'deleted', actor: ALICE_ACTOR });
    await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'deleted' });
  });

  it('takes a Delete that arrives in the episode where a chunk fires: the next chunk is armed, then cancelled', async () => {
    const run = await availableJob({ policy: { retentionDays: 30 } });
    const availableAt = run.now.getTime();
    const timersBefore = firstRetentionTimer(run);
    // The chunk fires and the Delete arrives with it: one episode, the timer first, so the chunk wins the race
    // and the loop arms the next chunk before the library hands over the Delete.
    await run.advanceTo(new Date(availableAt + 6 * DAY - SECOND));
    await run.fireNextTimerWith(ORCHESTRATION_EVENTS.delete, ALICE_REQUEST);
    expect(run.inputOf(ACTIVITY.expireBackup)).toMatchObject({ reason: 'deleted', actor: ALICE_ACTOR });
    expect(retentionTimers(run, timersBefore).map((timer) => timer.canceled)).toEqual([false, true]);
    await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'deleted' });
  });
});

describe('the replay driver is as strict as the extension (issue 18)', () => {
  const preHotfix = (options: SampleRunOptions) => availableSampleJob(preHotfixBackupJob, BACKUP_JOB_ORCHESTRATOR, options);
  const hotfixed = (options: SampleRunOptions) => availableSampleJob(backupJobOrchestrator, BACKUP_JOB_ORCHESTRATOR, options);

  it('fails the pre-hotfix backupJob on a Delete on day 7 of 30: the cancelled long timer collides with its own history', async () => {
    const run = await preHotfix({ policy: { retentionDays: 30 } });
    await run.advanceBy(7 * DAY);
    const raised = run.raiseEvent(ORCHESTRATION_EVENTS.delete, ALICE_REQUEST);
    await expect(raised).rejects.toThrow(ReplayDivergenceError);
    await expect(raised).rejects.toThrow(/NonDeterministicOrchestrationException: .*timer task with sequence number \d+ but the current orchestration replay instead produced a ScheduleTaskOrchestratorAction/);
    expect(run.isDone).toBe(true);
    expect(run.failure).toMatch(/NonDeterministic/);
  });

  it('fails the pre-hotfix backupJob when the cancelled long timer’s interval fires during an expireBackup retry', async () => {
    const run = await preHotfix({ policy: { retentionDays: 30 } });
    const availableAt = run.now.getTime();
    await expect(deleteJustBeforeATimerFires(run, availableAt + 3 * DAY)).rejects.toThrow(/Task numbering diverged/);
    expect(run.failure).toMatch(/durable-functions counts \d+ tasks, the extension \d+/);
  });

  it('passes the hotfixed backupJob (v1, kept for in-flight instances) on both', async () => {
    const day7 = await hotfixed({ policy: { retentionDays: 30 } });
    await deleteOnDay7(day7);
    expect(day7.failure).toBeUndefined();
    expect(outcome(day7)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'deleted' });

    const late = await hotfixed({ policy: { retentionDays: 30 } });
    await deleteJustBeforeATimerFires(late, late.now.getTime() + 3 * DAY);
    expect(late.failure).toBeUndefined();
    expect(outcome(late)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'deleted' });
  });

  it('splits a long timer the extension’s way: 3-day steps until under 3 days remain', async () => {
    const run = await hotfixed({ policy: { retentionDays: 8 } });
    const availableAt = run.now.getTime();
    await run.advanceTo(new Date(availableAt + 8 * DAY));
    const intervals = run.history
      .filter((event) => event.EventType === 10 && (event.FireAt as Date).getTime() > availableAt + DAY)
      .map((event) => ((event.FireAt as Date).getTime() - availableAt) / DAY);
    // durable-functions alone would arm 3 then 8 (it stops splitting at 6 days left); the extension arms 3, 6, 8.
    expect(intervals).toEqual([3, 6, 8]);
    expect(run.inputOf(ACTIVITY.expireBackup)).toMatchObject({ reason: 'retention' });
  });

  it('waits out the retry back-off instead of retrying at once', async () => {
    const run = await availableJob({ policy: { retentionDays: 1 } });
    await run.advanceBy(DAY);
    const before = run.now.getTime();
    await run.failActivity(ACTIVITY.expireBackup, 'store unavailable', { waitForRetry: false });
    expect(run.waitingActivities).toEqual([]);
    expect(run.liveTimers.map((timer) => timer.fireAt.getTime() - before)).toEqual([5 * SECOND]);
    await run.advanceBy(5 * SECOND);
    await run.failActivity(ACTIVITY.expireBackup, 'store unavailable');
    // Second back-off: 5 s × 2.
    expect(run.now.getTime() - before).toBe(15 * SECOND);
    expect(run.waitingActivities.map((activity) => activity.name)).toEqual([ACTIVITY.expireBackup]);
  });
});

describe('backupJob2 integrity: the control plane re-hashes the stored bytes and signs a manifest before Available', () => {
  async function uploadedJob(): Promise<OrchestrationDriver> {
    const run = await queuedSampleJob(backupJob2Orchestrator, BACKUP_JOB2_ORCHESTRATOR);
    await runnerSays(run, accepted());
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));
    await runnerSays(run, uploaded({ runnerId: 'runner-eu-1', attempt: 2, restoreCheck: { tool: 'pg_restore --list', ok: true, detail: '12 archive entries' } } as Partial<RunnerEvent>));
    await run.completeActivity(ACTIVITY.beginVerification, done('Verifying'));
    // The runner's metadata agrees with its report: that alone proved nothing.
    await run.completeActivity(ACTIVITY.verifyUpload, { ok: true, sizeBytes: 4096, sha256: SHA });
    return run;
  }

  it('publishes a manifest stating who took it and the retention expiry, then marks Available with the signing key', async () => {
    const run = await uploadedJob();
    expect(run.inputOf(INTEGRITY_ACTIVITY.rehashBlob)).toEqual({ blobPath: BLOB_PATH, offset: 0, state: null, etag: null });
    await run.completeActivity(INTEGRITY_ACTIVITY.rehashBlob, { ok: true, done: false, offset: 2048, state: 's', etag: '"e"', sizeBytes: 4096 });
    await run.completeActivity(INTEGRITY_ACTIVITY.rehashBlob, { ok: true, done: true, sizeBytes: 4096, sha256: SHA });
    const manifest = run.inputOf<Record<string, unknown>>(INTEGRITY_ACTIVITY.publishManifest);
    expect(manifest).toMatchObject({
      jobId: JOB_ID,
      sizeBytes: 4096,
      sha256: SHA,
      runner: { id: 'runner-eu-1', attempt: 2 },
      restoreCheck: { tool: 'pg_restore --list', ok: true, detail: '12 archive entries' },
    });
    await run.completeActivity(INTEGRITY_ACTIVITY.publishManifest, { ok: true, manifestKeyId: SAMPLE_MANIFEST_KEY_ID });
    // The job's expiry is the one the manifest states.
    expect(run.inputOf(ACTIVITY.markAvailable)).toMatchObject({ manifestKeyId: SAMPLE_MANIFEST_KEY_ID, expiresAt: manifest.expiresAt });
    await run.completeActivity(ACTIVITY.markAvailable, done('Available'));
    expect(run.customStatus).toMatchObject({ status: 'Available' });
  });

  it('fails a job whose stored bytes do not hash to the reported digest, with both digests, and publishes nothing', async () => {
    const run = await uploadedJob();
    const found = 'ee'.repeat(32);
    await run.completeActivity(INTEGRITY_ACTIVITY.rehashBlob, { ok: true, done: true, sizeBytes: 4096, sha256: found });
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({
      to: 'Failed',
      errorCode: 'integrity_mismatch',
      errorMessage: `The stored blob's SHA-256 is ${found}; the runner reported ${SHA}.`,
      detail: { check: 'sha256_mismatch', reportedSha256: SHA, foundSha256: found, reportedSizeBytes: 4096, foundSizeBytes: 4096 },
    });
    expect(names(run)).not.toContain(INTEGRITY_ACTIVITY.publishManifest);
    expect(names(run)).not.toContain(ACTIVITY.markAvailable);
  });

  it('fails the job when the manifest cannot be signed or written after every retry: never Available unsigned', async () => {
    const run = await uploadedJob();
    await run.completeActivity(INTEGRITY_ACTIVITY.rehashBlob, { ok: true, done: true, sizeBytes: 4096, sha256: SHA });
    for (let attempt = 1; attempt <= 5; attempt++) await run.failActivity(INTEGRITY_ACTIVITY.publishManifest, 'Key Vault refused (403) for https://kv/keys/manifest-signing');
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ to: 'Failed', errorCode: 'manifest_unpublished' });
    expect(run.inputOf<{ errorMessage: string }>(ACTIVITY.failJob).errorMessage).toContain('Key Vault refused (403)');
    expect(names(run)).not.toContain(ACTIVITY.markAvailable);
  });
});
