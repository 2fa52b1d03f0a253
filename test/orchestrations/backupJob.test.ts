import { describe, expect, it } from 'vitest';
import { ORCHESTRATION_EVENTS, type RunnerEvent } from '../../shared/contracts/runner.js';
import {
  BACKUP_JOB_ORCHESTRATOR,
  LATE_UPLOAD_MARGIN_MINUTES,
  PROGRESS_RECORD_INTERVAL_MS,
  backupJobOrchestrator,
  type BackupJobOutcome,
} from '../../orchestrations/backupJob.js';
import { ACTIVITY } from '../../orchestrations/backupJob.activities.js';
import {
  BLOB_PATH,
  JOB_ID,
  SAMPLE_SHA256 as SHA,
  T0,
  UPLOAD_SAS_TTL_MINUTES,
  accepted,
  availableSampleJob,
  done,
  failed,
  preparedJob as prepared,
  progress,
  queuedSampleJob,
  runnerSays,
  runningSampleJob,
  uploaded,
  type SampleRunOptions,
  ALICE_ACTOR,
  ALICE_REQUEST,
} from '../support/backup-job-sample.js';
import { OrchestrationDriver, ReplaySchema } from '../../dev/durable-history.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

const at = (ms: number) => new Date(T0.getTime() + ms);


const names = (run: OrchestrationDriver) => run.calls.map((call) => call.name);
const outcome = (run: OrchestrationDriver) => run.output as BackupJobOutcome;

/**
 * Answers failJob, then plays out the late-upload sweep: once every write SAS has expired the blob path is
 * cleared once more (a runner may have committed after the cancel), and only then does the instance finish.
 */
async function failAndSweep(run: OrchestrationDriver, status: 'Failed' | 'Cancelled'): Promise<void> {
  await run.completeActivity(ACTIVITY.failJob, done(status));
  expect(run.isDone).toBe(false);
  const sweepAt = new Date(run.now.getTime() + (UPLOAD_SAS_TTL_MINUTES + LATE_UPLOAD_MARGIN_MINUTES) * MINUTE);
  expect(run.liveTimers.map((timer) => timer.finalFireAt)).toContainEqual(sweepAt);
  await run.advanceTo(sweepAt);
  expect(run.inputOf(ACTIVITY.removeLateUpload)).toEqual({ jobId: JOB_ID, blobPath: BLOB_PATH });
  await run.completeActivity(ACTIVITY.removeLateUpload, { ok: true, deleted: false });
  expect(run.isDone).toBe(true);
}

const queuedJob = (options: SampleRunOptions = {}) => queuedSampleJob(backupJobOrchestrator, BACKUP_JOB_ORCHESTRATOR, options);
const runningJob = (options: SampleRunOptions = {}) => runningSampleJob(backupJobOrchestrator, BACKUP_JOB_ORCHESTRATOR, options);
const availableJob = (options: SampleRunOptions = {}) => availableSampleJob(backupJobOrchestrator, BACKUP_JOB_ORCHESTRATOR, options);

