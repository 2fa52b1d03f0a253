/**
 * One backup attempt, from a parsed job message to the decision on the message:
 *
 *   accepted event → upload target → engine → upload pipeline (progress events) → uploaded event → complete
 *
 * and the ways out:
 *   - the API answers 409 at any point (job cancelled, failed or done elsewhere) → stop, complete, no more work;
 *   - the API answers 404 (a job it does not know) → complete, whatever the engine: no delivery can fix that;
 *   - the engine or the upload fails for a reason another delivery would not fix → `failed` event, complete;
 *   - the API or Blob Storage unreachable → wait with capped back-off while the message stays locked, for up to
 *     the outage bound (runner-agent/outage.ts); only after it abandon, so Service Bus redelivers;
 *   - shutdown past its grace period → abandon.
 * A redelivered job whose blob an earlier delivery already committed (the upload target says so) is reported
 * `uploaded` from the blob's facts, without a second backup. A backup that is a finished local file (SQL
 * Server's .bak, a spooled pg_dump) is checkpointed (pipeline/checkpoint.ts): an attempt that died or gave the
 * message back leaves file and checkpoint behind, and the next delivery uploads that file without backing up
 * again, sending only the blocks the blob does not hold yet (encrypted copies: all of them, under a fresh key).
 * Otherwise every attempt starts clean: a fresh attempt id names its temp file and its block ids, and nothing
 * is committed before the very end.
 */
import { inSpan } from '../shared/telemetry.js';
import { randomBytes } from 'node:crypto';
import type { BackupEngine } from '../shared/contracts/common.js';
import { BackupJobMessage, type JobMessage, RehearsalJobMessage } from '../shared/contracts/messages.js';
import type { RunnerEvent, UploadTarget, UploadedEvent } from '../shared/contracts/runner.js';
import { errorMessage, isAppError } from '../shared/errors.js';
import type { ApiOutcome, RunnerApiClient } from './api/client.js';
import type { BackupEngineDriver } from './engines/types.js';
import { JobFailure, isJobFailure } from './errors.js';
import type { Logger } from './logger.js';
import type { RunnerMetrics } from './metrics.js';
import { DEFAULT_OUTAGE_BOUND_MS, isTransient, waitThroughOutage, type OutagePolicy } from './outage.js';
import { ProgressThrottle } from './pipeline/progress.js';
import type { KeyedSemaphore } from './semaphore.js';
import { sanitizedBackup } from './sanitize/sanitized-backup.js';
import type { ScratchDriver } from './sanitize/types.js';
import { chooseBlockBytes, uploadBackup, type UploadOptions } from './pipeline/upload.js';
import {
  backupFromCheckpoint,
  discardCheckpoint,
  finishedFile,
  loadCheckpoint,
  saveCheckpoint,
  type UploadCheckpoint,
} from './pipeline/checkpoint.js';
import type { EngineBackup } from './engines/types.js';

export type Settlement =
  | { action: 'complete'; reason: string }
  | { action: 'abandon'; reason: string }
  | { action: 'deadLetter'; reason: string; description: string };

export type ParsedMessage = { ok: true; job: JobMessage } | { ok: false; reason: string; description: string };

/** Service Bus bodies arrive parsed (JSON), as text or as bytes, depending on the sender. */
function decodeBody(body: unknown): unknown {
  if (typeof body === 'string') return JSON.parse(body);
  if (body instanceof Uint8Array) return JSON.parse(Buffer.from(body).toString('utf8'));
  return body;
}

