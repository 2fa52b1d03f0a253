/**
 * One restore rehearsal, from a rehearsal message to the decision on the message:
 *
 *   rehearsal-source (read SAS + recorded digest and row counts) → restore/rehearsal.ts into scratch → report
 *
 * The API answering 409 (backup no longer Available) or 404 (a job it does not know) completes the message: no
 * delivery can fix that. The API or Blob Storage unreachable, or shutdown, abandons it (Service Bus redelivers).
 * A runner without a scratch target for the engine reports a failed rehearsal, so the Admin sees why.
 */
import { randomBytes } from 'node:crypto';
import type { RehearsalJobMessage } from '../shared/contracts/messages.js';
import { errorMessage, isAppError } from '../shared/errors.js';
import type { RunnerApiClient } from './api/client.js';
import type { AttemptContext, JobRunnerDeps, Settlement } from './job-runner.js';
import { rehearseRestore, type RehearsalOutcome } from './restore/rehearsal.js';

export type RehearsalApi = Pick<RunnerApiClient, 'rehearsalSource' | 'reportRehearsal'>;
export type RehearsalRunnerDeps = Pick<JobRunnerDeps, 'scratch' | 'encryptionKey' | 'logger'> & { api: RehearsalApi };

export async function runRehearsal(message: RehearsalJobMessage, context: AttemptContext, deps: RehearsalRunnerDeps): Promise<Settlement> {
  const attemptId = randomBytes(8).toString('hex');
  const log = deps.logger.child({ jobId: message.jobId, rehearsalId: message.rehearsalId, attemptId });
  try {
    const source = await deps.api.rehearsalSource(message.jobId, { signal: context.signal });
    if (source.kind === 'not_runnable') return { action: 'complete', reason: `backup is ${source.status}: nothing to rehearse` };
    const driver = deps.scratch?.[message.engine];
    const outcome: RehearsalOutcome = driver
      ? await rehearseRestore(
          { rehearsalId: message.rehearsalId, compression: source.value.compression, encrypted: source.value.encrypted, sha256: source.value.sha256, ...(source.value.tableRowCounts ? { tableRowCounts: source.value.tableRowCounts } : {}) },
          driver,
          { sourceUrl: source.value.url, ...(deps.encryptionKey ? { encryptionKey: deps.encryptionKey } : {}), signal: context.signal, attemptId, logger: deps.logger },
        )
      : { result: 'failed', restoreDurationMs: 0, tableRowCounts: {}, code: 'scratch_missing', message: `This runner has no scratch target for ${message.engine}` };
    const reported = await deps.api.reportRehearsal(
      message.jobId,
      {
        rehearsalId: message.rehearsalId,
        result: outcome.result,
        restoreDurationMs: Math.round(outcome.restoreDurationMs),
        ...(outcome.code ? { code: outcome.code.slice(0, 64) } : {}),
        ...(outcome.message ? { message: outcome.message.slice(0, 4000) } : {}),
      },
      { signal: context.signal },
    );
    if (reported.kind === 'not_runnable') return { action: 'complete', reason: `backup became ${reported.status} during the rehearsal` };
    return { action: 'complete', reason: `rehearsal ${outcome.result}` };
  } catch (error) {
    if (isAppError(error) && error.code === 'not_found') return { action: 'complete', reason: 'the API does not know the job' };
    log.warn({ error: errorMessage(error) }, 'rehearsal attempt stopped; the message goes back for redelivery');
    return { action: 'abandon', reason: errorMessage(error) };
  }
}