describe.each([['replay schema V4 (Azure)', ReplaySchema.V4]])('backupJob happy path, %s', (_label, schemaVersion) => {
  it('prepares, enqueues, runs, verifies, publishes and expires the backup after retention', async () => {
    const run = await OrchestrationDriver.start(backupJobOrchestrator, {
      instanceId: JOB_ID,
      input: { jobId: JOB_ID },
      startAt: T0,
      name: BACKUP_JOB_ORCHESTRATOR,
      schemaVersion,
    });
    expect(run.inputOf(ACTIVITY.prepareJob)).toEqual({ jobId: JOB_ID, at: T0.toISOString() });
    await run.completeActivity(ACTIVITY.prepareJob, prepared());

    // The message goes out with a deadline: accept timeout + run timeout from now.
    expect(run.inputOf(ACTIVITY.enqueueJob)).toEqual({
      jobId: JOB_ID,
      at: T0.toISOString(),
      message: { ...prepared().message, runDeadline: at((60 + 12 * 60) * MINUTE).toISOString() },
    });
    await run.completeActivity(ACTIVITY.enqueueJob, done('Queued'));
    expect(run.customStatus).toMatchObject({ status: 'Queued' });

    await run.advanceBy(5 * MINUTE);
    await runnerSays(run, accepted({ runnerId: 'runner-eu-1', attempt: 2 } as Partial<RunnerEvent>));
    expect(run.inputOf(ACTIVITY.markRunning)).toEqual({
      jobId: JOB_ID,
      at: at(5 * MINUTE).toISOString(),
      runnerId: 'runner-eu-1',
      attempt: 2,
      acceptedBy: 'accepted',
    });
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));

    await run.advanceBy(MINUTE);
    await runnerSays(run, progress(40, 1_000_000));
    expect(run.customStatus).toEqual({ status: 'Running', percent: 40, bytes: 1_000_000, updatedAt: at(6 * MINUTE).toISOString() });
    expect(run.inputOf(ACTIVITY.recordProgress)).toEqual({ jobId: JOB_ID, at: at(6 * MINUTE).toISOString(), percent: 40, bytes: 1_000_000 });
    await run.completeActivity(ACTIVITY.recordProgress, { ok: true });

    await run.advanceBy(MINUTE);
    await runnerSays(run, uploaded());
    const reported = { blobPath: BLOB_PATH, sizeBytes: 4096, sha256: SHA, compression: 'none', encrypted: false };
    expect(run.inputOf(ACTIVITY.beginVerification)).toEqual({ jobId: JOB_ID, at: at(7 * MINUTE).toISOString(), reported });
    await run.completeActivity(ACTIVITY.beginVerification, done('Verifying'));
    expect(run.inputOf(ACTIVITY.verifyUpload)).toEqual({ jobId: JOB_ID, expectedBlobPath: BLOB_PATH, reported });
    await run.completeActivity(ACTIVITY.verifyUpload, { ok: true, sizeBytes: 4096, sha256: SHA });

    const expiresAt = at(7 * MINUTE + 7 * DAY);
    expect(run.inputOf(ACTIVITY.markAvailable)).toEqual({
      jobId: JOB_ID,
      at: at(7 * MINUTE).toISOString(),
      sizeBytes: 4096,
      sha256: SHA,
      expiresAt: expiresAt.toISOString(),
    });
    await run.completeActivity(ACTIVITY.markAvailable, done('Available'));
    expect(run.inputOf(ACTIVITY.issueDownloadLink)).toEqual({ jobId: JOB_ID, maxSasTtlMinutes: 60 });
    await run.completeActivity(ACTIVITY.issueDownloadLink, { ok: true, expiresAt: at(67 * MINUTE).toISOString(), reused: false });
    expect(run.customStatus).toMatchObject({ status: 'Available' });

    // A day before expiry nothing happens (the superseded wait timers fire meanwhile and are ignored).
    await run.advanceTo(new Date(expiresAt.getTime() - DAY));
    expect(run.isDone).toBe(false);
    expect(run.waitingActivities).toEqual([]);

    await run.advanceTo(expiresAt);
    expect(run.inputOf(ACTIVITY.expireBackup)).toEqual({ jobId: JOB_ID, at: expiresAt.toISOString(), reason: 'retention' });
    await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));

    expect(names(run)).toEqual([
      ACTIVITY.prepareJob,
      ACTIVITY.enqueueJob,
      ACTIVITY.markRunning,
      ACTIVITY.recordProgress,
      ACTIVITY.beginVerification,
      ACTIVITY.verifyUpload,
      ACTIVITY.markAvailable,
      ACTIVITY.issueDownloadLink,
      ACTIVITY.expireBackup,
    ]);
    expect(run.isDone).toBe(true);
    expect(run.failure).toBeUndefined();
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'retention' });
    expect(run.customStatus).toMatchObject({ status: 'Expired' });
    expect(run.liveTimers).toEqual([]);
  });
});

