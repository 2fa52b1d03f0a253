/**
 * What both versions of the backup orchestration share (orchestrations/backupJob.ts, the v1 kept for instances
 * in flight, and orchestrations/backupJob2.ts): one instance's view of its job (`JobFlow`) and the steps whose
 * shape has not changed between versions. A step returns either its result or a `BackupJobOutcome` (the job
 * ended there).
 *
 * Changing what a step yields, or in what order, changes every version that uses it: a breaking change to
 * in-flight v1 instances. Give the new version its own step instead (see orchestrations/backupJob.ts's header).
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { z } from 'zod';
import { ActorType } from '../shared/contracts/audit.js';
import type { JobStatus } from '../shared/contracts/jobs.js';
import type { BackupJobMessage } from '../shared/contracts/messages.js';
import { ORCHESTRATION_EVENTS, PROGRESS_RECORD_INTERVAL_MS, RunnerEvent, type UploadedEvent } from '../shared/contracts/runner.js';
import type { AuditActor, ExpiryReason } from '../services/retention.js';
import {
  ACTIVITY,
  type ExpireBackupInput,
  type ExpireBackupResult,
  type FailJobInput,
  type IssueDownloadLinkInput,
  type IssueDownloadLinkResult,
  type MarkAvailableInput,
  type MarkRunningInput,
  type PreparedJob,
  type PrepareJobResult,
  type RecordProgressInput,
  type Refusal,
  type RemoveLateUploadInput,
  type StepDone,
  type VerifyUploadInput,
  type VerifyUploadResult,
} from './backupJob.activities.js';

export interface BackupJobInput {
  jobId: string;
}

/** What the instance returns: the job's status when the orchestration let go of it. */
export interface BackupJobOutcome {
  jobId: string;
  status: JobStatus | 'Gone';
  /** Why it ended there when that was not the plan (error code, or why nothing was done). */
  code?: string;
}

/** Custom status, for the control plane's status queries and the portal. */
export interface BackupJobStatus {
  status: JobStatus;
  percent?: number;
  bytes?: number;
  updatedAt: string;
}

export { PROGRESS_RECORD_INTERVAL_MS } from '../shared/contracts/runner.js';

/** Margin on top of the write SAS lifetime before a failed job's blob path is swept (clock skew, a slow commit). */
export const LATE_UPLOAD_MARGIN_MINUTES = 5;

/**
 * Longest wait the orchestration arms in one timer: a longer one is split into intervals by durable-functions and
 * by the extension, and cancelling a split timer breaks replay (orchestrations/backupJob2.ts's header).
 */
export const MAX_WAIT_MINUTES = 6 * 24 * 60;

const MINUTE_MS = 60_000;
export const DAY_MS = 24 * 60 * MINUTE_MS;

/** For what a retry can fix (store, blob or queue briefly unavailable): 5 attempts over about a minute. */
export const ACTIVITY_RETRY = Object.assign(new df.RetryOptions(5_000, 5), {
  backoffCoefficient: 2,
  maxRetryIntervalInMilliseconds: 60_000,
});

/**
 * Payload of `Cancel` and `Delete`: who asked (`by`: an audit actor; or `requestedBy`: a user's oid and upn) and,
 * optionally, why. Read leniently: a request the orchestration cannot attribute is still honoured.
 */
export const JobActionRequest = z.object({
  by: z.object({ type: ActorType, id: z.string().min(1), name: z.string().nullish() }).optional(),
  requestedBy: z.object({ oid: z.string().min(1), upn: z.string().nullish() }).optional(),
  reason: z.string().max(500).optional(),
});
export type JobActionRequest = z.infer<typeof JobActionRequest>;

export function requestedBy(payload: unknown): { actor?: AuditActor; reason?: string } {
  const parsed = JobActionRequest.safeParse(payload);
  if (!parsed.success) return {};
  const { by, requestedBy: user, reason } = parsed.data;
  const actor: AuditActor | undefined = by
    ? { actorType: by.type, actorId: by.id, actorName: by.name ?? null }
    : user
      ? { actorType: 'user', actorId: user.oid, actorName: user.upn ?? null }
      : undefined;
  return { ...(actor ? { actor } : {}), ...(reason ? { reason } : {}) };
}

export const addMinutes = (at: Date, minutes: number): Date => new Date(at.getTime() + minutes * MINUTE_MS);

