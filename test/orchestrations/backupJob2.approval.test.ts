/** backupJob2's approval step (issue 11 item 4), driven through durable-functions' replay engine (dev/durable-history.ts). */
import { describe, expect, it } from 'vitest';
import { BACKUP_JOB2_ORCHESTRATOR, backupJob2Orchestrator } from '../../orchestrations/backupJob2.js';
import { ACTIVITY, type PreparedJob } from '../../orchestrations/backupJob.activities.js';
import type { BackupJobOutcome } from '../../orchestrations/backupJob.flow.js';
import { ORCHESTRATION_EVENTS } from '../../shared/contracts/runner.js';
import { OrchestrationDriver } from '../../dev/durable-history.js';
import { JOB_ID, T0, done, preparedJob } from '../support/backup-job-sample.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const REQUESTER = 'oid-alice';
const APPROVER = { by: { type: 'user', id: 'oid-amir', name: 'amir@corp.example' }, requestedBy: { oid: 'oid-amir', upn: 'amir@corp.example' } };

async function awaitingApproval(policy: Partial<PreparedJob['policy']> = {}): Promise<OrchestrationDriver> {
  const run = await OrchestrationDriver.start(backupJob2Orchestrator, { instanceId: JOB_ID, input: { jobId: JOB_ID }, startAt: T0, name: BACKUP_JOB2_ORCHESTRATOR });
  await run.completeActivity(ACTIVITY.prepareJob, {
    ...preparedJob({ distribution: 'raw-needs-approval', approvalTimeoutHours: 72, ...policy }),
    requesterOid: REQUESTER,
  });
  expect(run.inputOf(ACTIVITY.awaitApproval)).toMatchObject({ jobId: JOB_ID, timeoutHours: policy.approvalTimeoutHours ?? 72 });
  await run.completeActivity(ACTIVITY.awaitApproval, done('AwaitingApproval'));
  expect(run.customStatus).toMatchObject({ status: 'AwaitingApproval' });
  return run;
}

const names = (run: OrchestrationDriver) => run.calls.map((call) => call.name);
const outcome = (run: OrchestrationDriver) => run.output as BackupJobOutcome;