describe('backupJob timeouts', () => {
  it('fails the job when no runner accepts it in time', async () => {
    const run = await queuedJob({ policy: { acceptTimeoutMinutes: 30 } });
    await run.advanceTo(at(29 * MINUTE));
    expect(run.waitingActivities).toEqual([]);

    await run.advanceTo(at(30 * MINUTE));
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({
      jobId: JOB_ID,
      to: 'Failed',
      errorCode: 'accept_timeout',
      errorMessage: 'No runner accepted the job within 30 minutes.',
    });
    await failAndSweep(run, 'Failed');
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Failed', code: 'accept_timeout' });
    expect(run.customStatus).toMatchObject({ status: 'Failed' });
    expect(run.liveTimers).toEqual([]);
  });

  it('after acceptance, gives the runner the run timeout counted from acceptance, not from queueing', async () => {
    const run = await queuedJob({ policy: { acceptTimeoutMinutes: 60, runTimeoutMinutes: 120 } });
    await run.advanceTo(at(50 * MINUTE));
    await runnerSays(run, accepted());
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));

    // Past the accept deadline, well within the run deadline: still running.
    await run.advanceTo(at(169 * MINUTE));
    expect(run.waitingActivities).toEqual([]);

    await run.advanceTo(at(170 * MINUTE));
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ to: 'Failed', errorCode: 'run_timeout' });
    await failAndSweep(run, 'Failed');
    expect(outcome(run)).toMatchObject({ status: 'Failed', code: 'run_timeout' });
    expect(run.liveTimers).toEqual([]);
  });

  it('keeps every wait within 6 days, so no wait timer is split into intervals', async () => {
    const run = await queuedJob({ policy: { acceptTimeoutMinutes: 7 * 24 * 60 } });
    expect(run.timers.at(-1)?.finalFireAt).toEqual(at(6 * DAY));
    await run.advanceTo(at(6 * DAY));
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ errorCode: 'accept_timeout', errorMessage: 'No runner accepted the job within 8640 minutes.' });
  });
});

describe('backupJob failures and cancellation', () => {
  it('fails the job with the runner’s code and message when the runner reports failure', async () => {
    const run = await runningJob();
    await runnerSays(run, failed('backup_failed', 'BACKUP DATABASE failed: disk full'));
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({
      to: 'Failed',
      errorCode: 'backup_failed',
      errorMessage: 'BACKUP DATABASE failed: disk full',
      detail: { reportedBy: 'runner' },
    });
    await failAndSweep(run, 'Failed');
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Failed', code: 'backup_failed' });
    expect(run.liveTimers).toEqual([]);
  });

  it('a runner failure before acceptance fails the job straight from Queued', async () => {
    const run = await queuedJob();
    await runnerSays(run, failed('unknown_database', 'Database Sales does not exist on sql01'));
    expect(names(run)).not.toContain(ACTIVITY.markRunning);
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ to: 'Failed', errorCode: 'unknown_database' });
  });

  it('cancels before acceptance, attributing the cancel to who asked', async () => {
    const run = await queuedJob();
    await run.raiseEvent(ORCHESTRATION_EVENTS.cancel, { ...ALICE_REQUEST, reason: 'wrong database' });
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({
      to: 'Cancelled',
      errorCode: 'cancelled',
      errorMessage: 'wrong database',
      actor: ALICE_ACTOR,
    });
    await failAndSweep(run, 'Cancelled');
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Cancelled', code: 'cancelled' });
    expect(run.liveTimers).toEqual([]);
  });

  it('cancels a running job; the control plane’s `requestedBy` payload is understood too', async () => {
    const run = await runningJob();
    await runnerSays(run, progress(10, 100));
    await run.completeActivity(ACTIVITY.recordProgress, { ok: true });
    await run.raiseEvent(ORCHESTRATION_EVENTS.cancel, { requestedBy: { oid: 'oid-bob', upn: 'bob@corp.example' }, at: T0.toISOString() });
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({
      to: 'Cancelled',
      actor: { actorType: 'user', actorId: 'oid-bob', actorName: 'bob@corp.example' },
    });
    await failAndSweep(run, 'Cancelled');
    expect(outcome(run).status).toBe('Cancelled');
    expect(run.liveTimers).toEqual([]);
  });

  it('honours a cancel raised while an activity runs, before waiting again', async () => {
    const run = await queuedJob();
    await runnerSays(run, accepted());
    // markRunning is in flight when the cancel arrives.
    await run.raiseEvent(ORCHESTRATION_EVENTS.cancel, { reason: 'changed my mind' });
    expect(names(run)).not.toContain(ACTIVITY.failJob);
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ to: 'Cancelled', errorMessage: 'changed my mind' });
    await failAndSweep(run, 'Cancelled');
    expect(run.isDone).toBe(true);
  });

  it('honours a cancel raised before the orchestration started waiting (during enqueue)', async () => {
    const run = await OrchestrationDriver.start(backupJobOrchestrator, { instanceId: JOB_ID, input: { jobId: JOB_ID }, startAt: T0 });
    await run.completeActivity(ACTIVITY.prepareJob, prepared());
    await run.raiseEvent(ORCHESTRATION_EVENTS.cancel, {});
    await run.completeActivity(ACTIVITY.enqueueJob, done('Queued'));
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ to: 'Cancelled', errorMessage: 'Cancelled on request.' });
    expect(run.inputOf<{ actor?: unknown }>(ACTIVITY.failJob).actor).toBeUndefined();
  });

  it('fails the job when the stored blob does not match the report', async () => {
    for (const check of ['size_mismatch', 'sha256_mismatch'] as const) {
      const run = await runningJob();
      await runnerSays(run, uploaded());
      await run.completeActivity(ACTIVITY.beginVerification, done('Verifying'));
      await run.completeActivity(ACTIVITY.verifyUpload, { ok: false, code: check, message: `the ${check}` });
      expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({
        to: 'Failed',
        errorCode: 'integrity_mismatch',
        errorMessage: `the ${check}`,
        detail: { check },
      });
      await failAndSweep(run, 'Failed');
      expect(names(run)).not.toContain(ACTIVITY.markAvailable);
      expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Failed', code: 'integrity_mismatch' });
    }
  });

  it('stops without writing when the job is gone or was moved by someone else', async () => {
    const gone = await OrchestrationDriver.start(backupJobOrchestrator, { instanceId: JOB_ID, input: { jobId: JOB_ID }, startAt: T0 });
    await gone.completeActivity(ACTIVITY.prepareJob, { ok: false, code: 'job_not_found' });
    expect(gone.isDone).toBe(true);
    expect(outcome(gone)).toEqual({ jobId: JOB_ID, status: 'Gone', code: 'job_not_found' });
    expect(names(gone)).toEqual([ACTIVITY.prepareJob]);

    const moved = await queuedJob();
    await runnerSays(moved, accepted());
    await moved.completeActivity(ACTIVITY.markRunning, { ok: false, code: 'conflict', status: 'Cancelled' });
    expect(outcome(moved)).toEqual({ jobId: JOB_ID, status: 'Cancelled', code: 'conflict' });
    expect(moved.liveTimers).toEqual([]);
  });

  it('fails the job when its database was unregistered before it started', async () => {
    const run = await OrchestrationDriver.start(backupJobOrchestrator, { instanceId: JOB_ID, input: { jobId: JOB_ID }, startAt: T0 });
    await run.completeActivity(ACTIVITY.prepareJob, { ok: false, code: 'database_not_found', status: 'Pending' });
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ to: 'Failed', errorCode: 'database_not_found' });
  });
});

