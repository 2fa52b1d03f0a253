import { jobOrchestrationsOver } from '../functions/durable-client.js';
import type { JobOrchestrations } from '../services/orchestrations.js';
import type { InProcessDurableHost } from './durable-host.js';

/**
 * The JobOrchestrations port over the in-process Durable host: the same code as in Azure
 * (functions/durable-client.ts), over a host that answers like the real Durable client.
 */
export function inProcessJobOrchestrations(host: InProcessDurableHost, orchestratorName: string): JobOrchestrations {
  return jobOrchestrationsOver(host, orchestratorName);
}