/** One instance's view of its job: deterministic helpers over the orchestration context. */
export class JobFlow {
  /** Set once the job is on the queue: from then on a runner may hold a write SAS for this blob path. */
  uploadMayLand: { blobPath: string; uploadSasTtlMinutes: number } | undefined;

  constructor(
    readonly context: OrchestrationContext,
    readonly jobId: string,
    readonly orchestratorName: string,
  ) {}

  now(): Date {
    return this.context.df.currentUtcDateTime;
  }

  /** The common part of an activity input: the job and the orchestration's time of the decision. */
  step(): { jobId: string; at: string } {
    return { jobId: this.jobId, at: this.now().toISOString() };
  }

  log(message: string): void {
    if (!this.context.df.isReplaying) this.context.log(`${this.orchestratorName} ${this.jobId}: ${message}`);
  }

  setStatus(status: JobStatus, progress?: { percent: number; bytes: number }): void {
    const custom: BackupJobStatus = { status, ...progress, updatedAt: this.now().toISOString() };
    this.context.df.setCustomStatus(custom);
  }

  *call<Result>(name: string, input: unknown): Generator<Task, Result, unknown> {
    return (yield this.context.df.callActivityWithRetry(name, ACTIVITY_RETRY, input)) as Result;
  }

  /** The job was moved by someone else (or is gone): nothing more to do here. */
  letGo(refusal: Refusal): BackupJobOutcome {
    this.log(refusal.code === 'conflict' ? `job is ${refusal.status}; stopping` : 'job no longer exists; stopping');
    return { jobId: this.jobId, status: refusal.code === 'conflict' ? refusal.status : 'Gone', code: refusal.code };
  }

  *fail(
    to: 'Failed' | 'Cancelled',
    errorCode: string,
    errorMessage: string,
    extra: Pick<FailJobInput, 'actor' | 'detail'> = {},
  ): Generator<Task, BackupJobOutcome, unknown> {
    this.log(`${to === 'Cancelled' ? 'cancelling' : 'failing'} job: ${errorCode}: ${errorMessage}`);
    const input: FailJobInput = { ...this.step(), to, errorCode, errorMessage, ...extra };
    const result = yield* this.call<StepDone | Refusal>(ACTIVITY.failJob, input);
    if (!result.ok) return this.letGo(result);
    this.setStatus(to);
    yield* this.removeLateUpload();
    return { jobId: this.jobId, status: to, code: errorCode };
  }

  /** Waits until every write SAS of the job has expired, then deletes an upload that landed after all. */
  *removeLateUpload(): Generator<Task, void, unknown> {
    if (!this.uploadMayLand) return;
    const { blobPath, uploadSasTtlMinutes } = this.uploadMayLand;
    yield this.context.df.createTimer(addMinutes(this.now(), uploadSasTtlMinutes + LATE_UPLOAD_MARGIN_MINUTES));
    const input: RemoveLateUploadInput = { jobId: this.jobId, blobPath };
    const removed = yield* this.call<{ ok: true; deleted: boolean }>(ACTIVITY.removeLateUpload, input);
    if (removed.deleted) this.log('deleted an upload that was committed after the job ended');
  }

  *cancel(payload: unknown): Generator<Task, BackupJobOutcome, unknown> {
    const { actor, reason } = requestedBy(payload);
    return yield* this.fail('Cancelled', 'cancelled', reason ?? 'Cancelled on request.', {
      ...(actor ? { actor } : {}),
      detail: { reason: reason ?? null },
    });
  }
}


/** The job as the orchestration needs it; an outcome when it is gone, moved, or its database/server unregistered. */
export function* prepare(flow: JobFlow): Generator<Task, PreparedJob | BackupJobOutcome, unknown> {
  const prepared = yield* flow.call<PrepareJobResult>(ACTIVITY.prepareJob, flow.step());
  if (prepared.ok) return prepared;
  if (prepared.code === 'job_not_found' || prepared.code === 'conflict') return flow.letGo(prepared);
  const what = prepared.code === 'database_not_found' ? 'database' : 'server';
  return yield* flow.fail('Failed', prepared.code, `The job's ${what} is no longer registered.`);
}

/** A step's result, or the outcome that ended the job there. */
export function isOutcome(value: unknown): value is BackupJobOutcome {
  return typeof value === 'object' && value !== null && 'jobId' in value && 'status' in value;
}