describe('backupJob runner events: duplicates and order', () => {
  it('ignores an event id it has seen, and a later acceptance by a second delivery attempt', async () => {
    const run = await queuedJob();
    const first = accepted();
    await runnerSays(run, first);
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));
    await runnerSays(run, first);
    await runnerSays(run, accepted({ attempt: 2 } as Partial<RunnerEvent>));
    const p = progress(50, 500);
    await runnerSays(run, p);
    await run.completeActivity(ACTIVITY.recordProgress, { ok: true });
    await run.advanceBy(MINUTE);
    await runnerSays(run, { ...p, percent: 99 } as RunnerEvent);

    expect(names(run).filter((name) => name === ACTIVITY.markRunning)).toHaveLength(1);
    expect(names(run).filter((name) => name === ACTIVITY.recordProgress)).toHaveLength(1);
    expect(run.customStatus).toMatchObject({ percent: 50 });
    expect(run.logs.some((line) => line.includes('ignored a repeated accepted event'))).toBe(true);
    expect(run.logs.some((line) => line.includes('ignored a later acceptance'))).toBe(true);
    // Still waiting for the runner, on exactly one timer.
    expect(run.waitingActivities).toEqual([]);
    expect(run.liveTimers).toHaveLength(1);
  });

  it('takes progress before `accepted` as acceptance, and the late `accepted` changes nothing', async () => {
    const run = await queuedJob();
    await runnerSays(run, progress(5, 50));
    expect(run.inputOf(ACTIVITY.markRunning)).toMatchObject({ acceptedBy: 'progress', runnerId: null, attempt: null });
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));
    await run.completeActivity(ACTIVITY.recordProgress, { ok: true });
    expect(run.customStatus).toMatchObject({ status: 'Running', percent: 5, bytes: 50 });
    await runnerSays(run, accepted());
    expect(names(run).filter((name) => name === ACTIVITY.markRunning)).toHaveLength(1);
  });

  it('takes an upload before `accepted` as acceptance and goes on to verification', async () => {
    const run = await queuedJob();
    await runnerSays(run, uploaded());
    expect(run.inputOf(ACTIVITY.markRunning)).toMatchObject({ acceptedBy: 'uploaded' });
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));
    expect(names(run).at(-1)).toBe(ACTIVITY.beginVerification);
  });

  it('delivers events that arrive while an activity runs, in order', async () => {
    const run = await queuedJob();
    await runnerSays(run, accepted());
    // markRunning is in flight: these wait in the extension's buffer.
    await runnerSays(run, progress(30, 300));
    await runnerSays(run, uploaded());
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));
    await run.completeActivity(ACTIVITY.recordProgress, { ok: true });
    expect(names(run).slice(-3)).toEqual([ACTIVITY.markRunning, ACTIVITY.recordProgress, ACTIVITY.beginVerification]);
  });

  it('ignores an upload reported after the runner’s failure: the job has moved on', async () => {
    const run = await runningJob();
    await runnerSays(run, failed('backup_failed', 'boom'));
    await runnerSays(run, uploaded());
    await failAndSweep(run, 'Failed');
    expect(run.isDone).toBe(true);
    expect(names(run)).not.toContain(ACTIVITY.beginVerification);
    expect(await runnerSays(run, uploaded())).toBe(false);
  });

  it('ignores a malformed runner event', async () => {
    const run = await runningJob();
    await run.raiseEvent(ORCHESTRATION_EVENTS.runner, { type: 'exploded' });
    expect(run.waitingActivities).toEqual([]);
    expect(run.isDone).toBe(false);
  });
});

