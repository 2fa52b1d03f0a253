import type { JobOrchestrations, OrchestrationState } from '../services/orchestrations.js';
import { REVERIFY_BACKUP_ORCHESTRATOR } from '../orchestrations/reverifyBackup.js';
import type { InProcessDurableHost } from './durable-host.js';

/** The JobOrchestrations port over the in-process Durable host (what the Durable client binding is in Azure). */
export function inProcessJobOrchestrations(host: InProcessDurableHost, orchestratorName: string): JobOrchestrations {
  return {
    async startBackupJob(jobId) {
      await host.startNew(orchestratorName, jobId, { jobId });
    },
    async raiseEvent(jobId, eventName, payload) {
      await host.raiseEvent(jobId, eventName, payload);
    },
    async getState(jobId): Promise<OrchestrationState> {
      return host.getStatus(jobId)?.runtimeStatus ?? 'NotFound';
    },
    async startReverification(instanceId, input) {
      await host.startNew(REVERIFY_BACKUP_ORCHESTRATOR, instanceId, input);
    },
  };
}
