import type { ORCHESTRATION_EVENTS } from '../shared/contracts/runner.js';
import type { AuditActor } from './retention.js';

export type OrchestrationEventName = (typeof ORCHESTRATION_EVENTS)[keyof typeof ORCHESTRATION_EVENTS];

export type OrchestrationState =
  | 'NotFound'
  | 'Pending'
  | 'Running'
  | 'Completed'
  | 'Failed'
  | 'Terminated'
  | 'Suspended'
  | 'ContinuedAsNew';

/**
 * The control plane's view of Durable Functions: one `backupJob` orchestration per job, instance id = job id.
 * In Azure it wraps the Durable client binding (functions/durable-client.ts); the local sandbox supplies an
 * in-process host (dev/). Services never touch `df` directly.
 */
export interface JobOrchestrations {
  /** Starts the job's orchestration; a no-op when an instance with that id already exists. */
  startBackupJob(jobId: string): Promise<void>;
  raiseEvent(jobId: string, eventName: OrchestrationEventName, payload: unknown): Promise<void>;
  getState(jobId: string): Promise<OrchestrationState>;
  /** Starts a `reverifyBackup` instance (orchestrations/reverifyBackup.ts); a no-op when `instanceId` exists. */
  startReverification(instanceId: string, input: { jobId: string; requestedBy?: AuditActor }): Promise<void>;
}