describe('backupJob progress', () => {
  it('records progress on the job row at most every 15 s, and shows every one in the custom status', async () => {
    const run = await runningJob();
    const start = run.now.getTime();
    for (let second = 0; second < 40; second++) {
      await run.advanceTo(new Date(start + second * 1000));
      await runnerSays(run, progress(second, second * 1000));
      if (run.waitingActivities.length > 0) await run.completeActivity(ACTIVITY.recordProgress, { ok: true });
      expect(run.customStatus).toMatchObject({ status: 'Running', percent: second, bytes: second * 1000 });
    }
    const recorded = run.calls.filter((call) => call.name === ACTIVITY.recordProgress).map((call) => (call.input as { percent: number }).percent);
    expect(recorded).toEqual([0, 15, 30]);
    expect(PROGRESS_RECORD_INTERVAL_MS).toBe(15_000);
    // One live timer however many events went by: each superseded wait timer was cancelled.
    expect(run.liveTimers).toHaveLength(1);
    expect(run.timers.filter((timer) => timer.canceled).length).toBeGreaterThanOrEqual(40);
  });
});

describe('backupJob retention', () => {
  it('runs a 30-day retention timer as intervals and expires the backup only at the end', async () => {
    const run = await availableJob({ policy: { retentionDays: 30 } });
    const retention = run.timers.at(-1)!;
    const availableAt = run.now.getTime();
    expect(retention.finalFireAt).toEqual(new Date(availableAt + 30 * DAY));
    // The first interval is 3 days: durable-functions' long-timer split (maximum short timer: 6 days).
    expect(retention.fireAt).toEqual(new Date(availableAt + 3 * DAY));

    await run.advanceTo(new Date(availableAt + 29 * DAY));
    expect(run.isDone).toBe(false);
    expect(names(run)).not.toContain(ACTIVITY.expireBackup);
    const intervalsCreated = run.history.filter((event) => event.EventType === 10 && (event.FireAt as Date).getTime() > availableAt).length;
    expect(intervalsCreated).toBeGreaterThan(5);

    await run.advanceTo(new Date(availableAt + 30 * DAY));
    expect(run.inputOf(ACTIVITY.expireBackup)).toMatchObject({ reason: 'retention', at: new Date(availableAt + 30 * DAY).toISOString() });
    await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'retention' });
  });

  it('deletes early on `Delete`, attributed to who asked; a split retention timer is left to run out (hotfix)', async () => {
    const run = await availableJob({ policy: { retentionDays: 30 } });
    await run.advanceBy(DAY);
    await run.raiseEvent(ORCHESTRATION_EVENTS.delete, ALICE_REQUEST);
    expect(run.inputOf(ACTIVITY.expireBackup)).toMatchObject({
      reason: 'deleted',
      actor: ALICE_ACTOR,
    });
    await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'deleted' });
    expect(run.timers.at(-1)).toMatchObject({ canceled: false, finalFireAt: new Date(run.now.getTime() + 29 * DAY) });
  });

  it('cancels a retention timer of 6 days or less on `Delete` (one timer, safe to cancel)', async () => {
    const run = await availableJob({ policy: { retentionDays: 5 } });
    await run.advanceBy(DAY);
    await run.raiseEvent(ORCHESTRATION_EVENTS.delete, ALICE_REQUEST);
    await run.completeActivity(ACTIVITY.expireBackup, done('Expired'));
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Expired', code: 'deleted' });
    expect(run.timers.at(-1)?.canceled).toBe(true);
    expect(run.liveTimers).toEqual([]);
  });

  it('never ran on replay schema V1: the extension refuses a retention timer over 6 days there (backupJob2 does not need one)', async () => {
    const run = await runningJob({ schemaVersion: ReplaySchema.V1 });
    await runnerSays(run, uploaded());
    await run.completeActivity(ACTIVITY.beginVerification, done('Verifying'));
    await run.completeActivity(ACTIVITY.verifyUpload, { ok: true, sizeBytes: 4096, sha256: SHA });
    await run.completeActivity(ACTIVITY.markAvailable, done('Available'));
    await expect(run.completeActivity(ACTIVITY.issueDownloadLink, { ok: true, expiresAt: at(DAY).toISOString(), reused: false })).rejects.toThrow(
      /maximum of 6 days/,
    );
    expect(run.failure).toMatch(/maximum of 6 days for time-based delays/);
  });

  it('a failed first download link does not fail a verified backup', async () => {
    const run = await runningJob();
    await runnerSays(run, uploaded());
    await run.completeActivity(ACTIVITY.beginVerification, done('Verifying'));
    await run.completeActivity(ACTIVITY.verifyUpload, { ok: true, sizeBytes: 4096, sha256: SHA });
    await run.completeActivity(ACTIVITY.markAvailable, done('Available'));
    for (let attempt = 0; attempt < 5; attempt++) await run.failActivity(ACTIVITY.issueDownloadLink, 'blob service unavailable');
    expect(names(run)).not.toContain(ACTIVITY.failJob);
    expect(run.isDone).toBe(false);
    expect(run.customStatus).toMatchObject({ status: 'Available' });
  });
});

