/**
 * What the on-prem runner (app role Runner, application token) may do: get a write SAS for the job it is
 * running and report events. Lifecycle events (accepted, uploaded, failed) are raised at the job's orchestration;
 * progress on a Running job goes to the job row only, at most every PROGRESS_RECORD_INTERVAL_MS, so the
 * orchestration's history does not grow with the backup's duration (issue 16). A job that is no longer runnable
 * answers 409 with its status in the problem's `jobStatus` member, which is the runner's signal to stop.
 *
 * A runner may only act on servers it is bound to: the server's registry entry lists the runner identities
 * (client id + service principal object id) allowed to serve it. Any other caller gets 403 and a
 * `runner.denied` audit row, whatever the job's status. Runners also send a heartbeat; Admins list them.
 */
import { runnableStatuses } from '../shared/contracts/jobs.js';
import type { JobStatus } from '../shared/contracts/jobs.js';
import {
  CommittedBlob,
  ORCHESTRATION_EVENTS,
  PROGRESS_RECORD_INTERVAL_MS,
  type ProbeTarget,
  type RehearsalReport,
  type RehearsalSource,
  type RunnerEvent,
  type RunnerEventAck,
  type RunnerHeartbeat,
  type RunnerHeartbeatAck,
  type RunnersView,
  type StagedBlocks,
  type UploadTarget,
} from '../shared/contracts/runner.js';
import type { JobRecord, RunnerBinding, ServerRecord } from '../shared/db/store.js';
import { probeBlobPath } from '../shared/storage/paths.js';
import { AppError } from '../shared/errors.js';
import { randomUUID } from 'node:crypto';
import { conflictUnlessIn, loadJob } from './jobs.js';
import { jobFileName } from './views.js';
import { type RequestScope, auditActor } from './scope.js';

const MINUTE_MS = 60_000;

/** The Runner role comes only with an application token (shared/auth/rbac.ts); checked again here. */
function assertRunnerApplication(scope: RequestScope): void {
  if (!scope.principal.isApplication) throw new AppError('forbidden', 'Only the runner application may call runner endpoints.');
}

function bindingMatches(binding: RunnerBinding, scope: RequestScope): boolean {
  const { clientId, oid } = scope.principal;
  return binding.clientId.toLowerCase() === clientId?.toLowerCase() && binding.servicePrincipalId.toLowerCase() === oid.toLowerCase();
}

function serves(server: ServerRecord | undefined, scope: RequestScope): boolean {
  return server !== undefined && server.runners.some((binding) => bindingMatches(binding, scope));
}

/** 403 + `runner.denied` audit row unless the calling runner is bound to the job's server. */
async function assertServesJob(scope: RequestScope, job: JobRecord, endpoint: string): Promise<void> {
  const server = await scope.deps.store.getServer(job.serverId);
  if (serves(server, scope)) return;
  await scope.deps.store.appendAudit({
    ...auditActor(scope),
    action: 'runner.denied',
    target: `job/${job.id}`,
    jobId: job.id,
    detail: { endpoint, serverId: job.serverId, clientId: scope.principal.clientId ?? null, servicePrincipalId: scope.principal.oid },
    at: scope.deps.now(),
  });
  throw new AppError('forbidden', `This runner (client id ${scope.principal.clientId ?? 'unknown'}) is not bound to the job's server ${job.serverId}.`);
}

async function loadRunnableJob(scope: RequestScope, jobId: string, endpoint: string): Promise<JobRecord> {
  const job = await loadJob(scope.deps, jobId);
  await assertServesJob(scope, job, endpoint);
  if (!runnableStatuses.includes(job.status)) {
    throw new AppError('conflict', `Job ${job.id} is ${job.status}; the runner must stop working on it.`, {
      details: { jobStatus: job.status },
    });
  }
  return job;
}

/**
 * The job's backup as committed by an earlier delivery: the blob's own length and the metadata the runner set
 * at commit, for this job id. Anything else (no blob, another job's metadata, a length that disagrees) is
 * nothing to finish. The orchestration verifies the bytes again before the job becomes Available.
 */
async function committedBackup(scope: RequestScope, job: JobRecord): Promise<CommittedBlob | undefined> {
  const facts = await scope.deps.blobs.getBlobFacts(job.blobPath);
  if (!facts || facts.metadata.jobid !== job.id || Number(facts.metadata.size) !== facts.sizeBytes) return undefined;
  const parsed = CommittedBlob.safeParse({
    sizeBytes: facts.sizeBytes,
    sha256: facts.metadata.sha256,
    compression: facts.metadata.compression,
    encrypted: facts.metadata.encrypted === 'true',
  });
  return parsed.success ? parsed.data : undefined;
}

