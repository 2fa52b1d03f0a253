/**
 * JobOrchestrations over the Durable Functions client binding of one invocation. Handlers that use it declare
 * `durableClient: true` at registration (functions/registry.ts adds `df.input.durableClient()`).
 */
import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import type { BackupJobInput } from '../orchestrations/backupJob.js';
import { BACKUP_JOB2_ORCHESTRATOR } from '../orchestrations/backupJob2.js';
import type { JobOrchestrations, OrchestrationState } from '../services/orchestrations.js';

/** The client only says "not found" in its error text (it throws on the extension's HTTP 404). */
function isNotFound(error: unknown): boolean {
  return error instanceof Error && /\b404\b/.test(error.message);
}

/** Starting an instance id that is already running answers 409 from the extension. */
function isConflict(error: unknown): boolean {
  return error instanceof Error && /\b409\b/.test(error.message);
}

export function durableJobOrchestrations(context: InvocationContext): JobOrchestrations {
  const client = df.getClient(context);

  async function getState(jobId: string): Promise<OrchestrationState> {
    try {
      const status = await client.getStatus(jobId, { showHistory: false, showInput: false });
      return status.runtimeStatus as OrchestrationState;
    } catch (error) {
      if (isNotFound(error)) return 'NotFound';
      throw error;
    }
  }

  return {
    getState,
    async startBackupJob(jobId) {
      // startNew on an existing id would restart a finished instance: only a missing one is started.
      if ((await getState(jobId)) !== 'NotFound') return;
      const input: BackupJobInput = { jobId };
      try {
        await client.startNew(BACKUP_JOB2_ORCHESTRATOR, { instanceId: jobId, input });
      } catch (error) {
        if (isConflict(error)) return; // a concurrent start won the race: the instance exists, as asked
        throw error;
      }
    },
    async raiseEvent(jobId, eventName, payload) {
      await client.raiseEvent(jobId, eventName, payload);
    },
  };
}
