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

/** States in which an instance still takes events (the extension answers a raise with 202, not 410/404). */
export const LIVE_ORCHESTRATION_STATES: readonly OrchestrationState[] = ['Pending', 'Running', 'Suspended', 'ContinuedAsNew'];

/** What became of a raised event: handed to a live instance, or not (and the instance's state, e.g. NotFound). */
export type EventDelivery = { raised: true } | { raised: false; state: OrchestrationState };

/**
 * The control plane's view of Durable Functions: one backup orchestration per job (`backupJob2` for new jobs),
 * instance id = job id. In Azure it wraps the Durable client binding (functions/durable-client.ts); the local
 * sandbox supplies an in-process host (dev/) that answers like it. Services never touch `df` directly.
 */
export interface JobOrchestrations {
  /** Starts the job's orchestration; a no-op when an instance with that id already exists. */
  startBackupJob(jobId: string): Promise<void>;
  /**
   * Raises an event at a live instance. An instance that has ended or does not exist would drop it (the real
   * client is silent on 410 and rejects on 404): that is reported, never thrown, so callers act directly.
   */
  raiseEvent(jobId: string, eventName: OrchestrationEventName, payload: unknown): Promise<EventDelivery>;
  getState(jobId: string): Promise<OrchestrationState>;
  /** Starts a `reverifyBackup` instance (orchestrations/reverifyBackup.ts); a no-op when `instanceId` exists. */
  startReverification(instanceId: string, input: { jobId: string; requestedBy?: AuditActor }): Promise<void>;
}