/** A fresh create+write SAS for exactly the job's blob path, while the job is runnable. */
export async function issueUploadTarget(scope: RequestScope, jobId: string): Promise<UploadTarget> {
  assertRunnerApplication(scope);
  const { deps } = scope;
  const job = await loadRunnableJob(scope, jobId, 'upload-target');
  const now = deps.now();
  const expiresAt = new Date(now.getTime() + deps.limits.uploadSasTtlMinutes * MINUTE_MS);
  const sas = await deps.blobs.issueWriteSas(job.blobPath, { expiresAt });
  await deps.store.appendAudit({
    ...auditActor(scope),
    action: 'sas.upload_issued',
    target: `job/${job.id}`,
    jobId: job.id,
    detail: { blobPath: job.blobPath, expiresAt: sas.expiresAt.toISOString() },
    at: now,
  });
  const committed = await committedBackup(scope, job);
  return { blobPath: job.blobPath, url: sas.url, expiresAt: sas.expiresAt.toISOString(), ...(committed ? { committed } : {}) };
}

/**
 * The uncommitted blocks on the job's blob, for a runner resuming an interrupted upload of a local backup file.
 * Read with the control plane's identity so the runner's SAS can stay create+write; ids are the runner's own.
 */
export async function listStagedBlocks(scope: RequestScope, jobId: string): Promise<StagedBlocks> {
  assertRunnerApplication(scope);
  const job = await loadRunnableJob(scope, jobId, 'staged-blocks');
  return { blobPath: job.blobPath, blocks: await scope.deps.blobs.listStagedBlocks(job.blobPath) };
}

/**
 * Whether a runner event must reach the job's orchestration. Progress on a Running job does not: it is only
 * shown. Progress on a Queued job does once, as acceptance (the runner is evidently working; its `accepted`
 * was lost or is late) — v1 instances, which still take progress events, handle both.
 */
export function reachesOrchestration(event: RunnerEvent, jobStatus: JobStatus): boolean {
  return event.type !== 'progress' || jobStatus === 'Queued';
}

/**
 * Passes a lifecycle event to the job's orchestration, or writes progress to the job row. Repeats are harmless:
 * the orchestration ignores an event id it has seen, and progress is a last-value-wins write. An upload reported
 * for any other path than the job's is refused.
 */
export async function reportRunnerEvent(scope: RequestScope, jobId: string, event: RunnerEvent): Promise<RunnerEventAck> {
  assertRunnerApplication(scope);
  const job = await loadRunnableJob(scope, jobId, 'events');
  if (event.type === 'uploaded' && event.blobPath !== job.blobPath) {
    throw new AppError('validation_failed', `Job ${job.id} uploads to ${job.blobPath}, not ${event.blobPath}.`, {
      fieldErrors: [{ field: 'body.blobPath', message: `must be the job's blob path ${job.blobPath}` }],
    });
  }
  if (event.type === 'progress') {
    const progress = { percent: event.percent, bytes: event.bytes, at: scope.deps.now() };
    await scope.deps.store.updateJobProgress(job.id, progress, { notWithinMs: PROGRESS_RECORD_INTERVAL_MS });
  }
  if (reachesOrchestration(event, job.status)) await scope.orchestrations.raiseEvent(job.id, ORCHESTRATION_EVENTS.runner, event);
  return { jobId: job.id, status: job.status, duplicate: false };
}

/** An Available backup of a server the calling runner is bound to (403 + `runner.denied` otherwise). */
async function loadRehearsableJob(scope: RequestScope, jobId: string, endpoint: string): Promise<JobRecord> {
  assertRunnerApplication(scope);
  const job = await loadJob(scope.deps, jobId);
  await assertServesJob(scope, job, endpoint);
  conflictUnlessIn(job, ['Available'], 'a restore rehearsal');
  return job;
}

/**
 * A short read SAS for the backup to rehearse (audited like any SAS), with the facts recorded at upload that the
 * rehearsal checks against: the digest of the stored bytes and the per-table row counts.
 */
export async function issueRehearsalSource(scope: RequestScope, jobId: string): Promise<RehearsalSource> {
  const job = await loadRehearsableJob(scope, jobId, 'rehearsal-source');
  if (job.sha256 === null) throw new AppError('internal', `Job ${job.id} is Available without a verified digest.`);
  const { deps } = scope;
  const now = deps.now();
  // As for download links: the id in the SAS names this audit row in the storage logs.
  const correlationId = randomUUID();
  const sas = await deps.blobs.issueReadSas(job.blobPath, {
    expiresAt: new Date(now.getTime() + deps.limits.uploadSasTtlMinutes * MINUTE_MS),
    fileName: jobFileName(job),
    correlationId,
  });
  await deps.store.appendAudit({
    ...auditActor(scope),
    action: 'sas.rehearsal_issued',
    target: `job/${job.id}`,
    jobId: job.id,
    detail: { blobPath: job.blobPath, expiresAt: sas.expiresAt.toISOString(), correlationId },
    at: now,
  });
  return {
    url: sas.url,
    expiresAt: sas.expiresAt.toISOString(),
    compression: job.options.compression,
    encrypted: job.options.encryption !== 'none',
    sha256: job.sha256,
    tableRowCounts: job.tableRowCounts,
  };
}