/**
 * What a `progress` event does once the job runs. v1 (`record`): the custom status shows it and the job row gets it
 * at most every PROGRESS_RECORD_INTERVAL_MS (a recordProgress activity). v2 (`ignore`): the runner endpoint writes
 * progress to the job row itself and raises only lifecycle events, so a progress event here (one sent before the
 * job was Running, or a late one) only ever counts as acceptance.
 */
export type ProgressHandling = 'record' | 'ignore';

/** Enqueue, then the runner's events until the upload (returned), or the end of the job (an outcome). */
export function* enqueueAndAwaitUpload(
  flow: JobFlow,
  prepared: PreparedJob,
  progressHandling: ProgressHandling,
  /** An earlier step's Cancel waiter (a Cancel goes to the oldest open waiter, so there must be only one). */
  cancelWaiter?: Task,
): Generator<Task, UploadedEvent | BackupJobOutcome, unknown> {
  const { context } = flow;
  const acceptTimeout = Math.min(prepared.policy.acceptTimeoutMinutes, MAX_WAIT_MINUTES);
  const runTimeout = Math.min(prepared.policy.runTimeoutMinutes, MAX_WAIT_MINUTES);
  const acceptDeadline = addMinutes(flow.now(), acceptTimeout);
  const message: BackupJobMessage = { ...prepared.message, runDeadline: addMinutes(acceptDeadline, runTimeout).toISOString() };

  flow.uploadMayLand = { blobPath: prepared.blobPath, uploadSasTtlMinutes: prepared.uploadSasTtlMinutes };
  const enqueued = yield* flow.call<StepDone | Refusal>(ACTIVITY.enqueueJob, { ...flow.step(), message });
  if (!enqueued.ok) return flow.letGo(enqueued);
  flow.setStatus('Queued');
  flow.log('enqueued; waiting for a runner');

  // One Cancel waiter for the whole wait (see the header).
  const cancel = cancelWaiter ?? context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.cancel);
  const seen = new Set<string>();
  let runDeadline: Date | undefined;
  let progressRecordedAt: Date | undefined;

  for (;;) {
    if (cancel.isCompleted) return yield* flow.cancel(cancel.result);
    const deadline = runDeadline ?? acceptDeadline;
    const runner = context.df.waitForExternalEvent(ORCHESTRATION_EVENTS.runner);
    const timer = context.df.createTimer(deadline);
    const winner = yield context.df.Task.any([runner, cancel, timer]);
    if (winner === timer) {
      return runDeadline
        ? yield* flow.fail('Failed', 'run_timeout', `The runner did not finish within ${runTimeout} minutes of accepting the job.`)
        : yield* flow.fail('Failed', 'accept_timeout', `No runner accepted the job within ${acceptTimeout} minutes.`);
    }
    timer.cancel();
    if (winner === cancel) return yield* flow.cancel(cancel.result);

    const parsed = RunnerEvent.safeParse(runner.result);
    if (!parsed.success) {
      flow.log('ignored a malformed runner event');
      continue;
    }
    const event = parsed.data;
    if (seen.has(event.eventId)) {
      flow.log(`ignored a repeated ${event.type} event ${event.eventId}`);
      continue;
    }
    seen.add(event.eventId);

    if (event.type === 'failed') {
      return yield* flow.fail('Failed', event.code, event.message, { detail: { reportedBy: 'runner' } });
    }
    if (!runDeadline) {
      const input: MarkRunningInput = {
        ...flow.step(),
        runnerId: event.type === 'accepted' ? event.runnerId : null,
        attempt: event.type === 'accepted' ? event.attempt : null,
        acceptedBy: event.type,
      };
      runDeadline = addMinutes(flow.now(), runTimeout);
      const running = yield* flow.call<StepDone | Refusal>(ACTIVITY.markRunning, input);
      if (!running.ok) return flow.letGo(running);
      flow.setStatus('Running');
      flow.log(`running (${event.type === 'accepted' ? `runner ${event.runnerId}, attempt ${event.attempt}` : `implied by ${event.type}`})`);
    } else if (event.type === 'accepted') {
      flow.log(`ignored a later acceptance (runner ${event.runnerId}, attempt ${event.attempt})`);
      continue;
    }

    if (event.type === 'uploaded') return event;
    if (event.type === 'progress' && progressHandling === 'record') {
      flow.setStatus('Running', { percent: event.percent, bytes: event.bytes });
      const now = flow.now();
      if (!progressRecordedAt || now.getTime() - progressRecordedAt.getTime() >= PROGRESS_RECORD_INTERVAL_MS) {
        progressRecordedAt = now;
        const input: RecordProgressInput = { ...flow.step(), percent: event.percent, bytes: event.bytes };
        yield* flow.call(ACTIVITY.recordProgress, input);
      }
    }
  }
}