/** Checks a message against the JobMessage contract (a backup or a rehearsal); the reason is what the dead-letter queue shows. */
export function parseJobMessage(body: unknown): ParsedMessage {
  let value: unknown;
  try {
    value = decodeBody(body);
  } catch (error) {
    return { ok: false, reason: 'InvalidMessageBody', description: `The body is not JSON: ${errorMessage(error)}` };
  }
  const version = (value as { schemaVersion?: unknown } | null)?.schemaVersion;
  // A version we do not know gets its own reason: the fix is upgrading the runner, not the sender.
  if (typeof version === 'number' && version !== 1) {
    return {
      ok: false,
      reason: 'UnsupportedSchemaVersion',
      description: `schemaVersion ${JSON.stringify(version)} is not supported by this runner (it reads version 1); upgrade the runner`,
    };
  }
  // The kind picks the contract, so the dead-letter description names the fields that are wrong.
  const rehearsal = (value as { kind?: unknown } | null)?.kind === 'rehearsal';
  const parsed = rehearsal ? RehearsalJobMessage.safeParse(value) : BackupJobMessage.safeParse(value);
  if (parsed.success) return { ok: true, job: parsed.data };
  const problems = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
  const contract = rehearsal ? 'RehearsalJobMessage' : 'BackupJobMessage';
  return { ok: false, reason: 'InvalidJobMessage', description: `The message does not match ${contract} v1: ${problems}`.slice(0, 1000) };
}

type Api = Pick<RunnerApiClient, 'postEvent' | 'uploadTarget'> & Partial<Pick<RunnerApiClient, 'stagedBlocks'>>;

export interface JobRunnerDeps {
  runnerId: string;
  api: Api;
  engines: Partial<Record<BackupEngine, BackupEngineDriver>>;
  /** Scratch targets for sanitized copies; a job with masking rules fails without one for its engine. */
  scratch?: Partial<Record<BackupEngine, ScratchDriver>>;
  semaphore: KeyedSemaphore;
  /** The retired DBDE key, to rehearse old `.enc` backups; none: such a rehearsal fails `encryption_key_missing`. */
  encryptionKey?: Buffer;
  logger: Logger;
  /** Prometheus metrics (`metrics.port`); none: nothing is counted. */
  metrics?: RunnerMetrics;
  /** Passed through to the upload pipeline (block size, parallelism, client factory in tests). */
  uploadOptions?: Pick<UploadOptions, 'blockBytes' | 'parallelism' | 'clientFor' | 'refreshMarginMs'>;
  /** Where checkpoints of local backup files live (the runner's workDir); none: no checkpoints, no resume. */
  workDir?: string;
  /** How long the API or Blob Storage may stay unreachable before the attempt gives up (default 15 min). */
  outageBoundMs?: number;
  /** Progress throttle intervals (tests shorten them). */
  progress?: { minIntervalMs?: number; heartbeatMs?: number };
  now?: () => number;
}

export interface AttemptContext {
  /** Service Bus delivery count of the message (0 on the first delivery with the JS SDK). */
  deliveryCount: number;
  /** Aborted when the runner shuts down and the grace period is over. */
  signal: AbortSignal;
}

/** Raised inside an attempt when the API says the job is no longer runnable. */
class NotRunnable extends Error {
  constructor(readonly status: string) {
    super(`The job is no longer runnable (status ${status})`);
  }
}

function ok<T>(outcome: ApiOutcome<T>): T {
  if (outcome.kind === 'not_runnable') throw new NotRunnable(outcome.status);
  return outcome.value;
}

function asFailure(error: unknown): JobFailure {
  if (isJobFailure(error)) return error;
  if (isAppError(error)) return new JobFailure(error.code, error.message, { cause: error });
  return new JobFailure('runner_error', errorMessage(error), { cause: error });
}

export async function runJob(job: BackupJobMessage, context: AttemptContext, deps: JobRunnerDeps): Promise<Settlement> {
  const settlement = await attemptBackup(job, context, deps);
  deps.metrics?.settled(settlement);
  return settlement;
}