/**
 * Records a rehearsal's outcome on the job with its `restore.rehearsed` audit row (one transaction); a failed
 * rehearsal's row is the notification event. 409 when the backup is no longer Available.
 */
export async function reportRehearsal(scope: RequestScope, jobId: string, report: RehearsalReport): Promise<{ jobId: string; result: 'passed' | 'failed' }> {
  const job = await loadRehearsableJob(scope, jobId, 'rehearsal');
  const at = scope.deps.now();
  const error = report.result === 'failed' ? `${report.code ?? 'restore_failed'}: ${report.message ?? 'no detail'}`.slice(0, 4000) : null;
  const recorded = await scope.deps.store.recordRestoreRehearsal(
    job.id,
    { at, durationMs: report.restoreDurationMs, result: report.result, error },
    {
      ...auditActor(scope),
      action: 'restore.rehearsed',
      target: `job/${job.id}`,
      jobId: job.id,
      detail: { rehearsalId: report.rehearsalId, result: report.result, durationMs: report.restoreDurationMs, code: report.code ?? null },
      at,
    },
  );
  if (!recorded) throw new AppError('conflict', `Job ${job.id} is no longer Available.`, { details: { jobStatus: (await scope.deps.store.getJob(job.id))?.status ?? null } });
  return { jobId: job.id, result: report.result };
}

/** A heartbeat is "live" for three of the runner's one-minute intervals. */
export const RUNNER_LIVE_MS = 3 * MINUTE_MS;

/** Records the runner host's heartbeat and tells it which of its servers it is bound to. */
export async function recordHeartbeat(scope: RequestScope, heartbeat: RunnerHeartbeat): Promise<RunnerHeartbeatAck> {
  assertRunnerApplication(scope);
  const { deps, principal } = scope;
  await deps.store.recordRunnerHeartbeat({
    runnerId: heartbeat.runnerId,
    clientId: principal.clientId ?? 'unknown',
    servicePrincipalId: principal.oid,
    version: heartbeat.version,
    serverIds: heartbeat.serverIds,
    inFlightJobs: heartbeat.inFlightJobs,
    freeScratchBytes: heartbeat.freeScratchBytes ?? null,
    lastSeenAt: deps.now(),
  });
  const servers = new Map((await deps.store.listServers()).map((server) => [server.id, server]));
  const bound = heartbeat.serverIds.filter((id) => serves(servers.get(id), scope));
  return { boundServerIds: bound, unboundServerIds: heartbeat.serverIds.filter((id) => !bound.includes(id)) };
}

/** Runner hosts by last heartbeat, and the servers that no live, bound runner serves. */
export async function listRunners(scope: RequestScope): Promise<RunnersView> {
  const { deps } = scope;
  const now = deps.now().getTime();
  const [heartbeats, servers] = await Promise.all([deps.store.listRunnerHeartbeats(), deps.store.listServers()]);
  const runners = heartbeats.map((h) => ({
    ...h,
    lastSeenAt: h.lastSeenAt.toISOString(),
    health: now - h.lastSeenAt.getTime() <= RUNNER_LIVE_MS ? ('live' as const) : ('stale' as const),
  }));
  const covered = (server: ServerRecord) =>
    runners.some(
      (runner) =>
        runner.health === 'live' &&
        runner.serverIds.includes(server.id) &&
        server.runners.some((b) => b.clientId.toLowerCase() === runner.clientId.toLowerCase() && b.servicePrincipalId.toLowerCase() === runner.servicePrincipalId.toLowerCase()),
    );
  return {
    runners,
    serversWithoutLiveRunner: servers.filter((server) => !covered(server)).map((server) => ({ id: server.id, name: server.name })),
  };
}

/** Lifetime of a probe SAS: the runner's `check` uses it at once. */
const PROBE_SAS_MINUTES = 5;

/**
 * A job-less SAS for `dbdist-runner check`: create, write and delete on one fresh probe blob outside `backups/`,
 * for five minutes, audited like any SAS. It proves the runner can reach Blob Storage and write with our SAS.
 */
export async function issueProbeTarget(scope: RequestScope): Promise<ProbeTarget> {
  assertRunnerApplication(scope);
  const { deps } = scope;
  const blobPath = probeBlobPath(scope.principal.clientId ?? scope.principal.oid, randomUUID());
  const now = deps.now();
  const sas = await deps.blobs.issueWriteSas(blobPath, { expiresAt: new Date(now.getTime() + PROBE_SAS_MINUTES * MINUTE_MS), allowDelete: true });
  await deps.store.appendAudit({
    ...auditActor(scope),
    action: 'sas.upload_issued',
    target: `probe/${blobPath}`,
    detail: { blobPath, expiresAt: sas.expiresAt.toISOString(), probe: true },
    at: now,
  });
  return { blobPath, url: sas.url, expiresAt: sas.expiresAt.toISOString() };
}