/** Verifying: the job moves to Verifying and the stored blob is checked against the report; Failed on a mismatch. */
export function* verify(
  flow: JobFlow,
  prepared: PreparedJob,
  uploaded: UploadedEvent,
): Generator<Task, VerifiedUpload | BackupJobOutcome, unknown> {
  const reported = {
    blobPath: uploaded.blobPath,
    sizeBytes: uploaded.sizeBytes,
    sha256: uploaded.sha256,
    compression: uploaded.compression,
    encrypted: uploaded.encrypted,
    // Data only (activity inputs are not replayed against history): row counts for restore rehearsals.
    ...(uploaded.tableRowCounts ? { tableRowCounts: uploaded.tableRowCounts } : {}),
  };
  const verifying = yield* flow.call<StepDone | Refusal>(ACTIVITY.beginVerification, { ...flow.step(), reported });
  if (!verifying.ok) return flow.letGo(verifying);
  flow.setStatus('Verifying');

  const check: VerifyUploadInput = { jobId: flow.jobId, expectedBlobPath: prepared.blobPath, reported };
  const verdict = yield* flow.call<VerifyUploadResult>(ACTIVITY.verifyUpload, check);
  if (!verdict.ok) {
    return yield* flow.fail('Failed', 'integrity_mismatch', verdict.message, { detail: { check: verdict.code } });
  }
  return { sizeBytes: verdict.sizeBytes, sha256: verdict.sha256 };
}

/** What verification established about the stored blob. */
export interface VerifiedUpload {
  sizeBytes: number;
  sha256: string;
  /** backupJob2: the retention expiry the signed manifest states, and the key that signed it (v1: absent). */
  expiresAt?: Date;
  manifestKeyId?: string;
}

/** Available until the end of retention, and the requester's first link. */
export function* publish(
  flow: JobFlow,
  prepared: PreparedJob,
  verified: VerifiedUpload,
): Generator<Task, { expiresAt: Date } | BackupJobOutcome, unknown> {
  const expiresAt = verified.expiresAt ?? new Date(flow.now().getTime() + prepared.policy.retentionDays * DAY_MS);
  const availableInput: MarkAvailableInput = {
    ...flow.step(),
    sizeBytes: verified.sizeBytes,
    sha256: verified.sha256,
    expiresAt: expiresAt.toISOString(),
    ...(verified.manifestKeyId ? { manifestKeyId: verified.manifestKeyId } : {}),
  };
  const marked = yield* flow.call<StepDone | Refusal>(ACTIVITY.markAvailable, availableInput);
  if (!marked.ok) return flow.letGo(marked);
  flow.setStatus('Available');
  flow.log(`available until ${expiresAt.toISOString()}`);

  // A missing first link is no reason to fail a verified backup: the requester can ask for one over HTTP.
  try {
    const linkInput: IssueDownloadLinkInput = { jobId: flow.jobId, maxSasTtlMinutes: prepared.policy.maxSasTtlMinutes };
    const link = yield* flow.call<IssueDownloadLinkResult>(ACTIVITY.issueDownloadLink, linkInput);
    if (!link.ok) flow.log(`no download link issued: ${link.code}`);
  } catch (error) {
    flow.log(`no download link issued: ${error instanceof Error ? error.message : String(error)}`);
  }
  return { expiresAt };
}

/** Deletes the blob and marks the job Expired (retention ended, or `Delete`). */
export function* expire(flow: JobFlow, reason: ExpiryReason, actor: AuditActor | undefined): Generator<Task, BackupJobOutcome, unknown> {
  const input: ExpireBackupInput = { ...flow.step(), reason, ...(actor ? { actor } : {}) };
  const expired = yield* flow.call<ExpireBackupResult>(ACTIVITY.expireBackup, input);
  if (!expired.ok) return flow.letGo(expired);
  flow.setStatus('Expired');
  flow.log(`expired (${reason})`);
  return { jobId: flow.jobId, status: 'Expired', code: reason };
}