describe('backupJob activity retries', () => {
  it('retries a transiently failing activity and carries on', async () => {
    const run = await queuedJob();
    await runnerSays(run, accepted());
    await run.failActivity(ACTIVITY.markRunning, 'store unavailable');
    await run.failActivity(ACTIVITY.markRunning, 'store unavailable');
    await run.completeActivity(ACTIVITY.markRunning, done('Running'));
    await runnerSays(run, uploaded());
    expect(names(run).at(-1)).toBe(ACTIVITY.beginVerification);
  });

  it('fails the job once an activity has failed through all its retries', async () => {
    const run = await OrchestrationDriver.start(backupJobOrchestrator, { instanceId: JOB_ID, input: { jobId: JOB_ID }, startAt: T0 });
    await run.completeActivity(ACTIVITY.prepareJob, prepared());
    for (let attempt = 0; attempt < 5; attempt++) await run.failActivity(ACTIVITY.enqueueJob, 'Service Bus unavailable');
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ to: 'Failed', errorCode: 'internal' });
    expect(run.inputOf<{ errorMessage: string }>(ACTIVITY.failJob).errorMessage).toContain('Service Bus unavailable');
    await failAndSweep(run, 'Failed');
    expect(outcome(run)).toMatchObject({ status: 'Failed', code: 'internal' });
  });
});