async function attemptBackup(job: BackupJobMessage, context: AttemptContext, deps: JobRunnerDeps): Promise<Settlement> {
  const now = deps.now ?? Date.now;
  const attemptId = randomBytes(8).toString('hex');
  const attempt = context.deliveryCount + 1;
  const log = deps.logger.child({ jobId: job.jobId, attempt, attemptId });
  let eventSeq = 0;
  const eventId = (type: string) => `${job.jobId}:${attemptId}:${type}:${(eventSeq += 1)}`;
  const post = async (event: RunnerEvent, signal?: AbortSignal) => ok(await deps.api.postEvent(job.jobId, event, signal ? { signal } : {}));
  const outage: OutagePolicy = {
    boundMs: deps.outageBoundMs ?? DEFAULT_OUTAGE_BOUND_MS,
    now,
    onWait: ({ waitingFor, waitedMs, retryInMs, problem }) =>
      log.warn({ waitingFor, waitedMs, retryInMs, boundMs: outage.boundMs, problem }, `waiting for ${waitingFor}; the message stays locked`),
  };
  /** A call that must get through: waits out an outage of the API or Blob Storage, up to the bound. */
  const reach = <T>(waitingFor: string, call: () => Promise<T>, signal: AbortSignal) => waitThroughOutage(waitingFor, call, outage, signal);

  /** Reports the failure; a 409 answer means there is nothing left to report to, a 404 that there never was. */
  const reportFailure = async (failure: JobFailure): Promise<Settlement> => {
    log.warn({ code: failure.code, error: failure.message }, 'backup failed');
    deps.metrics?.engineErrors.inc({ code: failure.code.slice(0, 64) });
    try {
      const event: RunnerEvent = { type: 'failed', eventId: eventId('failed'), code: failure.code.slice(0, 64), message: failure.message.slice(0, 4000) };
      await reach('the API (failed report)', () => post(event), context.signal);
    } catch (error) {
      if (error instanceof NotRunnable) return { action: 'complete', reason: `job ${error.status}; failure not reported` };
      if (isAppError(error) && error.code === 'not_found') {
        log.warn({ error: error.message }, 'the API does not know this job; dropping the message');
        return { action: 'complete', reason: 'job unknown to the API' };
      }
      log.error({ error: errorMessage(error) }, 'could not report the failure; the message will be redelivered');
      return { action: 'abandon', reason: 'failure report not delivered' };
    }
    return { action: 'complete', reason: `failed: ${failure.code}` };
  };

  log.info({ engine: job.engine, serverId: job.serverId, deliveryCount: context.deliveryCount }, 'job received');
  if (Date.parse(job.runDeadline) <= now()) {
    return reportFailure(new JobFailure('deadline_passed', `The job's run deadline ${job.runDeadline} has passed; not starting`));
  }
  const engine = deps.engines[job.engine];
  if (!engine) return reportFailure(new JobFailure('engine_not_configured', `This runner has no ${job.engine} connection configured`));
  const scratch = job.masking ? deps.scratch?.[job.engine] : undefined;
  if (job.masking && !scratch) {
    const key = job.engine === 'postgres' ? 'postgres' : 'sqlServer';
    return reportFailure(new JobFailure('scratch_not_configured', `A sanitized copy needs scratch.${key} in the runner config`));
  }
  if (job.options.encryption === 'dbde') {
    return reportFailure(new JobFailure('encryption_format_retired', 'The runner-key format (DBDE) is retired; request the copy again with encryption "age"'));
  }
  if (job.options.encryption === 'age' && !job.ageRecipients) {
    return reportFailure(new JobFailure('encryption_recipients_missing', 'The job asks for age encryption but names no recipients'));
  }

  let release: (() => void) | undefined;
  try {
    release = await deps.semaphore.acquire(job.serverId, context.signal);
  } catch {
    return { action: 'abandon', reason: 'shutting down before the job started' };
  }
  deps.metrics?.inFlightJobs.inc();

  // Stops the engine and the upload when the API says stop (409) or the runner shuts down.
  const stop = new AbortController();
  const onShutdown = () => stop.abort(new Error('runner shutting down'));
  context.signal.addEventListener('abort', onShutdown, { once: true });
  let notRunnable: NotRunnable | undefined;
  const noteNotRunnable = (error: unknown) => {
    if (error instanceof NotRunnable) {
      notRunnable ??= error;
      stop.abort(error);
    }
  };

  try {
    const accepted: RunnerEvent = { type: 'accepted', eventId: eventId('accepted'), runnerId: deps.runnerId, attempt };
    await reach('the API (accepted report)', () => post(accepted), stop.signal);
    log.info('job accepted');

    const requestTarget = (reason: string) =>
      reach(
        'the API (upload target)',
        async () => {
          log.info({ reason }, 'requesting a write SAS');
          try {
            return ok(await deps.api.uploadTarget(job.jobId, { signal: stop.signal }));
          } catch (error) {
            noteNotRunnable(error);
            throw error;
          }
        },
        stop.signal,
      );
    // A sanitized copy is built, masked and verified before the runner asks for a write SAS: a sanitized job that
    // fails closed (an uncovered sensitive column, a failed verification) never holds one.
    const sanitized = job.masking
      ? await sanitizedBackup({ jobId: job.jobId, databaseName: job.databaseName, masking: job.masking }, scratch!, { signal: stop.signal, attemptId, logger: log })
      : undefined;
    const discardSanitized = async () => {
      if (!sanitized) return;
      sanitized.done.catch(() => undefined);
      sanitized.stream.destroy();
      await sanitized.cleanup().catch((error: unknown) => log.warn({ error: errorMessage(error) }, 'temp file cleanup failed'));
    };
    let firstTarget: UploadTarget | undefined;
    try {
      firstTarget = await requestTarget('initial');
    } catch (error) {
      await discardSanitized();
      throw error;
    }
    const reportUploaded = async (facts: Omit<UploadedEvent, 'type' | 'eventId'>) => {
      const uploaded: RunnerEvent = { type: 'uploaded', eventId: eventId('uploaded'), ...facts };
      await reach('the API (uploaded report)', () => post(uploaded), stop.signal);
    };
    const blobPath = firstTarget.blobPath;
    // What an earlier attempt left on disk: a finished backup file to upload again, or nothing usable.
    const earlier = deps.workDir && !sanitized ? await loadCheckpoint(deps.workDir, job.jobId, job.engine) : ({ kind: 'none' } as const);
    if (earlier.kind === 'stale') log.info({ reason: earlier.reason }, 'discarded the upload checkpoint of an earlier attempt; starting clean');
    if (firstTarget.committed) {
      await discardSanitized();
      if (earlier.kind === 'usable') await discardCheckpoint(deps.workDir!, job.jobId, earlier.checkpoint.file.path);
      // An earlier delivery committed this job's blob but could not report it: finish that instead of redoing it.
      log.info({ sizeBytes: firstTarget.committed.sizeBytes, sha256: firstTarget.committed.sha256 }, 'backup already committed by an earlier delivery; reporting it');
      await reportUploaded({ blobPath: firstTarget.blobPath, ...firstTarget.committed });
      deps.metrics?.lastSuccess.set({ server: job.serverId }, Math.floor(now() / 1000));
      return { action: 'complete', reason: 'uploaded (committed earlier)' };
    }

    let engineBytes = 0;
    let sourceBytesCounted = 0;
    let enginePercent = 0;
    const progress = new ProgressThrottle({
      send: async (sample) => {
        try {
          await post({ type: 'progress', eventId: eventId('progress'), percent: sample.percent, bytes: sample.bytes }, stop.signal);
        } catch (error) {
          noteNotRunnable(error);
          if (!(error instanceof NotRunnable)) log.warn({ error: errorMessage(error) }, 'progress report failed (ignored)');
        }
      },
      ...(deps.progress ?? {}),
      now,
    });

    const resumed = earlier.kind === 'usable' ? earlier.checkpoint : undefined;
    if (resumed) {
      log.info(
        { path: resumed.file.path, sizeBytes: resumed.file.sizeBytes },
        'an earlier attempt finished the backup: uploading its local file, not backing up again',
      );
    }
    // A sanitized copy is a backup like any other to the upload; it only passed verification first.
    const backup: EngineBackup = sanitized
      ? sanitized
      : resumed
        ? backupFromCheckpoint(resumed)
        : await engine.backup(
      { jobId: job.jobId, databaseName: job.databaseName, compression: job.options.compression },
      {
        signal: stop.signal,
        attemptId,
        onProgress: (percent) => {
          enginePercent = percent;
          progress.offer({ percent, bytes: engineBytes });
        },
      },
    );
    const checkpoint = resumed ?? (deps.workDir && backup.localFile ? await checkpointFinishedBackup(deps.workDir, job, backup, log) : undefined);
    const resume = checkpoint ? await planResume(checkpoint, { job, blobPath, backup, resumed: resumed !== undefined, deps, log, reach, signal: stop.signal }) : undefined;
    let result;
    let restoreCheck;
    let keepForResume = false;
    try {
      result = await inSpan('runner backup and upload', { attributes: { 'job.id': job.jobId, 'db.engine': job.engine } }, () => uploadBackup({
        source: backup.stream,
        sourceDone: backup.done,
        ...(backup.sizeHint !== undefined ? { sourceSizeHint: backup.sizeHint } : {}),
        compression: job.options.compression,
        ...(job.options.encryption === 'age' ? { ageRecipients: job.ageRecipients } : {}),
        getTarget: async (reason) => {
          const prefetched = firstTarget;
          firstTarget = undefined;
          return prefetched ?? requestTarget(reason);
        },
        outage,
        metadata: { engine: job.engine, jobid: job.jobId, server: job.server.name, database: job.databaseName },
        signal: stop.signal,
        // The final progress report doubles as the check that the job is still wanted: a 409 (cancelled while
        // the upload ran) stops here, before anything is committed.
        beforeCommit: async (facts) => {
          await progress.complete(facts.sizeBytes);
          if (notRunnable) throw notRunnable;
        },
        onProgress: ({ sourceBytes, storedBytes }) => {
          engineBytes = storedBytes;
          deps.metrics?.bytesRead.inc(Math.max(0, sourceBytes - sourceBytesCounted));
          sourceBytesCounted = Math.max(sourceBytesCounted, sourceBytes);
          const percent = backup.percentAfter ? backup.percentAfter(sourceBytes) : enginePercent;
          progress.offer({ percent: Math.min(percent, 99.9), bytes: storedBytes });
        },
        ...deps.uploadOptions,
        ...(resume ? { blockBytes: resume.blockBytes, resume: resume.listStaged ? { listStaged: resume.listStaged } : {} } : {}),
      }));
      restoreCheck = backup.restoreCheck?.();
    } catch (error) {
      // A delivery that comes back (shutdown, an outage past the bound) finds the file and its checkpoint again.
      keepForResume = checkpoint !== undefined && !notRunnable && (context.signal.aborted || isTransient(error));
      throw error;
    } finally {
      if (keepForResume) {
        log.info({ path: checkpoint!.file.path }, 'keeping the local backup file and its checkpoint for the next delivery');
      } else {
        await backup.cleanup().catch((error: unknown) => log.warn({ error: errorMessage(error) }, 'temp file cleanup failed'));
        if (checkpoint) await discardCheckpoint(deps.workDir!, job.jobId).catch((error: unknown) => log.warn({ error: errorMessage(error) }, 'checkpoint cleanup failed'));
      }
    }
    if (result.resume && resume?.listStaged) {
      const { reusedBlocks, reusedBytes, sentBytes } = result.resume;
      log.info(
        { reusedBlocks, blocks: result.blockCount, reusedBytes, sentBytes },
        `resumed upload of job ${job.jobId}: ${reusedBlocks} of ${result.blockCount} blocks already staged, ${sentBytes} bytes sent again or anew`,
      );
    }
    log.info({ sizeBytes: result.sizeBytes, sha256: result.sha256, blocks: result.blockCount }, 'backup uploaded');
    await reportUploaded({
      blobPath: result.blobPath,
      sizeBytes: result.sizeBytes,
      sha256: result.sha256,
      compression: result.compression,
      encrypted: result.encrypted,
      ...(backup.tableRowCounts ? { tableRowCounts: backup.tableRowCounts } : {}),
      runnerId: deps.runnerId,
      attempt,
      ...(restoreCheck ? { restoreCheck } : {}),
    });
    deps.metrics?.bytesUploaded.inc(result.sizeBytes);
    deps.metrics?.lastSuccess.set({ server: job.serverId }, Math.floor(now() / 1000));
    return { action: 'complete', reason: 'uploaded' };
  } catch (caught) {
    const error = notRunnable ?? caught;
    if (error instanceof NotRunnable) {
      log.info({ status: error.status }, 'job no longer runnable; stopping without reporting');
      return { action: 'complete', reason: `job ${error.status}` };
    }
    if (context.signal.aborted) {
      log.warn('runner shutting down; the message goes back to the queue');
      return { action: 'abandon', reason: 'shutdown' };
    }
    if (isTransient(error)) {
      log.warn({ error: errorMessage(error) }, 'transient failure; the message will be redelivered');
      return { action: 'abandon', reason: errorMessage(error) };
    }
    if (isAppError(error) && (error.code === 'unauthenticated' || error.code === 'forbidden')) {
      // Our credentials or role are wrong: reporting a failure would be refused too. Let an operator fix it.
      log.error({ error: error.message }, 'the API refused the runner; check its app registration and Runner role');
      return { action: 'abandon', reason: error.message };
    }
    if (isAppError(error) && error.code === 'not_found') {
      log.warn({ error: error.message }, 'the API does not know this job; dropping the message');
      return { action: 'complete', reason: 'job unknown to the API' };
    }
    return reportFailure(asFailure(error));
  } finally {
    context.signal.removeEventListener('abort', onShutdown);
    deps.metrics?.inFlightJobs.dec();
    release();
  }
}