describe('backupJob2 approval (raw-needs-approval)', () => {
  it('does not wait for approval when the policy is raw', async () => {
    const run = await OrchestrationDriver.start(backupJob2Orchestrator, { instanceId: JOB_ID, input: { jobId: JOB_ID }, startAt: T0, name: BACKUP_JOB2_ORCHESTRATOR });
    await run.completeActivity(ACTIVITY.prepareJob, { ...preparedJob({ distribution: 'raw' }), requesterOid: REQUESTER });
    expect(run.waitingActivities.map((activity) => activity.name)).toEqual([ACTIVITY.enqueueJob]);
  });

  it('approve: records who approved, then enqueues', async () => {
    const run = await awaitingApproval();
    await run.advanceBy(2 * HOUR);
    expect(run.waitingActivities).toEqual([]);
    await run.raiseEvent(ORCHESTRATION_EVENTS.approved, { ...APPROVER, reason: 'ticket OPS-7' });
    expect(run.inputOf(ACTIVITY.decideApproval)).toEqual({
      jobId: JOB_ID,
      at: new Date(T0.getTime() + 2 * HOUR).toISOString(),
      decision: 'approved',
      by: { oid: 'oid-amir', upn: 'amir@corp.example' },
      reason: 'ticket OPS-7',
    });
    await run.completeActivity(ACTIVITY.decideApproval, done('Pending'));
    expect(run.waitingActivities.map((activity) => activity.name)).toEqual([ACTIVITY.enqueueJob]);
    await run.completeActivity(ACTIVITY.enqueueJob, done('Queued'));
    expect(run.customStatus).toMatchObject({ status: 'Queued' });
    expect(run.failure).toBeUndefined();
  });

  it('reject: Rejected with the reason, nothing enqueued', async () => {
    const run = await awaitingApproval();
    await run.raiseEvent(ORCHESTRATION_EVENTS.rejected, { ...APPROVER, reason: 'use the sanitized copy' });
    expect(run.inputOf(ACTIVITY.decideApproval)).toMatchObject({ decision: 'rejected', errorCode: 'rejected', reason: 'use the sanitized copy', by: { oid: 'oid-amir' } });
    await run.completeActivity(ACTIVITY.decideApproval, done('Rejected'));
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Rejected', code: 'rejected' });
    expect(names(run)).not.toContain(ACTIVITY.enqueueJob);
  });

  it('ignores an approval sent by the requester (self-approval) and keeps waiting', async () => {
    const run = await awaitingApproval();
    await run.raiseEvent(ORCHESTRATION_EVENTS.approved, { requestedBy: { oid: REQUESTER, upn: 'alice@corp.example' } });
    expect(run.waitingActivities).toEqual([]);
    expect(run.output).toBeUndefined();
    // A real approver still can, afterwards.
    await run.raiseEvent(ORCHESTRATION_EVENTS.approved, APPROVER);
    expect(run.inputOf(ACTIVITY.decideApproval)).toMatchObject({ decision: 'approved', by: { oid: 'oid-amir' } });
  });

  it('times out into Rejected (approval_timeout), with timers of at most 6 days for a 10-day timeout', async () => {
    const run = await awaitingApproval({ approvalTimeoutHours: 240 });
    const timersBefore = run.timers.length;
    await run.advanceTo(new Date(T0.getTime() + 10 * DAY - HOUR));
    expect(run.waitingActivities).toEqual([]);
    await run.advanceTo(new Date(T0.getTime() + 10 * DAY));
    expect(run.inputOf(ACTIVITY.decideApproval)).toEqual({
      jobId: JOB_ID,
      at: new Date(T0.getTime() + 10 * DAY).toISOString(),
      decision: 'rejected',
      by: null,
      reason: 'No approver decided within 240 hours.',
      errorCode: 'approval_timeout',
    });
    await run.completeActivity(ACTIVITY.decideApproval, done('Rejected'));
    expect(outcome(run)).toEqual({ jobId: JOB_ID, status: 'Rejected', code: 'approval_timeout' });
    const chunks = run.timers.slice(timersBefore - 1).map((timer) => timer.finalFireAt.getTime() - T0.getTime());
    expect(chunks).toEqual([6 * DAY, 10 * DAY]);
    expect(run.failure).toBeUndefined();
  });

  it('approval on day 8 of a 10-day timeout (after a chunk fired) replays cleanly', async () => {
    const run = await awaitingApproval({ approvalTimeoutHours: 240 });
    await run.advanceTo(new Date(T0.getTime() + 8 * DAY));
    await run.raiseEvent(ORCHESTRATION_EVENTS.approved, APPROVER);
    await run.completeActivity(ACTIVITY.decideApproval, done('Pending'));
    await run.completeActivity(ACTIVITY.enqueueJob, done('Queued'));
    expect(run.failure).toBeUndefined();
    expect(run.customStatus).toMatchObject({ status: 'Queued' });
  });

  it('Cancel while awaiting approval cancels the job; the same waiter serves the later wait', async () => {
    const run = await awaitingApproval();
    await run.raiseEvent(ORCHESTRATION_EVENTS.cancel, { requestedBy: { oid: REQUESTER, upn: 'alice@corp.example' } });
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ to: 'Cancelled', errorCode: 'cancelled', actor: { actorId: REQUESTER } });
    await run.completeActivity(ACTIVITY.failJob, done('Cancelled'));
    expect(outcome(run)).toMatchObject({ status: 'Cancelled' });
    expect(names(run)).not.toContain(ACTIVITY.enqueueJob);
  });

  it('Cancel after approval, while queued, still cancels (one Cancel waiter across both waits)', async () => {
    const run = await awaitingApproval();
    await run.raiseEvent(ORCHESTRATION_EVENTS.approved, APPROVER);
    await run.completeActivity(ACTIVITY.decideApproval, done('Pending'));
    await run.completeActivity(ACTIVITY.enqueueJob, done('Queued'));
    await run.raiseEvent(ORCHESTRATION_EVENTS.cancel, { requestedBy: { oid: REQUESTER, upn: null } });
    expect(run.inputOf(ACTIVITY.failJob)).toMatchObject({ to: 'Cancelled' });
  });
});
