/**
 * JobOrchestrations over the Durable Functions client binding of one invocation. Handlers that use it declare
 * `durableClient: true` at registration (functions/registry.ts adds `df.input.durableClient()`).
 *
 * How the real client answers (durable-functions 3.5, lib/src/durableClient/DurableClient.js, over the
 * extension's HTTP API, azure-functions-durable-extension src/WebJobs.Extensions.DurableTask/HttpApiHandler.cs):
 * - `getStatus` rejects on 404 with "…replied with HTTP 404 response…"; Pending/Running answer 202, the rest 200;
 * - `startNew` on an id that exists: the extension's start handler has no conflict case, DurableTask's
 *   "already exists" error becomes an HTTP 500, which the client rejects as "unexpected status code: 500";
 * - `raiseEvent` resolves on 202 and on 410 (instance Completed, Failed, Terminated: the event is dropped) and
 *   rejects on 404 with "No instance with ID '…' found." (no "404" in the text).
 * So the state is read around each call instead of parsing error texts. The dev host (dev/durable-host.ts)
 * answers the same way and goes through this same code.
 */
import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import type { BackupJobInput } from '../orchestrations/backupJob.js';
import { BACKUP_JOB2_ORCHESTRATOR } from '../orchestrations/backupJob2.js';
import { REVERIFY_BACKUP_ORCHESTRATOR } from '../orchestrations/reverifyBackup.js';
import { LIVE_ORCHESTRATION_STATES, type JobOrchestrations, type OrchestrationState } from '../services/orchestrations.js';

/** The calls of durable-functions' DurableClient the control plane makes (the dev host offers the same). */
export interface DurableClientCalls {
  startNew(orchestratorName: string, options: { instanceId: string; input?: unknown }): Promise<string>;
  raiseEvent(instanceId: string, eventName: string, eventData: unknown): Promise<void>;
  getStatus(instanceId: string, options?: { showHistory?: boolean; showInput?: boolean }): Promise<{ runtimeStatus: string }>;
}

/** getStatus's rejection for an unknown instance is the only place the client names the status code. */
function isNotFound(error: unknown): boolean {
  return error instanceof Error && /\bHTTP 404\b/.test(error.message);
}

export function jobOrchestrationsOver(client: DurableClientCalls, orchestratorName: string = BACKUP_JOB2_ORCHESTRATOR): JobOrchestrations {
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
      // startNew on an existing id could restart a finished instance: only a missing one is started.
      if ((await getState(jobId)) !== 'NotFound') return;
      const input: BackupJobInput = { jobId };
      try {
        await client.startNew(orchestratorName, { instanceId: jobId, input });
      } catch (error) {
        // A concurrent start that won the race surfaces as a 500 like any other failure: the state tells them apart.
        if ((await getState(jobId)) !== 'NotFound') return;
        throw error;
      }
    },
    async raiseEvent(jobId, eventName, payload) {
      // The client is silent when the instance has ended (410): look first, so a dropped event is never taken for delivered.
      const state = await getState(jobId);
      if (!LIVE_ORCHESTRATION_STATES.includes(state)) return { raised: false, state };
      try {
        await client.raiseEvent(jobId, eventName, payload);
      } catch (error) {
        const now = await getState(jobId);
        if (now === 'NotFound') return { raised: false, state: now };
        throw error;
      }
      return { raised: true };
    },
    async startReverification(instanceId, input) {
      if ((await getState(instanceId)) !== 'NotFound') return;
      try {
        await client.startNew(REVERIFY_BACKUP_ORCHESTRATOR, { instanceId, input });
      } catch (error) {
        // As for backup jobs: a start that lost a race fails like any other; the state tells them apart.
        if ((await getState(instanceId)) !== 'NotFound') return;
        throw error;
      }
    },
  };
}

export function durableJobOrchestrations(context: InvocationContext): JobOrchestrations {
  return jobOrchestrationsOver(df.getClient(context));
}