/** Records a finished local backup file (flushed first) with the engine's verdict; without it the attempt runs on. */
async function checkpointFinishedBackup(workDir: string, job: BackupJobMessage, backup: EngineBackup, log: Logger): Promise<UploadCheckpoint | undefined> {
  try {
    await backup.done;
    const restoreCheck = backup.restoreCheck?.();
    const checkpoint: UploadCheckpoint = {
      version: 1,
      jobId: job.jobId,
      runDeadline: job.runDeadline,
      engine: job.engine,
      file: await finishedFile(backup.localFile!),
      ...(restoreCheck ? { restoreCheck } : {}),
      ...(backup.tableRowCounts ? { tableRowCounts: backup.tableRowCounts } : {}),
    };
    await saveCheckpoint(workDir, checkpoint);
    return checkpoint;
  } catch (error) {
    log.warn({ error: errorMessage(error) }, 'could not write the upload checkpoint; a crash now would mean backing up again');
    return undefined;
  }
}

/**
 * How the upload of a checkpointed file goes: an unencrypted one keeps the block size its checkpoint recorded and,
 * when an earlier attempt started uploading, reuses the blocks still staged; an encrypted one starts over.
 */
async function planResume(
  checkpoint: UploadCheckpoint,
  context: {
    job: BackupJobMessage;
    blobPath: string;
    backup: EngineBackup;
    /** The file is an earlier attempt's. */
    resumed: boolean;
    deps: JobRunnerDeps;
    log: Logger;
    reach: <T>(waitingFor: string, call: () => Promise<T>, signal: AbortSignal) => Promise<T>;
    signal: AbortSignal;
  },
): Promise<{ blockBytes: number; listStaged?: () => Promise<Array<{ id: string; sizeBytes: number }>> } | undefined> {
  const { job, blobPath, deps, log, reach, signal } = context;
  if (job.options.encryption === 'age') {
    if (context.resumed) log.info('encrypted copy: its upload starts over under a fresh file key (blocks of an earlier attempt are not reused)');
    return undefined;
  }
  const previous = checkpoint.upload;
  if (previous && previous.blobPath === blobPath && previous.compression === job.options.compression) {
    const stagedBlocks = deps.api.stagedBlocks?.bind(deps.api);
    return {
      blockBytes: previous.blockBytes,
      ...(stagedBlocks
        ? {
            listStaged: async () => {
              const staged = await reach('the API (staged blocks)', async () => ok(await stagedBlocks(job.jobId, { signal })), signal);
              log.info(
                { stagedBlocks: staged.blocks.length, blockBytes: previous.blockBytes },
                `resuming upload of job ${job.jobId}: ${staged.blocks.length} blocks already staged`,
              );
              return staged.blocks;
            },
          }
        : {}),
    };
  }
  const blockBytes = chooseBlockBytes(context.backup.sizeHint, deps.uploadOptions?.blockBytes);
  checkpoint.upload = { blobPath, blockBytes, compression: job.options.compression };
  await saveCheckpoint(deps.workDir!, checkpoint).catch((error: unknown) =>
    log.warn({ error: errorMessage(error) }, 'could not record the upload in its checkpoint; a crash now would mean sending every block again'),
  );
  return { blockBytes };
}
