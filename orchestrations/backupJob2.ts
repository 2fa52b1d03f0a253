/**
 * The `backupJob2` orchestration: what new jobs start (instance id = job id). `backupJob` (v1,
 * orchestrations/backupJob.ts) stays registered for the instances started before it; both use the same
 * activities (backupJob.activities.ts) and the shared steps in backupJob.flow.ts.
 *
 *   prepare → approval (raw-needs-approval only: AwaitingApproval) → enqueue and wait for the upload (Queued, Running) → verify: metadata, the control plane's re-hash, signed manifest (Verifying)
 *   → publish (Available + first link) → wait out retention in chunks, or `Delete` → expire (Expired)
 *
 * Each step is one generator below; a step returns its result or the outcome that ended the job. New steps go
 * where the brackets are, as their own generator (and a breaking change becomes `backupJob3`).
 *
 * Why retention is waited in chunks (issue 18): a durable timer longer than the backend's maximum (6 days on
 * Azure Storage) is split into intervals by the extension (3-day steps) and by durable-functions (its own
 * steps). When such a timer is cancelled, the extension's replay re-creates only its first interval, so once an
 * interval has fired the next task id collides with the history (DurableTask's non-determinism error, instance
 * Failed), and durable-functions still arms the cancelled timer's next interval (the task numbering of the two
 * sides parts). So every timer here is at most 6 days — one timer, one task id, safe to cancel — and a fresh one
 * is armed per chunk. One `Delete` waiter serves every chunk: it is created once and checked before each chunk
 * (a `Task.any` does not notice a child that completed before it was built, e.g. a Delete raised while the
 * previous chunk's timer fired in the same episode). dev/durable-history.ts replays this the extension's way.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { ORCHESTRATION_EVENTS, type UploadedEvent } from '../shared/contracts/runner.js';
import { ACTIVITY, type DecideApprovalInput, type PreparedJob, type Refusal, type StepDone } from './backupJob.activities.js';
import {
  JobActionRequest,
  JobFlow,
  MAX_WAIT_MINUTES,
  addMinutes,
  enqueueAndAwaitUpload,
  expire,
  isOutcome,
  prepare,
  publish,
  requestedBy,
  verify,
  type BackupJobInput,
  type BackupJobOutcome,
  type VerifiedUpload,
} from './backupJob.flow.js';
import { rehashAgainstReport, signAndPublish } from './backupJob2.integrity.js';

/** Orchestrator function name; what new jobs start. */
export const BACKUP_JOB2_ORCHESTRATOR = 'backupJob2';

export function* backupJob2Orchestrator(context: OrchestrationContext): Generator<Task, BackupJobOutcome, unknown> {
  const { jobId } = context.df.getInput<BackupJobInput>();
  const flow = new JobFlow(context, jobId, BACKUP_JOB2_ORCHESTRATOR);

  const prepared = yield* prepare(flow);
  if (isOutcome(prepared)) return prepared;

  let available: { expiresAt: Date };
  try {
    const cancel = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.cancel);
    const approval = yield* awaitApproval(flow, prepared, cancel);
    if (isOutcome(approval)) return approval;
    const uploaded = yield* awaitUpload(flow, prepared, cancel);
    if (isOutcome(uploaded)) return uploaded;
    const verified = yield* verifyStoredBlob(flow, prepared, uploaded);
    if (isOutcome(verified)) return verified;
    const published = yield* publish(flow, prepared, verified);
    if (isOutcome(published)) return published;
    available = published;
  } catch (error) {
    // An activity failed through all its retries: the job cannot go on.
    const message = error instanceof Error ? error.message : String(error);
    return yield* flow.fail('Failed', 'internal', `The orchestration could not continue: ${message}`);
  }

  return yield* awaitRetention(flow, available.expiresAt);
}

/**
 * Queued → Running → the runner's `uploaded` report (or the job ends: failed, timed out, cancelled). Only
 * lifecycle events reach this wait: the runner endpoint (services/runner.ts) writes progress to the job row, so
 * the history stays the same length however long the backup runs.
 */
function* awaitUpload(flow: JobFlow, prepared: PreparedJob, cancel: Task): Generator<Task, UploadedEvent | BackupJobOutcome, unknown> {
  return yield* enqueueAndAwaitUpload(flow, prepared, 'ignore', cancel);
}

/** Default of `approvalTimeoutHours` for results prepared before the policy had it. */
const DEFAULT_APPROVAL_TIMEOUT_HOURS = 72;

/**
 * `raw-needs-approval` only: AwaitingApproval until an Approver's `Approved` (→ Pending, on to the queue) or
 * `Rejected`, the policy's timeout (→ Rejected, `approval_timeout`), or `Cancel`. Timers at most 6 days each, one
 * waiter per event for the whole wait (see the header). The HTTP endpoint refuses self-approval; an event that is
 * one anyway (sent around the API) is ignored here too.
 */
function* awaitApproval(flow: JobFlow, prepared: PreparedJob, cancel: Task): Generator<Task, 'approved' | BackupJobOutcome, unknown> {
  const { context } = flow;
  if (prepared.policy.distribution !== 'raw-needs-approval') return 'approved';
  const timeoutHours = prepared.policy.approvalTimeoutHours ?? DEFAULT_APPROVAL_TIMEOUT_HOURS;
  const deadline = addMinutes(flow.now(), timeoutHours * 60);
  const waiting = yield* flow.call<StepDone | Refusal>(ACTIVITY.awaitApproval, { ...flow.step(), timeoutHours });
  if (!waiting.ok) return flow.letGo(waiting);
  flow.setStatus('AwaitingApproval');
  flow.log(`awaiting approval until ${deadline.toISOString()}`);

  let approved = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.approved);
  let rejected = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.rejected);
  for (;;) {
    if (cancel.isCompleted) return yield* flow.cancel(cancel.result);
    for (const [decision, waiter] of [['approved', approved], ['rejected', rejected]] as const) {
      if (!waiter.isCompleted) continue;
      const decider = decidedBy(waiter.result);
      if (decider && decider.oid !== prepared.requesterOid) return yield* applyDecision(flow, decision, decider);
      flow.log(`ignored an ${decision} event from ${decider ? 'the requester' : 'an unknown sender'}`);
      if (decision === 'approved') approved = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.approved);
      else rejected = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.rejected);
    }
    const now = flow.now();
    if (now >= deadline) {
      return yield* applyDecision(flow, 'rejected', null, `No approver decided within ${timeoutHours} hours.`);
    }
    const chunk = context.df.createTimer(new Date(Math.min(deadline.getTime(), addMinutes(now, MAX_WAIT_MINUTES).getTime())));
    const winner = yield context.df.Task.any([approved, rejected, cancel, chunk]);
    if (winner !== chunk) chunk.cancel();
  }
}

/** Who sent an `Approved`/`Rejected` event, and why (services/jobs.ts decideApproval sends it). */
function decidedBy(payload: unknown): { oid: string; upn: string | null; reason: string | null } | undefined {
  const parsed = JobActionRequest.safeParse(payload);
  if (!parsed.success || !parsed.data.requestedBy) return undefined;
  const { requestedBy: user, reason } = parsed.data;
  return { oid: user.oid, upn: user.upn ?? null, reason: reason ?? null };
}

function* applyDecision(
  flow: JobFlow,
  decision: 'approved' | 'rejected',
  by: { oid: string; upn: string | null; reason: string | null } | null,
  timeoutReason?: string,
): Generator<Task, 'approved' | BackupJobOutcome, unknown> {
  const errorCode = by ? 'rejected' : 'approval_timeout';
  const input: DecideApprovalInput = {
    ...flow.step(),
    decision,
    by: by ? { oid: by.oid, upn: by.upn } : null,
    reason: by ? by.reason : (timeoutReason ?? null),
    ...(decision === 'rejected' ? { errorCode } : {}),
  };
  const decided = yield* flow.call<StepDone | Refusal>(ACTIVITY.decideApproval, input);
  if (!decided.ok) return flow.letGo(decided);
  flow.log(`${decision}${by ? ` by ${by.upn ?? by.oid}` : ' (timeout)'}`);
  if (decision === 'approved') {
    flow.setStatus('Pending');
    return 'approved';
  }
  flow.setStatus('Rejected');
  return { jobId: flow.jobId, status: 'Rejected', code: errorCode };
}

/**
 * Verifying: the stored blob against the runner's report (metadata), then the control plane's own re-hash of the
 * stored bytes, then the signed manifest and sidecars (orchestrations/backupJob2.integrity.ts). Any of them
 * failing ends the job Failed with its blob and sidecars deleted: nothing half-published.
 */
function* verifyStoredBlob(
  flow: JobFlow,
  prepared: PreparedJob,
  uploaded: UploadedEvent,
): Generator<Task, VerifiedUpload | BackupJobOutcome, unknown> {
  const verified = yield* verify(flow, prepared, uploaded);
  if (isOutcome(verified)) return verified;
  const rehashed = yield* rehashAgainstReport(flow, uploaded, verified);
  if (isOutcome(rehashed)) return rehashed;
  return yield* signAndPublish(flow, prepared, uploaded, rehashed);
}

/** Until `Delete` or the end of retention, in chunks of at most 6 days (see the header); then the blob goes. */
function* awaitRetention(flow: JobFlow, expiresAt: Date): Generator<Task, BackupJobOutcome, unknown> {
  const { context } = flow;
  const deletion = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.delete);
  for (;;) {
    if (deletion.isCompleted) return yield* expire(flow, 'deleted', requestedBy(deletion.result).actor);
    const now = flow.now();
    if (now >= expiresAt) return yield* expire(flow, 'retention', undefined);
    const chunkEnd = new Date(Math.min(expiresAt.getTime(), addMinutes(now, MAX_WAIT_MINUTES).getTime()));
    const chunk = context.df.createTimer(chunkEnd);
    const winner = yield context.df.Task.any([deletion, chunk]);
    if (winner === deletion) {
      chunk.cancel();
      return yield* expire(flow, 'deleted', requestedBy(deletion.result).actor);
    }
  }
}

// Registration (the activities are registered once, by orchestrations/backupJob.ts). Outside the Functions host
// this warns and does nothing; in-process hosts and tests use the exported orchestrator.
df.app.orchestration(BACKUP_JOB2_ORCHESTRATOR, backupJob2Orchestrator);
